"""Explanations: weights of evidence add up to the shift they split, and match pgmpy.

Recipe of the brute-force reference (kept here, beside the comparison): every number is
recomputed from its *definition* with pgmpy's ``VariableElimination`` on
``model.to_pgmpy()`` — P(f | X=present, other findings) / P(f | X=absent, other findings)
queried directly on the finding f — not through Bayes' rule on the cause's posterior, as
alpnet computes it.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import alpnet
from alpnet.cli import main
from alpnet.explain import CONFLICT_THRESHOLD_BITS, explain, explain_record
from alpnet.whatif import apply_changes

from .conftest import EXAMPLES

CASES = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))


def load(name):
    return alpnet.read_case(EXAMPLES / f"{name}.yaml")


def log2_odds(p):
    return math.log2(p) - math.log2(1 - p)


@pytest.mark.parametrize("name", CASES)
def test_contributions_add_up_to_the_shift_of_every_leading_cause(model, name):
    ex = explain(model, load(name), top=3)
    assert len(ex.summary) == 3
    for s in ex.summary.itertuples():
        rows = ex.for_cause(s.cause)
        assert list(rows["order"]) == list(range(1, len(rows) + 1))
        if not (math.isfinite(s.prior_log_odds_bits) and math.isfinite(s.posterior_log_odds_bits)):
            continue  # a cause the context rules out entirely does not move
        assert rows["contribution_bits"].sum() == pytest.approx(s.shift_bits, abs=1e-9)
        assert s.shift_bits == pytest.approx(s.posterior_log_odds_bits - s.prior_log_odds_bits, abs=1e-12)
        if abs(s.shift_bits) > 0.5:
            assert rows["share"].sum() == pytest.approx(1.0, abs=1e-9)


def test_shift_is_read_off_the_diagnose_table(model):
    """The shift is the change of log-odds between diagnose's prior and posterior columns."""
    case = load("osteomalacia_vs_phpt_phpt")
    table = model.diagnose(case).set_index("cause")
    ex = explain(model, case, cause="primary_hyperparathyroidism")
    s = ex.summary.iloc[0]
    row = table.loc["primary_hyperparathyroidism"]
    assert s["prior"] == pytest.approx(row["prior"], rel=1e-9)
    assert s["posterior"] == pytest.approx(row["posterior"], rel=1e-9)
    assert s["shift_bits"] == pytest.approx(log2_odds(row["posterior"]) - log2_odds(row["prior"]), abs=1e-6)


def test_weight_of_evidence_is_the_change_of_posterior_log_odds_without_the_finding(model):
    """By hand: drop one finding from the case's evidence, diagnose again, compare log-odds.

    (The finding is dropped from the evidence rather than from the case file, so that the
    patient's age still picks the reference range the ALP was read against.)
    """
    case = load("liver_vs_bone_liver")
    evidence, _ = model.evidence_of(case)
    ex = explain(model, case, cause="cholestatic_liver")
    p_all = model.diagnose(case).set_index("cause").loc["cholestatic_liver", "posterior"]
    for r in ex.for_cause("cholestatic_liver").itertuples():
        reduced = {k: v for k, v in evidence.items() if k != r.variable}
        p_without = model.diagnose(evidence=reduced).set_index("cause").loc["cholestatic_liver", "posterior"]
        assert r.woe_bits == pytest.approx(log2_odds(p_all) - log2_odds(p_without), abs=1e-6), r.key
        assert r.woe_bits == pytest.approx(math.log2(r.p_given_cause / r.p_given_not), abs=1e-9)


def test_another_order_gives_other_contributions_with_the_same_sum(model):
    case = load("paget_vs_metastases_metastases")
    a = explain(model, case, cause="bone_metastases")
    b = explain(model, case, cause="bone_metastases", order=["tests.bone_scan", "labs.psa"])
    assert b.order[:2] == ["tests.bone_scan", "labs.psa"]
    assert a.findings["contribution_bits"].sum() == pytest.approx(b.findings["contribution_bits"].sum(), abs=1e-9)
    ca = a.findings.set_index("key")["contribution_bits"]
    cb = b.findings.set_index("key")["contribution_bits"]
    assert not np.allclose(ca[cb.index].to_numpy(), cb.to_numpy())
    # the leave-one-out weight does not depend on the order
    wa = a.findings.set_index("key")["woe_bits"]
    wb = b.findings.set_index("key")["woe_bits"]
    assert np.allclose(wa[wb.index].to_numpy(), wb.to_numpy(), atol=1e-12)


