"""Batch scoring: `alpnet score` and Model.score against `diagnose`, row by row."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alpnet
from alpnet.cli import main
from alpnet.simulate import simulate

N_ROWS = 60


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cohort_csv(tmp_path_factory, model) -> Path:
    """A simulated cohort with missing values, written as CSV."""
    path = tmp_path_factory.mktemp("batch") / "cohort.csv"
    simulate(model, N_ROWS, seed=11, missing=0.35).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def scored_csv(cohort_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scored") / "scored.csv"
    assert main(["score", str(cohort_csv), "-o", str(out), "--quiet", "--chunk-size", "17"]) == 0
    return out


def _case_from_row(row: pd.Series, model) -> dict:
    """An independent reading of a dotted-column row into a case mapping (not alpnet.batch)."""
    case: dict = {"id": row["id"]}
    for col, value in row.items():
        if "." not in col or col.startswith("cause.") or (isinstance(value, float) and math.isnan(value)):
            continue
        section, name = col.split(".", 1)
        if section in ("symptoms", "history") and value in ("true", "false"):
            value = value == "true"
        elif col == "patient.pregnant":
            value = value == "true"
        elif col == "patient.age":
            value = float(value)
        elif col == "patient.trimester":
            value = int(value)
        case.setdefault(section, {})[name] = value
    return case


def test_batch_equals_diagnose_row_by_row(model, cohort_csv, scored_csv):
    data = pd.read_csv(cohort_csv, dtype=str, keep_default_na=False, na_values=[""])
    out = pd.read_csv(scored_csv, keep_default_na=False, na_values=[""])
    assert len(out) == len(data)
    assert list(out["id"]) == list(data["id"])  # rows keep their order
    assert data.isna().any().any()  # the file really has missing values
    for i in range(len(data)):
        table = model.diagnose(_case_from_row(data.iloc[i], model))
        post = dict(zip(table["cause"], table["posterior"]))
        for cause in model.causes:
            assert out.loc[i, f"posterior.{cause}"] == pytest.approx(post[cause], abs=1e-12, rel=0)
        assert out.loc[i, "leading_cause"] == table.attrs["leading_cause"]


def test_output_columns_are_the_contract(model, cohort_csv, scored_csv):
    cols = list(pd.read_csv(scored_csv, nrows=0).columns)
    passthrough = ["id"] + [f"cause.{c}" for c in model.causes]
    assert cols == passthrough + [f"posterior.{c}" for c in model.causes] + ["leading_cause"]
    # pass-through cells are untouched
    a = pd.read_csv(cohort_csv, dtype=str)[passthrough]
    b = pd.read_csv(scored_csv, dtype=str)[passthrough]
    pd.testing.assert_frame_equal(a, b)


def test_chunk_size_does_not_change_results(cohort_csv, scored_csv, tmp_path):
    out = tmp_path / "one_chunk.csv"
    assert main(["score", str(cohort_csv), "-o", str(out), "--quiet", "--chunk-size", "1000"]) == 0
    assert out.read_bytes() == scored_csv.read_bytes()


def test_dask_engine_identical_to_local(cohort_csv, scored_csv, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "dask.csv"
    code = main(["score", str(cohort_csv), "-o", str(out), "--quiet", "--engine", "dask", "--chunk-size", "20"])
    assert code == 0
    local = pd.read_csv(scored_csv)
    dist = pd.read_csv(out)
    pd.testing.assert_frame_equal(local, dist, check_exact=False, rtol=0, atol=1e-12)


def test_dask_engine_reports_errors_with_file_row_numbers(tmp_path, bad_csv):
    pytest.importorskip("distributed")
    local_errs, dask_errs = tmp_path / "l.errors.csv", tmp_path / "d.errors.csv"
    main(["score", str(bad_csv), "-o", str(tmp_path / "l.csv"), "--quiet", "--errors", str(local_errs)])
    main(["score", str(bad_csv), "-o", str(tmp_path / "d.csv"), "--quiet", "--errors", str(dask_errs),
          "--engine", "dask", "--chunk-size", "2"])
    assert local_errs.read_text() == dask_errs.read_text()
    assert (tmp_path / "l.csv").read_text() == (tmp_path / "d.csv").read_text()


def test_model_score_equals_cli(model, cohort_csv, scored_csv):
    df = pd.read_csv(cohort_csv, dtype=str, keep_default_na=False, na_values=[""])
    res = model.score(df)
    cli = pd.read_csv(scored_csv)
    for c in model.causes:
        np.testing.assert_allclose(res[f"posterior.{c}"].to_numpy(float), cli[f"posterior.{c}"].to_numpy(float),
                                   rtol=0, atol=1e-12)
    assert list(res["leading_cause"]) == list(cli["leading_cause"])
    assert res.attrs["errors"].empty
    assert res.attrs["model"]["priors_sha256"] == model.priors.sha256


# ------------------------------------------------------------------ bad rows

BAD_ROWS = """id,site,age,sex,alp,ggt,bone_pain,xray
good1,A,70,male,420 U/L,25 U/L,yes,normal
badunit,A,70,male,420 U/dl,,no,
badstate,B,70,female,300 U/L,,1,broken
impossible,B,70,female,60000 U/L,,0,
nonnumeric,C,seventy,male,300 U/L,,true,
badbool,C,70,male,300 U/L,,maybe,
good2,C,40,female,90 U/L,20 U/L,false,normal
"""


@pytest.fixture
def bad_csv(tmp_path) -> Path:
    p = tmp_path / "bad.csv"
    p.write_text(BAD_ROWS)
    return p


def test_errors_file_lists_every_bad_row(bad_csv, tmp_path, capsys):
    out, errs = tmp_path / "out.csv", tmp_path / "out.errors.csv"
    before = _sha(bad_csv)
    code = main(["score", str(bad_csv), "-o", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "5 of 7 row(s) failed" in err and str(errs) in err
    table = pd.read_csv(errs, dtype=str, keep_default_na=False)
    assert list(table.columns) == ["row", "case_id", "column", "value", "reason"]
    by_id = {r.case_id: r for r in table.itertuples()}
    assert set(by_id) == {"badunit", "badstate", "impossible", "nonnumeric", "badbool"}
    assert by_id["badunit"].row == "2" and by_id["badunit"].column == "alp" and by_id["badunit"].value == "420 U/dl"
    assert "unknown unit" in by_id["badunit"].reason and "U/L" in by_id["badunit"].reason
    assert by_id["badstate"].column == "xray" and by_id["badstate"].value == "broken"
    assert "paget_pattern" in by_id["badstate"].reason  # names what is accepted
    assert by_id["impossible"].column == "alp" and "impossible" in by_id["impossible"].reason
    assert by_id["nonnumeric"].column == "age" and by_id["nonnumeric"].value == "seventy"
    assert by_id["badbool"].column == "bone_pain" and "yes, no" in by_id["badbool"].reason
    # nothing dropped: failed rows keep their place with empty results
    res = pd.read_csv(out)
    assert list(res["id"]) == ["good1", "badunit", "badstate", "impossible", "nonnumeric", "badbool", "good2"]
    assert res["posterior.paget"].notna().tolist() == [True, False, False, False, False, False, True]
    assert _sha(bad_csv) == before  # the input is never modified


def test_allow_errors_exits_zero(bad_csv, tmp_path):
    assert main(["score", str(bad_csv), "-o", str(tmp_path / "o.csv"), "--allow-errors", "--quiet"]) == 0
    assert len(pd.read_csv(tmp_path / "o.errors.csv")) == 5


def test_impossible_evidence_is_a_row_error(tmp_path):
    p = tmp_path / "conflict.csv"
    p.write_text("id,sex,pregnant,age,alp\nman,male,true,40,200 U/L\nok,female,true,30,200 U/L\n")
    code = main(["score", str(p), "-o", str(tmp_path / "o.csv"), "--quiet"])
    assert code == 1
    errs = pd.read_csv(tmp_path / "o.errors.csv", dtype=str)
    assert list(errs["case_id"]) == ["man"]
    assert "male" in errs["reason"][0]


# ------------------------------------------------------------------ exit 2, atomic output, --force


def test_bad_files_and_flags_exit_2_and_write_nothing(bad_csv, tmp_path, capsys):
    out = tmp_path / "o.csv"
    assert main(["score", str(tmp_path / "nope.csv"), "-o", str(out)]) == 2
    assert main(["score", str(bad_csv), "-o", str(tmp_path / "o.xlsx")]) == 2
    assert main(["score", str(bad_csv), "-o", str(out), "--chunk-size", "0"]) == 2
    assert main(["score", str(bad_csv), "-o", str(out), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    noalp = tmp_path / "noalp.csv"
    noalp.write_text("id,age\na,3\n")
    assert main(["score", str(noalp), "-o", str(out)]) == 2
    twice = tmp_path / "twice.csv"
    twice.write_text("alp,labs.alp\n100 U/L,100 U/L\n")
    assert main(["score", str(twice), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "no ALP column" in err and "both give labs.alp" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["bad.csv", "noalp.csv", "twice.csv"])


def test_existing_output_needs_force(bad_csv, tmp_path, capsys):
    out = tmp_path / "o.csv"
    out.write_text("keep me\n")
    assert main(["score", str(bad_csv), "-o", str(out), "--quiet"]) == 2
    assert out.read_text() == "keep me\n"
    assert "--force" in capsys.readouterr().err
    assert main(["score", str(bad_csv), "-o", str(out), "--quiet", "--force", "--allow-errors"]) == 0
    assert out.read_text().startswith("id,site,posterior.")


def test_output_never_overwrites_input(bad_csv, tmp_path):
    before = _sha(bad_csv)
    assert main(["score", str(bad_csv), "-o", str(bad_csv), "--force"]) == 2
    assert _sha(bad_csv) == before


def test_interrupted_run_leaves_nothing(model, cohort_csv, tmp_path, monkeypatch):
    from alpnet import batch_file

    calls = {"n": 0}
    real = batch_file.score_chunk

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_file, "score_chunk", flaky)
    out = tmp_path / "o.csv"
    with pytest.raises(KeyboardInterrupt):
        batch_file.score_file(model, cohort_csv, out, chunk_size=10)
    assert list(tmp_path.iterdir()) == []  # no output, no errors file, no temporary file


# ------------------------------------------------------------------ layout: names, units, ids, Parquet


def test_bare_dotted_and_unit_columns_agree(model, tmp_path):
    dotted = pd.DataFrame({"id": ["a", "b"], "patient.age": ["70", "15"], "patient.sex": ["male", "female"],
                           "labs.alp": ["420 U/L", "7 ukat/L"], "symptoms.bone_pain": ["true", "no"]})
    bare = pd.DataFrame({"id": ["a", "b"], "age": ["70", "15"], "sex": ["male", "female"],
                         "alp": ["420", "7"], "alp_unit": ["U/L", "ukat/L"], "bone_pain": ["1", "false"]})
    r1, r2 = model.score(dotted), model.score(bare)
    cols = [f"posterior.{c}" for c in model.causes] + ["leading_cause"]
    pd.testing.assert_frame_equal(r1[cols], r2[cols])
    assert list(r2.columns[:1]) == ["id"]  # alp_unit is read, not passed through
    direct = model.diagnose({"patient": {"age": 15, "sex": "female"}, "labs": {"alp": "7 ukat/L"},
                             "symptoms": {"bone_pain": False}}).set_index("cause")["posterior"]
    for c in model.causes:
        assert r2.loc[1, f"posterior.{c}"] == pytest.approx(direct[c], abs=1e-12, rel=0)


def test_number_without_unit_is_a_row_error(model):
    df = pd.DataFrame({"id": ["x"], "age": ["50"], "sex": ["male"], "alp": ["420"]})
    res = model.score(df, errors="keep")
    e = res.attrs["errors"].iloc[0]
    assert e["column"] == "alp" and "no unit" in e["reason"]
    with pytest.raises(alpnet.CaseError, match=r"row 1, column 'alp'"):
        model.score(df)


def test_id_names_case_id_and_passthrough_listed_once(tmp_path, capsys):
    p = tmp_path / "in.csv"
    p.write_text("id,site,date,alp,age,sex\n007,north,2024-01-02,notanumber U/L,50,male\n"
                 "008,south,2024-01-03,200 U/L,50,male\n")
    assert main(["score", str(p), "-o", str(tmp_path / "o.csv")]) == 1
    err = capsys.readouterr().err
    assert err.count("passing through 3 column(s)") == 1 and "id, site, date" in err
    assert "rows/s" not in err and "it/s" not in err  # no progress bar when stderr is not a terminal
    errs = pd.read_csv(tmp_path / "o.errors.csv", dtype=str)
    assert errs.loc[0, "case_id"] == "007" and errs.loc[0, "row"] == "1"
    out = pd.read_csv(tmp_path / "o.csv", dtype=str)
    assert list(out.columns[:3]) == ["id", "site", "date"]
    assert list(out["id"]) == ["007", "008"] and list(out["date"]) == ["2024-01-02", "2024-01-03"]


def test_quiet_is_silent_when_all_rows_pass(tmp_path, capsys):
    p = tmp_path / "in.csv"
    p.write_text("id,alp,age,sex\na,200 U/L,50,male\n")
    assert main(["score", str(p), "-o", str(tmp_path / "o.csv"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_parquet_round_trip(model, cohort_csv, scored_csv, tmp_path):
    pytest.importorskip("pyarrow")
    pq_in = tmp_path / "cohort.parquet"
    pd.read_csv(cohort_csv, dtype=str, keep_default_na=False, na_values=[""]).to_parquet(pq_in, index=False)
    pq_out = tmp_path / "scored.parquet"
    assert main(["score", str(pq_in), "-o", str(pq_out), "--quiet", "--chunk-size", "25"]) == 0
    res = pd.read_parquet(pq_out)
    ref = pd.read_csv(scored_csv, dtype={"id": str})
    assert list(res.columns) == list(ref.columns)
    for c in model.causes:
        np.testing.assert_allclose(res[f"posterior.{c}"], ref[f"posterior.{c}"], rtol=0, atol=1e-12)
    assert list(res["leading_cause"]) == list(ref["leading_cause"])
    # typed Parquet columns (numbers, booleans) are read as a case would give them
    typed = pd.DataFrame({"id": [1, 2], "age": [70.0, 30.0], "sex": ["male", "female"], "alp": [420.0, 90.0],
                          "alp_unit": ["U/L", "U/L"], "bone_pain": [True, False]})
    typed_path = tmp_path / "typed.parquet"
    typed.to_parquet(typed_path, index=False)
    assert main(["score", str(typed_path), "-o", str(tmp_path / "typed_out.csv"), "--quiet"]) == 0
    out = pd.read_csv(tmp_path / "typed_out.csv")
    direct = model.diagnose({"patient": {"age": 70, "sex": "male"}, "labs": {"alp": "420 U/L"},
                             "symptoms": {"bone_pain": True}}).set_index("cause")["posterior"]
    assert out.loc[0, "posterior.paget"] == pytest.approx(direct["paget"], abs=1e-12)


def test_next_test_columns_match_rank_tests(model, tmp_path):
    p = tmp_path / "in.csv"
    p.write_text("id,age,sex,alp,ggt\na,72,male,420 U/L,25 U/L\nb,30,female,200 U/L,\n")
    out = tmp_path / "o.csv"
    assert main(["score", str(p), "-o", str(out), "--quiet", "--next-test"]) == 0
    res = pd.read_csv(out)
    assert list(res.columns[-2:]) == ["next_test", "next_test_gain_bits"]
    case = {"patient": {"age": 72, "sex": "male"}, "labs": {"alp": "420 U/L", "ggt": "25 U/L"}}
    ranking = model.rank_tests(case)
    best = ranking[ranking["kind"] == "test"].iloc[0]
    assert res.loc[0, "next_test"] == best["test"]
    assert res.loc[0, "next_test_gain_bits"] == pytest.approx(best["expected_information_gain_bits"], abs=1e-12)
    assert res.loc[0, "next_test"] != "ggt"  # an observed test is never proposed


def test_dask_missing_is_a_clear_error(bad_csv, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if dask[distributed] were not installed
    assert main(["score", str(bad_csv), "-o", str(tmp_path / "o.csv"), "--engine", "dask"]) == 2
    err = capsys.readouterr().err
    assert "alpnet[dask]" in err and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()


def test_scoring_leaves_the_garbage_collector_as_it_was(model):
    """A chunk is scored with the collector run less often; its thresholds are set back after,
    also when the frame cannot be scored."""
    import gc

    before = gc.get_threshold()
    model.score(pd.DataFrame({"age": [60], "sex": ["female"], "alp": ["420 U/L"], "ggt": ["20 U/L"]}))
    assert gc.get_threshold() == before
    with pytest.raises(alpnet.CaseError):
        model.score(pd.DataFrame({"alp": ["420 furlongs"]}))
    assert gc.get_threshold() == before


def test_default_chunk_size_is_the_documented_one(cohort_csv, tmp_path, monkeypatch, capsys):
    """Without --chunk-size, score reads DEFAULT_CHUNK_SIZE rows at a time, the number its
    --help and the README give."""
    from alpnet import batch_file

    seen = []
    real = batch_file.score_file

    def spy(*args, **kwargs):
        seen.append(kwargs["chunk_size"])
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_file, "score_file", spy)
    assert main(["score", str(cohort_csv), "-o", str(tmp_path / "out.csv"), "--quiet"]) == 0
    assert seen == [batch_file.DEFAULT_CHUNK_SIZE]
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    assert f"(default {batch_file.DEFAULT_CHUNK_SIZE})" in " ".join(capsys.readouterr().out.split())
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"default {batch_file.DEFAULT_CHUNK_SIZE:,} rows" in " ".join(readme.split())
