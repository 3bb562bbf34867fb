"""The teaching-case library: every case tells its story, and `alpnet cases` shows it."""

from __future__ import annotations

import json

import pytest

import alpnet
from alpnet.cli import main
from alpnet.examples import teaching_cases

from .conftest import EXAMPLES

CASES = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("name", CASES)
def test_every_case_has_narrative_teaching_point_and_expected_reasoning(model, name):
    about = alpnet.read_case(EXAMPLES / f"{name}.yaml").about
    for key in ("title", "narrative", "teaching_point", "source"):
        assert isinstance(about.get(key), str) and len(about[key]) > 20, key
    steps = about.get("expected_reasoning")
    assert isinstance(steps, list) and len(steps) >= 2
    assert all(isinstance(s, str) and s.strip() for s in steps)
    assert about["expected_cause"] in model.causes


def test_cases_lists_every_case_with_its_teaching_point(capsys):
    assert main(["cases"]) == 0
    out = capsys.readouterr().out
    table = teaching_cases()
    assert list(table["name"]) == CASES
    for row in table.itertuples():
        assert row.name in out
        assert " ".join(row.teaching_point.split()[:6]) in " ".join(out.split())
    assert out.count("teaching point:") == len(CASES)
    assert out.count("research and teaching") == 1


def test_cases_name_shows_the_whole_story(capsys):
    assert main(["cases", "paget"]) == 0
    out = capsys.readouterr().out
    for heading in ("narrative:", "teaching point:", "expected reasoning:", "key findings:", "source:"):
        assert heading in out
    assert main(["cases", "paget", "--format", "json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["expected_cause"] == "paget" and rec["expected_reasoning"] and rec["disclaimer"] == alpnet.DISCLAIMER
    assert main(["cases", "pagett"]) == 2
    assert "example 'pagett': unknown" in capsys.readouterr().err


def test_the_case_library_readme_lists_every_case():
    text = (EXAMPLES / "README.md").read_text()
    for name in CASES:
        assert f"`{name}.yaml`" in text
    assert "`expected_reasoning`" in text
