"""`alpnet simulate`: reproducible synthetic cohorts whose rows read back as the sampled states."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alpnet.batch import plan_columns, row_to_case
from alpnet.cli import main
from alpnet.simulate import simulate


def test_same_seed_same_cohort_and_file(model, tmp_path):
    a = simulate(model, 40, seed=7, missing=0.2)
    b = simulate(model, 40, seed=7, missing=0.2)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(simulate(model, 40, seed=8, missing=0.2))
    f1, f2 = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["simulate", "-n", "40", "--seed", "7", "-o", str(f1)]) == 0
    assert main(["simulate", "-n", "40", "--seed", "7", "-o", str(f2)]) == 0
    assert f1.read_bytes() == f2.read_bytes()


def test_columns_causes_and_units(model):
    df = simulate(model, 200, seed=1)
    causes = [f"cause.{c}" for c in model.causes]
    assert causes == [c for c in df.columns if c.startswith("cause.")]
    assert set(np.unique(df[causes].to_numpy())) <= {0, 1}
    assert df[causes].to_numpy().sum() > 0
    assert df["id"].is_unique and df.columns[0] == "id"
    # lab cells carry their unit, as a laboratory reports them
    assert df["labs.alp"].str.fullmatch(r"[0-9.e+]+ U/L").all()
    assert df["labs.calcium"].dropna().str.endswith(" mmol/L").all()
    assert df.drop(columns=["patient.trimester"]).notna().all().all()  # no missingness asked for


def test_missing_fraction_spares_alp_age_and_sex(model):
    df = simulate(model, 400, seed=2, missing=0.4)
    assert df[["labs.alp", "patient.age", "patient.sex"]].notna().all().all()
    other = df.drop(columns=["id", "labs.alp", "patient.age", "patient.sex", "patient.trimester"]
                    + [c for c in df.columns if c.startswith("cause.")])
    frac = other.isna().to_numpy().mean()
    assert 0.35 < frac < 0.45


def test_round_trip_recovers_sampled_states(model):
    df, states = simulate(model, 250, seed=5, missing=0.3, return_states=True)
    plan = plan_columns(df.columns, model.priors)
    mismatches = []
    for i in range(len(df)):
        ev, _ = model.evidence_of(row_to_case(df.iloc[i].to_dict(), plan, default_id="x"))
        assert "alp" in ev
        for var, state in ev.items():
            if state != states.loc[i, var]:
                mismatches.append((i, var, state, states.loc[i, var]))
    assert mismatches == []


def test_true_causes_get_higher_posteriors(model):
    df = simulate(model, 300, seed=3, missing=0.2)
    scored = model.score(df)
    truth = df[[f"cause.{c}" for c in model.causes]].to_numpy() == 1
    post = scored[[f"posterior.{c}" for c in model.causes]].to_numpy()
    assert truth.sum() >= 10  # enough true causes to compare (causes are rare in the population)
    assert post[truth].mean() > 3 * post[~truth].mean()
    # the leading cause is a true cause more often than chance among rows with one
    has = truth.any(axis=1)
    lead = scored["leading_cause"].to_numpy()
    hits = np.array([truth[i, model.causes.index(lead[i])] for i in range(len(df))])
    assert hits[has].mean() > 0.5


def test_bad_arguments_exit_2(tmp_path, capsys):
    out = tmp_path / "c.csv"
    assert main(["simulate", "-n", "5", "-o", str(out), "--missing", "1.5"]) == 2
    assert main(["simulate", "-n", "-1", "-o", str(out)]) == 2
    assert main(["simulate", "-n", "5", "-o", str(tmp_path / "c.xlsx")]) == 2
    out.write_text("keep")
    assert main(["simulate", "-n", "5", "-o", str(out)]) == 2
    assert out.read_text() == "keep"
    assert "Traceback" not in capsys.readouterr().err
    assert main(["simulate", "-n", "5", "--seed", "1", "-o", str(out), "--force"]) == 0
    assert len(pd.read_csv(out)) == 5


def test_parquet_output(model, tmp_path):
    pytest.importorskip("pyarrow")
    out = tmp_path / "c.parquet"
    assert main(["simulate", "-n", "30", "--seed", "4", "--missing", "0.1", "-o", str(out)]) == 0
    back = pd.read_parquet(out)
    ref = simulate(model, 30, seed=4, missing=0.1)
    assert list(back.columns) == list(ref.columns)
    pd.testing.assert_frame_equal(back.astype(object).where(back.notna(), ""),
                                  ref.astype(object).where(ref.notna(), ""), check_dtype=False)
