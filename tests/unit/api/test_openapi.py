"""The REST API's contract: ``braindrill_ext/api/openapi.json``, an OpenAPI 3.1 description served
at ``GET /braindrill/openapi.json``. Kept true here, without Docker: it is a valid document, it
names exactly the routes of ``api.rest_handlers`` and the fields of the code's models, and
the answers given before anything runs (the document itself, 403s, refusals, REST sessions) conform
to it. Real answers on real containers: tests/docker/api/test_openapi.py; schemathesis fuzzing a
live server: tests/docker/api/test_openapi_fuzz.py."""

from __future__ import annotations

import dataclasses
import json

import pytest
from jsonschema import Draft202012Validator
from jupyter_server.base.handlers import APIHandler
from openapi_spec_validator import OpenAPIV31SpecValidator

import braindrill_ext
from braindrill_ext.api import rest_handlers as default_handlers
from braindrill_ext.engine.limits import LIMIT_FIELDS, REQUESTABLE
from braindrill_ext.engine.validation import JSON_FIELDS, SESSION_FIELDS
from braindrill_ext.execution import Limits, Result, Status
from braindrill_ext.sandbox import records
from tests.openapi import (
    DOC,
    HTTP_METHODS,
    OPENAPI_SERVER_CONFIG,
    SCHEMAS,
    SESSION,
    SESSIONS,
    check_answer,
    component,
    deref,
    fetch_error,
)

JSON = {"Content-Type": "application/json"}


