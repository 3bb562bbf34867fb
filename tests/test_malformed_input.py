"""Malformed batch files and case files: a clear error or a reported row, never a silent guess."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from alpnet.cli import main

HEADER = "id,patient.age,patient.sex,labs.alp,labs.alp_uln"
ROWS = ["a,70,male,420 U/L,130 U/L", "b,60,female,300 U/L,130 U/L", "c,50,male,200 U/L,130 U/L"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _diagnose(capsys, tmp_path: Path, text: str) -> tuple[int, str]:
    """Exit code and stderr of ``alpnet diagnose`` on a case file holding ``text``."""
    case = tmp_path / "c.yaml"
    case.write_text(text)
    code, _, err = run(capsys, "diagnose", str(case))
    return code, err


def _priors_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the bundled prior set to damage, and its reference.yaml."""
    import shutil

    from .conftest import ROOT

    folder = tmp_path / "priors"
    shutil.copytree(ROOT / "priors", folder)
    return folder, folder / "reference.yaml"


def _score(capsys, tmp_path: Path, text: str, *flags: str) -> tuple[int, str, Path]:
    src = tmp_path / "in.csv"
    src.write_text(text)
    before = _sha(src)
    out = tmp_path / "out.csv"
    code, _, err = run(capsys, "score", str(src), "-o", str(out), "--quiet", *flags)
    assert _sha(src) == before  # the input is never modified
    return code, err, out


# ------------------------------------------------------------------ batch files


def test_a_row_with_an_extra_field_is_a_failed_row_in_its_place(capsys, tmp_path):
    rows = list(ROWS)
    rows[1] += ",stray"
    code, err, out = _score(capsys, tmp_path, "\n".join([HEADER, *rows]) + "\n", "--chunk-size", "2")
    assert code == 1, err
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert scored["id"].tolist() == ["a", "", "c"]  # rows keep their places
    assert scored.loc[1, "leading_cause"] == "" and scored.loc[0, "leading_cause"] != ""
    errors = pd.read_csv(tmp_path / "out.errors.csv")
    assert errors["row"].tolist() == [2]
    assert "line 3 has 6 fields, the header 5" in errors.loc[0, "reason"]


def test_rows_after_a_bad_line_keep_their_row_numbers(capsys, tmp_path):
    rows = ["a,70,male,420 U/L,130 U/L", "b,60,female,300 U/L,130 U/L,x", "c,50,male,200 U/L,130 U/L",
            "d,40,female,-3 U/L,130 U/L"]
    code, err, out = _score(capsys, tmp_path, "\n".join([HEADER, *rows]) + "\n")
    assert code == 1
    errors = pd.read_csv(tmp_path / "out.errors.csv")
    assert errors["row"].tolist() == [2, 4]
    assert errors.loc[1, "case_id"] == "d"


def test_a_header_missing_a_name_is_refused_not_read_one_column_off(capsys, tmp_path):
    text = "id,labs.alp_uln,labs.alp\nr1,130 U/L,420 U/L,normal\nr2,130 U/L,600 U/L,fracture\n"
    code, err, out = _score(capsys, tmp_path, text)
    assert code == 2
    assert "more fields than the header's 3 columns" in err
    assert not out.exists()


def test_a_trailing_comma_on_every_row_reads_the_columns_where_they_are(capsys, tmp_path):
    text = "\n".join([HEADER] + [r + "," for r in ROWS]) + "\n"
    code, err, out = _score(capsys, tmp_path, text)
    assert code == 0, err
    assert pd.read_csv(out, dtype=str)["id"].tolist() == ["a", "b", "c"]


@pytest.mark.parametrize("header, message", [
    ("id,labs.alp,labs.alp", "'labs.alp' appear more than once"),
    ("id,,labs.alp", "column 2 of the header has no name"),
])
def test_duplicate_or_empty_column_names_are_refused(capsys, tmp_path, header, message):
    code, err, out = _score(capsys, tmp_path, f"{header}\nx,420 U/L,300 U/L\n")
    assert code == 2
    assert message in err
    assert not out.exists()