def test_versus_names_the_findings_that_separate_paget_from_metastases(model):
    ex = explain(model, load("paget_vs_metastases_metastases"), cause="bone_metastases", versus="paget")
    v = ex.versus.set_index("key")
    assert v.loc["tests.bone_scan", "favours"] == "bone_metastases"
    assert v.loc["labs.psa", "favours"] == "bone_metastases"
    vs = ex.versus_summary
    assert v["contribution_bits"].sum() == pytest.approx(vs["shift_bits"], abs=1e-9)
    assert vs["shift_bits"] > 0
    # the mirror image: paget versus bone metastases has every sign flipped
    mirror = explain(model, load("paget_vs_metastases_metastases"), cause="paget", versus="bone_metastases")
    assert np.allclose(mirror.versus["llr_bits"].to_numpy(), -ex.versus["llr_bits"].to_numpy(), atol=1e-12)


def test_conflict_flags_a_finding_that_pulls_against_the_rest(model):
    """A liver isoenzyme in an otherwise clear Paget case (normal GGT, Paget x-ray and scan)."""
    case = load("paget")
    calm = explain(model, case, cause="paget")
    odd_case, _ = apply_changes(case, set={"tests.alp_isoenzymes": "liver"})
    odd = explain(model, odd_case, cause="paget")
    flagged = set(odd.conflict.loc[odd.conflict["pulls_against"], "key"])
    assert "tests.alp_isoenzymes" in flagged
    assert odd.conflict_bits > calm.conflict_bits
    row = odd.conflict.set_index("key").loc["tests.alp_isoenzymes"]
    assert row["conflict_bits"] == pytest.approx(math.log2(row["p_alone"] / row["p_given_rest"]), abs=1e-12)
    assert row["conflict_bits"] > CONFLICT_THRESHOLD_BITS


def test_unknown_cause_is_named_with_the_accepted_ones(model):
    with pytest.raises(alpnet.CaseError, match=r"cause 'pagett': unknown cause \(did you mean 'paget'\?\); accepted"):
        explain(model, load("paget"), cause="pagett")
    with pytest.raises(alpnet.CaseError, match="versus 'paget': the same cause"):
        explain(model, load("paget"), cause="paget", versus="paget")


def test_record_is_json_with_the_disclaimer_and_the_model(model):
    rec = explain_record(model, load("paget_vs_metastases_metastases"), versus="paget")
    text = json.dumps(rec, allow_nan=False)
    back = json.loads(text)
    assert back["disclaimer"] == alpnet.DISCLAIMER
    assert back["model"]["priors_sha256"] == model.priors.sha256
    assert back["causes"][0]["cause"] == "bone_metastases"
    assert back["versus"]["versus"] == "paget"
    total = sum(f["contribution_bits"] for f in back["causes"][0]["findings"])
    assert total == pytest.approx(back["causes"][0]["shift_bits"], abs=1e-9)


# ----------------------------------------------------------------------------- against pgmpy


@pytest.fixture(scope="module")
def infer(model):
    from pgmpy.inference import VariableElimination

    return VariableElimination(model.to_pgmpy())


def _p(infer, var, state, evidence):
    q = infer.query(variables=[var], evidence=dict(evidence), show_progress=False)
    return float(q.values[q.state_names[var].index(state)] / q.values.sum())


