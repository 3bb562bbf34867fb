"""Credible intervals per row in batch scoring (`alpnet score --uncertainty`, Model.score)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alpnet import CaseError
from alpnet.batch import CredibleIntervals, interval_columns, output_columns, plan_columns
from alpnet.cli import main
from alpnet.simulate import simulate
from alpnet.uncertainty import posterior_uncertainty

DRAWS = 12


@pytest.fixture(scope="module")
def cohort(model) -> pd.DataFrame:
    """Simulated rows with gaps, one of them made impossible (a pregnant man)."""
    df = simulate(model, 10, seed=5, missing=0.3).astype(str).replace("nan", "")
    df.loc[3, "patient.sex"] = "male"
    df.loc[3, "patient.pregnant"] = "true"
    return df


@pytest.fixture(scope="module")
def cohort_csv(cohort, tmp_path_factory):
    path = tmp_path_factory.mktemp("intervals") / "cohort.csv"
    cohort.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def scored(model, cohort) -> pd.DataFrame:
    return model.score(cohort, intervals=CredibleIntervals(draws=DRAWS, seed=4), errors="keep")


def test_each_row_gets_the_interval_its_case_gets_alone(model, cohort, scored):
    """The batch interval of a row is diagnose --uncertainty's interval for that case, same seed."""
    bad = set(scored.attrs["errors"]["row"] - 1)
    assert bad == {3}
    plan = plan_columns(cohort.columns, model.priors)
    from alpnet.batch import row_evidence

    for i in range(len(cohort)):
        if i in bad:
            assert scored.loc[i, interval_columns(model)].isna().all()  # an errored row keeps its place, empty
            continue
        _, ev, err = row_evidence(model, cohort.iloc[i].to_dict(), plan, i + 1)
        alone = posterior_uncertainty(model, ev, draws=DRAWS, seed=4, tests=0).posteriors.set_index("cause")
        for c in model.causes:
            assert scored.loc[i, f"posterior_low.{c}"] == pytest.approx(alone.loc[c, "low"], abs=1e-12, rel=1e-9)
            assert scored.loc[i, f"posterior_high.{c}"] == pytest.approx(alone.loc[c, "high"], abs=1e-12, rel=1e-9)
        stays = posterior_uncertainty(model, ev, draws=DRAWS, seed=4, tests=0).leading_stays
        assert scored.loc[i, "leading_cause_stays"] == pytest.approx(stays, abs=1e-12)


def test_intervals_are_ordered_probabilities_and_posteriors_unchanged(model, cohort, scored):
    plain = model.score(cohort, errors="keep")
    post = [f"posterior.{c}" for c in model.causes]
    pd.testing.assert_frame_equal(scored[list(plain.columns)], plain)  # intervals add columns, change nothing
    ok = scored.drop(index=3)
    low = ok[[f"posterior_low.{c}" for c in model.causes]].to_numpy()
    high = ok[[f"posterior_high.{c}" for c in model.causes]].to_numpy()
    assert np.all((0 <= low) & (low <= high) & (high <= 1))
    point = ok[post].to_numpy()
    assert np.all((high - low > 0) == (point > 0))  # ranges move every posterior the context leaves open
    assert np.all(low[point == 0] == 0)
    assert ok[post].notna().all().all()
    assert ok["leading_cause_stays"].between(0, 1).all()
    assert scored.attrs["intervals"] == {"draws": DRAWS, "seed": 4, "level": 0.95}


def test_columns_follow_the_contract_then_intervals(model, cohort, scored):
    plan = plan_columns(cohort.columns, model.priors)
    ci = CredibleIntervals(draws=DRAWS)
    assert list(scored.columns) == output_columns(model, plan, intervals=ci)
    assert output_columns(model, plan, next_test=True, intervals=ci)[:-len(interval_columns(model))] == \
        output_columns(model, plan, next_test=True)
    assert interval_columns(model)[:2] == [f"posterior_low.{model.causes[0]}", f"posterior_high.{model.causes[0]}"]


def test_narrower_level_gives_narrower_intervals_and_seed_reproduces(model, cohort):
    rows = cohort.drop(index=3).head(4)
    wide = model.score(rows, intervals=CredibleIntervals(draws=DRAWS, seed=1, level=0.95))
    again = model.score(rows, intervals=CredibleIntervals(draws=DRAWS, seed=1, level=0.95))
    narrow = model.score(rows, intervals=CredibleIntervals(draws=DRAWS, seed=1, level=0.5))
    other = model.score(rows, intervals=CredibleIntervals(draws=DRAWS, seed=2, level=0.95))
    pd.testing.assert_frame_equal(wide, again, check_exact=True)
    lo = [f"posterior_low.{c}" for c in model.causes]
    hi = [f"posterior_high.{c}" for c in model.causes]
    assert (narrow[lo].to_numpy() >= wide[lo].to_numpy()).all()
    assert (narrow[hi].to_numpy() <= wide[hi].to_numpy()).all()
    assert not np.allclose(other[lo].to_numpy(), wide[lo].to_numpy())


