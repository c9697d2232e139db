"""Braindrill kernels inside a real Jupyter server: started through ``/api/kernels``, driven over
the kernel websocket as JupyterLab does, run through the server's one remote kernel manager (the
counts of ``GET /braindrill/workers`` move), interrupt and restart through the REST API, and no
container left behind."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import time
import uuid

import pytest

from .conftest import leftover_containers

pytestmark = pytest.mark.docker
TIMEOUT = 60


@pytest.fixture
def braindrill_config():
    # No warm containers: every container seen belongs to a running cell.
    return {"WarmPools": {"enabled": False}}


def _message(msg_type: str, content: dict, channel: str = "shell") -> dict:
    header = {
        "msg_id": uuid.uuid4().hex,
        "username": "test",
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


async def ws_execute(ws, code: str, on_message=None) -> tuple[dict, list[dict]]:
    """Run a cell over the kernel websocket; returns (execute_reply content, its iopub messages)."""
    msg = _message("execute_request", {"code": code, "silent": False, "stop_on_error": True})
    await ws.write_message(json.dumps(msg))
    msg_id, reply, iopub, idle = msg["header"]["msg_id"], None, [], False
    while reply is None or not idle:
        received = json.loads(await asyncio.wait_for(ws.read_message(), TIMEOUT))
        if received["parent_header"].get("msg_id") != msg_id:
            continue
        if received["channel"] == "shell":
            reply = received["content"]
        elif received["channel"] == "iopub":
            iopub.append(received)
            idle = received["content"].get("execution_state") == "idle"
            if on_message is not None:
                await on_message(received)
    return reply, iopub


def stdout(messages) -> str:
    return "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )


async def completed(jp_fetch) -> int:
    workers = json.loads((await jp_fetch("braindrill", "workers")).body)["workers"]
    return sum(w["completed"] for w in workers)


async def eventually(check, wait_s: float = TIMEOUT):
    """Poll the async ``check`` until it returns something true; returns its last value."""
    deadline = time.monotonic() + wait_s
    for _ in iter(int, 1):
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


async def containers_left() -> list[str]:
    async def none_left():
        return not leftover_containers()

    await eventually(none_left, 15)
    return leftover_containers()


@pytest.fixture
def kernel(jp_fetch, jp_ws_fetch):
    """Start a braindrill-python kernel through the REST API, as an async context manager
    giving (kernel id, websocket); it is deleted at the end and no container may be left."""

    @contextlib.asynccontextmanager
    async def kernel():
        body = json.dumps({"name": "braindrill-python"})
        response = await jp_fetch("api", "kernels", method="POST", body=body)
        kernel_id = json.loads(response.body)["id"]
        ws = await jp_ws_fetch("api", "kernels", kernel_id, "channels")
        try:
            yield kernel_id, ws
        finally:
            ws.close()
            await jp_fetch("api", "kernels", kernel_id, method="DELETE")
        assert await containers_left() == []

    return kernel


async def test_api_kernel_runs_through_the_servers_manager(jp_fetch, jp_serverapp, kernel):
    async with kernel() as (kernel_id, ws):
        before = await completed(jp_fetch)
        reply, messages = await ws_execute(ws, "print('hi from the server')")
        assert reply["status"] == "ok" and stdout(messages) == "hi from the server\n"

        async def counted():
            return await completed(jp_fetch) == before + 1

        assert await eventually(counted)  # counted by the server's manager
        km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
        assert km.provisioner.kernel.engine is jp_serverapp.web_app.settings["braindrill_engine"]
        assert km.provisioner.kernel_loop.loop is asyncio.get_running_loop()  # the server's
        assert not hasattr(km.provisioner, "process")  # no child process


async def test_kernel_info_over_the_websocket(kernel):
    async with kernel() as (_, ws):
        msg = _message("kernel_info_request", {})
        await ws.write_message(json.dumps(msg))
        while True:
            received = json.loads(await asyncio.wait_for(ws.read_message(), TIMEOUT))
            if received["msg_type"] == "kernel_info_reply":
                break
        info = received["content"]
        assert info["language_info"]["name"] == "python"
        assert info["language_info"]["version"][0].isdigit()
        assert "fresh" in info["banner"]


async def test_rest_interrupt_kills_the_running_cell(jp_fetch, kernel):
    async with kernel() as (kernel_id, ws):
        interrupted = []

        async def interrupt_once_started(message):
            if message["msg_type"] == "stream" and "started" in message["content"]["text"]:
                await jp_fetch("api", "kernels", kernel_id, "interrupt", method="POST", body="")
                interrupted.append(True)

        code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
        reply, _ = await ws_execute(ws, code, interrupt_once_started)
        assert interrupted and reply["status"] == "error" and reply["ename"] == "interrupted"
        assert leftover_containers() == []  # removed before the reply was sent


async def test_rest_restart_mid_cell(jp_fetch, kernel):
    async with kernel() as (kernel_id, ws):
        code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
        await ws.write_message(json.dumps(_message("execute_request", {"code": code})))
        while True:  # restart once the cell runs in its container
            received = json.loads(await asyncio.wait_for(ws.read_message(), TIMEOUT))
            if received["msg_type"] == "stream" and "started" in received["content"]["text"]:
                break
        assert leftover_containers()
        await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="")
        assert await containers_left() == []
        reply, messages = await ws_execute(ws, "print('after restart')")
        assert reply["execution_count"] == 1 and stdout(messages) == "after restart\n"
