"""Exact one-way sensitivity: functions, derivatives, admissible deviations, tornado, CLI."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import alpnet
from alpnet.cli import main
from alpnet.sensitivity import sensitivity, sensitivity_function
from alpnet.tornado import plot_tornado

# a man with known prostate cancer, age not given: context priors, cause models, a finding with a
# context parent (PSA) and noisy-MAX links all enter this posterior
EVIDENCE = {"sex": "male", "known_cancer": "prostate", "alp": "marked", "psa": "high", "bone_pain": "true",
            "ggt": "normal"}
PARAMS = [
    "age.prior.70_plus",                                  # context prior (distribution column)
    "bone_metastases.baseline[age=55_to_69]",            # cause base rate
    "paget.rr[family_history_paget=true]",               # relative risk (ratio); family history unknown
    "alp.link[bone_metastases].marked",                  # noisy-MAX link of an observed finding
    "psa.table[known_cancer=prostate,bone_metastases=present].high",  # finding with a context parent
    "bone_pain.link[paget].true",                        # noisy-OR link
]


@pytest.fixture(scope="module")
def result(model):
    return sensitivity(model, EVIDENCE, cause="bone_metastases", parameters=PARAMS)


def test_sensitivity_function_equals_brute_force_recomputation(model, result):
    """(a x + b) / (c x + d) equals a model rebuilt with the parameter overridden, at several values."""
    table = result.table.set_index("parameter")
    for pid in PARAMS:
        row = table.loc[pid]
        assert row["exact_form"], pid
        p = model.priors.parameters[pid]
        for x in (p.low, 0.5 * (p.low + p.value), p.high, 0.37 * p.value):
            rebuilt = alpnet.load_model(overrides={pid: x})
            want = rebuilt.engine.posterior(EVIDENCE)["bone_metastases"]
            got = (row["a"] * x + row["b"]) / (row["c"] * x + row["d"])
            assert abs(got - want) < 1e-9, (pid, x, got, want)


def test_tornado_ends_and_derivative_match_direct_evaluation(model, result):
    table = result.table.set_index("parameter")
    hidden = model.priors.hidden.index("bone_metastases")
    for pid in PARAMS:
        row = table.loc[pid]
        p = model.priors.parameters[pid]
        ends = sensitivity_function(model, EVIDENCE, pid, [p.low, p.high])[:, hidden]
        assert row["posterior_low"] == pytest.approx(ends[0], abs=1e-12)
        assert row["posterior_high"] == pytest.approx(ends[1], abs=1e-12)
        h = 1e-6 * max(p.value, 1e-3)
        near = sensitivity_function(model, EVIDENCE, pid, [p.value - h, p.value + h])[:, hidden]
        assert row["sensitivity_value"] == pytest.approx((near[1] - near[0]) / (2 * h), rel=1e-4, abs=1e-9)
    assert (result.table["swing"].diff().dropna() <= 1e-15).all(), "most influential first"


def test_parameters_of_unobserved_findings_cannot_move_the_posterior(model):
    pid = "hearing_loss.link[paget].true"
    res = sensitivity(model, EVIDENCE, cause="paget", parameters=[pid])
    row = res.table.iloc[0]
    assert row["effect"] == "none" and row["sensitivity_value"] == 0.0
    rebuilt = alpnet.load_model(overrides={pid: 0.99})
    assert rebuilt.engine.posterior(EVIDENCE)["paget"] == pytest.approx(res.posterior, abs=1e-12)


def test_admissible_deviation_is_where_the_leading_cause_changes(model):
    """Inside the interval the leader stays; just beyond a finite end, another cause leads."""
    ev = {"age": "70_plus", "sex": "male", "alp": "moderate", "ggt": "normal", "bone_pain": "true"}
    lead = model.diagnose(evidence=ev).attrs["leading_cause"]
    candidates = [pid for pid in model.priors.parameters
                  if pid.startswith(f"{lead}.baseline") or pid.startswith("alp.link[")]
    res = sensitivity(model, ev, parameters=candidates)
    assert res.leading_cause == lead
    inner = res.table[(res.table["effect"] == "yes")
                      & ((res.table["admissible_high"] < 1) | (res.table["admissible_low"] > 0))]
    assert len(inner), "no parameter can change the leader: pick another case"
    checked = 0
    for row in inner.head(3).itertuples():
        for bound, step in ((row.admissible_high, 1e-4), (row.admissible_low, -1e-4)):
            if bound in (0.0, 1.0):
                continue
            for x, same in ((bound - step, True), (bound + step, False)):
                if not 0 <= x <= 1:
                    continue
                post = sensitivity_function(model, ev, row.parameter, [x])[0]
                causes = [model.priors.hidden.index(c) for c in model.causes]
                now = model.causes[int(np.argmax(post[causes]))]
                assert (now == lead) is same, (row.parameter, x, now)
                checked += 1
    assert checked >= 2


def test_tornado_plot_has_one_labelled_bar_per_parameter(result):
    ax = plot_tornado(result, top=4, cause_label="Bone metastases")
    assert len(ax.patches) == 4
    labels = [t.get_text() for t in ax.get_yticklabels()]
    top4 = result.table[result.table["effect"] == "yes"].head(4)
    for pid, src in zip(top4["parameter"], top4["source"]):
        assert f"{pid} [{src}]" in labels
    assert "Bone metastases" in ax.get_xlabel()


def test_cli_sensitivity_table_json_plot_and_errors(capsys, tmp_path):
    assert main(["sensitivity", "--example", "paget", "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert "sensitivity of P(paget | evidence)" in out and "not for clinical decisions" in out
    assert main(["sensitivity", "--example", "paget", "--top", "3", "--format", "json", "--param",
                 "paget.baseline[age=70_plus,sex=male]=0.02"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["cause"] == "paget" and len(rec["parameters"]) == 3
    assert rec["model"]["overrides"] == {"paget.baseline[age=70_plus,sex=male]": 0.02}
    assert {"parameter", "a", "b", "c", "d", "sensitivity_value", "admissible_low", "source"} <= set(rec["parameters"][0])
    plot = tmp_path / "tornado.png"
    assert main(["sensitivity", "--example", "paget", "--plot", str(plot)]) == 0
    capsys.readouterr()
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["sensitivity", "--example", "paget", "--plot", str(plot)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["sensitivity", "--example", "paget", "--cause", "gout"]) == 2
    assert "not a cause" in capsys.readouterr().err
