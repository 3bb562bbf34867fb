"""The explorer's HTTP API (alpnet.server) through FastAPI's TestClient.

What a user of the API checks: each endpoint answers as the command line does, bad
input is a 422 that names the key, a huge body is a 413, no file-system path gets
through, and the OpenAPI document describes the routes.
"""

from __future__ import annotations

import json

import pytest

import alpnet
from alpnet.cli import main as cli_main

pytest.importorskip("fastapi", reason='the explorer needs the serve extra: pip install "alpnet[serve]"')
pytest.importorskip("httpx", reason='TestClient needs httpx: pip install "alpnet[test]"')

from fastapi.testclient import TestClient  # noqa: E402

from alpnet.server import create_app  # noqa: E402
from alpnet.server.app import MAX_BODY_BYTES, STATIC_DIR  # noqa: E402

CASE = {"id": "api-case", "patient": {"age": 74, "sex": "male"},
        "symptoms": {"bone_pain": True, "hearing_loss": True},
        "labs": {"alp": "486 U/L", "alp_uln": "130 U/L", "ggt": "28 U/L"}}


@pytest.fixture(scope="module")
def client(model) -> TestClient:
    return TestClient(create_app(model))


def _cli_json(capsys, argv: list[str]) -> dict:
    capsys.readouterr()
    assert cli_main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[0])


def _carries_model_and_disclaimer(body: dict, model) -> None:
    assert body["disclaimer"] == alpnet.DISCLAIMER
    assert body["model"]["version"] == alpnet.__version__
    assert body["model"]["priors_sha256"] == model.version_info["priors_sha256"]


# ----------------------------------------------------------------------------- endpoints


def test_diagnose_answers_as_the_cli(client, model, capsys, tmp_path):
    path = tmp_path / "api-case.json"
    path.write_text(json.dumps(CASE))
    r = client.post("/diagnose", json=CASE)
    assert r.status_code == 200
    body = r.json()
    cli = _cli_json(capsys, ["diagnose", str(path), "--format", "json", "--show-states"])
    assert body["case_id"] == "api-case"
    assert body["leading_cause"] == cli["leading_cause"]
    assert body["posterior"] == pytest.approx(cli["posterior"], abs=1e-12)
    assert body["prior"] == pytest.approx(cli["prior"], abs=1e-12)
    assert body["states"] == cli["states"]
    assert body["leading_cause"] == max(body["posterior"], key=body["posterior"].get)
    assert set(body["labels"]) >= set(model.causes)
    _carries_model_and_disclaimer(body, model)


def test_next_test_answers_as_the_cli(client, model, capsys, tmp_path):
    path = tmp_path / "api-case.json"
    path.write_text(json.dumps(CASE))
    r = client.post("/next-test", json=CASE, params={"top": 5})
    assert r.status_code == 200
    body = r.json()
    cli = _cli_json(capsys, ["next-test", str(path), "--format", "json"])
    assert [t["test"] for t in body["ranking"]] == [t["test"] for t in cli["ranking"]][:5]
    assert body["ranking"][0]["expected_information_gain_bits"] == pytest.approx(
        cli["ranking"][0]["expected_information_gain_bits"], abs=1e-9)
    assert len(body["ranking"]) == 5
    assert all(t["test"] not in ("alp", "ggt") for t in body["ranking"])  # measured already
    _carries_model_and_disclaimer(body, model)


def test_next_test_options_reach_the_ranking(client):
    target = client.post("/next-test", json=CASE, params={"target": "cholestatic_liver", "top": 3}).json()
    assert target["target"] == "cholestatic_liver"
    two = client.post("/next-test", json=CASE, params={"lookahead": 2, "top": 2}).json()
    assert two["lookahead"] == 2 and "second_test" in two["ranking"][0]


def test_what_if_is_what_if_record(client, model):
    from alpnet.whatif import what_if_record

    change = {"set": {"labs.ggt": "300 U/L", "symptoms.jaundice": True}, "unset": ["symptoms.hearing_loss"]}
    r = client.post("/what-if", json={"case": CASE, **change})
    assert r.status_code == 200
    body = r.json()
    direct = what_if_record(model, CASE, **change)
    assert body["after"]["posterior"] == pytest.approx(direct["after"]["posterior"], abs=1e-12)
    assert {c["key"] for c in body["changes"]} == {"labs.ggt", "symptoms.jaundice", "symptoms.hearing_loss"}
    # a raised GGT with jaundice moves the liver causes up
    assert body["after"]["posterior"]["cholestatic_liver"] > body["before"]["posterior"]["cholestatic_liver"]
    _carries_model_and_disclaimer(body, model)


