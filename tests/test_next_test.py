"""The value of the next test: exact information gain, costs, lookahead and plans."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alpnet.cli import main

from .conftest import EXAMPLES
from .test_engine import random_evidence

HIGH = ["mild", "moderate", "marked", "extreme"]
BONE_VS_LIVER = {"ggt", "alp_isoenzymes", "bone_alp", "five_nt"}


def entropy_bits(values: np.ndarray) -> float:
    v = values[values > 0]
    return float(-(v * np.log2(v)).sum())


def brute_force_gain(infer, model, evidence, test):
    """Enumerate the outcomes; for each, pgmpy VariableElimination gives the joint of the causes."""
    hidden = model.priors.hidden
    q0 = infer.query(variables=hidden, evidence=evidence, joint=True, show_progress=False)
    h0 = entropy_bits(q0.values.ravel() / q0.values.sum())
    # P(outcome | evidence) from pgmpy as well
    pt = infer.query(variables=[test], evidence=evidence, joint=True, show_progress=False)
    expected = 0.0
    for state, p in zip(pt.state_names[test], pt.values.ravel() / pt.values.sum()):
        if p <= 0:
            continue
        q = infer.query(variables=hidden, evidence={**evidence, test: state}, joint=True, show_progress=False)
        expected += p * entropy_bits(q.values.ravel() / q.values.sum())
    return h0 - expected


def test_information_gain_equals_brute_force_with_pgmpy(model, rng):
    from pgmpy.inference import VariableElimination

    infer = VariableElimination(model.to_pgmpy())
    checked = 0
    for _ in range(40):
        ev = random_evidence(model, rng, p_observe=0.12, soft=False)
        ev.setdefault("alp", "moderate")
        try:
            ranking = model.rank_tests(evidence=ev)
        except ValueError:
            continue
        for row in ranking.itertuples():
            want = brute_force_gain(infer, model, ev, row.test)
            assert abs(row.expected_information_gain_bits - want) < 1e-9, (row.test, ev)
        checked += 1
        if checked == 4:
            break
    assert checked == 4


def test_target_gain_equals_brute_force(model):
    ev = {"age": "70_plus", "sex": "male", "alp": "marked", "ggt": "normal"}
    ranking = model.rank_tests(evidence=ev, target="paget").set_index("test")
    base = model.engine.posterior(ev)["paget"]

    def h(p):
        return entropy_bits(np.array([p, 1 - p]))

    for test in ("bone_scan", "xray", "psa", "pth", "known_cancer"):
        pred = model.engine.predictive(ev, test)
        want = h(base) - sum(p * h(model.engine.posterior({**ev, test: s})["paget"]) for s, p in pred.items() if p > 0)
        assert ranking.loc[test, "expected_information_gain_bits"] == pytest.approx(want, abs=1e-9)


def test_outcome_probabilities_and_posteriors_match_the_engine(model, rng):
    """'What you would learn': for every test and question, each outcome's probability and its
    leading causes are exactly the engine's posterior after that outcome (the top three by value)."""
    sets = [{"age": "55_to_69", "sex": "female", "alp": "moderate"}]
    while len(sets) < 4:
        ev = random_evidence(model, rng, p_observe=0.2, soft=False)
        if model.engine.joint(ev)[1] > 0:
            sets.append(ev)
    for ev in sets:
        ranking = model.rank_tests(evidence=ev)
        assert set(ranking["test"]) == {n for n in model.ranker.tests + model.ranker.questions if n not in ev}
        for row in ranking.itertuples():
            pred = model.engine.predictive(ev, row.test)
            assert sum(o["p"] for o in row.outcomes.values()) == pytest.approx(1.0)
            for state, out in row.outcomes.items():
                assert out["p"] == pytest.approx(pred[state], abs=1e-12)
                post = model.engine.posterior({**ev, row.test: state})
                top = sorted(model.causes, key=lambda c: -post[c])[:3]
                assert [post[c] for c in out["leading"]] == pytest.approx([post[c] for c in top], abs=1e-9)
                for cause, p in out["leading"].items():
                    assert p == pytest.approx(post[cause], abs=1e-9)


def test_gains_are_never_negative_and_observed_tests_are_not_ranked(model, rng):
    for _ in range(10):
        ev = random_evidence(model, rng, p_observe=0.3, soft=False)
        try:
            ranking = model.rank_tests(evidence=ev)
        except ValueError:
            continue
        assert (ranking["expected_information_gain_bits"] >= 0).all()
        assert not set(ranking["test"]) & set(ev)
        tests = ranking[ranking["kind"] == "test"]
        assert list(tests["score"]) == sorted(tests["score"], reverse=True)