@pytest.mark.parametrize("column, hint", [
    ("labs.gtt", "did you mean 'labs.ggt'"),
    ("symptom.bone_pain", "did you mean 'symptoms.bone_pain'"),
    ("Labs.ggt", "write it 'labs.ggt'"),
    ("GGT", "write it 'ggt'"),
    ("posterior.paget", "has the name of a column alpnet writes"),
    ("leading_cause", "has the name of a column alpnet writes"),
])
def test_a_mistyped_case_key_is_not_passed_through_silently(capsys, tmp_path, column, hint):
    code, err, out = _score(capsys, tmp_path, f"{HEADER},{column}\n{ROWS[0]},x\n")
    assert code == 2
    assert repr(column) in err and hint in err
    assert not out.exists()


def test_other_columns_still_pass_through(capsys, tmp_path):
    code, err, out = _score(capsys, tmp_path, f"{HEADER},site.name,cause.paget\n{ROWS[0]},north,1\n")
    assert code == 0, err
    scored = pd.read_csv(out, dtype=str)
    assert scored.loc[0, "site.name"] == "north" and scored.loc[0, "cause.paget"] == "1"


def test_parquet_written_with_a_pandas_index_scores_like_the_same_table_as_csv(capsys, tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet needs the parquet extra")
    df = pd.read_csv(pd.io.common.StringIO("\n".join([HEADER, *ROWS])), dtype=str)
    df.index = ["i1", "i2", "i3"]  # stored in the file as __index_level_0__
    pq = tmp_path / "in.parquet"
    df.to_parquet(pq)
    csv = tmp_path / "in.csv"
    df.to_csv(csv, index=False)
    assert run(capsys, "score", str(pq), "-o", str(tmp_path / "a.csv"), "--quiet")[0] == 0
    assert run(capsys, "score", str(csv), "-o", str(tmp_path / "b.csv"), "--quiet")[0] == 0
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert list(a.columns) == list(b.columns)
    assert "__index_level_0__" not in a.columns
    pd.testing.assert_frame_equal(a, b)


# ------------------------------------------------------------------ case files


@pytest.mark.parametrize("name, text, message", [
    ("dup.yaml", "patient: {age: 70, sex: male}\nlabs:\n  alp: 420 U/L\n  alp: 90 U/L\n",
     "the key 'alp' is given twice in one mapping (line 4)"),
    ("sections.yaml", "labs: {alp: 420 U/L}\npatient: {age: 70, sex: male}\nlabs: {ggt: 20 U/L}\n",
     "the key 'labs' is given twice"),
    ("dup.json", '{"patient": {"age": 70, "sex": "male"}, "labs": {"alp": "420 U/L", "alp": "90 U/L"}}',
     "the key 'alp' is given twice in one object"),
])
def test_a_key_given_twice_in_a_case_file_is_an_error(capsys, tmp_path, name, text, message):
    case = tmp_path / name
    case.write_text(text)
    code, out, err = run(capsys, "diagnose", str(case))
    assert code == 2
    assert message in err
    assert out == ""


def test_a_json_case_with_a_byte_order_mark_is_read(capsys, tmp_path):
    case = tmp_path / "bom.json"
    case.write_text('\ufeff{"patient": {"age": 70, "sex": "male"}, "labs": {"alp": "420 U/L"}}', encoding="utf-8")
    code, out, err = run(capsys, "diagnose", str(case))
    assert code == 0, err
    assert "leading cause" in out


@pytest.mark.parametrize("uln, message", [
    ("<130 U/L", "is a limit, so it must be one number with its unit, without '<'"),
    ("0.001 U/L", "is not a plausible upper reference limit; accepted: 40 to 1500 U/L"),
    ("40000 U/L", "is not a plausible upper reference limit"),
])
def test_an_impossible_or_qualified_lab_limit_is_refused(capsys, tmp_path, uln, message):
    code, err = _diagnose(capsys, tmp_path,
                          f"patient: {{age: 70, sex: male}}\nlabs: {{alp: 420 U/L, alp_uln: '{uln}'}}\n")
    assert code == 2
    assert "labs.alp_uln" in err and message in err


def test_an_alp_of_zero_is_refused(capsys, tmp_path):
    code, err = _diagnose(capsys, tmp_path, "patient: {age: 70, sex: male}\nlabs: {alp: 0 U/L}\n")
    assert code == 2
    assert "labs.alp: '0 U/L' is physiologically impossible" in err


def test_a_semicolon_separated_file_is_named_as_such(capsys, tmp_path):
    code, err, out = _score(capsys, tmp_path, "id;labs.alp\na;420 U/L\n")
    assert code == 2
    assert "separated by ';'" in err


def test_an_unquoted_yaml_no_is_explained(capsys, tmp_path):
    code, err = _diagnose(capsys, tmp_path,
                          "patient: {age: 60, sex: male}\nhistory: {known_cancer: no}\nlabs: {alp: 420 U/L}\n")
    assert code == 2
    assert "history.known_cancer: false is not accepted (YAML reads an unquoted yes, no" in err
    assert "accepted: none" in err


def test_a_key_given_twice_in_a_scenario_file_is_an_error(capsys, tmp_path):
    from .conftest import EXAMPLES

    scenarios = tmp_path / "s.yaml"
    scenarios.write_text("scenarios:\n  - name: a\n    set:\n      labs.ggt: 300 U/L\n      labs.ggt: 20 U/L\n")
    code, out, err = run(capsys, "what-if", str(EXAMPLES / "paget.yaml"), "--scenarios", str(scenarios))
    assert code == 2
    assert "the key 'labs.ggt' is given twice in one mapping (line 5)" in err


@pytest.mark.parametrize("age", [1j, b"70"])
def test_a_python_case_with_a_value_no_case_file_could_hold_is_refused(model, age):
    from alpnet.errors import CaseError

    with pytest.raises(CaseError, match=r"patient\.age: .* accepted: text, a number, true or false"):
        model.diagnose({"patient": {"age": age, "sex": "male"}, "labs": {"alp": "420 U/L"}})


@pytest.mark.parametrize("path", [None, 5, b"case.yaml"])
def test_read_case_names_a_path_that_is_not_one(path):
    import alpnet
    from alpnet.errors import CaseError

    with pytest.raises(CaseError, match="is not a file path"):
        alpnet.read_case(path)


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "x.csv", "--bootstrap", "100000"], "--bootstrap 100000: must be a whole number from 0 to 10,000"),
    (["sensitivity", "examples/cases/paget.yaml", "--top", "0"], "--top 0: must be a whole number >= 1"),
])
def test_analyst_count_flags_are_bounded(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err and out == ""


def test_a_folder_given_as_a_table_or_scenario_file_is_named_a_folder(capsys, tmp_path):
    from .conftest import EXAMPLES

    code, _, err = run(capsys, "evaluate", str(tmp_path))
    assert code == 2 and f"{tmp_path}: is a folder, not a table" in err
    code, _, err = run(capsys, "what-if", str(EXAMPLES / "paget.yaml"), "--scenarios", str(tmp_path))
    assert code == 2 and f"{tmp_path}: is a folder, not a scenario file" in err


def test_a_bad_flag_value_is_one_line_pointing_to_help(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["next-test", "examples/cases/paget.yaml", "--lookahead", "nan"])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.strip().splitlines() == [
        "alpnet: error: argument --lookahead: invalid int value: 'nan' (see: alpnet next-test --help)"]


def test_the_lab_limit_span_in_the_prior_set_is_validated_with_its_source(tmp_path):
    from alpnet.errors import PriorsError
    from alpnet.priors import load_priors

    folder, ref = _priors_copy(tmp_path)
    text = ref.read_text()
    assert "uln_plausible: {min: 40, max: 1500, source: expert-judgment" in text
    ref.write_text(text.replace("uln_plausible: {min: 40, max: 1500, source: expert-judgment",
                                "uln_plausible: {min: 40, max: 1500, source: nosuch"))
    with pytest.raises(PriorsError, match=r"labs\.alp\.uln_plausible: source 'nosuch'"):
        load_priors(folder)


@pytest.mark.parametrize("old, new, message", [
    ("  min: 5\n  max: 75\n", "  min: 75\n  max: 5\n", r"pregnancy_age: needs 0 <= min < max"),
    ("  max: 75\n  source: expert-judgment\n", "  max: 75\n  source: nosuch\n", r"pregnancy_age: source 'nosuch'"),
])
def test_the_pregnancy_age_window_in_the_prior_set_is_validated(tmp_path, old, new, message):
    from alpnet.errors import PriorsError
    from alpnet.priors import load_priors

    folder, ref = _priors_copy(tmp_path)
    text = ref.read_text()
    assert old in text
    ref.write_text(text.replace(old, new, 1))
    with pytest.raises(PriorsError, match=message):
        load_priors(folder)


def test_without_a_pregnancy_age_window_any_age_may_be_pregnant(tmp_path):
    """A prior set may leave the window out; the context table alone then decides."""
    import re

    from alpnet.model import load_model

    folder, ref = _priors_copy(tmp_path)
    ref.write_text(re.sub(r"pregnancy_age:.*?\n\n", "", ref.read_text(), count=1, flags=re.S))
    model = load_model(folder)
    ev, _ = model.evidence_of({"patient": {"age": 80, "sex": "female", "pregnant": True}, "labs": {"alp": "200 U/L"}})
    assert set(ev["pregnant"]) == {"trimester_1", "trimester_2", "trimester_3"}


def test_a_row_cut_short_is_a_failed_row_not_a_row_of_unknowns(capsys, tmp_path):
    """pandas fills the missing cells of a short line with NaN; alpnet reports the line instead."""
    rows = list(ROWS) + ["d,40,female,350 U/L,130 U/L"]
    rows[1] = "b,60,female"  # the ALP and its limit are gone
    rows[3] = "d"
    code, err, out = _score(capsys, tmp_path, "\n".join([HEADER, *rows]) + "\n", "--chunk-size", "2")
    assert code == 1, err
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert scored["id"].tolist() == ["a", "b", "c", "d"]  # rows keep their places
    assert scored.loc[0, "leading_cause"] != "" and scored.loc[2, "leading_cause"] != ""
    assert scored.loc[1, "leading_cause"] == "" and scored.loc[3, "leading_cause"] == ""
    errors = pd.read_csv(tmp_path / "out.errors.csv")
    assert errors["row"].tolist() == [2, 4] and errors["case_id"].tolist() == ["b", "d"]
    assert "line 3 has 3 field(s), the header 5" in errors.loc[0, "reason"] and "truncated" in errors.loc[0, "reason"]
    assert "line 5 has 1 field(s), the header 5" in errors.loc[1, "reason"]


def test_blank_lines_and_quoted_line_breaks_do_not_put_the_short_row_check_out_of_step(capsys, tmp_path):
    header = HEADER + ",note"
    rows = ['a,70,male,420 U/L,130 U/L,"two\nlines"', "", "   ", "b,60,female,300 U/L,130 U/L,x", "c,50,male"]
    code, err, out = _score(capsys, tmp_path, "\n".join([header, *rows]) + "\n")
    assert code == 1, err
    errors = pd.read_csv(tmp_path / "out.errors.csv")
    assert errors["row"].tolist() == [3] and errors["case_id"].tolist() == ["c"]
    assert "line 7 has 3 field(s), the header 6" in errors.loc[0, "reason"]


def test_a_gzipped_csv_with_a_short_row_is_checked_too(capsys, tmp_path):
    import gzip

    src = tmp_path / "in.csv.gz"
    src.write_bytes(gzip.compress(("\n".join([HEADER, ROWS[0], "b,60"]) + "\n").encode()))
    code, _, err = run(capsys, "score", str(src), "-o", str(tmp_path / "out.csv"), "--quiet")
    assert code == 1, err
    assert pd.read_csv(tmp_path / "out.errors.csv")["row"].tolist() == [2]


def test_with_dask_a_row_cut_short_is_a_file_level_error(capsys, tmp_path):
    code, err, out = _score(capsys, tmp_path, "\n".join([HEADER, ROWS[0], "b,60,female"]) + "\n",
                            "--engine", "dask")
    assert code == 2
    assert "line 3 has 3 field(s), the header 5" in err and "without --engine dask" in err
    assert not out.exists()


DEEP_JSON = ('{"patient": {"age": 72, "sex": "male"}, "labs": {"alp": "420 U/L"}, "about": '
             + '{"a": ' * 1000 + "{}" + "}" * 1000 + "}")
HUGE_AGE = "9" * 5001


@pytest.mark.parametrize("name, text, message", [
    ("deep.json", DEEP_JSON, "nest more than 64 levels deep"),
    ("deep.yaml", "labs: {alp: 420 U/L}\nabout: " + "[" * 1000 + "]" * 1000 + "\n", "nest more than 64 levels deep"),
    ("huge.json", '{"patient": {"age": ' + HUGE_AGE + '}, "labs": {"alp": "420 U/L"}}', "more than 4300 digits"),
    ("huge.yaml", "patient: {age: " + HUGE_AGE + "}\nlabs: {alp: 420 U/L}\n", "more than 4300 digits"),
])
def test_a_case_file_past_pythons_own_limits_is_an_input_error(capsys, tmp_path, name, text, message):
    """Deep nesting and giant integers used to end in an 'internal error' (exit 1)."""
    case = tmp_path / name
    case.write_text(text)
    code, out, err = run(capsys, "diagnose", str(case))
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()] and message in err and str(case) in err


