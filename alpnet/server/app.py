"""The FastAPI application of the classroom explorer: the JSON API and the page.

Import this module only through :func:`alpnet.server.create_app`, which says
how to install FastAPI when it is missing. Routes (all JSON unless noted):

``GET /``                      the explorer page (HTML; every asset served by alpnet)
``GET /fields``                the case form, derived from the model
``GET /schema``                the JSON Schema of a case
``GET /cases``                 the bundled teaching cases
``GET /cases/{name}``          one teaching case by name
``POST /diagnose``             body: a case -> posterior and prior of every cause
``POST /next-test``            body: a case -> ranked tests and questions
``POST /what-if``              body: ``{"case", "set", "unset"}`` -> before and after
``POST /explain``              body: a case -> weights of evidence for the leading causes
``GET /openapi.json``          the OpenAPI document of all of the above

Bad input is a 422 whose body names the key, the value and what is accepted
(the command line's message); a body over the size limit is a 413; an unknown
teaching case is a 404. Every JSON answer carries ``model`` (alpnet version,
prior-set hash, overrides) and ``disclaimer``.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .. import __version__
from ..documents import load_json
from ..errors import AlpnetError
from ..model import DISCLAIMER
from . import records
from .fields import case_fields

__all__ = ["build_app", "MAX_BODY_BYTES", "STATIC_DIR"]

#: Largest request body accepted (bytes); a case is a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024
#: The page's HTML, CSS and JavaScript (package data, shipped in the wheel).
STATIC_DIR = Path(__file__).resolve().parent / "static"

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
]


class _BodyTooLarge(Exception):
    pass


class _LimitBody:
    """ASGI middleware: refuse a request body over ``limit`` bytes with a 413 before it is read.

    A declared ``Content-Length`` over the limit is refused at once; a chunked body
    is counted as it arrives. Also adds security headers and the model's version and
    prior-set hash (``X-Alpnet-Version``, ``X-Alpnet-Priors-Sha256``) to every response.
    """

    def __init__(self, app: Any, limit: int, info: dict[str, Any]):
        self.app, self.limit, self.info = app, limit, info
        # every response, the page and its assets included, says which model answered
        self.headers = _SECURITY_HEADERS + [(b"x-alpnet-version", str(info.get("version", "")).encode()),
                                            (b"x-alpnet-priors-sha256", str(info.get("priors_sha256", "")).encode())]

    async def _too_large(self, send: Callable) -> None:
        body = json.dumps({"error": f"body: larger than the limit of {self.limit} bytes; "
                                    "send one case (a few hundred bytes)",
                           "key": "body", "model": self.info, "disclaimer": DISCLAIMER}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())] + self.headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers") or []:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.limit + 1
                if declared > self.limit:
                    await self._too_large(send)
                    return
        seen = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge()
            return message

        async def send_with_headers(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = dict(message)
                message["headers"] = list(message.get("headers") or []) + self.headers
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLarge:
            if not started:
                await self._too_large(send)


_KEY_RE = re.compile(r"^(?:what-if: )?(?:--(?:un)?set '(?P<flagged>[^']*)'|(?P<key>[A-Za-z_][A-Za-z0-9_.]*)"
                     r"(?: '[^']*')?):")


def _key_of(message: str) -> str:
    """The case key (or parameter) an error message starts with, else ``case``."""
    m = _KEY_RE.match(message)
    if not m:
        return "case"
    return m.group("flagged") or m.group("key")


def _describe_validation(exc: RequestValidationError) -> tuple[str, str]:
    """One line naming the parameter, the value and what is accepted."""
    errors = exc.errors()
    if not errors:  # pragma: no cover - pydantic always gives one
        return "request", "request: not accepted"
    e = errors[0]
    loc = [str(p) for p in e.get("loc", ()) if p not in ("query", "path", "body")]
    key = ".".join(loc) or "request"
    value = e.get("input")
    msg = str(e.get("msg", "not accepted"))
    ctx = e.get("ctx") or {}
    accepted = msg[len("Input should be "):] if msg.startswith("Input should be ") else msg
    if "expected" in ctx:
        accepted = str(ctx["expected"])
    shown = "missing" if e.get("type") == "missing" else repr(value)
    return key, f"{key}: {shown} is not accepted; accepted: {accepted}"


def _open_api_extra(schema_ref: str, summary: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "description": summary,
                            "content": {"application/json": {"schema": {"$ref": schema_ref}}}}}


def _answer_schema(required: list[str]) -> dict[str, Any]:
    return {"type": "object", "required": sorted(set(required) | {"model", "disclaimer"}),
            "properties": {"model": {"$ref": "#/components/schemas/ModelInfo"},
                           "disclaimer": {"type": "string"}}}


def _responses(required: list[str], *, not_found: bool = False, body: bool = False) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {
        200: {"description": "The answer", "content": {"application/json": {"schema": _answer_schema(required)}}},
        422: {"description": "Bad input: the message names the key, the value and what is accepted",
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        413: {"description": f"The body is larger than {MAX_BODY_BYTES} bytes",
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
    }
    if body:
        out[415] = {"description": "The body is not sent as application/json",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if not_found:
        out[404] = {"description": "No teaching case of that name (the message lists them)",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return out


def build_app(model: Any, *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The explorer app for a loaded model (see :func:`alpnet.server.create_app`)."""
    info = records.jsonable(model.version_info)
    try:  # build the test ranker now, not on the first request (it takes seconds once)
        model.ranker
    except AlpnetError:  # pragma: no cover - a prior set too large for exact ranking: /next-test says so
        pass
    lock = threading.Lock()  # one computation at a time: the engine keeps caches
    fields = case_fields(model)
    from ..evidence import _schema_for  # the cached case schema of this prior set

    case_schema = {k: v for k, v in _schema_for(model.priors).items() if k not in ("$schema", "$id")}

    app = FastAPI(
        title="alpnet classroom explorer",
        version=__version__,
        description=("The HTTP API behind alpnet's what-if explorer. Request bodies are cases in alpnet's case "
                     "format (case-format.md) as JSON. Errors are a 422 whose `error` names the key, the value "
                     "and what is accepted. " + DISCLAIMER),
        docs_url=None, redoc_url=None,  # their pages load scripts from a CDN; the page works offline
        openapi_url="/openapi.json",
    )

    def ok(body: dict[str, Any]) -> JSONResponse:
        body = dict(body)
        body.setdefault("model", info)
        body.setdefault("disclaimer", DISCLAIMER)
        return JSONResponse(body)

    def fail(status: int, message: str, key: str) -> JSONResponse:
        return JSONResponse(status_code=status, content={"error": message, "key": key, "model": info,
                                                         "disclaimer": DISCLAIMER})

    @app.exception_handler(AlpnetError)
    async def _alpnet_error(request: Request, exc: AlpnetError) -> JSONResponse:
        message = str(exc)
        body = {"error": message, "key": _key_of(message), "model": info, "disclaimer": DISCLAIMER}
        findings = getattr(exc, "findings", None)
        if findings:  # evidence the model calls impossible: name the findings by their case keys
            variables = model.priors.variables
            keys = [str(variables[f].case_key) if f in variables and variables[f].case_key else str(f)
                    for f in findings]
            body["findings"] = keys
            body["key"] = keys[0]
        return JSONResponse(status_code=422, content=body)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        key, message = _describe_validation(exc)
        return fail(422, message, key)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "not accepted"
        key = "path" if exc.status_code == 404 else ("body" if detail.startswith("body:") else "request")
        if exc.status_code == 404:
            detail = f"{request.url.path}: not found; see /openapi.json for the routes"
        elif exc.status_code == 405:
            detail = f"{request.method} {request.url.path}: method not allowed"
        return JSONResponse(status_code=exc.status_code, content={"error": detail, "key": key, "model": info,
                                                                  "disclaimer": DISCLAIMER},
                            headers=getattr(exc, "headers", None))

    async def read_json(request: Request) -> Any:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
            raise StarletteHTTPException(415, f"body: Content-Type {kind or '(none)'!r} is not accepted; "
                                              "accepted: application/json")
        try:
            raw = await request.body()
        except ClientDisconnect:  # the client left before sending its body: nobody to answer
            raise StarletteHTTPException(400, "body: the client disconnected before sending it") from None
        if not raw.strip():
            raise AlpnetError("body: empty; send a case as JSON, e.g. {\"labs\": {\"alp\": \"420 U/L\"}}")

        def no_constant(name: str) -> Any:
            raise ValueError(f"{name} is not a JSON number")

        try:
            return load_json(raw, parse_constant=no_constant)
        except (ValueError, RecursionError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise AlpnetError(f"body: not valid JSON ({first}); send a case as a JSON object") from None

    def only_query(request: Request) -> None:
        """Refuse a query parameter the route does not declare, or one given twice: the CLI refuses
        an unknown or repeated flag, and a misspelt parameter must not fall back to its default."""
        accepted = [p.alias for p in request.scope["route"].dependant.query_params]
        names = [k for k, _ in request.query_params.multi_items()]
        for name in names:
            if name not in accepted:
                raise AlpnetError(f"{name}: unknown query parameter for {request.url.path}; accepted: "
                                  f"{', '.join(accepted) if accepted else 'none'}")
            if names.count(name) > 1:
                raise AlpnetError(f"{name}: given twice in the query; give it once")

    async def compute(fn: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> JSONResponse:
        def run() -> dict[str, Any]:
            with lock:
                return fn(*args, **kwargs)

        return ok(await run_in_threadpool(run))

    # ------------------------------------------------------------------ page
    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # ------------------------------------------------------------------ reference
    @app.get("/fields", summary="The case form, derived from the model", responses=_responses(["sections"]))
    async def get_fields(request: Request) -> JSONResponse:
        only_query(request)
        return ok({**fields, "causes": {c: model.label(c) for c in model.causes}, "max_body_bytes": max_body_bytes})

    @app.get("/schema", summary="The JSON Schema of a case", responses=_responses(["schema"]))
    async def get_schema(request: Request) -> JSONResponse:
        only_query(request)
        return ok({"schema": case_schema})

    @app.get("/cases", summary="The bundled teaching cases", responses=_responses(["cases"]))
    async def get_cases(request: Request) -> JSONResponse:
        only_query(request)
        return ok({"cases": records.case_list()})

    @app.get("/cases/{name}", summary="One teaching case by name",
             responses=_responses(["name", "case", "about"], not_found=True))
    async def get_case(request: Request, name: str = PathParam(..., description="a name from GET /cases",
                                                               pattern=records.CASE_NAME_PATTERN)) -> JSONResponse:
        only_query(request)
        try:
            return ok(records.teaching_case(name))
        except AlpnetError as exc:
            return fail(404, str(exc), "name")

    # ------------------------------------------------------------------ questions about a case
    @app.post("/diagnose", summary="Posterior and prior of every cause",
              openapi_extra=_open_api_extra("#/components/schemas/Case", "a case (case-format.md) as JSON"),
              responses=_responses(["case_id", "posterior", "prior", "leading_cause", "leak", "evidence"], body=True))
    async def diagnose(request: Request) -> JSONResponse:
        only_query(request)
        return await compute(records.diagnose_record, model, await read_json(request))

    @app.post("/next-test", summary="Tests and questions ranked by expected information gain",
              openapi_extra=_open_api_extra("#/components/schemas/Case", "a case (case-format.md) as JSON"),
              responses=_responses(["case_id", "ranking", "questions", "leading_cause"], body=True))
    async def next_test(
        request: Request,
        target: str | None = Query(None, description="rank by the information about this cause only",
                                   max_length=100),
        cost_weight: float = Query(0.0, ge=0, allow_inf_nan=False,
                                   description="score = gain - cost_weight x cost"),
        lookahead: int = Query(1, ge=1, le=2, description="1, or 2 for the exact best two-test policy"),
        top: int = Query(10, ge=1, le=100, description="keep the first `top` tests and questions"),
    ) -> JSONResponse:
        only_query(request)
        return await compute(records.next_test_record, model, await read_json(request), target=target,
                             cost_weight=cost_weight, lookahead=lookahead, top=top)

    @app.post("/what-if", summary="Every cause before and after changing some findings",
              openapi_extra=_open_api_extra("#/components/schemas/WhatIf",
                                            "the case, the keys to set and the keys to unset"),
              responses=_responses(["case_id", "changes", "causes", "before", "after"], body=True))
    async def what_if(request: Request) -> JSONResponse:
        only_query(request)
        body = await read_json(request)
        if not isinstance(body, dict) or "case" not in body:
            raise AlpnetError("case: is required; send {\"case\": {...}, \"set\": {\"labs.ggt\": \"300 U/L\"}, "
                              "\"unset\": [\"labs.pth\"]}")
        extra = sorted(set(body) - {"case", "set", "unset"})
        if extra:
            raise AlpnetError(f"{extra[0]}: unknown key; accepted: case, set, unset")
        return await compute(records.what_if_answer, model, body["case"], set=body.get("set"),
                             unset=body.get("unset"))

    @app.post("/explain", summary="Which findings moved the leading causes, in bits",
              openapi_extra=_open_api_extra("#/components/schemas/Case", "a case (case-format.md) as JSON"),
              responses=_responses(["case_id", "causes"], body=True))
    async def explain(
        request: Request,
        cause: str | None = Query(None, description="explain this cause (default: the leading causes)",
                                  max_length=100),
        versus: str | None = Query(None, description="a second cause to weigh each finding against",
                                   max_length=100),
        method: str = Query("chain", pattern="^(chain|shapley)$",
                            description="chain: the chain rule in a fixed order; shapley: averaged over orders"),
    ) -> JSONResponse:
        only_query(request)
        return await compute(records.explain_answer, model, await read_json(request), cause=cause, versus=versus,
                             method=method)

    # ------------------------------------------------------------------ OpenAPI document
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        comps = doc.setdefault("components", {}).setdefault("schemas", {})
        comps["Case"] = case_schema
        comps["WhatIf"] = {
            "type": "object", "required": ["case"], "additionalProperties": False,
            "properties": {
                "case": {"$ref": "#/components/schemas/Case"},
                "set": {"type": "object", "description": "dotted case key -> value as in a case file",
                        "additionalProperties": True, "examples": [{"labs.ggt": "300 U/L", "symptoms.fever": True}]},
                "unset": {"type": "array", "items": {"type": "string"}, "description": "dotted case keys to remove",
                          "examples": [["labs.pth"]]},
            },
        }
        comps["Error"] = {"type": "object", "required": ["error", "key", "model", "disclaimer"],
                          "properties": {"error": {"type": "string"}, "key": {"type": "string"},
                                         "findings": {"type": "array", "items": {"type": "string"}},
                                         "model": {"$ref": "#/components/schemas/ModelInfo"},
                                         "disclaimer": {"type": "string"}}}
        comps["ModelInfo"] = {"type": "object", "required": ["version", "priors_sha256"],
                              "properties": {"version": {"type": "string"}, "priors_sha256": {"type": "string"},
                                             "overrides": {"type": "object"}}}
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(_LimitBody, limit=max_body_bytes, info=info)
    app.state.model = model
    return app