def test_explain_is_explain_record(client, model):
    from alpnet.explain import explain_record

    r = client.post("/explain", json=CASE, params={"cause": "paget", "versus": "bone_metastases"})
    assert r.status_code == 200
    body = r.json()
    direct = explain_record(model, CASE, cause="paget", versus="bone_metastases")
    assert [c["cause"] for c in body["causes"]] == ["paget"]
    assert body["causes"][0]["shift_bits"] == pytest.approx(direct["causes"][0]["shift_bits"], abs=1e-12)
    assert {f["key"] for f in body["causes"][0]["findings"]} >= {"labs.alp", "labs.ggt"}
    _carries_model_and_disclaimer(body, model)


def test_explain_method_shapley_and_a_bad_method(client):
    r = client.post("/explain", json=CASE, params={"cause": "paget", "method": "shapley"})
    assert r.status_code == 200 and "shapley" in r.json()["method"].lower()
    r = client.post("/explain", json=CASE, params={"method": "magic"})
    assert r.status_code == 422 and r.json()["key"] == "method" and "'magic'" in r.json()["error"]
    assert "chain|shapley" in r.json()["error"]


def test_cases_list_and_one_case(client, model):
    listed = client.get("/cases").json()
    assert [c["name"] for c in listed["cases"]] == alpnet.list_examples()
    _carries_model_and_disclaimer(listed, model)
    one = client.get("/cases/paget").json()
    on_disk = alpnet.read_case(alpnet.example_path("paget"))
    assert one["case"]["labs"] == on_disk.data["labs"]
    assert one["about"]["expected_cause"] == on_disk.about["expected_cause"]
    # the case it returns is a valid request body
    assert client.post("/diagnose", json=one["case"]).status_code == 200


def test_fields_come_from_the_model(client, model):
    body = client.get("/fields").json()
    keys = {f["key"] for s in body["sections"] for f in s["fields"]}
    case_keys = {v.case_key for v in model.priors.variables.values()
                 if v.kind in ("context", "finding") and v.case_key}
    assert case_keys <= keys
    alp = next(f for s in body["sections"] for f in s["fields"] if f["key"] == "labs.alp")
    assert alp["required"] and "U/L" in alp["units"]
    _carries_model_and_disclaimer(body, model)


def test_schema_endpoint_is_the_case_schema(client, model):
    from alpnet.schema import case_schema

    body = client.get("/schema").json()
    assert body["schema"]["properties"].keys() == case_schema(model.priors)["properties"].keys()