def test_every_number_matches_a_brute_force_computation_with_pgmpy(model, infer):
    case = load("paget_vs_metastases_metastases")
    evidence, _ = model.evidence_of(case)
    assert all(isinstance(v, str) for v in evidence.values()), "this check needs hard evidence only"
    x, y = "bone_metastases", "paget"
    ex = explain(model, case, cause=x, versus=y)
    ctx = {k: v for k, v in evidence.items() if k in model.priors.context}
    found = {k: v for k, v in evidence.items() if k not in ctx}
    rows = ex.for_cause(x)
    prefix = dict(ctx)
    log_p_e = 0.0
    for r in rows.itertuples():
        f, s = r.variable, found[r.variable]
        rest = {k: v for k, v in evidence.items() if k != f}
        # weight of evidence given the other findings, from its definition
        p1 = _p(infer, f, s, {**rest, x: "present"})
        p0 = _p(infer, f, s, {**rest, x: "absent"})
        assert r.woe_bits == pytest.approx(math.log2(p1 / p0), abs=1e-7), f
        # chain-rule contribution given the findings before it
        q1 = _p(infer, f, s, {**prefix, x: "present"})
        q0 = _p(infer, f, s, {**prefix, x: "absent"})
        assert r.contribution_bits == pytest.approx(math.log2(q1 / q0), abs=1e-7), f
        # conflict: P(f | context) against P(f | context and the rest)
        c = ex.conflict.set_index("variable").loc[f]
        assert c["p_alone"] == pytest.approx(_p(infer, f, s, ctx), abs=1e-9)
        assert c["p_given_rest"] == pytest.approx(_p(infer, f, s, rest), abs=1e-9)
        # versus: X without Y against Y without X
        v = ex.versus.set_index("variable").loc[f]
        px = _p(infer, f, s, {**rest, x: "present", y: "absent"})
        py = _p(infer, f, s, {**rest, x: "absent", y: "present"})
        assert v["llr_bits"] == pytest.approx(math.log2(px / py), abs=1e-7), f
        log_p_e += math.log2(_p(infer, f, s, prefix))
        prefix[f] = s
    alone = sum(math.log2(_p(infer, f, found[f], ctx)) for f in found)
    assert ex.conflict_bits == pytest.approx(alone - log_p_e, abs=1e-7)
    # the prior and the posterior the shift is measured between
    s = ex.summary.iloc[0]
    assert s["prior"] == pytest.approx(_p(infer, x, "present", ctx), abs=1e-9)
    assert s["posterior"] == pytest.approx(_p(infer, x, "present", evidence), abs=1e-9)


# ----------------------------------------------------------------------------- command line


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_explain_table_and_json(capsys):
    path = str(EXAMPLES / "paget_vs_metastases_metastases.yaml")
    code, out, err = run(capsys, "explain", path, "--versus", "paget")
    assert code == 0, err
    assert "Bone metastases (bone_metastases)" in out and "bone_metastases versus paget" in out
    assert "conflict (Jensen)" in out and out.count("research and teaching") == 1
    code, out, err = run(capsys, "explain", path, "--cause", "paget", "--format", "json")
    assert code == 0, err
    rec = json.loads(out)
    assert [c["cause"] for c in rec["causes"]] == ["paget"]
    assert rec["disclaimer"] == alpnet.DISCLAIMER


@pytest.mark.parametrize("argv, message", [
    (["--cause", "pagett"], "cause 'pagett': unknown cause"),
    (["--versus", "liver"], "versus 'liver': unknown cause"),
])
def test_cli_explain_unknown_cause_exits_2_in_one_line(capsys, argv, message):
    code, out, err = run(capsys, "explain", str(EXAMPLES / "paget.yaml"), *argv)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_explain_plot_is_written_and_replaced_only_with_force(capsys, tmp_path):
    target = tmp_path / "why.png"
    path = str(EXAMPLES / "paget.yaml")
    code, _, err = run(capsys, "explain", path, "--plot", str(target))
    assert code == 0, err
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = run(capsys, "explain", path, "--plot", str(target))
    assert code == 2 and "already exists; use --force" in err and out == ""
    code, _, err = run(capsys, "explain", path, "--plot", str(target), "--force")
    assert code == 0, err


