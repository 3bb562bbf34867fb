"""Credible intervals from parameter draws matched to each number's range."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import alpnet
from alpnet.cli import main
from alpnet.uncertainty import draw_parameters, posterior_uncertainty

EVIDENCE = {"age": "55_to_69", "sex": "female", "alp": "moderate", "ggt": "normal", "bone_pain": "true"}


def test_draws_match_values_ranges_and_columns(model):
    pset = model.priors
    ids, values = draw_parameters(pset, 4000, seed=1)
    assert values.shape == (4000, len(ids))
    col = dict(zip(ids, values.T))
    p = pset.parameters["alp.link[paget].marked"]  # a probability in a noisy-MAX column
    assert np.mean(col[p.id]) == pytest.approx(p.value, abs=0.01)
    column = pset.columns[p.id]
    total = sum(col[q] for q in column)
    assert np.allclose(total, 1.0)
    rr = pset.parameters["paget.rr[family_history_paget=true]"]
    assert (col[rr.id] > 0).all() and np.median(col[rr.id]) == pytest.approx(rr.value, rel=0.05)
    lo, hi = np.quantile(col[rr.id], [0.025, 0.975])
    assert lo == pytest.approx(rr.low, rel=0.1) and hi == pytest.approx(rr.high, rel=0.1)
    fixed = [pid for pid in ids if pset.parameters[pid].source == "by-definition"
             and not pset.columns.get(pid)]
    for pid in fixed:
        assert np.all(col[pid] == pset.parameters[pid].value)


def test_same_seed_same_intervals_and_other_seed_differs(model):
    a = posterior_uncertainty(model, EVIDENCE, draws=30, seed=7, tests=2)
    b = posterior_uncertainty(model, EVIDENCE, draws=30, seed=7, tests=2)
    c = posterior_uncertainty(model, EVIDENCE, draws=30, seed=8, tests=2)
    assert a.posteriors.equals(b.posteriors) and a.gains.equals(b.gains)
    assert not a.posteriors[["low", "high"]].equals(c.posteriors[["low", "high"]])


def test_intervals_contain_the_point_estimate_and_report_the_leader(model):
    res = posterior_uncertainty(model, EVIDENCE, draws=200, seed=3, tests=3)
    df = res.posteriors
    assert ((df["low"] <= df["posterior"] + 1e-12) & (df["posterior"] <= df["high"] + 1e-12)).all()
    assert res.leading_cause == model.diagnose(evidence=EVIDENCE).attrs["leading_cause"]
    assert 0 <= res.leading_stays <= 1 and df["p_leading"].sum() == pytest.approx(1.0)
    g = res.gains
    assert len(g) == 3 and ((g["low"] <= g["expected_information_gain_bits"] + 1e-12)
                            & (g["expected_information_gain_bits"] <= g["high"] + 1e-12)).all()
    assert res.best_test == model.rank_tests(evidence=EVIDENCE).iloc[0]["test"]


def test_intervals_shrink_when_ranges_shrink(model):
    narrow = copy.deepcopy(model.priors)
    for p in narrow.parameters.values():
        half = (p.high - p.low) / 2 / 10
        p.low, p.high = max(p.value - half, 0.0 if p.kind != "ratio" else 1e-9), p.value + half
        if p.kind == "probability":
            p.high = min(p.high, 1.0)
    tight = alpnet.Model(narrow)
    wide = posterior_uncertainty(model, EVIDENCE, draws=100, seed=5, tests=0).posteriors.set_index("cause")
    thin = posterior_uncertainty(tight, EVIDENCE, draws=100, seed=5, tests=0).posteriors.set_index("cause")
    top = wide["posterior"].nlargest(4).index
    assert ((thin.loc[top, "high"] - thin.loc[top, "low"]) < (wide.loc[top, "high"] - wide.loc[top, "low"])).all()


def test_cli_diagnose_uncertainty_is_reproducible(capsys):
    argv = ["diagnose", "--example", "paget", "--uncertainty", "--draws", "12", "--seed", "4", "--format", "json"]
    assert main(argv) == 0
    one = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    two = json.loads(capsys.readouterr().out)
    assert one["uncertainty"] == two["uncertainty"]
    u = one["uncertainty"]
    assert u["draws"] == 12 and u["seed"] == 4 and u["level"] == 0.95
    assert {r["cause"] for r in u["posteriors"]} == set(one["posterior"])
    assert main(["diagnose", "--example", "paget", "--uncertainty", "--draws", "12"]) == 0
    assert "credible intervals from 12 parameter draws" in capsys.readouterr().out
    assert main(["diagnose", "--example", "paget", "--uncertainty", "--draws", "1"]) == 2
    assert "--draws" in capsys.readouterr().err
