"""The REST API's contract: ``braindrill_ext/openapi.json``, an OpenAPI 3.1 description served at
``GET /braindrill/openapi.json``. Kept true here: it is a valid document, it names exactly the
routes of ``handlers.default_handlers`` and the fields of the code's models, real answers (a
server on real containers) conform to it, and schemathesis fuzzes a live server from it (no 5xx
but a 503 with Retry-After; every status, content type, header and body as described)."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import subprocess
import sys
import time
from importlib.resources import files

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from jupyter_server.base.handlers import APIHandler
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tornado.httpclient import HTTPClientError

import braindrill_ext
from braindrill_ext import records
from braindrill_ext.execution import Limits, Result, Status
from braindrill_ext.handlers import default_handlers
from braindrill_ext.limits import LIMIT_FIELDS, REQUESTABLE
from braindrill_ext.validation import JSON_FIELDS, SESSION_FIELDS

from .helpers import eventually_sync, free_port, leftover_containers

DOC = json.loads(files("braindrill_ext").joinpath("openapi.json").read_text())
URI = "urn:braindrill:openapi"
REGISTRY = Registry().with_resource(URI, Resource.from_contents(DOC, DRAFT202012))
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SCHEMAS = DOC["components"]["schemas"]
JSON = {"Content-Type": "application/json"}


# -- reading the document ------------------------------------------------------------------------
def deref(node: dict) -> dict:
    """``node`` with a local ``$ref`` (``#/components/...``) followed, repeatedly."""
    while "$ref" in node:
        target = DOC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator(schema: dict) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator of ``schema``, a part of the document (its ``#/...``
    refs point into the document)."""
    return Draft202012Validator(_anchored(schema), registry=REGISTRY)


def _anchored(node):
    if isinstance(node, dict):
        return {
            k: URI + v if k == "$ref" and v.startswith("#") else _anchored(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_anchored(v) for v in node]
    return node


def component(name: str) -> Draft202012Validator:
    return validator({"$ref": f"#/components/schemas/{name}"})


def operation(path: str, method: str) -> dict:
    return DOC["paths"][path][method]


def check_answer(path: str, method: str, code: int, headers, body: bytes):
    """Check an answer against the document: its status is described, its Content-Type is one
    of that status's media types, its headers (required ones present) and its body validate.
    Returns the body decoded (JSON) or as text."""
    responses = operation(path, method)["responses"]
    assert str(code) in responses, f"{method.upper()} {path} answered {code}, not described"
    response = deref(responses[str(code)])
    if "content" not in response:  # 204
        assert body == b"" and "Content-Type" not in headers, (code, headers, body)
        return None
    media = headers.get("Content-Type", "").split(";")[0].strip()
    assert media in response["content"], (
        f"{code} came as {media!r}, not {list(response['content'])}"
    )
    for name, spec in response.get("headers", {}).items():
        spec = deref(spec)
        value = headers.get(name)
        if value is None:
            assert not spec.get("required"), f"{code} lacks the required header {name}"
            continue
        schema = deref(spec["schema"])
        decoded = int(value) if schema.get("type") == "integer" else value
        validator(spec["schema"]).validate(decoded)
    schema = response["content"][media]["schema"]
    text = body.decode("utf-8")
    if media == "application/json":
        data = json.loads(text)
        validator(schema).validate(data)
        return data
    if media == "text/event-stream":
        return check_events(text, schema)
    validator(schema).validate(text)
    return text


def check_events(text: str, schema: dict) -> list[tuple[str, object]]:
    """Parse a server-sent event stream; every event validates against ``schema`` (one event:
    its name and data) and its data, JSON, against the ``contentSchema`` of its kind."""
    kinds = {
        branch["properties"]["event"]["const"]: branch["properties"]["data"]["contentSchema"]
        for branch in deref(schema)["oneOf"]
    }
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        validator(schema).validate(fields)
        data = json.loads(fields["data"])
        validator(kinds[fields["event"]]).validate(data)
        events.append((fields["event"], data))
    return events


async def fetch_error(request) -> tuple[int, object, bytes]:
    with pytest.raises(HTTPClientError) as e:
        await request
    return e.value.code, e.value.response.headers, e.value.response.body


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
    return pattern.replace("([^/]+)", "{}").replace("\\.", ".").removesuffix("/?")


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
    fields = [f.name for f in dataclasses.fields(Result) if f.name != "state"]  # opaque, not JSON
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
    assert described | {"error"} == set(records.OUTPUT_TYPES)
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


# -- the served document, real answers -----------------------------------------------------------
@pytest.fixture
def braindrill_config():
    # A small code_bytes for the 413, a small maximum for the 400 naming it.
    # A cap of two sessions for the 429.
    return {
        "LimitsPolicy": {"code_bytes": 4096, "max_timeout_s": 5.0},
        "RestSessionManager": {"max_per_user": 2},
    }


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


@pytest.mark.docker
async def test_languages_and_workers_conform(jp_fetch):
    response = await jp_fetch("lang")
    languages = check_answer("/lang", "get", 200, response.headers, response.body)
    assert {lang["name"] for lang in languages["languages"]} >= {"python", "c"}
    for name in ("python", "PY", "c"):
        response = await jp_fetch("lang", name, "info")
        check_answer("/lang/{language}/info", "get", 200, response.headers, response.body)
    code, headers, body = await fetch_error(jp_fetch("lang", "cobol", "info"))
    assert code == 404
    check_answer("/lang/{language}/info", "get", code, headers, body)
    response = await jp_fetch("braindrill", "workers")
    workers = check_answer("/braindrill/workers", "get", 200, response.headers, response.body)
    assert workers["workers"][0]["name"] == "local"


RUNS = {
    "ok": ("python", {"code": "print('hi')"}),
    "ok-everything": (
        "python",
        {
            "code": "import sys; print(open('d/f.txt').read(), sys.argv[1:], input())",
            "stdin": "typed\n",
            "args": ["-v"],
            "files": {"d/f.txt": "a file"},
            "limits": {"timeout_s": 3, "memory_mib": 128, "cpus": 0.5},
            "interactive": False,
        },
    ),
    "error": ("python", {"code": "import sys; print('x', file=sys.stderr); sys.exit(3)"}),
    "timeout": ("python", {"code": "import time; time.sleep(30)", "limits": {"timeout_s": 1}}),
    "output_limit": ("python", {"code": "print('x' * 5000)", "limits": {"output_bytes": 100}}),
    "compile_error": ("c", {"code": "int main( { return 0; }"}),
    "c-ok": ("c", {"code": '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }'}),
    "cell": (
        "python",
        {
            "code": "from IPython.display import display, HTML, clear_output\n"
            "h = display(HTML('<b>x</b>'), display_id=True)\nh.update(HTML('<i>y</i>'))\n"
            "clear_output(wait=True)\n6 * 7",
            "interactive": True,
        },
    ),
    "cell-error": ("python", {"code": "print(1)\n1 / 0", "interactive": True}),
}
STATUS_OF = {"ok-everything": "ok", "c-ok": "ok", "cell": "ok", "cell-error": "error"}


@pytest.mark.docker
@pytest.mark.parametrize("name", sorted(RUNS))
async def test_results_conform(jp_fetch, name):
    language, request = RUNS[name]
    response = await jp_fetch(
        "lang", language, method="POST", body=json.dumps(request), headers=JSON
    )
    result = check_answer("/lang/{language}", "post", 200, response.headers, response.body)
    assert result["status"] == STATUS_OF.get(name, name), result
    if name == "cell":
        kinds = [o["output_type"] for o in result["outputs"]]
        assert kinds == ["display_data", "update_display_data", "clear_output", "execute_result"]
    if name == "cell-error":
        assert result["error"]["ename"] == "ZeroDivisionError"


@pytest.mark.docker
async def test_text_plain_and_event_stream_answers_conform(jp_fetch):
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)"
    response = await jp_fetch(
        "lang", "python", method="POST", body=code, headers={"Accept": "text/plain"}
    )
    text = check_answer("/lang/{language}", "post", 200, response.headers, response.body)
    assert text == "out\nerr\n"
    assert response.headers["X-Braindrill-Status"] == "error"
    assert response.headers["X-Braindrill-Exit-Code"] == "4"
    request = {
        "code": "from IPython.display import display, Markdown\nprint('a')\n"
        "display(Markdown('*m*'))\n1 / 0",
        "interactive": True,
    }
    response = await jp_fetch(
        "lang",
        "python",
        method="POST",
        body=json.dumps(request),
        headers={**JSON, "Accept": "text/event-stream"},
    )
    events = check_answer("/lang/{language}", "post", 200, response.headers, response.body)
    names = [e for e, _ in events]  # a stream may come in several chunks: each its own event
    assert [n for i, n in enumerate(names) if not i or names[i - 1] != n] == [
        "stdout",
        "display",
        "result",
    ]
    assert "".join(d["text"] for e, d in events if e == "stdout") == "a\n"
    assert events[-1][1]["error"]["ename"] == "ZeroDivisionError"


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


@pytest.mark.docker
@pytest.mark.parametrize("name", sorted(REFUSALS))
async def test_refusals_conform(jp_fetch, name):
    status, language, headers, body = REFUSALS[name]
    code, answer_headers, answer = await fetch_error(
        jp_fetch("lang", language, method="POST", body=body, headers=headers)
    )
    assert code == status, answer
    error = check_answer("/lang/{language}", "post", code, answer_headers, answer)
    assert error["message"]


SESSIONS, SESSION = "/braindrill/sessions", "/braindrill/sessions/{session}"


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


@pytest.mark.docker
async def test_session_results_conform(jp_fetch):
    response = await jp_fetch(
        "braindrill", "sessions", method="POST", body='{"language": "python"}', headers=JSON
    )
    sid = json.loads(response.body)["id"]
    for request in [
        {"code": "x = 6 * 7", "session": sid},
        {"code": "x", "session": sid, "interactive": True, "limits": {"state_mib": 1}},
        {"code": "import time; x = 0; time.sleep(9)", "session": sid, "limits": {"timeout_s": 1}},
    ]:
        response = await jp_fetch(
            "lang", "python", method="POST", body=json.dumps(request), headers=JSON
        )
        result = check_answer("/lang/{language}", "post", 200, response.headers, response.body)
    assert result["status"] == "timeout" and result["state_message"]
    response = await jp_fetch("braindrill", "sessions", sid)
    session = check_answer(SESSION, "get", 200, response.headers, response.body)
    assert session["executions"] == 3 and session["state_bytes"] > 0


# -- schemathesis against a live server ----------------------------------------------------------
FUZZ_TOKEN = "braindrill-fuzz-token"
FUZZ_CONFIG = [
    # Short executions: generated limits cannot be bounded, the operator's maxima can.
    "--LimitsPolicy.timeout_s=2",
    "--LimitsPolicy.max_timeout_s=3",
    "--LimitsPolicy.compile_timeout_s=5",
    "--LimitsPolicy.max_compile_timeout_s=5",
    "--LimitsPolicy.max_memory_mib=256",
    "--LimitsPolicy.max_compile_memory_mib=512",
    "--ExecutionEngine.queue_size=2",
    "--ExecutionEngine.queue_timeout_s=10",
]
FUZZ_LANGUAGES = ("python", "bash", "c")  # real runtimes, beside the generated (unknown) names


def import_schemathesis_now() -> None:
    """Schemathesis imports most of itself on first use, and as a pytest plugin its modules are
    assertion-rewritten (``ast.parse``) by pytest when imported. Done inside a test, while other
    threads of earlier tests run, CPython 3.11 failed that once in CI with "SystemError: AST
    constructor recursion depth mismatch" (python/cpython#106905: the AST converter's depth
    counter is interpreter-wide). So it is done here, at collection, while no other thread runs:
    load this document and build every operation's strategies, as the fuzz test will."""
    import schemathesis.generation.body_overrides  # used only when drawing
    import schemathesis.generation.dictionaries
    import schemathesis.transport.requests  # used only when calling

    config = schemathesis.Config.from_dict({"base-url": "http://127.0.0.1:1"})
    for operation in schemathesis.openapi.from_dict(DOC, config=config).get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            operation.ok().as_strategy(generation_mode=mode)


