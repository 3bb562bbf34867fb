"""alpnet priors diff: the parameters that differ and their effect on the bundled example cases."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import alpnet
from alpnet.cli import main
from alpnet.priors_diff import diff_parameters, diff_priors

from .conftest import MINI


def _edit_value(folder: Path, file: str, anchor: str, old: str, new: str) -> None:
    """Replace the first ``value: old`` after ``anchor`` in a prior file (a hand edit)."""
    path = folder / file
    text = path.read_text()
    at = text.index(anchor)
    m = re.compile(rf"value: {re.escape(old)}\b").search(text, at)
    assert m is not None
    path.write_text(text[: m.start()] + f"value: {new}" + text[m.end():])


@pytest.fixture(scope="module")
def edited(tmp_path_factory, model) -> tuple[Path, str]:
    """The bundled set with Paget disease in men over 70 at the top of its range."""
    folder = tmp_path_factory.mktemp("b") / "priors"
    shutil.copytree(model.priors.path, folder)
    pid = next(p for p in model.priors.parameters if p.startswith("paget.baseline[age=70_plus,sex=male"))
    param = model.priors.parameters[pid]
    text = (folder / "causes.yaml").read_text()
    anchor = "when: {age: 70_plus, sex: male}"
    old = re.search(r"value: ([0-9.e-]+)", text[text.index(anchor):]).group(1)
    assert float(old) == param.value and param.high > param.value
    _edit_value(folder, "causes.yaml", anchor, old, str(param.high))
    return folder, pid


def test_parameters_that_differ(model, edited):
    folder, pid = edited
    d = diff_priors(None, folder, examples=False)
    assert list(d.parameters["id"]) == [pid]
    row = d.parameters.iloc[0]
    assert row["old"] == model.priors.parameters[pid].value and row["new"] == model.priors.parameters[pid].high
    assert row["source_a"] == row["source_b"] == model.priors.parameters[pid].source
    assert d.a["sha256"] == model.priors.sha256 != d.b["sha256"]


def test_effect_on_the_example_cases(model, edited):
    folder, pid = edited
    d = diff_priors(None, folder)
    assert len(d.cases) == len(alpnet.list_examples())
    other = alpnet.load_model(folder)
    cases = {c.id: c for c in (alpnet.read_case(alpnet.example_path(n)) for n in alpnet.list_examples())}
    for r in d.cases.itertuples(index=False):
        case = cases[r.case_id]
        a, b = model.diagnose(case), other.diagnose(case)
        assert r.leading_a == a.attrs["leading_cause"] and r.leading_b == b.attrs["leading_cause"]
        assert r.posterior_b == pytest.approx(float(b["posterior"].iloc[0]), abs=1e-12)
        assert r.leading_changed == (r.leading_a != r.leading_b)
    # a commoner Paget disease never makes it lead in fewer cases
    assert (d.cases["leading_b"] == "paget").sum() >= (d.cases["leading_a"] == "paget").sum()


def test_identical_sets_differ_in_nothing(model):
    d = diff_priors(None, model.priors.path)
    assert d.parameters.empty
    assert not d.cases["leading_changed"].any()
    assert (d.cases["posterior_a"] == d.cases["posterior_b"]).all()


def test_overrides_count_as_changes():
    a = alpnet.load_model(MINI).priors
    b = alpnet.load_model(MINI, overrides={"alpha.baseline": 0.2}).priors
    d = diff_parameters(a, b)
    assert set(d["id"]) == {"alpha.baseline"}


def test_cli_json_and_table(edited, capsys):
    folder, pid = edited
    assert main(["priors", "diff", "bundled", str(folder), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["id"] for p in doc["parameters"]] == [pid]
    assert len(doc["cases"]) == len(alpnet.list_examples()) and doc["disclaimer"] == alpnet.DISCLAIMER
    assert main(["priors", "diff", "bundled", str(folder), "--no-examples"]) == 0
    out = capsys.readouterr().out
    assert pid in out and "1 parameter(s) differ" in out and "example cases" not in out


def test_cli_bad_folder_exits_2(tmp_path, capsys):
    assert main(["priors", "diff", "bundled", str(tmp_path / "nope"), "--no-examples"]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and "Traceback" not in err


def test_cli_param_overrides_b_and_is_recorded(model, capsys):
    pid = next(p for p in model.priors.parameters if p.startswith("paget.baseline[age=70_plus,sex=male"))
    assert main(["priors", "diff", "bundled", "bundled", "--format", "json", "--param", f"{pid}=0.3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["id"] for p in doc["parameters"]] == [pid] and doc["parameters"][0]["new"] == 0.3
    assert doc["b"]["overrides"] == {pid: 0.3} and not doc["a"]["overrides"]
    changed = {c["case_id"]: c for c in doc["cases"]}
    assert changed["paget"]["posterior_b"] >= changed["paget"]["posterior_a"]
