"""Plain helpers shared by the test modules, unit and docker alike (the fixtures are in
``conftest.py``; the worker-host engines in ``hosts.py``; two users and their REST requests in
``rest.py``; the checks of answers against the OpenAPI document in ``openapi.py``). One copy each:
the poll loop, CI detection and the skip-or-fail rule, whether a Docker Engine answers, a free
port, the labelled containers of a process, a kernel's websocket, ``/braindrill/workers``, a
kernel through jupyter_client, and a fake worker host for the engine's pure tests."""

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
from pathlib import Path

import docker
import pytest

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


def warm_for_cells(engine, language: str) -> None:
    """Wait until every host of ``engine`` holds a warm sandbox for ``language``'s cells, as
    when a person types after a cell: a completion right after one would find the pool
    refilling, and a cold python-data sandbox spends ~1.5 s of the completion's ~2 s on its
    imports (more on a slow machine)."""

    def filled():
        pools = [w["pool"] for w in engine.describe_hosts()["workers"]]
        names = (f"{language} (cells)", language)  # containers' cell pool, or runners
        return all(any(p.get(n, {}).get("ready") for n in names) for p in pools)

    assert eventually_sync(filled, TIMEOUT), engine.describe_hosts()


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
