"""The command line as a user meets it: exit codes, one-line errors, outputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alpnet.cli import main

from .conftest import BAD_CASES, EXAMPLES, ROOT


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_diagnose_table_shows_every_cause_the_leading_one_and_the_disclaimer(capsys, model):
    code, out, err = run(capsys, "diagnose", str(EXAMPLES / "paget.yaml"))
    assert code == 0, err
    for cause in model.causes:
        assert f"({cause})" in out
    assert "leading cause:" in out
    assert out.count("research and teaching") == 1


def test_diagnose_json_is_one_object_per_case_per_line(capsys, model):
    files = [str(EXAMPLES / "paget.yaml"), str(EXAMPLES / "cholestatic_liver_pbc.yaml")]
    code, out, err = run(capsys, "diagnose", *files, "--format", "json")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2
    for line, name in zip(lines, ["paget", "cholestatic_liver_pbc"]):
        rec = json.loads(line)
        assert rec["case_id"] == name
        assert set(rec["posterior"]) == set(model.causes) == set(rec["prior"])
        assert rec["model"]["version"] and len(rec["model"]["priors_sha256"]) == 64
        assert "research and teaching" in rec["disclaimer"]
        assert isinstance(rec["evidence"], dict) and "alp" in rec["evidence"]
        assert all(0 <= p <= 1 for p in rec["posterior"].values())


def test_diagnose_show_states(capsys):
    code, out, _ = run(capsys, "diagnose", str(EXAMPLES / "paget.yaml"), "--show-states")
    assert code == 0
    assert "how the case was read" in out and "labs.alp" in out
    code, out, _ = run(capsys, "diagnose", str(EXAMPLES / "paget.yaml"), "--show-states", "--format", "json")
    rec = json.loads(out)
    assert any(s["key"] == "labs.alp" for s in rec["states"])


def test_diagnose_from_a_bundled_example_by_name(capsys):
    code, out, _ = run(capsys, "diagnose", "--example", "paget")
    assert code == 0 and "case paget" in out


@pytest.mark.parametrize("bad", sorted(p.name for p in BAD_CASES.glob("*.yaml")))
def test_every_bad_case_is_exit_2_with_one_clear_line(capsys, bad):
    code, out, err = run(capsys, "diagnose", str(BAD_CASES / bad))
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert "accepted" in err or "is negative" in err or "no unit" in err


def test_nothing_is_printed_when_one_of_several_cases_is_bad(capsys):
    code, out, err = run(capsys, "diagnose", str(EXAMPLES / "paget.yaml"), str(BAD_CASES / "unknown_unit.yaml"))
    assert code == 2 and out == ""
    assert "unknown_unit.yaml" in err


def test_missing_file_and_bad_flag_exit_2(capsys):
    code, _, err = run(capsys, "diagnose", "does-not-exist.yaml")
    assert code == 2 and "no such file" in err
    with pytest.raises(SystemExit) as info:
        main(["diagnose", "--format", "xml", str(EXAMPLES / "paget.yaml")])
    assert info.value.code == 2


def test_param_override_is_recorded(capsys, model):
    pid = next(iter(model.priors.parameters))
    value = model.priors.parameters[pid].value
    new = min(1.0, value * 0.5 + 0.01)
    code, out, err = run(capsys, "diagnose", str(EXAMPLES / "paget.yaml"), "--format", "json", "--param", f"{pid}={new}")
    assert code == 0, err
    assert json.loads(out)["model"]["overrides"] == {pid: new}
    code, _, err = run(capsys, "diagnose", str(EXAMPLES / "paget.yaml"), "--param", "no.such.param=0.1")
    assert code == 2 and "unknown parameter id" in err


def test_priors_report_json(capsys, model):
    code, out, _ = run(capsys, "priors", "report", "--format", "json")
    assert code == 0
    rep = json.loads(out)
    assert rep["parameters"] == len(model.priors.parameters) == len(rep["table"])
    assert rep["literature"] + rep["expert_judgment"] + rep["by_definition"] == rep["parameters"]
    assert rep["sources"] == len(rep["bibliography"]) > 10
    row = rep["table"][0]
    assert {"id", "value", "range", "source", "note"} <= set(row)
    assert rep["literature"] > rep["expert_judgment"], "most numbers should come from the literature"


def test_priors_report_table_and_validate(capsys):
    code, out, _ = run(capsys, "priors", "report")
    assert code == 0 and "from the literature" in out
    code, out, _ = run(capsys, "priors", "validate")
    assert code == 0 and "valid" in out


@pytest.mark.parametrize("fmt, reader", [("bif", "BIFReader"), ("xmlbif", "XMLBIFReader")])
def test_export_round_trips_through_pgmpy(capsys, tmp_path, mini, fmt, reader):
    """pgmpy reads the exported tiny network back with the same tables."""
    import pgmpy.readwrite as rw

    from .conftest import MINI

    out = tmp_path / f"mini.{fmt}"
    code, _, err = run(capsys, "export", "--format", fmt, str(out), "--priors", str(MINI))
    assert code == 0, err
    read = getattr(rw, reader)(str(out)).get_model()
    original = mini.to_pgmpy()
    assert set(read.nodes) == set(original.nodes)
    for node in original.nodes:
        a, b = original.get_cpds(node).copy(), read.get_cpds(node).copy()
        b.reorder_parents(list(a.variables[1:])) if len(a.variables) > 1 else None
        assert list(b.state_names[node]) == list(a.state_names[node])
        np.testing.assert_allclose(b.get_values(), a.get_values(), atol=1e-9)
    # an existing output is kept unless --force
    code, _, err = run(capsys, "export", "--format", fmt, str(out), "--priors", str(MINI))
    assert code == 2 and "--force" in err
    assert run(capsys, "export", "--format", fmt, str(out), "--force", "--priors", str(MINI))[0] == 0


@pytest.mark.parametrize("fmt, suffix", [("bif", "bif"), ("xmlbif", "bifxml")])
def test_exported_bundled_network_gives_the_same_answers_in_pyagrum(capsys, tmp_path, model, fmt, suffix):
    import pyagrum as gum

    out = tmp_path / f"alpnet.{suffix}"
    code, _, err = run(capsys, "export", "--format", fmt, str(out))
    assert code == 0, err
    bn = gum.loadBN(str(out))
    assert bn.size() == len(model.priors.variables)
    evidence = {"age": "70_plus", "sex": "male", "alp": "marked", "ggt": "normal", "bone_pain": "true"}
    ie = gum.LazyPropagation(bn)
    ie.setEvidence(evidence)
    ie.makeInference()
    ours = model.engine.posterior(evidence)
    for cause in model.causes:
        theirs = ie.posterior(cause)[{cause: "present"}]
        assert theirs == pytest.approx(ours[cause], abs=1e-6)


def test_schema_command_matches_the_shipped_schema(capsys):
    code, out, _ = run(capsys, "schema")
    assert code == 0
    shipped = json.loads((ROOT / "alpnet" / "schema" / "case.schema.json").read_text())
    assert json.loads(out) == shipped


def test_cases_lists_the_bundled_examples(capsys):
    code, out, _ = run(capsys, "cases")
    assert code == 0 and "paget" in out and "osteomalacia" in out


def test_console_script_runs_from_another_folder(tmp_path):
    exe = shutil.which("alpnet")
    if exe is None:  # running from a source tree without the package installed
        cmd = [sys.executable, "-m", "alpnet"]
    else:
        cmd = [exe]
    case = tmp_path / "c.yaml"
    case.write_text("patient: {age: 70, sex: male}\nlabs: {alp: 400 U/L, alp_uln: 130 U/L, ggt: 20 U/L}\n")
    res = subprocess.run(cmd + ["diagnose", str(case)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "leading cause" in res.stdout
    res = subprocess.run(cmd + ["diagnose", str(Path(tmp_path) / "nope.yaml")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_impossible_case_names_the_conflicting_findings(capsys, tmp_path):
    case = tmp_path / "prostate.yaml"  # the context table gives a woman no prostate cancer
    case.write_text("patient: {age: 50, sex: female}\nhistory: {known_cancer: prostate}\nlabs: {alp: 900 U/L}\n")
    code, out, err = run(capsys, "diagnose", str(case))
    assert code == 2 and out == ""
    assert "impossible" in err and "sex=female" in err and "known_cancer=prostate" in err


from .test_evidence import test_bad_input_names_key_value_and_what_is_accepted as _bad  # noqa: E402

BAD_INPUT = [(p.args if hasattr(p, "args") else p) for p in _bad.pytestmark[0].args[1]]


@pytest.mark.parametrize("case, message", BAD_INPUT)
def test_every_bad_input_rule_through_the_cli(capsys, tmp_path, case, message):
    """Each rule of case-format.md §2: exit code 2, one line naming key, value and what is accepted."""
    import re

    import yaml

    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(case))
    code, out, err = run(capsys, "diagnose", str(path))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(message, err), err


def test_diagnose_says_which_inputs_it_did_not_use(capsys, tmp_path):
    case = tmp_path / "albumin.yaml"
    case.write_text("patient: {age: 50, sex: female}\nlabs: {alp: 300 U/L, albumin: 30 g/L}\n")
    code, out, err = run(capsys, "diagnose", str(case))
    assert code == 0, err
    assert "labs.albumin = 30 g/L: not used: albumin only adjusts a total calcium" in out
    code, out, err = run(capsys, "diagnose", str(case), "--format", "json")
    assert code == 0, err
    [unused] = json.loads(out)["unused"]
    assert unused["key"] == "labs.albumin" and unused["input"] == "30 g/L" and "no calcium" in unused["note"]
    code, out, err = run(capsys, "diagnose", str(case), "--show-states")
    assert code == 0, err
    [line] = [x for x in out.splitlines() if x.strip().startswith("labs.albumin")]
    assert "-> -" in line and "not used" in line


def test_score_names_a_column_that_qualifies_a_missing_one(capsys, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("age,sex,alp,albumin,bone_alp_uln\n50,female,300 U/L,40 g/L,20 ug/L\n")
    code, out, err = run(capsys, "score", str(src), "-o", str(tmp_path / "out.csv"))
    assert code == 0, err
    assert "column albumin (labs.albumin) is not used: it only qualifies labs.calcium" in err
    assert "column bone_alp_uln (labs.bone_alp_uln) is not used: it only qualifies labs.bone_alp" in err
