"""Property-based tests of the case reader: any mapping either loads or raises
alpnet's own error class — nothing else escapes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alpnet.errors import AlpnetError

KEYS = ["id", "patient", "history", "symptoms", "labs", "tests", "about", "age", "sex", "alp", "ggt", "calcium",
        "alp_uln", "pregnant", "trimester", "known_cancer", "bone_pain", "xray", "vitamin_d_25oh", "bone_alp",
        "bone_alp_uln", "albumin", "esr", "ckd"]
UNITS = ["U/L", "IU/L", "mmol/L", "mg/dL", "ng/mL", "nmol/L", "µkat/L", "pg/mL", "g/L", "mm/h", "", "x", "U/L/L"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.builds(lambda q, n, u: f"{q}{n} {u}", st.sampled_from(["", "<", ">", "<=", "≥"]),
              st.floats(-1e5, 1e5, allow_nan=False), st.sampled_from(UNITS)),
    st.sampled_from(["low", "normal", "high", "male", "female", "prostate", "none", "bone", "normal", "paget_pattern"]),
)
values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(st.sampled_from(KEYS), children, max_size=4)), max_leaves=12)
sections = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)
cases = st.dictionaries(st.one_of(st.sampled_from(KEYS), st.integers(0, 3)), st.one_of(values, sections), max_size=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.one_of(cases, values))
def test_any_mapping_loads_or_raises_alpnets_error(model, case):
    try:
        table = model.diagnose(case)
    except AlpnetError:
        return
    assert table["posterior"].between(0, 1).all()


good_labs = st.fixed_dictionaries(
    {"alp": st.builds(lambda v: f"{v:.1f} U/L", st.floats(1, 20000))},
    optional={"ggt": st.builds(lambda v: f"{v:.0f} U/L", st.floats(0, 3000)),
              "calcium": st.builds(lambda v: f"{v:.2f} mmol/L", st.floats(1.0, 4.5)),
              "vitamin_d_25oh": st.builds(lambda v: f"{v:.0f} nmol/L", st.floats(2, 300)),
              "alp_uln": st.builds(lambda v: f"{v:.0f} U/L", st.floats(60, 600))})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(age=st.floats(0, 110), sex=st.sampled_from(["female", "male"]), labs=good_labs,
       bone_pain=st.booleans())
def test_plausible_cases_always_give_probabilities(model, age, sex, labs, bone_pain):
    table = model.diagnose({"patient": {"age": age, "sex": sex}, "labs": labs, "symptoms": {"bone_pain": bone_pain}})
    assert table["posterior"].between(0, 1).all()
    assert table["prior"].between(0, 1).all()