# -- the document itself ---------------------------------------------------------------------------
def test_the_document_is_valid_openapi_3_1():
    assert DOC["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(DOC).validate()  # the document, its schemas and every $ref
    for schema in SCHEMAS.values():
        Draft202012Validator.check_schema(schema)  # each component is a 2020-12 schema


def test_its_version_is_the_package_version():
    assert DOC["info"]["version"] == braindrill_ext.__version__


def _methods(handler) -> set[str]:
    """The HTTP methods a handler serves (APIHandler's own ``options``, CORS, aside)."""
    return {
        m for m in HTTP_METHODS if getattr(handler, m, None) is not getattr(APIHandler, m, None)
    }


def _route_path(pattern: str) -> str:
    """A tornado route as an OpenAPI path with its parameters unnamed: ``/lang/{}``."""
    return (
        pattern.replace("([^/]+)", "{}")
        .replace("(.+)", "{}")
        .replace("\\.", ".")
        .removesuffix("/?")
    )


def test_every_route_is_described_and_nothing_else():
    """Both ways: each route of default_handlers with its methods is a path of the document
    with those operations, and each documented operation is a route's method."""
    routes = {(_route_path(p), m) for p, handler in default_handlers for m in _methods(handler)}
    described = {
        (
            "/".join("{}" if s.startswith("{") else s for s in path.split("/")),
            method,
        )
        for path, item in DOC["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert routes == described
    for pattern, _ in default_handlers:
        assert "(" not in _route_path(pattern), f"route {pattern!r}: teach _route_path its groups"


def test_operations_are_complete():
    """Every operation has an operationId, a 403 (Jupyter's auth) and only described statuses;
    every error response is Jupyter's Error shape; every 503 and 429 has Retry-After."""
    ids = set()
    for path, item in DOC["paths"].items():
        for method in (m for m in item if m in HTTP_METHODS):
            op = item[method]
            ids.add(op["operationId"])
            assert "403" in op["responses"], (method, path)
            for code, response in op["responses"].items():
                response = deref(response)
                if int(code) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, code)
                if code in ("429", "503"):
                    assert deref(response["headers"]["Retry-After"])["required"] is True
    assert len(ids) == sum(1 for i in DOC["paths"].values() for m in i if m in HTTP_METHODS)


# -- the document against the code's models ------------------------------------------------------
def _json_type(python_type: str) -> str:
    return {"float": "number", "int": "integer"}[python_type]


def test_result_schema_is_the_result_dataclass():
    internal = ("state", "state_unchanged")  # the engine's: the state is opaque, never JSON
    fields = [f.name for f in dataclasses.fields(Result) if f.name not in internal]
    assert list(Result("python", Status.OK, state=b"x").to_json()) == fields
    schema = SCHEMAS["Result"]
    assert list(schema["properties"]) == fields
    assert schema["required"] == fields
    assert SCHEMAS["Status"]["enum"] == [s.value for s in Status]
    for status in Status:
        component("Result").validate(Result("python", status).to_json())
    full = Result(
        "c",
        Status.COMPILE_ERROR,
        exit_code=1,
        stdout="a",
        stderr="b",
        stdout_truncated=True,
        duration_ms=12.345,
        worker="local",
        compile_output="main.c:1: error",
        queued_ms=3.21,
        message="why",
        outputs=[{"output_type": "clear_output", "wait": False}],
        error={"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["t"]},
        state=b"\0opaque",
        state_message="the state is as it was before this execution",
    )
    component("Result").validate(full.to_json())


def test_request_and_limits_schemas_are_the_code():
    request = SCHEMAS["ExecutionRequest"]
    assert tuple(request["properties"]) == JSON_FIELDS
    assert request["required"] == ["code"]
    requested = request["properties"]["limits"]["properties"]
    assert tuple(requested) == REQUESTABLE
    assert list(SCHEMAS["MaxLimits"]["properties"]) == list(REQUESTABLE)
    assert list(SCHEMAS["Limits"]["properties"]) == list(LIMIT_FIELDS)
    for name, python_type in LIMIT_FIELDS.items():
        assert SCHEMAS["Limits"]["properties"][name]["type"] == _json_type(python_type), name
        if name in requested:
            assert requested[name]["type"] == _json_type(python_type), name
    component("Limits").validate(dataclasses.asdict(Limits()))
    assert tuple(SCHEMAS["SessionRequest"]["properties"]) == SESSION_FIELDS
    assert SCHEMAS["SessionRequest"]["required"] == ["language"]


def test_output_schemas_are_what_records_produce():
    described = {deref(b)["properties"]["output_type"]["const"] for b in SCHEMAS["Output"]["oneOf"]}
    not_outputs = {"error", records.INPUT_REQUEST, records.STREAM, records.COMM}
    assert described | not_outputs == set(records.OUTPUT_TYPES)
    png = "iVBORw0KGgo="
    raw = [
        {"output_type": "display_data", "data": {"text/plain": ["a", "b"], "image/png": png}},
        {
            "output_type": "display_data",
            "data": {"application/json": {"k": [1]}, "application/vnd.x+json": 3},
            "metadata": {"isolated": True},
            "transient": {"display_id": "d1"},
        },
        {
            "output_type": "update_display_data",
            "data": {"text/html": "<b>x</b>"},
            "transient": {"display_id": "d1"},
        },
        {"output_type": "execute_result", "data": {"text/plain": "42"}, "execution_count": 1},
        {"output_type": "execute_result", "data": {"text/plain": "42"}},
        {"output_type": "clear_output", "wait": True},
    ]
    for record in raw:
        component("Output").validate(records.parse(json.dumps(record).encode()))
    error = {"output_type": "error", "ename": "ValueError", "evalue": "x", "traceback": ["l1"]}
    component("ErrorOutput").validate(records.parse(json.dumps(error).encode()))
    assert not component("Output").is_valid(records.parse(json.dumps(error).encode()))


# -- the served document, answers given before anything runs ------------------------------------
@pytest.fixture
def braindrill_config():
    return OPENAPI_SERVER_CONFIG


async def test_the_server_serves_the_document(jp_fetch, jp_base_url):
    response = await jp_fetch("braindrill", "openapi.json")
    served = check_answer("/braindrill/openapi.json", "get", 200, response.headers, response.body)
    assert served["servers"][0]["url"] == jp_base_url
    assert {k: v for k, v in served.items() if k != "servers"} == {
        k: v for k, v in DOC.items() if k != "servers"
    }


@pytest.mark.parametrize(
    "method,parts",
    [
        ("GET", ("braindrill", "openapi.json")),
        ("GET", ("lang",)),
        ("GET", ("braindrill", "workers")),
        ("POST", ("lang", "python")),
        ("GET", ("braindrill", "sessions")),
        ("POST", ("braindrill", "sessions")),
        ("GET", ("braindrill", "sessions", "abc")),
        ("DELETE", ("braindrill", "sessions", "abc")),
    ],
)
async def test_a_wrong_token_is_a_described_403(jp_fetch, method, parts):
    body = {"POST": "print(1)" if parts[0] == "lang" else '{"language": "python"}'}.get(method)
    headers = {"Authorization": "token not-the-token"}
    code, headers, body = await fetch_error(
        jp_fetch(*parts, method=method, body=body, headers=headers)
    )
    assert code == 403
    path = {"lang/python": "/lang/{language}", "braindrill/sessions/abc": SESSION}.get(
        "/".join(parts), "/" + "/".join(parts)
    )
    check_answer(path, method.lower(), code, headers, body)


REFUSALS = {
    "unknown language": (404, "cobol", {}, b"print(1)"),
    "malformed JSON": (400, "python", JSON, b"{'code':"),
    "not an object": (400, "python", JSON, b"[1]"),
    "no code": (400, "python", JSON, b'{"stdin": ""}'),
    "unknown field": (400, "python", JSON, b'{"code": "", "cwd": "/"}'),
    "wrong type": (400, "python", JSON, b'{"code": 1}'),
    "bad file name": (400, "python", JSON, b'{"code": "", "files": {"../x": ""}}'),
    "unknown limit": (400, "python", JSON, b'{"code": "", "limits": {"pids": 2}}'),
    "above the maximum": (400, "python", JSON, b'{"code": "", "limits": {"timeout_s": 99}}'),
    "empty body": (400, "python", {"Content-Type": "text/plain"}, b"  \n"),
    "not UTF-8": (400, "python", {"Content-Type": "text/plain"}, b"print('\xff')"),
    "too large": (413, "python", {}, b"#" * 5000),
    "too large in JSON": (413, "python", JSON, json.dumps({"code": "", "stdin": "x" * 5000})),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
async def test_refusals_conform(jp_fetch, name):
    status, language, headers, body = REFUSALS[name]
    code, answer_headers, answer = await fetch_error(
        jp_fetch("lang", language, method="POST", body=body, headers=headers)
    )
    assert code == status, answer
    error = check_answer("/lang/{language}", "post", code, answer_headers, answer)
    assert error["message"]


async def test_session_answers_conform(jp_fetch):
    """Every answer of /braindrill/sessions, and a session's refusals in POST /lang."""

    def create(body):
        return jp_fetch("braindrill", "sessions", method="POST", body=body, headers=JSON)

    response = await create(json.dumps({"language": "py"}))
    session = check_answer(SESSIONS, "post", 201, response.headers, response.body)
    assert list(session) == list(SCHEMAS["Session"]["properties"])  # the view model, in order
    sid = session["id"]
    response = await jp_fetch("braindrill", "sessions")
    listed = check_answer(SESSIONS, "get", 200, response.headers, response.body)
    assert [s["id"] for s in listed["sessions"]] == [sid]
    response = await jp_fetch("braindrill", "sessions", sid)
    assert check_answer(SESSION, "get", 200, response.headers, response.body)["id"] == sid
    for body, status in [(b"{}", 400), (b"[", 400), (json.dumps({"language": "cobol"}), 404)]:
        code, headers, answer = await fetch_error(create(body))
        assert code == status, answer
        check_answer(SESSIONS, "post", code, headers, answer)
    await create(json.dumps({"language": "c"}))
    code, headers, answer = await fetch_error(create(json.dumps({"language": "c"})))
    assert code == 429  # max_per_user
    check_answer(SESSIONS, "post", code, headers, answer)
    for language, session_id, status in [("c", sid, 400), ("python", "nope", 404)]:
        body = json.dumps({"code": "1", "session": session_id})
        code, headers, answer = await fetch_error(
            jp_fetch("lang", language, method="POST", body=body, headers=JSON)
        )
        assert code == status, answer
        check_answer("/lang/{language}", "post", code, headers, answer)
    response = await jp_fetch("braindrill", "sessions", sid, method="DELETE")
    check_answer(SESSION, "delete", 204, response.headers, response.body)
    for method in ("GET", "DELETE"):
        code, headers, answer = await fetch_error(
            jp_fetch("braindrill", "sessions", sid, method=method)
        )
        assert code == 404
        check_answer(SESSION, method.lower(), code, headers, answer)
