"""Findings of the malformed-input sweep on the analysts' commands (calibrate, evaluate, sensitivity).

Each test runs the command line as a user does and checks what the user would check:
the exit code, the one-line message, and that the files they gave are untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import alpnet
from alpnet.cli import main
from alpnet.errors import AlpnetError
from alpnet.evaluate import evaluate_arrays
from alpnet.simulate import simulate

from .conftest import BAD_CASES, EXAMPLES, MINI


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> SHA-256 of its bytes)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err and "internal error" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def labelled(model) -> str:
    """A small labelled table (what `alpnet simulate` writes) as CSV text."""
    return simulate(model, 12, seed=4).to_csv(index=False)


# ----------------------------------------------------------------------------- P1: calibrate --out


def test_calibrate_out_holding_the_labelled_input_is_refused_even_with_force(tmp_path, capsys, labelled):
    sub = tmp_path / "sub"
    sub.mkdir()
    data = sub / "in.csv"
    data.write_text(labelled)
    before = _digest(sub)
    line = _one_line_error(*run(capsys, "calibrate", data, "--strength", "10", "--out", sub, "--force"))
    assert f"--out {sub}" in line and "contains the labelled input file" in line
    assert _digest(sub) == before  # the input is still there, byte for byte


def test_calibrate_out_that_is_the_labelled_file_is_refused(tmp_path, capsys, labelled):
    data = tmp_path / "in.csv"
    data.write_text(labelled)
    line = _one_line_error(*run(capsys, "calibrate", data, "--strength", "10", "--out", data, "--force"))
    assert "is the labelled input file" in line
    assert data.read_text() == labelled


@pytest.mark.parametrize("where, says", [("folder", "contains the input prior set"),
                                         ("itself", "is the input prior set"),
                                         ("inside", "is inside the input prior set")])
def test_calibrate_out_and_the_input_prior_set_are_kept_apart(tmp_path, capsys, labelled, where, says):
    data = tmp_path / "in.csv"
    data.write_text(labelled)
    holder = tmp_path / "sub2"
    priors = holder / "priors"
    shutil.copytree(MINI, priors)
    before = _digest(holder)
    out = {"folder": holder, "itself": priors, "inside": priors / "calibrated"}[where]
    line = _one_line_error(*run(capsys, "calibrate", data, "--strength", "10", "--priors", priors,
                                "--out", out, "--force"))
    assert f"--out {out}" in line and says in line
    assert _digest(holder) == before
    assert not (priors / "calibrated").exists()


def test_calibrate_out_inside_the_default_prior_set_is_refused(tmp_path, capsys, labelled, monkeypatch):
    data = tmp_path / "in.csv"
    data.write_text(labelled)
    bundled = tmp_path / "bundled"  # stands in for the bundled set, which a failure would write into
    shutil.copytree(MINI, bundled)
    monkeypatch.setattr("alpnet.priors.bundled_priors_path", lambda: bundled)
    before = _digest(bundled)
    line = _one_line_error(*run(capsys, "calibrate", data, "--strength", "10", "--out", bundled / "mine"))
    assert "is inside the input prior set" in line
    assert _digest(bundled) == before and not (bundled / "mine").exists()


@pytest.mark.parametrize("content", ["any", "prior set without manifest"])
def test_calibrate_force_never_replaces_a_folder_calibrate_did_not_write(tmp_path, capsys, labelled, content):
    data = tmp_path / "in.csv"
    data.write_text(labelled)
    scratch = tmp_path / "scratch"
    if content == "any":
        scratch.mkdir()
        (scratch / "precious.txt").write_text("keep me")
    else:  # a copy of a prior set by hand: model.yaml but no manifest.json of calibrate
        shutil.copytree(MINI, scratch)
    before = _digest(scratch)
    for force in (["--force"], []):
        line = _one_line_error(*run(capsys, "calibrate", data, "--strength", "10", "--out", scratch, *force))
        assert f"--out {scratch}: exists and is not a prior set written by alpnet calibrate" in line
        assert "choose another --out or remove it yourself" in line
    assert _digest(scratch) == before


def test_calibrate_out_dot_never_wipes_the_working_folder(tmp_path, capsys, labelled, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("keep me")
    data = tmp_path / "in.csv"
    data.write_text(labelled)
    monkeypatch.chdir(work)
    line = _one_line_error(*run(capsys, "calibrate", data, "--strength", "10", "--out", ".", "--force"))
    assert "--out ." in line and "working folder" in line
    assert (work / "notes.txt").read_text() == "keep me"


def test_calibrate_refuses_a_bad_out_before_reading_the_rows(tmp_path, capsys, labelled):
    frame_text = labelled.replace("U/L", "parsecs", 1)  # one bad row: would be reported if read first
    sub = tmp_path / "sub"
    sub.mkdir()
    data = sub / "in.csv"
    data.write_text(frame_text)
    line = _one_line_error(*run(capsys, "calibrate", data, "--strength", "10", "--out", sub, "--force"))
    assert "contains the labelled input file" in line and "parsecs" not in line


def test_calibrate_force_replaces_a_prior_set_calibrate_wrote(tmp_path, capsys, labelled):
    data = tmp_path / "in.csv"
    data.write_text(labelled)
    out = tmp_path / "local_priors"
    argv = ["calibrate", data, "--strength", "10", "--out", out, "--only", "paget", "--max-iter", "1",
            "--format", "json"]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    code, _, err = run(capsys, *argv)
    assert code == 2 and "already exists; use --force" in err
    code, out_text, err = run(capsys, *argv, "--force")
    assert code == 0, err
    assert json.loads(out_text)["out"] == str(out)
    assert "--force" in json.loads((out / "manifest.json").read_text())["command"]
    assert alpnet.load_model(out).priors.sha256
    assert data.read_text() == labelled
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


# ----------------------------------------------------------------------------- calibrate --only, --show


def test_calibrate_only_unknown_variable_lists_the_accepted_ones(tmp_path, capsys, labelled, model):
    data = tmp_path / "in.csv"
    data.write_text(labelled)
    out = tmp_path / "never"
    line = _one_line_error(*run(capsys, "calibrate", data, "--strength", "10", "--out", out, "--only", "nonsense"))
    assert "--only 'nonsense': unknown variable" in line and "accepted" in line
    assert all(v in line for v in model.priors.variables)
    line = _one_line_error(*run(capsys, "calibrate", data, "--strength", "10", "--out", out, "--only", "pagett"))
    assert "did you mean paget" in line
    assert not out.exists()


def test_calibrate_negative_show_is_refused(tmp_path, capsys, labelled):
    data = tmp_path / "in.csv"
    data.write_text(labelled)
    line = _one_line_error(*run(capsys, "calibrate", data, "--strength", "10", "--out", tmp_path / "o",
                                "--show", "-1"))
    assert "--show -1" in line and ">= 0" in line


# ----------------------------------------------------------------------------- P20: evaluate --plot


def test_evaluate_plot_in_a_missing_folder_is_refused_and_nothing_created(tmp_path, capsys, labelled):
    data = tmp_path / "in.csv"
    data.write_text(labelled)
    target = tmp_path / "missing" / "plots"
    line = _one_line_error(*run(capsys, "evaluate", data, "--bootstrap", "0", "--plot", target))
    assert str(target) in line and "does not exist" in line
    assert not (tmp_path / "missing").exists()


def test_evaluate_negative_seed_is_refused(tmp_path, capsys, labelled):
    data = tmp_path / "in.csv"
    data.write_text(labelled)
    line = _one_line_error(*run(capsys, "evaluate", data, "--bootstrap", "5", "--seed", "-1"))
    assert "--seed -1" in line and ">= 0" in line


# ----------------------------------------------------------------------------- P21: no rows; bad rows in --help


@pytest.mark.parametrize("command", ["evaluate", "calibrate"])
def test_a_table_with_no_data_rows_is_exit_2_without_warnings(tmp_path, capsys, labelled, command):
    data = tmp_path / "header_only.csv"
    data.write_text(labelled.splitlines()[0] + "\n")
    extra = ["--bootstrap", "0"] if command == "evaluate" else ["--strength", "10", "--out", tmp_path / "o"]
    line = _one_line_error(*run(capsys, command, data, *extra))
    assert str(data) in line and "no data rows" in line
    assert not (tmp_path / "o").exists()


def test_evaluate_arrays_with_no_rows_raises():
    with pytest.raises(AlpnetError, match="no rows"):
        evaluate_arrays(np.zeros((0, 2)), np.zeros((0, 2)), ["a", "b"], bootstrap=0)


@pytest.mark.parametrize("command, verb", [("evaluate", "evaluated"), ("calibrate", "calibrated")])
def test_help_says_one_bad_row_stops_the_command(capsys, command, verb):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "one bad row" in text and f"nothing is {verb}" in text and "no data rows" in text


# ----------------------------------------------------------------------------- P22: --plot over an input


def test_sensitivity_plot_over_the_case_file_is_refused_even_with_force(tmp_path, capsys):
    case = tmp_path / "incase.png"
    shutil.copy(EXAMPLES / "paget.yaml", case)
    before = case.read_bytes()
    alias = tmp_path / "alias.png"
    alias.symlink_to(case)
    for target in (case, alias):
        line = _one_line_error(*run(capsys, "sensitivity", case, "--plot", target, "--force"))
        assert f"--plot {target}: is the input file" in line
    assert case.read_bytes() == before and alias.is_symlink()


def test_sensitivity_plot_in_a_missing_folder_is_refused_before_the_work(tmp_path, capsys):
    target = tmp_path / "missing" / "t.png"
    bad_case = BAD_CASES / "unknown_unit.yaml"  # reading it would fail first if the plot came last
    line = _one_line_error(*run(capsys, "sensitivity", bad_case, "--plot", target))
    assert f"{target}: the folder {target.parent} does not exist" in line
    assert not target.parent.exists()


def test_evaluate_plot_that_resolves_to_the_labelled_file_is_refused_even_with_force(tmp_path, capsys, labelled):
    data = tmp_path / "in.csv"
    data.write_text(labelled)
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "reliability.png").symlink_to(data)
    line = _one_line_error(*run(capsys, "evaluate", data, "--bootstrap", "0", "--plot", plots, "--force"))
    assert "is the input file" in line
    assert data.read_text() == labelled
    assert os.readlink(plots / "reliability.png") == str(data)
