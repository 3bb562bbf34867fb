"""Bad input found by the black-box fuzz gets one clear alpnet error, never a raw exception.

Each test feeds what the fuzz fed (impossible evidence to ``explain``, a prior set with a
file that is not UTF-8 or an empty ``model.yaml``, arguments of the wrong type or out of
range to the public API) and checks what a user would: the exception type, and that the
message names the argument (or file) and the value.
"""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

import alpnet
from alpnet.cli import main
from alpnet.explain import explain
from alpnet.checks import check_number
from alpnet.priors import bundled_priors_path, load_priors
from alpnet.whatif import what_if

from .conftest import EXAMPLES

# female with a prostate cancer (a context conflict) and male with a placental ALP
# isoenzyme (a finding that the context rules out): probability zero under the model
FEMALE_PROSTATE = {"patient": {"age": 70, "sex": "female"}, "history": {"known_cancer": "prostate"},
                   "labs": {"alp": "420 U/L"}}
MALE_PLACENTAL = {"patient": {"age": 60, "sex": "male"}, "labs": {"alp": "420 U/L"},
                  "tests": {"alp_isoenzymes": "placental"}}
CASE = {"patient": {"age": 60, "sex": "male"}, "labs": {"alp": "420 U/L", "alp_uln": "130 U/L"}}


# ----------------------------------------------------------------------------- P3: explain


@pytest.mark.parametrize("case, names", [(FEMALE_PROSTATE, {"sex", "known_cancer"}),
                                         (MALE_PLACENTAL, {"sex", "alp_isoenzymes"})])
@pytest.mark.parametrize("kwargs", [{}, {"method": "shapley"}, {"cause": "paget"},
                                    {"cause": "paget", "versus": "bone_metastases"}])
def test_explain_of_impossible_evidence_is_the_conflict_error_diagnose_gives(model, case, names, kwargs):
    with pytest.raises(alpnet.EvidenceConflictError) as info:
        explain(model, case, **kwargs)
    assert names <= set(info.value.findings)
    assert "cannot hold together" in str(info.value)
    with pytest.raises(alpnet.EvidenceConflictError) as same:
        model.diagnose(case)
    assert str(info.value) == str(same.value)