def test_a_test_d_separated_from_the_causes_has_gain_zero(model):
    """eGFR and creatinine depend on the causes only through CKD: once CKD is known they say nothing."""
    ranking = model.rank_tests(evidence={"age": "70_plus", "sex": "male", "alp": "mild", "ckd": "true"})
    gains = ranking.set_index("test")["expected_information_gain_bits"]
    assert gains["egfr"] == pytest.approx(0.0, abs=1e-12)
    assert gains["creatinine"] == pytest.approx(0.0, abs=1e-12)
    # without CKD known they do carry information
    open_ckd = model.rank_tests(evidence={"age": "70_plus", "sex": "male", "alp": "mild"})
    assert open_ckd.set_index("test").loc["egfr", "expected_information_gain_bits"] > 0.01


def test_questions_are_free_and_ranked_apart(model):
    ranking = model.rank_tests(evidence={"age": "55_to_69", "sex": "male", "alp": "moderate"})
    kinds = list(ranking["kind"])
    assert kinds == sorted(kinds, key=lambda k: k != "test"), "tests first, then questions"
    questions = ranking[ranking["kind"] == "question"]
    assert set(questions["test"]) >= {"bone_pain", "known_cancer", "ckd"}
    assert (questions["cost"] == 0).all()
    assert "patient" not in "".join(questions["test"]) and "sex" not in set(questions["test"])


def test_costs_include_the_blood_draw_and_the_cost_weight_reorders(model):
    ev = {"age": "70_plus", "sex": "male", "alp": "marked"}
    ranking = model.rank_tests(evidence=ev).set_index("test")
    costs = model.priors.costs
    draw = costs["draws"]["blood"]["cost"].value
    assert ranking.loc["ggt", "cost"] == pytest.approx(costs["tests"]["ggt"]["cost"].value + draw)
    assert ranking.loc["bone_scan", "cost"] == pytest.approx(costs["tests"]["bone_scan"]["cost"].value)
    assert ranking.loc["ggt", "gain_per_cost"] == pytest.approx(
        ranking.loc["ggt", "expected_information_gain_bits"] / ranking.loc["ggt", "cost"])
    weighted = model.rank_tests(evidence=ev, cost_weight=0.005)
    for row in weighted.itertuples():
        assert row.score == pytest.approx(row.expected_information_gain_bits - 0.005 * row.cost)
    order = list(weighted[weighted["kind"] == "test"]["test"])
    assert order.index("bone_scan") > order.index("alp_isoenzymes")


def test_two_step_lookahead_is_exact_and_never_below_the_best_single_test(model):
    ev = {"age": "55_to_69", "sex": "female", "alp": "moderate", "bone_pain": "true"}
    one = model.rank_tests(evidence=ev)
    two = model.rank_tests(evidence=ev, lookahead=2)
    best_single = one[one["kind"] == "test"]["expected_information_gain_bits"].max()
    assert two[two["kind"] == "test"]["expected_information_gain_bits"].max() >= best_single - 1e-12
    # recompute the two-step value of every first test by re-ranking after each outcome; CKD is
    # unknown, so pairs such as phosphate then creatinine share a context parent
    assert "ckd" not in ev
    for row in two[two["kind"] == "test"].itertuples():
        pred = model.engine.predictive(ev, row.test)
        total = row.one_step_gain_bits
        for state, p in pred.items():
            if p <= 0:
                continue
            sub = model.rank_tests(evidence={**ev, row.test: state})
            sub = sub[sub["kind"] == "test"]
            total += p * sub["expected_information_gain_bits"].max()
            assert sub.set_index("test").loc[row.second_test[state], "expected_information_gain_bits"] == \
                pytest.approx(sub["expected_information_gain_bits"].max(), abs=1e-12)
        assert row.expected_information_gain_bits == pytest.approx(total, abs=1e-9)


def test_adult_with_only_a_high_alp_is_sent_to_a_bone_versus_liver_test(model):
    """An isolated raised ALP could come from bone or from the liver (or the placenta); before
    anything else the clinician wants to know which organ it comes from — GGT, ALP isoenzymes,
    bone-specific ALP or 5'-nucleotidase (Lieberman 1990; GGT is not raised in bone disease)."""
    for age in ("20_to_39", "40_to_54", "55_to_69"):
        for sex in ("female", "male"):
            ranking = model.rank_tests(evidence={"age": age, "sex": sex, "alp": HIGH})
            assert ranking.iloc[0]["test"] in BONE_VS_LIVER, (age, sex, ranking.head(3))