def test_page_and_assets_are_served_without_internet(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "not for clinical decisions" in page.text.lower() or "research and teaching" in page.text.lower()
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-alpnet-priors-sha256"] == client.get("/fields").json()["model"]["priors_sha256"]
    assert page.headers["x-alpnet-version"] == alpnet.__version__
    for asset in sorted(STATIC_DIR.iterdir()):
        r = client.get(f"/static/{asset.name}")
        assert r.status_code == 200, asset.name
        text = asset.read_text(encoding="utf-8")
        # no CDN, no remote font or script: every asset comes from alpnet itself
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, asset.name


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("body, key, value, accepted", [
    ({"labs": {"alp": "486 IU/dl"}}, "labs.alp", "IU/dl", "U/L"),
    ({"patient": {"age": 50, "sex": "male"}, "labs": {"alp": "486 U/L", "ggt": "-3 U/L"}}, "labs.ggt", "-3 U/L",
     "below 0"),
    ({"labs": {"alp": "486 U/L"}, "symptoms": {"bone_pian": True}}, "symptoms.bone_pian", "bone_pian", "bone_pain"),
    ({"labs": {"alp": "486 U/L"}, "tests": {"xray": "blurry"}}, "tests.xray", "blurry", "paget_pattern"),
    ({"labs": {"alp": "486 U/L"}, "patient": {"age": 400}}, "patient.age", "400", "0 to 125"),
    ({"patient": {"age": 70}}, "labs", "labs", "required"),
])
def test_bad_case_is_a_422_naming_key_value_and_accepted(client, body, key, value, accepted):
    for path in ("/diagnose", "/next-test", "/explain"):
        r = client.post(path, json=body)
        assert r.status_code == 422, (path, r.text)
        err = r.json()
        assert err["key"] == key
        assert key in err["error"] and value in err["error"] and accepted in err["error"]
        assert err["disclaimer"] == alpnet.DISCLAIMER


def test_what_if_bad_change_names_the_key(client):
    r = client.post("/what-if", json={"case": CASE, "set": {"labs.ggt": "lots"}})
    assert r.status_code == 422 and r.json()["key"] == "labs.ggt" and "'lots'" in r.json()["error"]
    r = client.post("/what-if", json={"case": CASE, "unset": ["labs.pth"]})
    assert r.status_code == 422 and r.json()["key"] == "labs.pth"
    r = client.post("/what-if", json={"case": CASE, "sett": {}})
    assert r.status_code == 422 and r.json()["key"] == "sett" and "accepted: case, set, unset" in r.json()["error"]
    r = client.post("/what-if", json=CASE)
    assert r.status_code == 422 and r.json()["key"] == "case"
    r = client.post("/what-if", json={"case": CASE, "set": ["labs.ggt=3 U/L"]})
    assert r.status_code == 422 and r.json()["key"] == "set"


@pytest.mark.parametrize("params, key, shown", [
    ({"cost_weight": "abc"}, "cost_weight", "'abc'"),
    ({"cost_weight": "-1"}, "cost_weight", "'-1'"),
    ({"cost_weight": "nan"}, "cost_weight", "'nan'"),
    ({"lookahead": "3"}, "lookahead", "'3'"),
    ({"top": "0"}, "top", "'0'"),
    ({"target": "pagett"}, "target", "'pagett'"),
])
def test_bad_query_parameter_is_a_422_naming_it(client, params, key, shown):
    r = client.post("/next-test", json=CASE, params=params)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["key"] == key and shown in err["error"] and "accepted" in err["error"]


def test_unknown_cause_to_explain_is_a_422(client):
    r = client.post("/explain", json=CASE, params={"cause": "gout"})
    assert r.status_code == 422 and "gout" in r.json()["error"] and "paget" in r.json()["error"]


@pytest.mark.parametrize("raw", [b"", b"{", b"[1, 2]", b'"a case"', b"null", b'{"labs": {"alp": NaN}}',
                                 b"\xff\xfe", b"[" * 5000 + b"]" * 5000])
def test_body_that_is_not_a_case_is_a_422(client, raw):
    r = client.post("/diagnose", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]


def test_a_key_given_twice_in_the_body_is_a_422_naming_it(client):
    raw = b'{"patient": {"age": 70, "sex": "male"}, "labs": {"alp": "420 U/L", "alp": "90 U/L"}}'
    r = client.post("/diagnose", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "the key 'alp' is given twice" in r.json()["error"]


def test_huge_body_is_a_413(client):
    big = {"labs": {"alp": "486 U/L"}, "id": "x" * (MAX_BODY_BYTES + 10)}
    r = client.post("/diagnose", json=big)
    assert r.status_code == 413
    assert "limit" in r.json()["error"] and r.json()["disclaimer"] == alpnet.DISCLAIMER

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY_BYTES // 1024 + 4):
            yield b" " * 1024

    r = client.post("/diagnose", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_a_small_limit_is_honoured(model):
    small = TestClient(create_app(model, max_body_bytes=100))
    assert small.post("/diagnose", json=CASE).status_code == 413
    assert small.post("/diagnose", json={"patient": {"age": 50}, "labs": {"alp": "486 U/L"}}).status_code == 200


@pytest.mark.parametrize("name", ["../../pyproject", "..%2F..%2Fpyproject", "%2Fetc%2Fpasswd", "paget.yaml",
                                  "/etc/passwd", "..%2F..%2F..%2Fpyproject.toml", "PAGET", "~root"])
def test_no_path_reaches_the_file_system(client, name):
    r = client.get(f"/cases/{name}")
    assert r.status_code in (404, 422)
    assert "[project]" not in r.text and "root:" not in r.text
    for path in ("/static/../app.py", "/static/..%2Fapp.py", "/static/%2E%2E/records.py"):
        r = client.get(path)
        assert r.status_code == 404 and "def " not in r.text


def test_a_case_given_as_a_path_is_refused(client):
    for body in ("/etc/passwd", {"case": "examples/cases/paget.yaml"}):
        r = client.post("/what-if" if isinstance(body, dict) else "/diagnose", json=body)
        assert r.status_code == 422 and "mapping" in r.json()["error"]


def test_unknown_route_and_method(client):
    r = client.get("/diagnose")
    assert r.status_code == 405 and r.json()["disclaimer"] == alpnet.DISCLAIMER
    r = client.get("/no/such/route")
    assert r.status_code == 404 and "openapi.json" in r.json()["error"]


# ----------------------------------------------------------------------------- OpenAPI and serving


def test_openapi_document_is_valid_and_complete(client):
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/diagnose", "/next-test", "/what-if", "/explain", "/cases", "/cases/{name}", "/fields"):
        assert path in doc["paths"], path
    for path in ("/diagnose", "/next-test", "/what-if", "/explain"):
        op = doc["paths"][path]["post"]
        assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].startswith("#/components/schemas/")
        assert "422" in op["responses"] and "413" in op["responses"]
    assert doc["components"]["schemas"]["Case"]["required"] == ["labs"]
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(doc["components"]["schemas"]["Case"])
    # schemathesis refuses a document that does not follow the OpenAPI specification
    schemathesis = pytest.importorskip("schemathesis")
    schema = schemathesis.openapi.from_dict(doc)
    ops = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    assert ("POST", "/what-if") in ops and ("GET", "/cases/{name}") in ops


def test_serve_binds_localhost_by_default():
    from alpnet.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.port == 8000


def test_missing_extra_is_one_clear_line(monkeypatch, capsys):
    import sys

    from alpnet.server import MissingExtraError, require_serve_extra

    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now raises ImportError
    with pytest.raises(MissingExtraError, match=r'pip install "alpnet\[serve\]"'):
        require_serve_extra()
    assert cli_main(["serve", "--port", "8123"]) == 2
    err = capsys.readouterr().err
    assert "alpnet[serve]" in err and "Traceback" not in err


def test_impossible_evidence_names_the_findings(client):
    # placental ALP in a man: the model gives this evidence probability zero
    r = client.post("/diagnose", json={"patient": {"age": 30, "sex": "male"}, "labs": {"alp": "200 U/L"},
                                       "tests": {"alp_isoenzymes": "placental"}})
    assert r.status_code == 422
    err = r.json()
    assert set(err["findings"]) == {"patient.sex", "tests.alp_isoenzymes"}
    assert err["key"] in err["findings"] and "placental" in err["error"] and "male" in err["error"]



@pytest.mark.parametrize("method, path, message", [
    ("post", "/next-test?costweight=5", "costweight: unknown query parameter for /next-test; accepted: target, "
                                        "cost_weight, lookahead, top"),
    ("post", "/next-test?top=1&top=50", "top: given twice in the query; give it once"),
    ("post", "/diagnose?format=table", "format: unknown query parameter for /diagnose; accepted: none"),
    ("post", "/explain?top=1", "top: unknown query parameter for /explain; accepted: cause, versus, method"),
    ("get", "/cases?x=1", "x: unknown query parameter for /cases; accepted: none"),
])
def test_an_unknown_or_repeated_query_parameter_is_refused_not_ignored(client, method, path, message):
    """A misspelt parameter used to fall back to its default without a word."""
    res = client.post(path, json=CASE) if method == "post" else client.get(path)
    assert res.status_code == 422
    assert res.json()["error"] == message and res.json()["key"] == message.split(":")[0]


@pytest.mark.parametrize("headers", [{"content-type": "text/plain"}, {"content-type": "image/png"}, {}])
def test_a_body_not_sent_as_json_is_a_415(client, headers):
    res = client.post("/diagnose", content=json.dumps(CASE).encode(), headers=headers)
    assert res.status_code == 415
    body = res.json()
    assert body["key"] == "body" and "accepted: application/json" in body["error"]


def test_json_with_a_charset_or_a_json_suffix_is_accepted(client):
    for kind in ("application/json; charset=utf-8", "application/vnd.api+json"):
        res = client.post("/diagnose", content=json.dumps(CASE).encode(), headers={"content-type": kind})
        assert res.status_code == 200, res.text


@pytest.mark.parametrize("body, key, message", [
    ({"case": CASE, "unset": ["labs.ggt", "labs.ggt"]}, "unset", "unset: labs.ggt is given twice"),
    ({"case": CASE, "set": {"": "1"}}, "set", "set: '' is not a case key"),
    ({"case": CASE, "unset": [1]}, "unset", "unset: 1 is not a case key"),
])
def test_what_if_errors_name_set_or_unset(client, body, key, message):
    res = client.post("/what-if", json=body)
    assert res.status_code == 422
    assert res.json()["key"] == key and res.json()["error"].startswith(message)


def test_next_test_takes_any_cost_weight_the_cli_takes(client, capsys):
    res = client.post("/next-test?cost_weight=5000&top=100", json=CASE)
    assert res.status_code == 200, res.text
    assert res.json()["cost_weight"] == 5000