import_schemathesis_now()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """A real ``jupyter server`` process with Braindrill (schemathesis is synchronous, the
    in-process server of pytest-jupyter runs on the test's loop). Stopped at the end; none of
    its containers may be left."""
    home = tmp_path_factory.mktemp("fuzz-server")
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_DATA_DIR": str(home / "data"),
    }
    argv = [
        *(sys.executable, "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1"),
        *("--ServerApp.open_browser=False", "--ServerApp.allow_root=True"),
        f"--ServerApp.root_dir={home}",
        f"--IdentityProvider.token={FUZZ_TOKEN}",
        *FUZZ_CONFIG,
    ]
    log = open(home / "server.log", "wb")  # closed at teardown
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"

    def up():
        try:
            auth = {"Authorization": f"token {FUZZ_TOKEN}"}
            return requests.get(url + "braindrill/workers", headers=auth, timeout=5).ok
        except requests.ConnectionError:
            return proc.poll() is not None

    try:
        assert eventually_sync(up, 60) and proc.poll() is None, (home / "server.log").read_text()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        assert eventually_sync(lambda: not leftover_containers(pid=proc.pid), 30)
        assert leftover_containers(pid=proc.pid) == []


@pytest.fixture(scope="module")
def api_schema(live_server):
    """The served document, loaded by schemathesis, with the token on every request."""
    config = schemathesis.Config.from_dict(
        {
            "base-url": live_server.rstrip("/"),
            "headers": {"Authorization": f"token {FUZZ_TOKEN}"},
            "request-timeout": 60,
            "generation": {"mode": "all"},
        }
    )
    return schemathesis.openapi.from_url(live_server + "braindrill/openapi.json", config=config)


