"""Case -> model states: unit conversion, reference intervals and bands at every cut-off."""

from __future__ import annotations

import numpy as np
import pytest

import alpnet
from alpnet.errors import CaseError
from alpnet.units import normalise_unit, parse_quantity


def states_of(model, labs, patient=None, **sections):
    case = {"patient": patient or {"age": 45, "sex": "male"}, "labs": {"alp": "200 U/L", "alp_uln": "130 U/L", **labs}}
    case.update(sections)
    ev, records = model.evidence_of(case)
    return ev, {r.key: r for r in records}


# ----------------------------------------------------------------- ALP bands


@pytest.mark.parametrize(
    "value, state",
    [("100 U/L", "normal"), ("100.01 U/L", "mild"), ("150 U/L", "mild"), ("150.01 U/L", "moderate"),
     ("300 U/L", "moderate"), ("300.01 U/L", "marked"), ("700 U/L", "marked"), ("700.01 U/L", "extreme")],
)
def test_alp_bands_relative_to_the_labs_own_limit(model, value, state):
    ev, _ = states_of(model, {"alp": value, "alp_uln": "100 U/L"})
    assert ev["alp"] == state


def test_alp_in_microkatal_converts_exactly(model):
    # 1 ukat/L = 60 U/L exactly: 2.5 ukat/L = 150 U/L = 1.5 x ULN -> still "mild" (at the cut-off)
    ev, rec = states_of(model, {"alp": "2.5 µkat/L", "alp_uln": "100 U/L"})
    assert rec["labs.alp"].value == pytest.approx(150.0)
    assert ev["alp"] == "mild"


def test_alp_uses_alpnets_age_and_sex_range_without_a_lab_limit(model):
    ref = model.priors.reference["labs"]["alp"]["reference"]
    row = next(r for r in ref if r.get("when", {}).get("sex") == "male" and "age" not in r.get("when", {})) \
        if any(r.get("when", {}).get("sex") == "male" and "age" not in r.get("when", {}) for r in ref) else ref[-1]
    uln = row["uln"]
    case = {"patient": {"age": 50, "sex": "male"}, "labs": {"alp": f"{uln} U/L"}}
    assert model.evidence_of(case)[0]["alp"] == "normal"
    case["labs"]["alp"] = f"{uln * 1.0001} U/L"
    assert model.evidence_of(case)[0]["alp"] == "mild"


def test_childs_alp_is_read_against_a_paediatric_range(model):
    adult = model.evidence_of({"patient": {"age": 40, "sex": "male"}, "labs": {"alp": "300 U/L"}})[0]["alp"]
    child = model.evidence_of({"patient": {"age": 6, "sex": "male"}, "labs": {"alp": "300 U/L"}})[0]["alp"]
    assert adult != "normal"
    assert child == "normal"


def test_alp_without_age_or_sex_or_lab_limit_is_an_error_not_a_guess(model):
    with pytest.raises(CaseError, match="labs.alp: .*patient.age.*labs.alp_uln"):
        model.evidence_of({"labs": {"alp": "150 U/L"}})
    # with the lab's own limit the answer does not depend on them
    assert model.evidence_of({"labs": {"alp": "150 U/L", "alp_uln": "100 U/L"}})[0]["alp"] == "mild"


def test_alp_verdict_high_is_soft_evidence_over_the_raised_bands(model):
    ev, _ = states_of(model, {"alp": "high"})
    assert ev["alp"] == ["mild", "moderate", "marked", "extreme"]
    ev, _ = states_of(model, {"alp": "normal"})
    assert ev["alp"] == "normal"


def test_a_normal_alp_is_valid_input(model):
    table = model.diagnose({"patient": {"age": 50, "sex": "female"}, "labs": {"alp": "70 U/L", "alp_uln": "130 U/L"}})
    assert table["posterior"].between(0, 1).all()


# ---------------------------------------------------------- every cut-off of every lab


def _labs_with_numeric_bounds(model):
    out = []
    for lab, spec in model.priors.reference["labs"].items():
        if lab not in model.priors.variables or spec.get("own_limit_units"):
            continue
        out.append(lab)
    return out


def _adult_row(spec, sex="male", age=45.0):
    for r in spec.get("reference") or []:
        w = r.get("when") or {}
        if "sex" in w and w["sex"] != sex:
            continue
        if "age" in w and not (w["age"][0] <= age < w["age"][1]):
            continue
        if "pregnant" in w and "not_pregnant" not in (w["pregnant"] if isinstance(w["pregnant"], list) else [w["pregnant"]]):
            continue
        return r
    return {}


