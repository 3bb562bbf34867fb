"""The bundled example cases: each ranks its intended cause first, for the
reasons the literature gives, and the look-alike pairs separate."""

from __future__ import annotations

import math

import pytest

import alpnet

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


def test_there_is_an_example_for_every_cause(model):
    expected = {load(n).about.get("expected_cause") for n in CASES}
    assert set(model.causes) <= expected


@pytest.mark.parametrize("name", CASES)
def test_example_ranks_its_intended_cause_first(model, name):
    """The intended cause leads.

    One exception is allowed, and only in its narrow form: when the intended cause is
    produced by a mechanism from another cause (vitamin D deficiency -> osteomalacia), that
    parent is present whenever the child is, so its posterior is at least as high; it may
    then lead by a hair, with the intended cause second and above 0.75 (see README, "Reading
    the leading cause").
    """
    case = load(name)
    about = case.about
    expected = about.get("expected_cause")
    assert expected in model.causes, "every example names the cause it teaches"
    table = model.diagnose(case)
    leading = table.attrs["leading_cause"]
    if leading != expected:
        parents = model.priors.variables[expected].parents
        post = table.set_index("cause")["posterior"]
        assert leading in parents, table.head(4).to_string()
        assert table["cause"].iloc[1] == expected and post[expected] > 0.75, table.head(4).to_string()
        assert post[leading] - post[expected] < 0.25, table.head(4).to_string()


@pytest.mark.parametrize("name", CASES)
def test_key_findings_carry_the_diagnosis(model, name):
    """Taking away the findings the literature says carry the diagnosis lowers its posterior.

    The findings are dropped from the case's evidence (so that a patient's age still chooses
    the reference range the ALP was read against), and their joint weight of evidence for the
    intended cause must be clearly positive (> 0.5 nats of log-odds).
    """
    case = load(name)
    cause = case.about["expected_cause"]
    keys = list(case.about.get("key_findings") or [])
    assert keys, "every example lists its key findings"
    evidence, _ = model.evidence_of(case)
    variables = {"trimester": "pregnant"}
    dropped = {variables.get(k, k) for k in keys}
    assert dropped <= set(evidence), f"key findings not in the case: {dropped - set(evidence)}"
    with_all = model.engine.posterior(evidence)[cause]
    reduced = model.engine.posterior({k: v for k, v in evidence.items() if k not in dropped})[cause]
    assert logit(with_all) - logit(reduced) > 0.5, (sorted(dropped), with_all, reduced)


@pytest.mark.parametrize("a, b", PAIRS)
def test_look_alike_pairs_separate(model, a, b):
    ca, cb = load(a), load(b)
    ta = model.diagnose(ca).set_index("cause")["posterior"]
    tb = model.diagnose(cb).set_index("cause")["posterior"]
    xa, xb = ca.about["expected_cause"], cb.about["expected_cause"]
    assert xa != xb
    assert ta[xa] > tb[xa] and tb[xb] > ta[xb]
    for table, expected in ((ta, xa), (tb, xb)):
        leading = table.idxmax()
        # the intended cause leads, or its mechanistic parent does by a hair (see above)
        assert leading == expected or (leading in model.priors.variables[expected].parents
                                       and table[expected] > 0.75 and table[leading] - table[expected] < 0.25)
