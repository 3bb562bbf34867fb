"""What-if scenarios: before and after, the same answers as editing the case file."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

import alpnet
from alpnet.cli import main
from alpnet.whatif import (apply_changes, compare_scenarios, parse_assignment, read_scenarios, scenarios_record,
                           what_if, what_if_record)

from .conftest import EXAMPLES, ROOT


def load(name):
    return alpnet.read_case(EXAMPLES / f"{name}.yaml")


def posterior(model, case):
    return model.diagnose(case).set_index("cause")["posterior"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_setting_every_value_to_what_it_already_is_changes_nothing(model):
    case = load("osteomalacia_vs_phpt_phpt")
    same = {f"{section}.{key}": value for section in ("patient", "history", "symptoms", "labs", "tests")
            for key, value in (case.data.get(section) or {}).items()}
    assert len(same) > 8
    df = what_if(model, case, set=same)
    assert (df["before"] == df["after"]).all()
    assert (df["change"] == 0).all()
    assert df.attrs["leading_before"] == df.attrs["leading_after"]
    assert df.attrs["next_test_before"] == df.attrs["next_test_after"]
    assert df.attrs["evidence_before"] == df.attrs["evidence_after"]


@pytest.mark.parametrize("key", ["labs.ggt", "labs.calcium", "symptoms.bone_pain", "patient.age", "tests.xray"])
def test_setting_one_value_to_itself_changes_nothing(model, key):
    case = load("paget")
    section, name = key.split(".")
    df = what_if(model, case, set={key: case.data[section][name]}, next_test=False)
    assert (df["before"] == df["after"]).all()


def test_after_is_the_answer_for_the_edited_case_file(model, tmp_path):
    case = load("paget")
    df = what_if(model, case, set={"labs.ggt": "300 U/L", "symptoms.jaundice": True}, unset=["tests.bone_scan"],
                 next_test=False)
    data = copy.deepcopy(case.data)
    data["labs"]["ggt"] = "300 U/L"
    data["symptoms"]["jaundice"] = True
    del data["tests"]["bone_scan"]
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(data))
    want = posterior(model, alpnet.read_case(edited))
    got = df.set_index("cause")
    for cause in model.causes:
        assert got.loc[cause, "after"] == want[cause]
        assert got.loc[cause, "before"] == posterior(model, case)[cause]
        assert got.loc[cause, "change"] == got.loc[cause, "after"] - got.loc[cause, "before"]
    # a raised GGT with jaundice moves the liver causes up
    assert got.loc["cholestatic_liver", "change"] > 0.01
    assert [c["key"] for c in df.attrs["changes"]] == ["tests.bone_scan", "labs.ggt", "symptoms.jaundice"]


def test_the_case_given_is_not_modified(model):
    case = load("paget")
    before = copy.deepcopy(case.data)
    what_if(model, case, set={"labs.ggt": "300 U/L"}, unset=["labs.psa"], next_test=False)
    assert case.data == before


def test_unset_removes_a_value(model):
    case = load("osteomalacia_vs_phpt_phpt")
    df = what_if(model, case, unset=["labs.calcium"], next_test=False)
    assert "calcium" in df.attrs["evidence_before"] and "calcium" not in df.attrs["evidence_after"]
    # calcium is the hinge between PHPT and osteomalacia: without it PHPT falls
    assert df.set_index("cause").loc["primary_hyperparathyroidism", "change"] < 0


@pytest.mark.parametrize("kwargs, message", [
    ({"set": {"labs.ggt": "300 IU/dl"}}, "labs.ggt: unknown unit 'IU/dl'"),
    ({"set": {"labs.ggt": "300"}}, "labs.ggt: '300' has no unit"),
    ({"set": {"labs.gtt": "30 U/L"}}, "labs.gtt: unknown key (did you mean 'ggt'?)"),
    ({"set": {"symptoms.bone_pain": "maybe"}}, "symptoms.bone_pain: expected true or false"),
    ({"set": {"tests.xray": "broken"}}, "tests.xray: 'broken' is not accepted"),
    ({"set": {"patient.age": 300}}, "patient.age: 300 is not possible"),
    ({"set": {"ggt": "30 U/L"}}, "set: 'ggt' is not a case key"),
    ({"unset": ["labs.ggt", "labs.ggt"]}, "unset: labs.ggt is given twice; give each key once"),
    ({"unset": [1]}, "unset: 1 is not a case key"),
    ({"unset": ["labs.pth"]}, "labs.pth: not in the case, so it cannot be unset"),
    ({"unset": ["labs.alp"]}, "labs.alp: cannot be unset"),
    ({"set": {"labs.psa": "3 ng/mL"}, "unset": ["labs.psa"]}, "labs.psa: both set and unset"),
])
def test_bad_changes_name_the_key(model, kwargs, message):
    with pytest.raises(alpnet.CaseError) as info:
        what_if(model, load("paget"), next_test=False, **kwargs)
    assert message in str(info.value)


def test_record_is_the_cli_json(model, capsys):
    path = EXAMPLES / "paget.yaml"
    rec = what_if_record(model, alpnet.read_case(path), set={"labs.ggt": "300 U/L"}, unset=["labs.psa"])
    code, out, err = run(capsys, "what-if", str(path), "--set", "labs.ggt=300 U/L", "--unset", "labs.psa",
                         "--format", "json")
    assert code == 0, err
    assert json.loads(out) == json.loads(json.dumps(rec))
    assert rec["disclaimer"] == alpnet.DISCLAIMER
    assert rec["model"] == model.version_info
    assert rec["before"]["leading_cause"] == "paget"
    assert rec["after"]["next_test"]["test"] in model.observables
    assert {c["cause"] for c in rec["causes"]} == set(model.causes)
    json.dumps(rec, allow_nan=False)


@pytest.mark.parametrize("text, value", [
    ("labs.ggt=300 U/L", "300 U/L"), ("symptoms.bone_pain=true", True), ("symptoms.fever=false", False),
    ("patient.age=72", 72), ("tests.xray=paget_pattern", "paget_pattern"), ("labs.pth=high", "high"),
])
def test_command_line_values_are_read_as_in_a_case_file(text, value):
    key, got = parse_assignment(text)
    assert key == text.split("=")[0] and got == value and type(got) is type(value)


def test_scenarios_compare_side_by_side(model, tmp_path):
    case = load("paget_vs_metastases_metastases")
    f = tmp_path / "s.yaml"
    f.write_text("scenarios:\n"
                 "  - name: Paget-pattern scan\n    set: {tests.bone_scan: paget_pattern}\n"
                 "  - name: no PSA\n    unset: [labs.psa]\n")
    scenarios = read_scenarios(f)
    df = compare_scenarios(model, case, scenarios, next_test=False)
    assert list(df.columns) == ["cause", "label", "before", "Paget-pattern scan", "no PSA"]
    for s in scenarios:
        one = what_if(model, case, set=s.set, unset=s.unset, next_test=False).set_index("cause")["after"]
        assert (df.set_index("cause")[s.name] == one[df["cause"]].to_numpy()).all()
    info = {s["name"]: s for s in df.attrs["scenarios"]}
    assert info["Paget-pattern scan"]["leading_cause"] == "paget"
    rec = scenarios_record(model, case, scenarios)
    assert [s["name"] for s in rec["scenarios"]] == ["Paget-pattern scan", "no PSA"]
    json.dumps(rec, allow_nan=False)


def test_bundled_scenario_example_is_valid(model):
    scenarios = read_scenarios(ROOT / "examples" / "scenarios" / "paget_vs_metastases.yaml")
    df = compare_scenarios(model, load("paget_vs_metastases_metastases"), scenarios, next_test=False)
    assert len(df.columns) == 3 + len(scenarios)


@pytest.mark.parametrize("text, message", [
    ("scenarios: []\n", "non-empty list of scenarios"),
    ("scenarioz: []\n", "unknown key 'scenarioz'; accepted: scenarios"),
    ("- name: a\n  sett: {labs.ggt: 30 U/L}\n", "scenario 1: unknown key 'sett'; accepted: name, set, unset"),
    ("- name: a\n", "scenario 'a': changes nothing"),
    ("- name: a\n  set: {labs.ggt: 30 U/L}\n- name: a\n  unset: [labs.psa]\n", "the name 'a' is used twice"),
])
def test_bad_scenario_files_are_named(tmp_path, text, message):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(alpnet.CaseError) as info:
        read_scenarios(f)
    assert message in str(info.value) and str(f) in str(info.value)


def test_a_bad_value_in_a_scenario_names_the_scenario_and_the_key(model):
    with pytest.raises(alpnet.CaseError, match="scenario 'b': labs.ggt: unknown unit"):
        compare_scenarios(model, load("paget"), [{"name": "a", "set": {"labs.psa": "3 ng/mL"}},
                                                 {"name": "b", "set": {"labs.ggt": "3 IU/dl"}}])


# ----------------------------------------------------------------------------- command line


def test_cli_table_shows_before_after_leading_and_next_test(capsys):
    code, out, err = run(capsys, "what-if", str(EXAMPLES / "paget_vs_metastases_metastases.yaml"),
                         "--set", "tests.bone_scan=paget_pattern", "--set", "symptoms.night_pain=false")
    assert code == 0, err
    assert "tests.bone_scan: multiple_foci -> paget_pattern" in out
    assert "leading cause: Bone metastases (bone_metastases) -> Paget disease of bone (paget)" in out
    assert "best next test:" in out and out.count("research and teaching") == 1


def test_cli_scenarios_file_and_command_line_together(capsys, tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("- name: liver\n  set: {labs.ggt: 300 U/L}\n")
    code, out, err = run(capsys, "what-if", str(EXAMPLES / "paget.yaml"), "--scenarios", str(f),
                         "--unset", "labs.psa", "--format", "json")
    assert code == 0, err
    rec = json.loads(out)
    assert [s["name"] for s in rec["scenarios"]] == ["command line", "liver"]


@pytest.mark.parametrize("argv, message", [
    (["--set", "labs.gtt=30 U/L"], "labs.gtt: unknown key"),
    (["--set", "tests.xray=broken"], "tests.xray: 'broken' is not accepted"),
    (["--set", "labs.ggt"], "expected KEY=VALUE"),
    (["--unset", "labs.pth"], "labs.pth: not in the case"),
    ([], "nothing to change"),
    (["--scenarios", "/nonexistent/s.yaml"], "no such scenario file"),
])
def test_cli_bad_input_exits_2_in_one_line(capsys, argv, message):
    code, out, err = run(capsys, "what-if", str(EXAMPLES / "paget.yaml"), *argv)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_set_and_param_are_distinct(capsys, model):
    pid = next(iter(model.priors.parameters))
    value = model.priors.parameters[pid].value
    code, out, err = run(capsys, "what-if", str(EXAMPLES / "paget.yaml"), "--set", "labs.ggt=300 U/L",
                         "--param", f"{pid}={value}", "--format", "json")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["model"]["overrides"] == {pid: value}
    assert rec["changes"] == [{"key": "labs.ggt", "before": "28 U/L", "after": "300 U/L"}]


def test_cli_plot_is_written_atomically_and_not_replaced_without_force(capsys, tmp_path):
    target = tmp_path / "wi.png"
    argv = ["what-if", str(EXAMPLES / "paget.yaml"), "--set", "labs.ggt=300 U/L", "--plot", str(target)]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    assert target.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["wi.png"]
    code, out, err = run(capsys, *argv)
    assert code == 2 and "already exists; use --force" in err and out == ""
    code, _, err = run(capsys, *argv, "--force")
    assert code == 0, err
    code, _, err = run(capsys, *argv[:-1], str(tmp_path / "wi.bmp"))
    assert code == 2 and "unknown file type '.bmp'" in err


# ----------------------------------------------------------------------------- interactive controls


def test_evidence_what_if_matches_the_case_what_if(model):
    from alpnet.whatif import what_if_evidence
    from alpnet.widgets import AS_IN_CASE, NOT_KNOWN, evidence_from_choices

    case = load("paget_vs_metastases_metastases")
    base, _ = model.evidence_of(case)
    after = evidence_from_choices(base, {"bone_scan": "paget_pattern", "psa": NOT_KNOWN, "alp": AS_IN_CASE})
    assert after["bone_scan"] == "paget_pattern" and "psa" not in after and after["alp"] == base["alp"]
    by_evidence = what_if_evidence(model, base, after).set_index("cause")["after"]
    by_case = what_if(model, case, set={"tests.bone_scan": "paget_pattern"}, unset=["labs.psa"],
                      next_test=False).set_index("cause")["after"]
    assert (by_evidence[by_case.index] == by_case).all()
    same = what_if_evidence(model, base, evidence_from_choices(base, {v: AS_IN_CASE for v in base}))
    assert (same["before"] == same["after"]).all() and same.attrs["changes"] == []


def test_controls_follow_the_drop_downs(model):
    import ipywidgets

    from alpnet.widgets import what_if_controls

    box = what_if_controls(model, load("paget_vs_metastases_metastases"), findings=["bone_scan", "psa"])
    grid = box.children[1]
    drops = {d.description: d for d in grid.children}
    assert set(drops) == {"tests.bone_scan", "labs.psa"}
    assert drops["tests.bone_scan"].value == "multiple_foci"
    status = box.children[2]
    assert "Bone metastases" in status.value
    drops["tests.bone_scan"].value = "paget_pattern"
    drops["labs.psa"].value = "normal"
    assert "Paget disease of bone" in status.value
    assert isinstance(box, ipywidgets.VBox)


def test_controls_without_ipywidgets_say_how_to_install(model, monkeypatch):
    import sys

    from alpnet.widgets import what_if_controls, widgets_available

    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    assert not widgets_available()
    with pytest.raises(alpnet.AlpnetError, match=r"pip install 'alpnet\[widgets\]'"):
        what_if_controls(model, load("paget"))


def test_model_methods_are_the_module_functions(model):
    case = load("paget")
    a = model.what_if(case, set={"labs.ggt": "300 U/L"})
    b = what_if(model, case, set={"labs.ggt": "300 U/L"})
    assert a.equals(b) and a.attrs["next_test_after"] == b.attrs["next_test_after"]
    ex = model.explain(case, cause="paget")
    assert list(ex.summary["cause"]) == ["paget"]


def test_one_key_to_unset_may_be_given_bare(model):
    case = load("paget")
    a = what_if(model, case, unset="labs.psa", next_test=False)
    assert [c["key"] for c in a.attrs["changes"]] == ["labs.psa"]
    with pytest.raises(alpnet.CaseError, match="set must map case keys to values"):
        what_if(model, case, set=["labs.ggt"], next_test=False)