def test_every_cut_off_below_at_above(model):
    """Each band bound of each lab: just below, at and just above it map as the band rule says."""
    checked = 0
    for lab in _labs_with_numeric_bounds(model):
        spec = model.priors.reference["labs"][lab]
        row = _adult_row(spec)
        lln, uln = row.get("lln"), row.get("uln")
        if isinstance(uln, dict):
            uln = uln.get("add", 0) + uln.get("per_year", 0) * 45.0
        multiple = spec.get("scale") == "uln_multiple"
        bands = spec["bands"]
        for i, band in enumerate(bands[:-1]):
            rule = "below" if "below" in band else "at_most"
            b = band[rule]
            bound = {"lln": lln, "uln": uln}.get(b) if isinstance(b, str) else (b * uln if multiple else b)
            if bound is None or bound <= 0:
                continue
            eps = max(abs(bound) * 1e-6, 1e-9)
            expect_at = band["state"] if rule == "at_most" else bands[i + 1]["state"]
            for value, expected in ((bound - eps, band["state"]), (bound, expect_at), (bound + eps, None)):
                labs = {lab: f"{value!r} {spec['unit']}"}
                if lab == "alp":
                    labs["alp_uln"] = f"{uln} U/L"
                ev, _ = states_of(model, labs)
                got = ev[lab]
                if expected is None:
                    assert got != band["state"] or rule == "below", (lab, value, got)
                else:
                    assert got == expected, (lab, value, got, expected)
                checked += 1
    assert checked >= 30


# ------------------------------------------------------------------ units


@pytest.mark.parametrize("a, b", [("U/L", "IU/L"), ("U/L", "u/l"), ("µg/L", "ug/L"), ("ug/L", "mcg/L"),
                                  ("µmol/L", "umol/L"), ("mL/min/1.73m2", "mL/min/1.73 m²")])
def test_unit_spellings_that_are_unambiguous_are_accepted(a, b):
    assert normalise_unit(a) == normalise_unit(b)


def test_parse_quantity_shapes():
    q = parse_quantity("<5 ng/mL")
    assert (q.value, q.unit, q.qualifier) == (5.0, "ng/mL", "<")
    assert parse_quantity("420").unit == ""
    assert parse_quantity("high") is None
    assert parse_quantity("1,014 U/L") is None


@pytest.mark.parametrize(
    "lab, text, canonical",
    [("calcium", "10 mg/dL", 10 * 10 / 40.078), ("phosphate", "3.1 mg/dL", 3.1 * 10 / 30.974),
     ("vitamin_d_25oh", "20 ng/mL", 20 * 1000 / 400.64), ("bilirubin", "1 mg/dL", 10000 / 584.66),
     ("creatinine", "1 mg/dL", 10000 / 113.12)],
)
def test_mass_to_amount_conversions_use_molar_masses(model, lab, text, canonical):
    _, rec = states_of(model, {lab: text})
    assert rec[f"labs.{lab}"].value == pytest.approx(canonical, rel=2e-4)


def test_vitamin_d_less_than_detection_limit_maps_to_the_bands_below_it(model):
    ev, _ = states_of(model, {"vitamin_d_25oh": "<10 nmol/L"})
    assert ev["vitamin_d_25oh"] == "deficient"
    ev, _ = states_of(model, {"vitamin_d_25oh": "<40 nmol/L"})
    assert ev["vitamin_d_25oh"] == ["deficient", "insufficient"]


def test_calcium_is_albumin_adjusted_when_albumin_is_given(model):
    adj = model.priors.reference["albumin_adjustment"]
    coef, ref_alb = adj["coefficient"]["value"], adj["reference_albumin"]["value"]
    _, rec = states_of(model, {"calcium": "2.10 mmol/L", "albumin": "30 g/L"})
    assert rec["labs.calcium"].value == pytest.approx(2.10 + coef * (ref_alb - 30))
    _, rec2 = states_of(model, {"calcium": "2.10 mmol/L", "albumin": "3.0 g/dL"})
    assert rec2["labs.calcium"].value == pytest.approx(rec["labs.calcium"].value)


