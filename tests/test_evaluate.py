"""alpnet evaluate: metrics equal scikit-learn's, seeded bootstrap, calibration table, bad input."""

from __future__ import annotations

import json
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

import alpnet
from alpnet.cli import main
from alpnet.evaluate import LabelError, evaluate, evaluate_arrays
from alpnet.simulate import simulate

CAUSES = ["a", "b", "c", "d", "e"]


def _random_data(rng: np.random.Generator, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random((n, len(CAUSES))) < [0.3, 0.1, 0.5, 0.05, 0.2]).astype(float)
    noise = rng.normal(0, 1.2, size=y.shape)
    post = 1 / (1 + np.exp(-(2.5 * y - 1.5 + noise)))
    post[:7, 0] = 0.5  # ties, for the AUC's mid-ranks
    post[7, 1] = 0.0   # an exact 0 and 1, for the log loss's clipping
    post[8, 1] = 1.0
    return post, y


def _hand_topk(post: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Per-cause and overall top-k, one row at a time (ties by cause name, as diagnose)."""
    per_hit = np.zeros(post.shape[1])
    per_n = np.zeros(post.shape[1])
    over_hit = over_n = 0
    for p, t in zip(post, y):
        order = sorted(range(len(CAUSES)), key=lambda j: (-p[j], CAUSES[j]))[:k]
        for j in range(len(CAUSES)):
            if t[j]:
                per_n[j] += 1
                per_hit[j] += j in order
        if t.any():
            over_n += 1
            over_hit += any(t[j] for j in order)
    return per_hit / per_n, over_hit / over_n


def test_metrics_equal_scikit_learn(rng):
    post, y = _random_data(rng)
    res = evaluate_arrays(post, y, CAUSES, bootstrap=0)
    m = res.metrics.set_index(["cause", "metric"])["value"]
    for j, c in enumerate(CAUSES):
        assert m[(c, "brier")] == pytest.approx(brier_score_loss(y[:, j], post[:, j]), abs=1e-12)
        assert m[(c, "log_loss")] == pytest.approx(log_loss(y[:, j], post[:, j], labels=[0, 1]), abs=1e-12)
        assert m[(c, "roc_auc")] == pytest.approx(roc_auc_score(y[:, j], post[:, j]), abs=1e-12)
    for k in (1, 3):
        per, overall = _hand_topk(post, y, k)
        for j, c in enumerate(CAUSES):
            assert m[(c, f"top{k}_accuracy")] == pytest.approx(per[j], abs=1e-12)
        got = res.overall.set_index("metric").loc[f"top{k}_accuracy", "value"]
        assert got == pytest.approx(overall, abs=1e-12)


def test_calibration_table_equals_scikit_learn(rng):
    post, y = _random_data(rng)
    res = evaluate_arrays(post, y, CAUSES, bootstrap=0, bins=10)
    for j, c in enumerate(CAUSES):
        prob_true, prob_pred = calibration_curve(y[:, j], post[:, j], n_bins=10, strategy="uniform")
        rows = res.calibration[res.calibration["cause"] == c]
        np.testing.assert_allclose(rows["observed"], prob_true, atol=1e-12)
        np.testing.assert_allclose(rows["mean_predicted"], prob_pred, atol=1e-12)
        assert rows["n"].sum() == len(y)


def test_auc_undefined_when_a_cause_is_never_present(rng):
    post, y = _random_data(rng, 50)
    y[:, 3] = 0
    res = evaluate_arrays(post, y, CAUSES, bootstrap=20, seed=1)
    m = res.metrics.set_index(["cause", "metric"])
    assert np.isnan(m.loc[("d", "roc_auc"), "value"])
    assert np.isnan(m.loc[("d", "top1_accuracy"), "value"])
    assert m.loc[("d", "brier"), "value"] == pytest.approx(np.mean(post[:, 3] ** 2))


def test_bootstrap_is_seeded_and_orders_its_bounds(rng):
    post, y = _random_data(rng)
    one = evaluate_arrays(post, y, CAUSES, bootstrap=200, seed=5)
    two = evaluate_arrays(post, y, CAUSES, bootstrap=200, seed=5)
    other = evaluate_arrays(post, y, CAUSES, bootstrap=200, seed=6)
    pd.testing.assert_frame_equal(one.metrics, two.metrics)
    pd.testing.assert_frame_equal(one.overall, two.overall)
    assert not np.allclose(one.metrics["low"], other.metrics["low"])
    ok = one.metrics.dropna()
    assert (ok["low"] <= ok["high"]).all()
    assert ((ok["low"] <= ok["value"] + 1e-9) | (ok["metric"] == "roc_auc")).mean() > 0.9
    # more data, narrower intervals
    big = evaluate_arrays(np.tile(post, (4, 1)), np.tile(y, (4, 1)), CAUSES, bootstrap=200, seed=5)
    width = lambda r: (r.metrics["high"] - r.metrics["low"]).dropna().mean()  # noqa: E731
    assert width(big) < width(one)


@pytest.fixture(scope="module")
def cohort(model) -> pd.DataFrame:
    return simulate(model, 120, seed=11, missing=0.6)


def test_evaluate_model_agrees_with_sklearn_on_its_own_posteriors(model, cohort):
    res = evaluate(model, cohort, bootstrap=50, seed=2)
    scored = model.score(cohort.drop(columns=[f"cause.{c}" for c in model.causes]))
    m = res.metrics.set_index(["cause", "metric"])["value"]
    for c in model.causes:
        y = cohort[f"cause.{c}"].astype(int).to_numpy()
        p = scored[f"posterior.{c}"].to_numpy()
        assert m[(c, "brier")] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
        assert m[(c, "log_loss")] == pytest.approx(log_loss(y, p, labels=[0, 1]), abs=1e-12)
        if 0 < y.sum() < len(y):
            assert m[(c, "roc_auc")] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert res.model["priors_sha256"] == model.priors.sha256
    assert res.n_rows == len(cohort)


def test_missing_and_bad_labels_are_reported_row_by_row(model, cohort):
    with pytest.raises(LabelError, match="missing label column.*cause.paget"):
        evaluate(model, cohort.drop(columns=["cause.paget"]), bootstrap=0)
    bad = cohort.head(5).copy().astype(object)
    bad.loc[1, "cause.paget"] = "2"
    bad.loc[3, "cause.growth"] = ""
    bad.loc[4, "labs.alp"] = "300 furlongs"
    with pytest.raises(LabelError) as info:
        evaluate(model, bad, bootstrap=0)
    errs = info.value.errors
    assert list(errs["row"]) == [2, 4, 5]
    assert "accepted: 0, 1" in errs["reason"].iloc[0]
    assert "furlongs" in errs["reason"].iloc[2] or "furlongs" in errs["value"].iloc[2]


# ----------------------------------------------------------------------------- command line


def test_cli_json_table_and_plot(tmp_path, cohort, capsys, model):
    path = tmp_path / "labelled.csv"
    cohort.to_csv(path, index=False)
    plots = tmp_path / "plots"
    rc = main(["evaluate", str(path), "--format", "json", "--bootstrap", "30", "--seed", "3", "--plot", str(plots)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    doc = json.loads(out.out)
    assert set(doc["metrics"]) == set(model.causes)
    assert doc["metrics"]["vitamin_d_deficiency"]["brier"]["low"] <= doc["metrics"]["vitamin_d_deficiency"]["brier"]["high"]
    assert doc["disclaimer"] == alpnet.DISCLAIMER and doc["model"]["priors_sha256"]
    png = plots / "reliability.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # an existing plot is replaced only with --force
    rc = main(["evaluate", str(path), "--bootstrap", "0", "--plot", str(plots)])
    assert rc == 2 and "already exists" in capsys.readouterr().err


def test_cli_records_param_overrides(tmp_path, cohort, capsys, model):
    path = tmp_path / "labelled.csv"
    cohort.head(30).to_csv(path, index=False)
    pid = next(p for p in model.priors.parameters if p.startswith("paget.baseline["))
    rc = main(["evaluate", str(path), "--format", "json", "--bootstrap", "0", "--param", f"{pid}=0.2"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert json.loads(out.out)["model"]["overrides"] == {pid: 0.2}


@pytest.mark.parametrize("damage", ["label", "unit", "truncated", "missing_column"])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, cohort, capsys, damage):
    frame = cohort.head(6).copy().astype(object)
    path = tmp_path / "labelled.csv"
    if damage == "label":
        frame.loc[2, "cause.paget"] = "yes"
    elif damage == "unit":
        frame.loc[4, "labs.alp"] = "420 parsecs"
    elif damage == "missing_column":
        frame = frame.drop(columns=["cause.growth"])
    frame.to_csv(path, index=False)
    if damage == "truncated":
        text = path.read_text()
        path.write_text(text[: len(text) - 40])
    plots = tmp_path / "plots"
    rc = main(["evaluate", str(path), "--bootstrap", "0", "--plot", str(plots)])
    err = capsys.readouterr().err
    assert rc == 2
    assert not plots.exists()
    assert "Traceback" not in err
    if damage == "label":
        assert "row 3" in err and "cause.paget" in err and "'yes'" in err
    elif damage == "unit":
        assert "row 5" in err and "parsecs" in err
    elif damage == "truncated":
        assert "row 6" in err and "truncated" in err
    else:
        assert "cause.growth" in err


def test_parquet_and_csv_give_the_same_result(tmp_path, cohort, model, capsys):
    pytest.importorskip("pyarrow")  # the parquet extra; installed with the test extra
    small = cohort.head(40)
    csv_path, pq_path = tmp_path / "l.csv", tmp_path / "l.parquet"
    small.to_csv(csv_path, index=False)
    small.to_parquet(pq_path, index=False)
    a = evaluate(model, csv_path, bootstrap=20, seed=1)
    b = evaluate(model, pq_path, bootstrap=20, seed=1)
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    assert main(["evaluate", str(pq_path), "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "roc_auc" in out and alpnet.DISCLAIMER in out and model.priors.sha256[:12] in out