def not_a_server_error_but_503_with_retry_after(ctx, response, case):
    """Schemathesis' not_a_server_error, but a 503 saying when to come back is an answer."""
    if response.status_code >= 500:
        retry_after = response.headers.get("retry-after", [""])[0]
        assert response.status_code == 503 and retry_after.isdigit(), (
            f"{response.status_code} (Retry-After: {retry_after!r}): {response.text[:500]}"
        )


FUZZ_CHECKS = [
    not_a_server_error_but_503_with_retry_after,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FUZZ_EXAMPLES = 15  # per operation and generation mode


@pytest.mark.docker
@pytest.mark.timeout(600)
def test_fuzz_the_live_server(api_schema):
    """Property-based, from the served document: every operation, positive and negative data.
    A POST mostly goes to a real language (``language``; None keeps the generated name).
    Hypothesis drives schemathesis' strategies directly: its pytest plugin does not run under
    pytest 9 (it reads ``Node._nodeid``, which pytest 9 no longer has)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    calls: collections.Counter = collections.Counter()
    assert {(op.method.upper(), op.path) for op in operations} >= {("POST", "/lang/{language}")}
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(
                case=op.as_strategy(generation_mode=mode),
                language=st.one_of(st.sampled_from(FUZZ_LANGUAGES), st.none()),
            )
            @settings(
                max_examples=FUZZ_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case, language):
                if language is not None and "language" in (case.path_parameters or {}):
                    case.path_parameters["language"] = language
                started = time.monotonic()
                calls[case.method.upper(), case.path] += 1
                case.call_and_validate(checks=FUZZ_CHECKS)
                assert time.monotonic() - started < 60

            call()
    print("schemathesis calls:", dict(calls))
    # Hypothesis stops early only where the inputs run out (a GET without parameters).
    assert calls["POST", "/lang/{language}"] >= 2 * FUZZ_EXAMPLES
