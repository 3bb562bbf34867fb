"""alpnet calibrate: moves parameters toward the truth, never touches the input, writes a valid new set."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import alpnet
from alpnet.calibrate import _groups, _Objective, calibrate_evidence, write_prior_set
from alpnet.cli import main
from alpnet.cpt import build_cpt
from alpnet.errors import AlpnetError
from alpnet.simulate import simulate

from .conftest import MINI

#: Parameters changed a lot in the "true" model the cohorts come from.
TRUTH = {
    "alpha.baseline": 0.15,           # a cause prior (0.05 in the set)
    "ache.link[alpha].true": 0.30,    # a finding link (0.7 in the set)
    "level.link[alpha].high": 0.20,   # one state of a noisy-MAX link distribution (0.5)
}


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _cohort(model: alpnet.Model, n: int, seed: int, hide: float = 0.2):
    """Evidence (findings and history hidden at random) and labels sampled from ``model``."""
    _, states = simulate(model, n, seed=seed, return_states=True)
    rng = np.random.default_rng(seed + 1)
    observed = [v for v, var in model.priors.variables.items() if var.kind in ("context", "finding")]
    evidences = [{v: states[v].iloc[i] for v in observed if v in ("age", "sex") or rng.random() >= hide}
                 for i in range(n)]
    labels = np.column_stack([(states[c] == "present").astype(int) for c in model.causes])
    return evidences, labels


@pytest.fixture(scope="module")
def truth() -> alpnet.Model:
    return alpnet.load_model(MINI, overrides=TRUTH)


@pytest.fixture(scope="module")
def fits(mini, truth):
    out = {}
    for n in (500, 5000):
        ev, y = _cohort(truth, n, seed=n)
        out[n] = calibrate_evidence(mini, ev, y, strength=20, max_iter=30)
    return out


@pytest.mark.parametrize("pid", list(TRUTH))
def test_calibration_moves_toward_the_truth_and_error_falls_with_n(mini, truth, fits, pid):
    true = truth.priors.parameters[pid].value
    old = mini.priors.parameters[pid].value
    err = {n: abs(r.parameters.set_index("id").loc[pid, "new"] - true) for n, r in fits.items()}
    assert err[500] < abs(old - true)
    assert err[5000] < err[500]
    assert err[5000] < 0.25 * abs(old - true)


def test_the_leak_prior_moves_toward_the_truth_by_em(mini):
    """The leak is never labelled: its prior is learnt by EM from the findings it explains."""
    truth = alpnet.load_model(MINI, overrides={"other.baseline": 0.4})
    ev, y = _cohort(truth, 3000, seed=3, hide=0.0)
    res = calibrate_evidence(mini, ev, y, strength=20, max_iter=40, variables=["other"])
    new = res.parameters.set_index("id").loc["other.baseline", "new"]
    assert 0.1 < new and abs(new - 0.4) < abs(0.1 - 0.4)
    assert all(b >= a - 1e-6 for a, b in zip(res.log_likelihood, res.log_likelihood[1:]))  # EM never goes down


def test_fully_observed_context_is_the_closed_form_map(mini, rng):
    """With every row observed, P(sex) is (N_s + K p0_s) / (N + K): a hand computation."""
    ev, y = _cohort(mini, 400, seed=9, hide=0.0)
    k = 30.0
    res = calibrate_evidence(mini, ev, y, strength=k, max_iter=1, variables=["sex"])
    n_female = sum(e["sex"] == "female" for e in ev)
    p0 = mini.priors.parameters["sex.prior.female"].value
    got = res.parameters.set_index("id").loc["sex.prior.female", "new"]
    assert got == pytest.approx((n_female + k * p0) / (len(ev) + k), abs=1e-12)
    assert res.parameters.set_index("id").loc["sex.prior.female", "expected_count"] == pytest.approx(400)


def test_strength_pulls_toward_the_literature(mini, truth):
    ev, y = _cohort(truth, 1000, seed=4)
    weak = calibrate_evidence(mini, ev, y, strength=1, max_iter=5, variables=["alpha"])
    strong = calibrate_evidence(mini, ev, y, strength=1e6, max_iter=5, variables=["alpha"])
    old = mini.priors.parameters["alpha.baseline"].value
    w = weak.parameters.set_index("id").loc["alpha.baseline", "new"]
    s = strong.parameters.set_index("id").loc["alpha.baseline", "new"]
    assert abs(s - old) < 0.01 * abs(w - old)


def test_the_fast_cause_table_equals_build_cpt(model):
    """The vectorised cause model used while fitting gives the same numbers as alpnet.cpt."""
    pset = model.priors
    p0 = {k: p.value for k, p in pset.parameters.items()}
    for name in ("osteomalacia", "cholestatic_liver", "bone_metastases"):
        var = pset.variables[name]
        T = build_cpt(var, pset.variables)
        N = np.ones_like(T)
        obj = _Objective(var, pset, _groups(var, pset, p0), N, 10.0)
        np.testing.assert_allclose(obj.table(), T.reshape(2, -1), atol=1e-12)


def test_noisy_max_columns_equal_build_cpt(model):
    pset = model.priors
    p0 = {k: p.value for k, p in pset.parameters.items()}
    for name in ("ggt", "calcium", "alp_isoenzymes"):
        var = pset.variables[name]
        T = build_cpt(var, pset.variables)
        N = np.zeros_like(T)
        flat = N.reshape(T.shape[0], -1)
        flat[0, :: max(1, flat.shape[1] // 37)] = 1.0  # a spread of configurations
        obj = _Objective(var, pset, _groups(var, pset, p0), N, 10.0)
        np.testing.assert_allclose(obj.table(), T.reshape(T.shape[0], -1)[:, obj_used(flat)].T, atol=1e-12)


def obj_used(flat: np.ndarray) -> np.ndarray:
    return np.flatnonzero(flat.sum(axis=0) > 0)


def test_bad_arguments(mini):
    ev, y = _cohort(mini, 10, seed=1)
    with pytest.raises(AlpnetError, match="strength"):
        calibrate_evidence(mini, ev, y, strength=0)
    with pytest.raises(AlpnetError, match="max_iter"):
        calibrate_evidence(mini, ev, y, strength=5, max_iter=0)
    with pytest.raises(AlpnetError, match="unknown variable"):
        calibrate_evidence(mini, ev, y, strength=5, variables=["nope"])


# ----------------------------------------------------------------------------- writing a new set


def test_written_set_is_complete_valid_and_the_input_is_untouched(tmp_path, truth):
    src = tmp_path / "parent"
    shutil.copytree(MINI, src)
    before = _digest(src)
    parent = alpnet.load_model(src)
    ev, y = _cohort(truth, 800, seed=8)
    res = calibrate_evidence(parent, ev, y, strength=20, max_iter=10)
    out = tmp_path / "calibrated"
    write_prior_set(res, parent.priors, out, command="test")
    assert _digest(src) == before  # every input file byte-identical
    assert set(_digest(out)) == set(before) | {"manifest.json"}
    new = alpnet.load_model(out)
    for r in res.changed.itertuples(index=False):
        assert new.priors.parameters[r.id].value == pytest.approx(r.new, abs=1e-9)
        assert "Calibrated" in new.priors.parameters[r.id].note
        assert new.priors.parameters[r.id].source == parent.priors.parameters[r.id].source
        p = new.priors.parameters[r.id]
        assert p.low <= p.value <= p.high
    unchanged = set(res.parameters.loc[~res.parameters["changed"], "id"])
    for pid in unchanged:
        assert new.priors.parameters[pid].value == parent.priors.parameters[pid].value
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parent"]["sha256"] == parent.priors.sha256
    assert manifest["sha256"] == new.priors.sha256 != parent.priors.sha256
    assert manifest["strength_K"] == 20 and manifest["data"]["rows"] == 800 and manifest["command"] == "test"
    rec = {p["id"]: p for p in manifest["parameters"]}
    assert rec["alpha.baseline"]["old"] == 0.05 and rec["alpha.baseline"]["expected_count"] > 0
    assert main(["priors", "validate", "--priors", str(out)]) == 0
    # an existing folder is refused, and replaced only when forced
    with pytest.raises(AlpnetError, match="already exists"):
        write_prior_set(res, parent.priors, out)
    write_prior_set(res, parent.priors, out, force=True)
    assert alpnet.load_model(out).priors.sha256 == new.priors.sha256
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_cli_calibrate_on_the_bundled_set(tmp_path, model, capsys):
    pid = next(p for p in model.priors.parameters if p.startswith("paget.baseline[age=70_plus"))
    truth = alpnet.load_model(overrides={pid: 0.2})
    data = tmp_path / "cohort.csv"
    simulate(truth, 150, seed=21, missing=0.3).to_csv(data, index=False)
    bundled = Path(model.priors.path)
    before = _digest(bundled)
    out = tmp_path / "local_priors"
    rc = main(["calibrate", str(data), "--strength", "50", "--out", str(out), "--only", "paget", "--only", "ggt",
               "--max-iter", "3", "--format", "json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads(captured.out)
    assert any(c["id"] == pid and c["new"] > c["old"] for c in doc["changed"])
    assert _digest(bundled) == before
    assert main(["priors", "validate", "--priors", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert "--strength 50" in manifest["command"]
    assert alpnet.load_model(out).priors.parameters[pid].value > model.priors.parameters[pid].value
    capsys.readouterr()
    # an existing folder without --force: exit 2, nothing changed
    digest = _digest(out)
    assert main(["calibrate", str(data), "--strength", "50", "--out", str(out), "--only", "paget"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert _digest(out) == digest


def test_cli_bad_labels_exit_2_and_write_nothing(tmp_path, model, capsys):
    frame = simulate(model, 5, seed=2).astype(object)
    frame.loc[1, "cause.paget"] = "maybe"
    data = tmp_path / "bad.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "never"
    assert main(["calibrate", str(data), "--strength", "10", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "row 2" in err and "cause.paget" in err and "maybe" in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
