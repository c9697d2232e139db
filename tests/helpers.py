"""Plain helpers shared by the test modules, unit and docker alike (the fixtures are in
``conftest.py``; the worker-host engines in ``hosts.py``). One copy each: the poll loop, CI
detection and the skip-or-fail rule, whether a Docker Engine answers, a free port, the labelled
containers of a process, a kernel's websocket, ``/braindrill/workers``, a fake worker host for the
engine's pure tests, the requests of REST sessions, and the checks of answers against the OpenAPI
document."""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import docker
import pytest
from jsonschema import Draft202012Validator
from jupyter_server.auth.identity import IdentityProvider, User
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from tornado.httpclient import HTTPClientError

from braindrill_ext.sandbox.protocol import OWNER, POOLED

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TIMEOUT = 60  # the longest wait for one message or one condition
TESTS = Path(__file__).resolve().parent  # tests/ (its notebooks/ data)
ROOT = TESTS.parent  # the checkout


# -- what a test needs ---------------------------------------------------------------------------
def require(problem: str | None) -> None:
    """Nothing when ``problem`` is None; else skip the test locally and FAIL it under CI=true, so
    that a broken CI machine cannot pass by skipping. ``problem`` says what is missing."""
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true and this test cannot run: {problem}", pytrace=False)
    pytest.skip(problem)


_DOCKER_PROBLEM: list = []


def docker_problem() -> str | None:
    """Why no Docker Engine can be used (asked once per session), or None. A missing image fails
    its test with a 503 naming `braindrill-images prepare`."""
    if not _DOCKER_PROBLEM:
        try:
            client = docker.from_env(timeout=10)
            client.ping()
        except Exception as e:
            _DOCKER_PROBLEM.append(f"no Docker Engine answers: {e}")
        else:
            client.close()
            _DOCKER_PROBLEM.append(None)
    return _DOCKER_PROBLEM[0]


KINDS = ("container", "nested")  # the two kinds; `auto` (the default) picks one of them


@pytest.fixture(params=KINDS)
def sandbox_kinds(request):
    """In a module, ``sandbox_kind = sandbox_kinds`` runs each of its tests (with a test server)
    once per sandbox kind: a fresh container per execution, and slot runners."""
    return request.param


@pytest.fixture(scope="module", params=KINDS)
def embedded_sandboxes(request):
    """In a module of kernels started with jupyter_client, ``embedded_sandbox =
    embedded_sandboxes`` runs its tests once per sandbox kind of the process's embedded engine."""
    return request.param


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- waiting for a condition ---------------------------------------------------------------------
def eventually_sync(check, timeout_s: float = TIMEOUT, every_s: float = 0.2):
    """Call ``check()`` until it returns something true, at most ``timeout_s`` (once more after
    the deadline); returns its last value, so that the caller asserts it: ``assert
    eventually_sync(lambda: ...)``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


async def eventually(check, timeout_s: float = TIMEOUT, every_s: float = 0.2):
    """``eventually_sync`` on the event loop: ``check()`` may return a value or an awaitable."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(every_s)


# -- containers ----------------------------------------------------------------------------------
def labelled_containers(pid: int | None = None) -> list[dict]:
    """The containers (Docker's list entries) that process ``pid`` (default: this one) made."""
    client = docker.from_env()
    try:
        containers = client.api.containers(all=True, filters={"label": OWNER})
    finally:
        client.close()
    owned = f":{pid or os.getpid()}:"
    return [c for c in containers if owned in c["Labels"][OWNER]]


def leftover_containers(include_pooled: bool = True, pid: int | None = None) -> list[str]:
    """Short ids of the labelled containers that process ``pid`` (default: this test process)
    created and that still exist (with or without the warm containers a running server
    legitimately keeps)."""
    return [
        c["Id"][:12]
        for c in labelled_containers(pid)
        if include_pooled or c["Labels"].get(POOLED) != "1"
    ]


def containers_left(wait_s: float = 15.0, include_pooled: bool = True) -> list[str]:
    """This process's containers still there after ``wait_s`` (the engine removes a finished
    cell's container just after returning its result; an interrupted one before)."""
    eventually_sync(lambda: not leftover_containers(include_pooled), wait_s)
    return leftover_containers(include_pooled)


async def containers_left_async(wait_s: float = 15.0) -> list[str]:
    """``containers_left`` for a test on the server's own event loop (which must go on running
    to remove them)."""
    await eventually(lambda: not leftover_containers(), wait_s)
    return leftover_containers()


# -- GET /braindrill/workers ---------------------------------------------------------------------
async def workers(jp_fetch) -> dict[str, dict]:
    """The worker hosts of ``GET /braindrill/workers``, by name, in the server's order."""
    response = await jp_fetch("braindrill", "workers")
    return {w["name"]: w for w in json.loads(response.body)["workers"]}


