"""Findings of the malformed-input sweep on the case commands' flags (simulate, diagnose,
next-test, plan, what-if, explain, score).

Each test runs the command line as a user does and checks what the user would check: exit
code 2, one line naming the flag and the value, nothing printed or written, and input
files untouched.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from alpnet.cli import MAX_DRAWS, MAX_PLAN_DEPTH, main
from alpnet.errors import AlpnetError

from .conftest import EXAMPLES

PAGET = EXAMPLES / "paget.yaml"  # has labs.ggt


def run(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


@pytest.fixture
def cohort_csv(tmp_path: Path, capsys) -> Path:
    path = tmp_path / "cohort.csv"
    assert main(["simulate", "-n", "4", "--seed", "1", "-o", str(path)]) == 0
    capsys.readouterr()
    return path


# ----------------------------------------------------------------------------- P6: simulate --seed -1


def test_simulate_refuses_a_negative_seed_like_diagnose_and_writes_nothing(capsys, tmp_path):
    out = tmp_path / "s.csv"
    code, _, err = run(capsys, "simulate", "-n", "5", "--seed", "-1", "-o", out)
    assert code == 2
    assert "--seed -1: must be a whole number >= 0" in one_line(err)
    assert not out.exists()
    code, _, err = run(capsys, "diagnose", PAGET, "--uncertainty", "--seed", "-1")
    assert code == 2 and "--seed -1: must be a whole number >= 0" in one_line(err)


def test_simulate_api_refuses_a_negative_seed(model):
    from alpnet.simulate import simulate

    with pytest.raises(AlpnetError, match=r"seed must be a whole number >= 0.*-1"):
        simulate(model, 3, seed=-1)


# ----------------------------------------------------------------------------- P17 / P19: counts and their bounds


@pytest.mark.parametrize("argv, shown, accepted", [
    (["next-test", PAGET, "--top", "-1"], "--top -1", ">= 1"),
    (["next-test", PAGET, "--top", "0"], "--top 0", ">= 1"),
    (["explain", PAGET, "--top", "-3"], "--top -3", ">= 1"),
    (["explain", PAGET, "--top", "0"], "--top 0", ">= 1"),
    (["plan", PAGET, "--max-depth", "50"], "--max-depth 50", f"from 1 to {MAX_PLAN_DEPTH}"),
    (["plan", PAGET, "--max-depth", "0"], "--max-depth 0", f"from 1 to {MAX_PLAN_DEPTH}"),
    (["diagnose", PAGET, "--uncertainty", "--draws", "100000000"], "--draws 100000000", f"from 2 to {MAX_DRAWS:,}"),
    (["diagnose", PAGET, "--uncertainty", "--draws", "1"], "--draws 1", f"from 2 to {MAX_DRAWS:,}"),
])
def test_count_flags_take_a_whole_number_within_bounds(capsys, argv, shown, accepted):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    line = one_line(err)
    assert f"{shown}: must be a whole number {accepted}" in line


@pytest.mark.parametrize("flags, shown", [
    (["--chunk-size", "0"], "--chunk-size 0"),
    (["--uncertainty", "--draws", str(MAX_DRAWS + 1)], f"--draws {MAX_DRAWS + 1}"),
])
def test_score_count_flags_are_checked_before_anything_is_written(capsys, tmp_path, cohort_csv, flags, shown):
    out = tmp_path / "o.csv"
    code, _, err = run(capsys, "score", cohort_csv, "-o", out, *flags)
    assert code == 2 and shown in one_line(err)
    assert not out.exists()


def test_simulate_n_below_zero_names_the_flag(capsys, tmp_path):
    out = tmp_path / "s.csv"
    code, _, err = run(capsys, "simulate", "-n", "-1", "-o", out)
    assert code == 2 and "-n -1: must be a whole number >= 0" in one_line(err)
    assert not out.exists()


def test_the_upper_bounds_are_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["plan", "--help"])
    assert f"1 to {MAX_PLAN_DEPTH}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["diagnose", "--help"])
    assert f"2 to {MAX_DRAWS:,}" in capsys.readouterr().out


def test_top_is_still_honoured(capsys):
    code, out, err = run(capsys, "next-test", PAGET, "--top", "2")
    assert code == 0, err
    rows = out.split("what each result would do\n")[1].split("  questions")[0].strip().splitlines()
    assert len(rows) == 2


def test_plot_functions_refuse_a_top_that_would_slice(model):
    from alpnet.plots import plot_posterior

    with pytest.raises(AlpnetError, match="top -1"):
        plot_posterior(model.diagnose(evidence={"alp": "marked"}), top=-1)


# ----------------------------------------------------------------------------- P18: flags that would be ignored


@pytest.mark.parametrize("flags, flag, needs", [
    (["--level", "5"], "--level", "--uncertainty"),
    (["--draws", "5"], "--draws", "--uncertainty"),
    (["--seed", "3"], "--seed", "--uncertainty"),
    (["--seed", "0"], "--seed", "--uncertainty"),  # the default, given: still ignored without --uncertainty
    (["--level", "0"], "--level", "--uncertainty"),
    (["--plot-network"], "--plot-network", "--plot"),
])
def test_diagnose_refuses_a_flag_without_the_flag_it_belongs_to(capsys, flags, flag, needs):
    code, out, err = run(capsys, "diagnose", PAGET, *flags)
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith(f"alpnet: error: {' '.join(flags)}") and f"only used with {needs}" in line


def test_score_refuses_level_without_uncertainty_and_writes_nothing(capsys, tmp_path, cohort_csv):
    out = tmp_path / "o.csv"
    code, _, err = run(capsys, "score", cohort_csv, "-o", out, "--level", "3")
    assert code == 2 and "--level 3.0: only used with --uncertainty" in one_line(err)
    assert not out.exists()


@pytest.mark.parametrize("flags, named", [
    (["--set", "labs.ggt=300 U/L", "--set", "labs.ggt=20 U/L"], "--set labs.ggt: given twice"),
    (["--unset", "labs.ggt", "--unset", "labs.ggt"], "--unset labs.ggt: given twice"),
])
def test_what_if_refuses_a_key_given_twice(capsys, flags, named):
    code, out, err = run(capsys, "what-if", PAGET, *flags)
    assert code == 2 and out == ""
    line = one_line(err)
    assert named in line and "not in the case" not in line


def test_what_if_refuses_a_scenario_named_like_the_command_line_changes(capsys, tmp_path):
    scen = tmp_path / "s.yaml"
    scen.write_text('scenarios:\n  - name: command line\n    set: {labs.ggt: "300 U/L"}\n', encoding="utf-8")
    code, out, err = run(capsys, "what-if", PAGET, "--scenarios", scen, "--set", "labs.ggt=20 U/L")
    assert code == 2 and out == ""
    line = one_line(err)
    assert f"--scenarios {scen}" in line and "'command line'" in line
    code, out, err = run(capsys, "what-if", PAGET, "--scenarios", scen)  # alone the file is fine
    assert code == 0, err
    assert "command line" in out


# ----------------------------------------------------------------------------- P22: --plot is checked first


def _case_copy(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    shutil.copy(PAGET, path)
    return path


@pytest.mark.parametrize("command", [["diagnose"], ["next-test"], ["explain"], ["what-if", "--set", "labs.ggt=20 U/L"]])
def test_plot_never_overwrites_the_input_case_even_with_force(capsys, tmp_path, command):
    case = _case_copy(tmp_path, "case.png")
    before = case.read_bytes()
    code, out, err = run(capsys, command[0], case, *command[1:], "--plot", case, "--force")
    assert code == 2 and out == ""
    assert f"--plot {case}: is the input file" in one_line(err)
    assert case.read_bytes() == before


def test_plot_never_overwrites_the_input_through_a_hard_link(capsys, tmp_path):
    case = _case_copy(tmp_path, "case.yaml")
    link = tmp_path / "link.svg"
    os.link(case, link)
    before = case.read_bytes()
    code, _, err = run(capsys, "diagnose", case, "--plot", link, "--force")
    assert code == 2 and "is the input file" in one_line(err)
    assert case.read_bytes() == before


def test_plot_never_overwrites_the_scenario_file(capsys, tmp_path):
    scen = tmp_path / "s.svg"
    scen.write_text('scenarios:\n  - name: raised\n    set: {labs.ggt: "300 U/L"}\n', encoding="utf-8")
    before = scen.read_bytes()
    code, out, err = run(capsys, "what-if", PAGET, "--scenarios", scen, "--plot", scen, "--force")
    assert code == 2 and out == ""
    assert "is the input file" in one_line(err)
    assert scen.read_bytes() == before


def test_plot_in_a_missing_folder_is_refused_before_the_answer_is_printed(capsys, tmp_path):
    target = tmp_path / "nope" / "x.png"
    code, out, err = run(capsys, "diagnose", PAGET, "--plot", target)
    assert code == 2 and out == ""
    assert f"--plot {target}: the folder" in one_line(err)
    assert not target.parent.exists()


def test_plot_in_an_unwritable_folder_is_refused_before_the_answer_is_printed(capsys, tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root writes anywhere: deny this folder as a user's permissions would
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == folder else real(p, mode,
                                                                                                       *a, **k))
    try:
        code, out, err = run(capsys, "diagnose", PAGET, "--plot", folder / "x.png", "--force")
    finally:
        folder.chmod(0o755)
    assert code == 2 and out == ""  # the answer used to be printed, then the write failed
    assert "--plot" in err and "not writable" in one_line(err)
    assert list(folder.iterdir()) == []


def test_plot_onto_a_folder_is_refused_even_with_force(capsys, tmp_path):
    folder = tmp_path / "figure.png"
    folder.mkdir()
    code, out, err = run(capsys, "explain", PAGET, "--plot", folder, "--force")
    assert code == 2 and out == ""
    assert f"--plot {folder}: is a folder" in one_line(err)


# ----------------------------------------------------------------------------- messages


def test_stop_probability_nan_names_the_accepted_range(capsys):
    with pytest.raises(SystemExit) as info:  # argparse refuses it
        main(["plan", str(PAGET), "--stop-probability", "nan"])
    out, err = capsys.readouterr()
    assert info.value.code == 2 and out == ""
    line = err.strip().splitlines()[-1]
    assert "--stop-probability" in line and "'nan'" in line and "a number in (0, 1]" in line
    assert ">= 0" not in line


def test_a_folder_as_the_score_input_is_named_a_folder(capsys, tmp_path):
    out = tmp_path / "o.csv"
    code, _, err = run(capsys, "score", tmp_path, "-o", out)
    assert code == 2
    line = one_line(err)
    assert "is a folder" in line and "unknown input format" not in line
    assert not out.exists()