def test_once_the_alp_is_bony_the_metabolic_tests_come_forward(model):
    """With a normal GGT and a bone isoenzyme, the liver is out; vitamin D, calcium, phosphate
    and PTH (osteomalacia, hyperparathyroidism) move up the ranking and liver tests move down."""
    metabolic = ["vitamin_d_25oh", "calcium", "phosphate", "pth"]
    liver = ["ast", "alt", "bilirubin", "five_nt", "ama", "liver_ultrasound"]
    for sex in ("female", "male"):
        ev = {"age": "55_to_69", "sex": sex, "alp": HIGH}
        before = model.rank_tests(evidence=ev)
        after = model.rank_tests(evidence={**ev, "ggt": "normal", "alp_isoenzymes": "bone"})
        rank_b = {t: i for i, t in enumerate(before[before["kind"] == "test"]["test"])}
        rank_a = {t: i for i, t in enumerate(after[after["kind"] == "test"]["test"])}
        assert sum(rank_a[t] for t in metabolic) < sum(rank_b[t] for t in metabolic)
        assert sum(t in metabolic for t in list(rank_a)[:5]) >= 2
        assert min(rank_a[t] for t in liver) > max(rank_a[t] for t in ["pth", "vitamin_d_25oh"])


def test_known_prostate_cancer_with_night_pain_is_sent_to_imaging(model):
    """A man with prostate cancer, a raised ALP and bone pain at night most likely has bone
    metastases; the bone scan (per-patient sensitivity 86%) answers that question best."""
    for age in ("55_to_69", "70_plus"):
        ranking = model.rank_tests(evidence={"age": age, "sex": "male", "alp": HIGH, "known_cancer": "prostate",
                                             "night_pain": "true"})
        assert ranking.iloc[0]["test"] == "bone_scan"


def test_plan_tree_stops_by_its_rules_and_reports_expectations(model):
    ev = {"age": "55_to_69", "sex": "male", "alp": "moderate"}
    plan = model.plan(evidence=ev, max_depth=2, stop_probability=0.9, min_gain=0.05, budget=300)
    json.dumps(plan)  # serialisable

    def walk(node, depth, spent, prob, leaves):
        assert node["cost_so_far"] == pytest.approx(spent)
        assert node["cost_so_far"] <= 300 + 1e-9
        if "stop" in node:
            leaves.append((prob, node))
            return
        name = node.get("test") or node.get("ask")
        assert node["kind"] in ("test", "question")
        total = sum(b["p"] for b in node["outcomes"].values())
        assert total == pytest.approx(1.0, abs=1e-9)
        for state, branch in node["outcomes"].items():
            assert state in model.observables[name]
            walk(branch["next"], depth + (node["kind"] == "test"), spent + node["cost"], prob * branch["p"], leaves)

    leaves = []
    walk(plan["tree"], 0, 0.0, 1.0, leaves)
    assert sum(p for p, _ in leaves) == pytest.approx(1.0, abs=1e-9)
    assert plan["expected_cost"] == pytest.approx(sum(p * n["cost_so_far"] for p, n in leaves))
    assert plan["expected_final_leading_probability"] == pytest.approx(sum(p * n["leading_probability"] for p, n in leaves))
    for _, node in leaves:
        assert ("90%" in node["stop"] and node["leading_probability"] >= 0.9) or "90%" not in node["stop"]


def test_plan_stops_at_once_when_the_leading_cause_is_already_certain(model):
    plan = model.plan(evidence={"age": "70_plus", "sex": "male", "alp": "marked", "known_cancer": "prostate",
                                "bone_scan": "multiple_foci", "night_pain": "true"}, stop_probability=0.8)
    assert "stop" in plan["tree"] and plan["expected_cost"] == 0


def test_cli_next_test_json_has_the_documented_shape(capsys, model):
    code = main(["next-test", str(EXAMPLES / "paget.yaml"), "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0
    rec = json.loads(out)
    assert rec["case_id"] == "paget"
    first = rec["ranking"][0]
    assert {"test", "expected_information_gain_bits", "cost", "score", "outcomes"} <= set(first)
    state, outcome = next(iter(first["outcomes"].items()))
    assert state in model.observables[first["test"]] and set(outcome) == {"p", "leading"}
    assert all(q["kind"] == "question" for q in rec["questions"])
    assert "research and teaching" in rec["disclaimer"]


def test_cli_next_test_table_target_lookahead_and_errors(capsys):
    assert main(["next-test", "--example", "paget", "--target", "paget", "--lookahead", "2"]) == 0
    out = capsys.readouterr().out
    assert "about paget" in out and "two-step" in out and "research and teaching" in out
    assert main(["next-test", "--example", "paget", "--target", "pagets"]) == 2
    assert "not a cause" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["next-test", "--example", "paget", "--cost-weight", "-1"])
    assert info.value.code == 2


def test_cli_plan_tree_and_json(capsys):
    assert main(["plan", "--example", "liver_vs_bone_bone", "--max-depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "expected cost" in out and "stop:" in out
    assert main(["plan", "--example", "liver_vs_bone_bone", "--max-depth", "1", "--format", "json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert {"tree", "expected_cost", "expected_final_leading_probability", "case_id"} <= set(rec)