def test_a_finding_that_decides_has_an_infinite_weight_written_as_null(model):
    case = load("pregnancy_extreme_placental")
    ex = explain(model, case, cause="pregnancy")
    row = ex.for_cause("pregnancy").set_index("key").loc["tests.alp_isoenzymes"]
    assert row["woe_bits"] == math.inf and row["contribution_bits"] == math.inf
    rec = explain_record(model, case, cause="pregnancy")
    json.dumps(rec, allow_nan=False)
    iso = [f for f in rec["causes"][0]["findings"] if f["key"] == "tests.alp_isoenzymes"][0]
    assert iso["woe_bits"] is None


def test_a_cause_the_context_rules_out_does_not_move(model):
    ex = explain(model, load("paget"), cause="pregnancy")  # a man
    rows = ex.for_cause("pregnancy")
    assert ex.summary.iloc[0]["prior"] == 0 and ex.summary.iloc[0]["shift_bits"] == 0
    assert (rows["woe_bits"] == 0).all() and (rows["contribution_bits"] == 0).all()


# ----------------------------------------------------------------------------- Shapley values

SMALL = {"id": "small", "patient": {"age": 70, "sex": "male"},
         "labs": {"alp": "400 U/L", "alp_uln": "130 U/L", "ggt": "25 U/L", "psa": "30 ng/mL"},
         "symptoms": {"bone_pain": True}, "tests": {"bone_scan": "multiple_foci"}}


def _orders_average(model, cause):
    """Recipe: the chain-rule contribution of each finding averaged over all n! orders,
    each computed from model.diagnose posteriors (log-odds before and after adding it)."""
    import itertools

    evidence, _ = model.evidence_of(SMALL)
    ctx = {k: v for k, v in evidence.items() if k in model.priors.context}
    found = [k for k in evidence if k not in ctx]
    lo_cache = {}

    def lo(keys):
        key = frozenset(keys)
        if key not in lo_cache:
            table = model.diagnose(evidence={**ctx, **{k: evidence[k] for k in keys}}).set_index("cause")
            lo_cache[key] = log2_odds(table.loc[cause, "posterior"])
        return lo_cache[key]

    total = {f: 0.0 for f in found}
    orders = list(itertools.permutations(found))
    for order in orders:
        for k, f in enumerate(order):
            total[f] += lo(order[: k + 1]) - lo(order[:k])
    return {f: v / len(orders) for f, v in total.items()}


def test_shapley_values_are_the_chain_rule_averaged_over_every_order(model):
    ex = explain(model, SMALL, cause="bone_metastases", method="shapley")
    assert ex.method.startswith("Shapley values over the findings (exact")
    rows = ex.for_cause("bone_metastases").set_index("variable")
    want = _orders_average(model, "bone_metastases")
    for f, v in want.items():
        assert rows.loc[f, "contribution_bits"] == pytest.approx(v, abs=1e-6), f
    assert rows["contribution_bits"].sum() == pytest.approx(ex.summary.iloc[0]["shift_bits"], abs=1e-9)
    # the leave-one-out weights do not depend on the method
    chain = explain(model, SMALL, cause="bone_metastases").for_cause("bone_metastases").set_index("variable")
    assert np.allclose(rows["woe_bits"], chain.loc[rows.index, "woe_bits"], atol=1e-12)


def test_sampled_shapley_values_still_add_up_exactly(model, monkeypatch):
    import alpnet.explain as explain_module

    exact = explain(model, SMALL, cause="bone_metastases", versus="paget", method="shapley")
    monkeypatch.setattr(explain_module, "SHAPLEY_EXACT_MAX", 2)
    sampled = explain(model, SMALL, cause="bone_metastases", versus="paget", method="shapley", permutations=300)
    assert "sampled: 300 random orders" in sampled.method
    s = sampled.summary.iloc[0]
    assert sampled.findings["contribution_bits"].sum() == pytest.approx(s["shift_bits"], abs=1e-9)
    assert sampled.versus["contribution_bits"].sum() == pytest.approx(sampled.versus_summary["shift_bits"], abs=1e-9)
    assert np.allclose(sampled.findings["contribution_bits"], exact.findings["contribution_bits"], atol=0.5)


def test_unknown_method_is_named(model):
    with pytest.raises(alpnet.CaseError, match="method 'lime': unknown; accepted: chain, shapley"):
        explain(model, SMALL, method="lime")