@pytest.mark.parametrize("value, message", [(HUGE_AGE, "a number has more than 4300 digits"),
                                            ("[" * 1000, "mappings or lists nest more than 64 levels deep")])
def test_a_what_if_value_past_pythons_own_limits_is_an_input_error(capsys, value, message):
    key = "patient.age" if value.isdigit() else "labs.ggt"
    code, out, err = run(capsys, "what-if", "--example", "paget", "--set", f"{key}={value}")
    assert code == 2 and out == ""
    assert f"--set {key}: the value cannot be read: {message}" in err


def test_a_deeply_nested_request_body_is_a_422_naming_the_limit(model):
    from fastapi.testclient import TestClient

    from alpnet.server import create_app

    res = TestClient(create_app(model)).post("/diagnose", content=DEEP_JSON,
                                             headers={"content-type": "application/json"})
    assert res.status_code == 422
    assert "nest more than 64 levels deep" in res.json()["error"]



def test_a_ruled_out_cause_is_refused_as_a_ranking_target(capsys, tmp_path):
    """A 72-year-old man cannot be growing: every test's gain about it is 0, which is no ranking."""
    case = tmp_path / "man.yaml"
    case.write_text("patient: {age: 72, sex: male}\nlabs: {alp: 420 U/L}\n")
    code, out, err = run(capsys, "next-test", str(case), "--target", "growth")
    assert code == 2 and out == ""
    assert "target: growth is ruled out by the case (posterior 0)" in err



@pytest.mark.parametrize("case, message", [
    ({"patient": {"age": None}, "labs": {"alp": "200 U/L"}}, "patient.age: expected a number; got null"),
    ({"patient": {"sex": True}, "labs": {"alp": "200 U/L"}}, "patient.sex: true is not accepted"),
])
def test_null_and_booleans_are_shown_as_a_case_file_writes_them(model, case, message):
    from alpnet.errors import CaseError

    with pytest.raises(CaseError) as info:
        model.evidence_of(case)
    assert message in str(info.value)