def test_patient_and_history_become_context(model):
    ev, _ = states_of(model, {}, patient={"age": 72, "sex": "female", "pregnant": False},
                      history={"known_cancer": "breast", "ckd": True})
    assert ev["sex"] == "female" and ev["pregnant"] == "not_pregnant"
    assert ev["known_cancer"] == "breast" and ev["ckd"] == "true"
    assert ev["age"] == "70_plus"


def test_pregnant_without_trimester_is_any_trimester(model):
    ev, _ = states_of(model, {}, patient={"age": 30, "sex": "female", "pregnant": True})
    assert ev["pregnant"] == ["trimester_1", "trimester_2", "trimester_3"]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "case, message",
    [
        ({"labs": {"alp": "200 U/L", "gtt": "30 U/L"}}, r"labs.gtt: unknown key \(did you mean 'ggt'\?\); accepted: "),
        ({"labs": {"alp": "420 IU/dl"}}, r"labs.alp: unknown unit 'IU/dl' in '420 IU/dl'; accepted: U/L"),
        ({"labs": {"alp": "420"}}, r"labs.alp: '420' has no unit; accepted units: U/L"),
        ({"labs": {"alp": 420}}, r"labs.alp: 420 has no unit"),
        ({"patient": {"age": 50, "sex": "male"}, "labs": {"alp": "200 U/L", "calcium": "25 mmol/L"}}, r"labs.calcium: '25 mmol/L' is physiologically impossible; accepted: "),
        ({"labs": {"alp": "-5 U/L"}}, r"labs.alp: '-5 U/L' is negative"),
        ({"patient": {"age": 50, "sex": "male"}, "labs": {"alp": "200 U/L", "vitamin_d_25oh": "<0 nmol/L"}},
         r"labs.vitamin_d_25oh: '<0 nmol/L' is physiologically impossible; accepted: 0 to 2500 nmol/L"),
        ({"patient": {"age": 50, "sex": "male"}, "labs": {"alp": "200 U/L", "pth": ">20000 pg/mL"}}, r"labs.pth: '>20000 pg/mL' is physiologically impossible"),
        ({"patient": {"age": 50, "sex": "male"}, "labs": {"alp": "200 U/L", "creatinine": "0 mg/dL"}},
         r"labs.creatinine: '0 mg/dL' is physiologically impossible; accepted: 5 to 4000 umol/L"),
        ({"patient": {"age": 50, "sex": "male"}, "labs": {"alp": "200 U/L", "egfr": "0 mL/min/1.73m2"}}, r"labs.egfr: '0 mL/min/1.73m2' is physiologically impossible"),
        ({"labs": {"alp": "200 U/L"}, "tests": {"xray": "broken"}}, r"tests.xray: 'broken' is not accepted; accepted: normal, "),
        ({"labs": {"alp": "1,014 U/L"}}, r"labs.alp: '1,014 U/L': write the number without a comma"),
        ({"labs": {"alp": "lots"}}, r"labs.alp: 'lots' is not a value with a unit"),
        ({"patient": {"age": "old"}, "labs": {"alp": "200 U/L"}}, r"patient.age: expected a number; got 'old'"),
        ({"patient": {"age": 130}, "labs": {"alp": "200 U/L"}}, r"patient.age: 130 is not possible"),
        ({"patient": {"sex": "M"}, "labs": {"alp": "200 U/L"}}, r"patient.sex: 'M' is not accepted; accepted: female, male"),
        ({"patient": {"sex": "male", "pregnant": True}, "labs": {"alp": "200 U/L"}}, r"patient.pregnant: true conflicts with patient.sex: male"),
        ({"patient": {"trimester": 2}, "labs": {"alp": "200 U/L"}}, r"patient.trimester: 2 is given without patient.pregnant: true"),
        ({"patient": {"age": 3, "sex": "female", "pregnant": True}, "labs": {"alp": "200 U/L"}},
         r"patient.pregnant: true conflicts with patient.age: 3; accepted: pregnancy at 5 to 75 years"),
        ({"patient": {"age": 80, "pregnant": True, "trimester": 3}, "labs": {"alp": "200 U/L"}},
         r"patient.pregnant: true conflicts with patient.age: 80; accepted: pregnancy at 5 to 75 years"),
        ({"symptoms": {"bone_pain": "yes"}, "labs": {"alp": "200 U/L"}}, r"symptoms.bone_pain: expected true or false; got 'yes'"),
        ({"patient": {"age": 50}}, r"labs: is required"),
        ({"labs": {"ggt": "30 U/L"}}, r"labs.alp: is required"),
        ({"patient": {"age": 50, "sex": "male"}, "labs": {"alp": "200 U/L", "bone_alp": "40 U/L"}}, r"labs.bone_alp: '40 U/L' is in U/L.*labs.bone_alp_uln"),
        ({"lab": {"alp": "200 U/L"}}, r"lab: unknown key \(did you mean 'labs'\?\)"),
    ],
)
def test_bad_input_names_key_value_and_what_is_accepted(model, case, message):
    with pytest.raises(CaseError, match=message):
        model.evidence_of(case)