# -- a kernel over its websocket (as JupyterLab drives it) ---------------------------------------
def kernel_message(
    msg_type: str, content: dict, channel: str = "shell", username: str = "test"
) -> dict:
    """A Jupyter message for the kernel websocket's JSON protocol, from client ``username``."""
    header = {
        "msg_id": uuid.uuid4().hex,
        "username": username,
        "session": uuid.uuid4().hex,
        "msg_type": msg_type,
        "version": "5.3",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    return {
        "header": header,
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": channel,
        "buffers": [],
    }


async def ws_receive(ws) -> dict:
    """The next message from a kernel websocket."""
    raw = await asyncio.wait_for(ws.read_message(), TIMEOUT)
    assert raw is not None, "the kernel websocket closed"
    return json.loads(raw)


async def ws_execute_timed(ws, code: str, on_message=None, username: str = "test"):
    """Run a cell over the kernel websocket. Returns (execute_reply content, the time it arrived,
    [(arrival time, iopub message)]); ``on_message`` is awaited for each iopub message."""
    content = {"code": code, "silent": False, "stop_on_error": True}
    msg = kernel_message("execute_request", content, username=username)
    await ws.write_message(json.dumps(msg))
    msg_id, reply, reply_at, iopub, idle = msg["header"]["msg_id"], None, None, [], False
    while reply is None or not idle:
        received = await ws_receive(ws)
        at = time.monotonic()
        if received["parent_header"].get("msg_id") != msg_id:
            continue
        if received["channel"] == "shell":
            reply, reply_at = received["content"], at
        elif received["channel"] == "iopub":
            iopub.append((at, received))
            idle = received["content"].get("execution_state") == "idle"
            if on_message is not None:
                await on_message(received)
    return reply, reply_at, iopub


async def ws_execute(
    ws, code: str, on_message=None, username: str = "test"
) -> tuple[dict, list[dict]]:
    """Run a cell over the kernel websocket; returns (execute_reply content, its iopub messages)."""
    reply, _, iopub = await ws_execute_timed(ws, code, on_message, username)
    return reply, [m for _, m in iopub]


async def ws_wait_for_output(ws, text: str) -> None:
    """Read the websocket until a stream message contains ``text`` (a cell has started)."""
    while True:
        received = await ws_receive(ws)
        if received["msg_type"] == "stream" and text in received["content"]["text"]:
            return


def stream_text(messages, name: str = "stdout") -> str:
    """The text of the ``name`` stream messages among ``messages`` (iopub, any transport)."""
    return "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == name
    )


# -- a kernel through jupyter_client (a script's BlockingKernelClient) ---------------------------
def execute_cell(kc, code: str, timeout: float = TIMEOUT, **kwargs) -> tuple[dict, list[dict]]:
    """Run one cell on a jupyter_client kernel client; returns (execute_reply content, the
    cell's iopub messages)."""
    messages = []
    reply = kc.execute_interactive(
        code, output_hook=messages.append, timeout=timeout, allow_stdin=False, **kwargs
    )
    return reply["content"], messages


def result_text(messages) -> str | None:
    """The text/plain of the cell's ``execute_result`` among ``messages`` (None without one)."""
    results = [m["content"] for m in messages if m["msg_type"] == "execute_result"]
    assert len(results) <= 1, results
    return results[0]["data"]["text/plain"] if results else None


def wait_for_stream(kc, text: str, timeout: float = TIMEOUT) -> None:
    """Read a jupyter_client kernel client's iopub until a stream message contains ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["msg_type"] == "stream" and text in msg["content"]["text"]:
            return
    raise AssertionError(f"no output {text!r} within {timeout} s")


# -- two users ---------------------------------------------------------------------------------
TOKENS = {"alice-token": "alice", "bob-token": "bob"}


class TwoUsers(IdentityProvider):
    """Two users, each with a token of their own (as a multi-user deployment has): a test
    server's ``ServerApp.identity_provider_class``."""

    def get_user_token(self, handler):
        token = handler.request.headers.get("Authorization", "").removeprefix("token ").strip()
        name = TOKENS.get(token)
        return User(username=name) if name else None


def as_user(name: str) -> dict:
    """The headers of a request by ``name``, one of the ``TwoUsers``."""
    token = next(t for t, user in TOKENS.items() if user == name)
    return {"Authorization": f"token {token}"}


