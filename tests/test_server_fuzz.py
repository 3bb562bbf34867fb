"""Fuzz the explorer's HTTP API from its own OpenAPI document (schemathesis).

Whatever schemathesis generates — cases that follow the case schema, and bodies and
parameters that break it — the API must never answer with a server error, must answer
with a status code and a body its OpenAPI document declares. The example count is kept
modest so that the whole file runs in well under two minutes.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason='the explorer needs the serve extra: pip install "alpnet[serve]"')
schemathesis = pytest.importorskip("schemathesis", reason='fuzzing needs schemathesis: pip install "alpnet[test]"')

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from alpnet.server import create_app  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(model):
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(model))


OPERATIONS = [("POST", "/diagnose"), ("POST", "/next-test"), ("POST", "/what-if"), ("POST", "/explain"),
              ("GET", "/cases"), ("GET", "/cases/{name}"), ("GET", "/fields"), ("GET", "/schema")]


def test_every_operation_is_fuzzed(api_schema):
    documented = {(op.method.upper(), op.path) for op in (r.ok() for r in api_schema.get_all_operations())}
    assert documented == set(OPERATIONS)


#: Operations with inputs get both modes; those without inputs have no negative input to make.
FUZZED = [(m, p, "positive") for m, p in OPERATIONS] + \
    [(m, p, "negative") for m, p in OPERATIONS if m == "POST" or "{" in p]


@pytest.mark.parametrize("method, path, mode", FUZZED)
def test_no_server_error_on_any_generated_input(api_schema, method, path, mode):
    """Positive: inputs that follow the schema; negative: inputs that break it."""
    from hypothesis import given
    from schemathesis.generation.modes import GenerationMode

    operation = api_schema[path][method]

    @given(case=operation.as_strategy(GenerationMode(mode)))
    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                       response_schema_conformance])

    check()


# ----------------------------------------------------------------------------- cases the engine must answer
#
# Strings drawn from the case schema alone seldom make a lab value the engine accepts, so the
# generated cases above mostly stop at a 422. These cases are drawn from the form the page
# shows (GET /fields): numbers with the lab's own units, verdict words, test states. Each must
# be answered (200) or refused with a 422 that names a key -- never a server error.


def _case_strategy(fields: dict):
    from hypothesis import strategies as st

    def field_value(f: dict):
        if f["type"] == "number":
            return st.floats(min_value=0, max_value=100, allow_nan=False).map(lambda x: round(x, 1))
        if f["type"] == "boolean":
            return st.booleans()
        if f["type"] == "choice":
            return st.sampled_from(f["options"])
        lo, hi = f.get("plausible", [0.0, 2000.0])
        number = st.floats(min_value=lo, max_value=hi, allow_nan=False).map(lambda x: f"{x:.4g}")
        unit = st.one_of(st.just(f["unit"]), st.just(f["unit"]), st.sampled_from(f["units"]))
        with_unit = st.tuples(number, unit).map(lambda t: f"{t[0]} {t[1]}")
        return st.one_of(with_unit, st.sampled_from(f["verdicts"])) if f["verdicts"] else with_unit

    sections = {}
    for section in fields["sections"]:
        # the ALP, age and sex always: without them most lab values cannot be banded (a 422)
        always = {"alp", "age", "sex"}
        optional = {f["name"]: field_value(f) for f in section["fields"] if f["name"] not in always}
        required = {f["name"]: field_value(f) for f in section["fields"] if f["name"] in always}
        sections[section["name"]] = st.fixed_dictionaries(required, optional=optional)
    return st.fixed_dictionaries({"labs": sections.pop("labs"), "patient": sections.pop("patient")},
                                 optional={name: s for name, s in sections.items()})


@pytest.mark.parametrize("path, examples", [("/diagnose", 25), ("/explain", 12), ("/next-test", 5),
                                            ("/what-if", 4)])
def test_cases_from_the_form_are_answered_or_refused_by_key(model, path, examples):
    from fastapi.testclient import TestClient
    from hypothesis import given

    client = TestClient(create_app(model))
    fields = client.get("/fields").json()

    @given(case=_case_strategy(fields))
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        body = {"case": case, "set": {"symptoms.bone_pain": True}} if path == "/what-if" else case
        r = client.post(path, json=body)
        assert r.status_code in (200, 422), (r.status_code, r.text[:300])
        answer = r.json()
        assert answer["disclaimer"] and answer["model"]["priors_sha256"]
        if r.status_code == 422:
            # the key (for impossible evidence: a finding, by the model's name for it) is in the message
            assert answer["key"] and answer["key"].split(".")[-1] in answer["error"], answer
        elif path == "/diagnose":
            assert all(0.0 <= p <= 1.0 for p in answer["posterior"].values())

    check()