def test_cli_intervals_do_not_depend_on_chunks(model, cohort_csv, tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    args = ["score", str(cohort_csv), "--uncertainty", "--draws", str(DRAWS), "--seed", "4", "--allow-errors"]
    assert main(args + ["-o", str(a), "--chunk-size", "3"]) == 0
    err = capsys.readouterr().err
    assert f"central 95% of {DRAWS} parameter draws, seed 4" in err
    assert main(args + ["-o", str(b), "--quiet"]) == 0
    assert a.read_bytes() == b.read_bytes()
    out = pd.read_csv(a)
    ref = pd.read_csv(cohort_csv, dtype=str, keep_default_na=False, na_values=[""])
    api = model.score(ref, intervals=CredibleIntervals(draws=DRAWS, seed=4), errors="keep")
    for c in interval_columns(model):
        np.testing.assert_allclose(out[c].to_numpy(), api[c].to_numpy(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("flags, named", [
    (["--draws", "1"], "--draws 1"),
    (["--level", "95"], "--level 95.0"),
    (["--level", "0"], "--level 0.0"),
    (["--seed", "-1"], "--seed -1"),
])
def test_bad_interval_flags_exit_2_and_write_nothing(cohort_csv, tmp_path, capsys, flags, named):
    out = tmp_path / "o.csv"
    assert main(["score", str(cohort_csv), "-o", str(out), "--uncertainty"] + flags) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("bad", ["yes", 0.95, {"draws": 10}])
def test_model_score_rejects_a_bad_intervals_argument(model, cohort, bad):
    with pytest.raises(CaseError, match="intervals must be"):
        model.score(cohort.head(2), intervals=bad)


@pytest.mark.parametrize("kwargs, named", [({"draws": 1}, "draws 1"), ({"level": 1.0}, "level 1.0"),
                                           ({"seed": -2}, "seed -2"), ({"draws": 2.5}, "draws 2.5")])
def test_credible_intervals_checks_its_values(kwargs, named):
    with pytest.raises(CaseError, match=named):
        CredibleIntervals(**kwargs)


def test_parquet_output_has_interval_columns(model, cohort_csv, tmp_path):
    pytest.importorskip("pyarrow")
    out = tmp_path / "o.parquet"
    assert main(["score", str(cohort_csv), "-o", str(out), "--quiet", "--uncertainty", "--draws", "4",
                 "--allow-errors"]) == 0
    res = pd.read_parquet(out)
    assert list(res.columns[-len(interval_columns(model)):]) == interval_columns(model)
    assert res[interval_columns(model)].dtypes.eq("float64").all()


def test_dask_intervals_identical_to_local(cohort_csv, tmp_path):
    pytest.importorskip("distributed")
    local, dist = tmp_path / "l.csv", tmp_path / "d.csv"
    args = ["score", str(cohort_csv), "--quiet", "--uncertainty", "--draws", "6", "--allow-errors"]
    assert main(args + ["-o", str(local)]) == 0
    assert main(args + ["-o", str(dist), "--engine", "dask", "--chunk-size", "4"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(local), pd.read_csv(dist), check_exact=False, rtol=0, atol=1e-12)


def test_memory_bound_splits_cases_without_changing_intervals(model, cohort, scored, monkeypatch):
    """Many draws are scored a few cases at a time (bounded memory) with the same results."""
    import alpnet.uncertainty as uncertainty

    monkeypatch.setattr(uncertainty, "INTERVAL_BYTES", 8 * DRAWS * len(model.causes) * 3)  # 3 cases at a time
    small = model.score(cohort, intervals=CredibleIntervals(draws=DRAWS, seed=4), errors="keep")
    pd.testing.assert_frame_equal(small, scored, check_exact=False, rtol=1e-12, atol=0)


def test_progress_moves_while_the_draws_run(model, cohort_csv, tmp_path):
    """With intervals a chunk takes `draws` passes: progress comes in whole rows as they go,
    and adds up to the rows of the file."""
    from alpnet.batch_file import score_file

    calls: list[int] = []
    summary = score_file(model, cohort_csv, tmp_path / "o.csv", intervals=CredibleIntervals(draws=DRAWS),
                         chunk_size=5, progress=calls.append)
    assert summary.rows == 10
    assert sum(calls) == 10 and all(isinstance(c, int) and c > 0 for c in calls)
    assert len(calls) > 2  # more often than once a chunk
