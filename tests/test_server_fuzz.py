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
    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                       response_schema_conformance])

    check()