def test_show_states_records_every_input(model):
    ev, records = model.evidence_of({"patient": {"age": 60, "sex": "male"},
                                     "labs": {"alp": "400 U/L", "alp_uln": "130 U/L", "ggt": "high"},
                                     "symptoms": {"bone_pain": True}})
    keys = [r.key for r in records]
    assert keys == ["patient.age", "patient.sex", "symptoms.bone_pain", "labs.alp", "labs.ggt"]
    alp = next(r for r in records if r.key == "labs.alp")
    assert alp.states == ["marked"] and "130" in alp.reference


def test_read_case_errors(tmp_path):
    with pytest.raises(CaseError, match="no such file"):
        alpnet.read_case(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("labs: [unclosed\n")
    with pytest.raises(CaseError, match="not valid YAML"):
        alpnet.read_case(bad)
    lst = tmp_path / "list.json"
    lst.write_text("[1, 2]")
    with pytest.raises(CaseError, match="a case must be one mapping"):
        alpnet.read_case(lst)
    ok = tmp_path / "my-case.json"
    ok.write_text('{"labs": {"alp": "200 U/L"}}')
    assert alpnet.read_case(ok).id == "my-case"


def test_a_limit_that_cannot_be_compared_with_the_result_is_an_error(model):
    """Bone ALP in ug/L with the lab's limit in U/L (an activity) cannot be compared: the error
    names the key, the value and the units that would do, instead of a silent 'high'."""
    case = {"patient": {"age": 60, "sex": "male"},
            "labs": {"alp": "300 U/L", "bone_alp": "25 ug/L", "bone_alp_uln": "20 U/L"}}
    with pytest.raises(CaseError, match=r"labs\.bone_alp_uln: '20 U/L'.*accepted: ug/L"):
        model.evidence_of(case)


@pytest.mark.parametrize("labs, key, reason", [
    ({"albumin": "30 g/L"}, "labs.albumin", "the case gives no calcium"),
    ({"albumin": "30 g/L", "calcium": "high"}, "labs.albumin", "the case gives the calcium as a verdict word"),
    ({"albumin": "low", "calcium": "2.2 mmol/L"}, "labs.albumin", "a verdict word gives no number to adjust with"),
    ({"bone_alp_uln": "20 ug/L"}, "labs.bone_alp_uln", "limit for labs.bone_alp, which the case does not give"),
])
def test_an_input_that_moves_nothing_is_reported_not_dropped(model, labs, key, reason):
    """Valid input that qualifies a value the case lacks is listed with why it is not used."""
    ev, records = states_of(model, labs)
    unused = records[key]
    assert unused.states == [] and unused.note.startswith("not used: ") and reason in unused.note
    assert key.removeprefix("labs.") not in ev
    if "calcium" in labs:  # the calcium itself is still read, unadjusted
        assert "albumin-adjusted" not in (records["labs.calcium"].note or "")


def test_albumin_that_adjusts_calcium_is_not_reported_unused(model):
    _, records = states_of(model, {"albumin": "30 g/L", "calcium": "2.2 mmol/L"})
    assert "labs.albumin" not in records
    assert "albumin-adjusted from 2.2 with albumin 30 g/L" in records["labs.calcium"].note


def test_a_lab_limit_without_its_result_is_still_checked(model):
    with pytest.raises(CaseError, match=r"labs.bone_alp_uln: 'abc' is not a value with a unit"):
        states_of(model, {"bone_alp_uln": "abc"})


def test_a_bound_inside_the_plausible_span_is_read(model):
    ev, records = states_of(model, {"egfr": "<5 mL/min/1.73m2", "vitamin_d_25oh": "<=0 nmol/L"})
    assert "egfr" in ev and "vitamin_d_25oh" in ev
