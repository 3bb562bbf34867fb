"""The bundled example cases: each ranks its intended cause first, for the
reasons the literature gives, and the look-alike pairs separate."""

from __future__ import annotations

import copy
import math

import pytest

import alpnet
from alpnet.errors import CaseError

from .conftest import EXAMPLES

CASES = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))
PAIRS = [("liver_vs_bone_bone", "liver_vs_bone_liver"),
         ("paget_vs_metastases_paget", "paget_vs_metastases_metastases"),
         ("osteomalacia_vs_phpt_osteomalacia", "osteomalacia_vs_phpt_phpt")]


def load(name):
    return alpnet.read_case(EXAMPLES / f"{name}.yaml")


def logit(p):
    p = min(max(p, 1e-15), 1 - 1e-15)
    return math.log(p / (1 - p))


def without(case, keys):
    data = copy.deepcopy(case.data)
    for key in keys:
        for section in ("patient", "history", "symptoms", "labs", "tests"):
            if isinstance(data.get(section), dict) and key in data[section]:
                del data[section][key]
    return data


def test_there_is_an_example_for_every_cause(model):
    expected = {load(n).about.get("expected_cause") for n in CASES}
    assert set(model.causes) <= expected


@pytest.mark.parametrize("name", CASES)
def test_example_ranks_its_intended_cause_first(model, name):
    case = load(name)
    about = case.about
    assert about.get("expected_cause") in model.causes, "every example names the cause it teaches"
    table = model.diagnose(case)
    assert table.attrs["leading_cause"] == about["expected_cause"], table.head(4).to_string()


@pytest.mark.parametrize("name", CASES)
def test_key_findings_carry_the_diagnosis(model, name):
    """Taking away the findings the literature says carry the diagnosis lowers its posterior."""
    case = load(name)
    cause = case.about["expected_cause"]
    keys = list(case.about.get("key_findings") or [])
    assert keys, "every example lists its key findings"
    with_all = model.diagnose(case).set_index("cause").loc[cause, "posterior"]
    usable = []
    for key in keys:
        try:
            model.evidence_of(without(case, [key]))
            usable.append(key)
        except CaseError:  # e.g. age: without it the ALP reference range is unknown
            continue
    assert usable, keys
    reduced = model.diagnose(without(case, usable)).set_index("cause").loc[cause, "posterior"]
    assert logit(with_all) - logit(reduced) > 0.5, (usable, with_all, reduced)


@pytest.mark.parametrize("a, b", PAIRS)
def test_look_alike_pairs_separate(model, a, b):
    ca, cb = load(a), load(b)
    ta = model.diagnose(ca).set_index("cause")["posterior"]
    tb = model.diagnose(cb).set_index("cause")["posterior"]
    xa, xb = ca.about["expected_cause"], cb.about["expected_cause"]
    assert xa != xb
    assert ta[xa] > tb[xa] and tb[xb] > ta[xb]
    assert ta.idxmax() == xa and tb.idxmax() == xb