# -- a fake worker host (the scheduler's and the pools' pure tests) ------------------------------
@dataclass
class FakeHost:
    """What the scheduler and a host's warm pool read of a ``WorkerHost``."""

    name: str
    slots: int
    running: int = 0
    schedulable: bool = True
    last_error: str | None = None
    memory_mib: int | None = None
    reserved_mib: int = 0
    completed: int = 0

    @property
    def memory_free_mib(self) -> float:
        return float("inf") if self.memory_mib is None else self.memory_mib - self.reserved_mib

    def fits(self, memory_mib: float) -> bool:
        return self.memory_mib is None or memory_mib <= self.memory_mib


# -- hello world in the languages of POST /lang (REST) ------------------------------------------
HELLO = {
    "python": ('print("drill my brain")', "drill my brain\n"),
    "javascript": ('console.log("drill my brain")', "drill my brain\n"),
    "java": (
        "public class Anything { public static void main(String[] a) {"
        ' System.out.println("drill my brain"); } }',
        "drill my brain\n",
    ),
    "ruby": ('puts "drill my brain"', "drill my brain\n"),
    "perl": ('print "drill my brain\\n";', "drill my brain\n"),
    "php": ('<?php echo "drill my brain\\n";', "drill my brain\n"),
}


# -- REST sessions, as one of the TwoUsers ---------------------------------------------------------
# Spread into each request's headers, never given as they are: jp_fetch adds the server's token to
# the dict it is given (a module's own JSON headers are its own).
_JSON = {"Content-Type": "application/json"}


async def create_session(jp_fetch, user: str, language: str = "python") -> dict:
    """POST /braindrill/sessions; returns the new session (201)."""
    response = await jp_fetch(
        "braindrill",
        "sessions",
        method="POST",
        body=json.dumps({"language": language}),
        headers={**as_user(user), **_JSON},
    )
    assert response.code == 201
    session = json.loads(response.body)
    assert response.headers["Location"].endswith(f"/braindrill/sessions/{session['id']}")
    return session


async def show_session(jp_fetch, user: str, session_id: str) -> dict:
    response = await jp_fetch("braindrill", "sessions", session_id, headers=as_user(user))
    return json.loads(response.body)


async def list_sessions(jp_fetch, user: str) -> list[dict]:
    response = await jp_fetch("braindrill", "sessions", headers=as_user(user))
    return json.loads(response.body)["sessions"]


async def delete_session(jp_fetch, user: str, session_id: str):
    response = await jp_fetch(
        "braindrill", "sessions", session_id, method="DELETE", headers=as_user(user)
    )
    assert response.code == 204
    assert response.body == b""


async def run_as(jp_fetch, user: str, language: str, code: str, headers=None, **fields) -> dict:
    """POST /lang/<language> with a JSON body, as ``user``; returns the Result (200)."""
    response = await jp_fetch(
        "lang",
        language,
        method="POST",
        body=json.dumps({"code": code, **fields}),
        headers={**as_user(user), **_JSON, **(headers or {})},
        request_timeout=60,
    )
    assert response.code == 200
    return json.loads(response.body)


async def refused(request) -> tuple[int, str]:
    """The status and message of a refused request."""
    with pytest.raises(HTTPClientError) as e:
        await request
    return e.value.code, json.loads(e.value.response.body)["message"]


def utc(text: str) -> datetime.datetime:
    """An ISO 8601 time of the API (``...Z``) as an aware datetime."""
    assert text.endswith("Z"), text
    return datetime.datetime.fromisoformat(text.removesuffix("Z") + "+00:00")


# -- the OpenAPI document (braindrill_ext/api/openapi.json) ----------------------------------------
DOC = json.loads(files("braindrill_ext.api").joinpath("openapi.json").read_text())
SCHEMAS = DOC["components"]["schemas"]
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SESSIONS, SESSION = "/braindrill/sessions", "/braindrill/sessions/{session}"
# A small code_bytes for the 413, a small maximum for the 400 naming it, a cap of two sessions for
# the 429: the test server of the modules that check answers against the document.
OPENAPI_SERVER_CONFIG = {
    "LimitsPolicy": {"code_bytes": 4096, "max_timeout_s": 5.0},
    "RestSessionManager": {"max_per_user": 2},
}
_URI = "urn:braindrill:openapi"
_REGISTRY = Registry().with_resource(_URI, Resource.from_contents(DOC, DRAFT202012))


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
    return Draft202012Validator(_anchored(schema), registry=_REGISTRY)


def _anchored(node):
    if isinstance(node, dict):
        return {
            k: _URI + v if k == "$ref" and v.startswith("#") else _anchored(v)
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
    """The status, headers and body of a refused request."""
    with pytest.raises(HTTPClientError) as e:
        await request
    return e.value.code, e.value.response.headers, e.value.response.body