def test_model_explain_of_impossible_evidence_raises_the_conflict_error_without_warnings(model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy "invalid value" warnings before the error
        with pytest.raises(alpnet.EvidenceConflictError, match="sex=male and alp_isoenzymes=placental"):
            model.explain(MALE_PLACENTAL)


@pytest.mark.parametrize("extra", [[], ["--method", "shapley"], ["--cause", "paget"]])
def test_cli_explain_of_impossible_evidence_exits_2_with_one_line(tmp_path, capsys, extra):
    path = tmp_path / "conflict.yaml"
    path.write_text(yaml.safe_dump(MALE_PLACENTAL))
    assert main(["explain", str(path), *extra]) == 2
    err = capsys.readouterr().err
    assert "sex=male and alp_isoenzymes=placental cannot hold together" in err
    assert "internal error" not in err and "Traceback" not in err


def test_explain_of_a_possible_case_still_works(model):
    ex = explain(model, alpnet.read_case(EXAMPLES / "paget.yaml"), cause="paget")
    row = ex.summary.iloc[0]
    assert abs(ex.findings["contribution_bits"].sum() - row["shift_bits"]) < 1e-9


@pytest.mark.parametrize("kwargs, name, shown", [({"top": 0}, "top", "'0'"), ({"top": -3}, "top", "'-3'"),
                                                 ({"top": "2"}, "top", "'2'"),
                                                 ({"permutations": 0}, "permutations", "'0'"),
                                                 ({"seed": -1}, "seed", "'-1'")])
def test_explain_numeric_arguments_are_checked(model, kwargs, name, shown):
    with pytest.raises(alpnet.CaseError) as info:
        explain(model, CASE, **kwargs)
    assert f"{name} {shown}" in str(info.value) and "accepted" in str(info.value)


# ----------------------------------------------------------------------------- P7: prior files


@pytest.fixture
def prior_copy(tmp_path) -> Path:
    dst = tmp_path / "priors"
    shutil.copytree(bundled_priors_path(), dst)
    return dst


def test_a_prior_file_that_is_not_utf8_is_a_priors_error_naming_the_file(prior_copy, capsys):
    (prior_copy / "reference.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(alpnet.PriorsError, match=r"priors/reference.yaml: \(file\): is not UTF-8 text \(byte 0xff"):
        load_priors(prior_copy)
    assert main(["diagnose", str(EXAMPLES / "paget.yaml"), "--priors", str(prior_copy)]) == 2
    err = capsys.readouterr().err
    assert "reference.yaml" in err and "UTF-8" in err and "internal error" not in err


def test_a_latin1_finding_file_is_named(prior_copy):
    path = next((prior_copy / "findings").glob("*.yaml"))
    path.write_bytes(path.read_bytes() + "# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(alpnet.PriorsError, match=rf"priors/findings/{path.name}: \(file\): is not UTF-8"):
        load_priors(prior_copy)


def test_an_empty_model_yaml_is_refused(prior_copy, capsys):
    (prior_copy / "model.yaml").write_text("")
    with pytest.raises(alpnet.PriorsError, match=r"priors/model.yaml: \(file\): is empty; it needs name, version "
                                                 r"and description"):
        load_priors(prior_copy)
    assert main(["diagnose", str(EXAMPLES / "paget.yaml"), "--priors", str(prior_copy)]) == 2
    assert "model.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("text, key, problem", [
    ("- a list\n", r"\(file\)", "must be a mapping; got list"),
    ("version: '1'\ndescription: d\n", "name", "is missing"),
    ("name: x\ndescription: d\n", "version", "is missing"),
    ("name: x\nversion: '1'\ndescription: ''\n", "description", "must be a non-empty text; got ''"),
    ("name: [a, b]\nversion: '1'\ndescription: d\n", "name", r"must be a non-empty text; got \['a', 'b'\]"),
])
def test_model_yaml_needs_name_version_and_description(prior_copy, text, key, problem):
    (prior_copy / "model.yaml").write_text(text)
    with pytest.raises(alpnet.PriorsError, match=rf"priors/model.yaml: {key}: {problem}"):
        load_priors(prior_copy)


def test_the_bundled_model_yaml_passes_and_is_kept():
    meta = load_priors().meta
    assert {"name", "version", "description"} <= set(meta)


# ----------------------------------------------------------------------------- P24: load_model


@pytest.mark.parametrize("priors, shown", [(5, "int 5"), (b"/tmp", "bytes b'/tmp'"), (["priors"], "list")])
def test_load_model_priors_of_the_wrong_type(priors, shown):
    with pytest.raises(alpnet.PriorsError) as info:
        alpnet.load_model(priors)
    assert f"priors: got {shown}" in str(info.value) and "prior-set folder" in str(info.value)


PID = "age.prior.under_2"
RATIO = "paget.rr[family_history_paget=true]"


@pytest.mark.parametrize("overrides, expected", [
    ([(PID, 0.1)], "overrides: got list"),
    ("x=1", "overrides: got str 'x=1'"),
    ({PID: "abc"}, f"overrides[{PID!r}]: 'abc' is not a number"),
    ({PID: "0.1"}, f"overrides[{PID!r}]: '0.1' is not a number"),
    ({PID: True}, f"overrides[{PID!r}]: True is not a number"),
    ({PID: None}, f"overrides[{PID!r}]: None is not a number"),
    ({5: 0.1}, "overrides: key 5 is not a parameter id"),
    ({PID: float("nan")}, f"--param {PID}=nan: must be a finite number"),
    ({RATIO: float("inf")}, f"--param {RATIO}=inf: must be a finite number"),
    ({RATIO: float("nan")}, f"--param {RATIO}=nan: must be a finite number"),
])
def test_load_model_overrides_must_map_ids_to_finite_numbers(overrides, expected):
    with pytest.raises(alpnet.PriorsError) as info:
        alpnet.load_model(overrides=overrides)
    assert expected in str(info.value)


def test_load_model_overrides_numpy_numbers_are_accepted_and_recorded():
    model = alpnet.load_model(overrides={PID: np.float64(0.25)})
    assert model.version_info["overrides"] == {PID: 0.25}
    assert alpnet.load_model(overrides={}).version_info.get("overrides") is None


# ----------------------------------------------------------------------------- P24: Model.label


def test_label_of_an_unknown_variable_names_it_and_the_accepted_ones(model):
    with pytest.raises(alpnet.CaseError) as info:
        model.label("pagett")
    message = str(info.value)
    assert "variable 'pagett': unknown (did you mean 'paget'?)" in message
    assert "accepted:" in message and "alp_isoenzymes" in message
    with pytest.raises(alpnet.CaseError, match="variable 5: unknown"):
        model.label(5)  # type: ignore[arg-type]
    assert model.label("paget") == "Paget disease of bone"


# ----------------------------------------------------------------------------- P24: rank_tests, plan


@pytest.mark.parametrize("kwargs, name, shown, accepted", [
    ({"cost_weight": "abc"}, "cost_weight", "'abc'", "a finite number >= 0"),
    ({"cost_weight": float("nan")}, "cost_weight", "'nan'", "a finite number >= 0"),
    ({"cost_weight": float("inf")}, "cost_weight", "'inf'", "a finite number >= 0"),
    ({"cost_weight": -1}, "cost_weight", "'-1'", "a finite number >= 0"),
    ({"lookahead": 3}, "lookahead", "'3'", "a whole number in [1, 2]"),
    ({"lookahead": "2"}, "lookahead", "'2'", "a whole number in [1, 2]"),
    ({"lookahead": True}, "lookahead", "'True'", "a whole number in [1, 2]"),
    ({"lookahead": 1.5}, "lookahead", "'1.5'", "a whole number in [1, 2]"),
])
def test_rank_tests_numeric_arguments_are_checked(model, kwargs, name, shown, accepted):
    with pytest.raises(alpnet.CaseError) as info:
        model.rank_tests(CASE, **kwargs)
    assert f"{name} {shown}" in str(info.value) and f"accepted: {accepted}" in str(info.value)


@pytest.mark.parametrize("kwargs, name, shown, accepted", [
    ({"stop_probability": "0.9"}, "stop_probability", "'0.9'", "a finite number in (0, 1]"),
    ({"stop_probability": 0}, "stop_probability", "'0'", "a finite number in (0, 1]"),
    ({"stop_probability": 2}, "stop_probability", "'2'", "a finite number in (0, 1]"),
    ({"budget": float("nan")}, "budget", "'nan'", "a finite number >= 0"),
    ({"budget": -5}, "budget", "'-5'", "a finite number >= 0"),
    ({"budget": "100"}, "budget", "'100'", "a finite number >= 0"),
    ({"min_gain": float("nan")}, "min_gain", "'nan'", "a finite number >= 0"),
    ({"max_depth": -1}, "max_depth", "'-1'", "a whole number >= 0"),
    ({"max_depth": 2.5}, "max_depth", "'2.5'", "a whole number >= 0"),
    ({"max_depth": None}, "max_depth", "'None'", "a whole number >= 0"),
    ({"cost_weight": "1"}, "cost_weight", "'1'", "a finite number >= 0"),
])
def test_plan_numeric_arguments_are_checked(model, kwargs, name, shown, accepted):
    with pytest.raises(alpnet.CaseError) as info:
        model.plan(CASE, **kwargs)
    assert f"{name} {shown}" in str(info.value) and f"accepted: {accepted}" in str(info.value)


def test_plan_accepts_numpy_and_whole_float_arguments(model):
    out = model.plan(CASE, max_depth=np.int64(1), stop_probability=np.float64(0.9), budget=1000, min_gain=0.05)
    assert out["settings"]["max_depth"] == 1 and out["settings"]["budget"] == 1000.0
    assert model.plan(CASE, max_depth=1.0)["settings"]["max_depth"] == 1


@pytest.mark.parametrize("value, accepted", [(0.5, 0.5), (np.float32(0.25), 0.25), (3, 3.0)])
def test_check_number_returns_the_value(value, accepted):
    got = check_number("x", value, low=0)
    assert got == accepted and isinstance(got, float)
    assert check_number("n", 2.0, low=1, high=2, whole=True) == 2


@pytest.mark.parametrize("value", [None, "1", b"1", True, np.bool_(False), [1], 1j, math.nan, -math.inf, 10**400])
def test_check_number_refuses_what_is_not_a_finite_real(value):
    with pytest.raises(alpnet.CaseError, match=r"^weight '.*': not .*; accepted: a finite number >= 0$"):
        check_number("weight", value, low=0)


# ----------------------------------------------------------------------------- P24: what_if


@pytest.mark.parametrize("kwargs", [{}, {"set": {}}, {"unset": []}, {"set": None, "unset": None},
                                    {"set": {}, "unset": []}])
def test_what_if_without_a_change_is_refused_as_by_the_cli(model, kwargs):
    with pytest.raises(alpnet.CaseError) as info:
        model.what_if(CASE, **kwargs)
    message = str(info.value)
    assert message.startswith("set: nothing to change") and "unset" in message and "accepted" in message
    with pytest.raises(alpnet.CaseError, match="nothing to change"):
        what_if(model, CASE, next_test=False, **kwargs)


def test_what_if_with_a_change_still_works(model):
    df = model.what_if(CASE, set={"labs.ggt": "300 U/L"})
    assert [c["key"] for c in df.attrs["changes"]] == ["labs.ggt"]
    assert df.attrs["evidence_before"] != df.attrs["evidence_after"]
