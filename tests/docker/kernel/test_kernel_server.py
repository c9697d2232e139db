"""Braindrill kernels inside a real Jupyter server: started through ``/api/kernels``, driven over
the kernel websocket as JupyterLab does, run through the server's one remote kernel manager (the
counts of ``GET /braindrill/workers`` move), interrupt and restart through the REST API, and no
container left behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import pytest

from tests.helpers import (
    containers_left_async,
    eventually,
    kernel_message,
    leftover_containers,
    stream_text,
    workers,
    ws_execute,
    ws_receive,
    ws_wait_for_output,
)


@pytest.fixture
def braindrill_config():
    # No warm containers: every container seen belongs to a running cell.
    return {"WarmPools": {"enabled": False}}


async def completed(jp_fetch) -> int:
    return sum(w["completed"] for w in (await workers(jp_fetch)).values())


@pytest.fixture
def kernel(jp_fetch, jp_ws_fetch):
    """Start a braindrill-python kernel through the REST API (``fields``: more of the request's
    body), as an async context manager giving (kernel id, websocket); it is deleted at the end
    and no container may be left."""

    @contextlib.asynccontextmanager
    async def kernel(**fields):
        body = json.dumps({"name": "braindrill-python", **fields})
        response = await jp_fetch("api", "kernels", method="POST", body=body)
        kernel_id = json.loads(response.body)["id"]
        ws = await jp_ws_fetch("api", "kernels", kernel_id, "channels")
        try:
            yield kernel_id, ws
        finally:
            ws.close()
            await jp_fetch("api", "kernels", kernel_id, method="DELETE")
        assert await containers_left_async() == []

    return kernel


async def test_api_kernel_runs_through_the_servers_manager(jp_fetch, jp_serverapp, kernel):
    async with kernel() as (kernel_id, ws):
        before = await completed(jp_fetch)
        reply, messages = await ws_execute(ws, "print('hi from the server')")
        assert reply["status"] == "ok" and stream_text(messages) == "hi from the server\n"

        async def counted():
            return await completed(jp_fetch) == before + 1

        assert await eventually(counted)  # counted by the server's manager
        km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
        assert km.provisioner.kernel.engine is jp_serverapp.web_app.settings["braindrill_engine"]
        assert km.provisioner.kernel_loop.loop is asyncio.get_running_loop()  # the server's
        assert not hasattr(km.provisioner, "process")  # no child process


async def test_kernel_info_over_the_websocket(kernel):
    async with kernel() as (_, ws):
        msg = kernel_message("kernel_info_request", {})
        await ws.write_message(json.dumps(msg))
        while True:
            received = await ws_receive(ws)
            if received["msg_type"] == "kernel_info_reply":
                break
        info = received["content"]
        assert info["language_info"]["name"] == "python"
        assert info["language_info"]["version"][0].isdigit()
        assert "fresh" in info["banner"]


async def test_rest_interrupt_stops_the_running_cell(jp_fetch, kernel):
    async with kernel() as (kernel_id, ws):
        interrupted = []

        async def interrupt_once_started(message):
            if message["msg_type"] == "stream" and "started" in message["content"]["text"]:
                await jp_fetch("api", "kernels", kernel_id, "interrupt", method="POST", body="")
                interrupted.append(True)

        code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
        reply, _ = await ws_execute(ws, code, interrupt_once_started)
        assert interrupted and reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
        assert await containers_left_async() == []


async def test_rest_restart_mid_cell(jp_fetch, kernel):
    async with kernel() as (kernel_id, ws):
        code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
        await ws.write_message(json.dumps(kernel_message("execute_request", {"code": code})))
        await ws_wait_for_output(ws, "started")  # restart once the cell runs in its container
        assert leftover_containers()
        await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="")
        assert await containers_left_async() == []
        reply, messages = await ws_execute(ws, "print('after restart')")
        assert reply["execution_count"] == 1 and stream_text(messages) == "after restart\n"


async def test_a_notebooks_kernel_works_in_the_notebooks_folder(jp_fetch, jp_ws_fetch, jp_root_dir):
    """A notebook opened in JupyterLab (a session with its path): its cells see the files next
    to it, and a file a cell writes appears there, in the file browser's listing."""
    (jp_root_dir / "project").mkdir()
    (jp_root_dir / "project" / "data.csv").write_text("x\n1\n")
    (jp_root_dir / "elsewhere.txt").write_text("not the notebook's")
    body = {
        "path": "project/analysis.ipynb",
        "type": "notebook",
        "kernel": {"name": "braindrill-python"},
    }
    response = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    session = json.loads(response.body)
    kernel_id = session["kernel"]["id"]
    ws = await jp_ws_fetch("api", "kernels", kernel_id, "channels")
    try:
        code = "import os\nprint(open('data.csv').read(), os.path.exists('elsewhere.txt'))\n"
        code += "open('result.txt', 'w').write('done')"
        reply, messages = await ws_execute(ws, code)
        assert reply["status"] == "ok" and stream_text(messages) == "x\n1\n False\n", messages
        listing = await jp_fetch("api", "contents", "project")
        names = {item["name"] for item in json.loads(listing.body)["content"]}
        assert "result.txt" in names
        assert (jp_root_dir / "project" / "result.txt").read_text() == "done"
    finally:
        ws.close()
        await jp_fetch("api", "sessions", session["id"], method="DELETE")
    assert await containers_left_async() == []


async def test_a_clients_working_dir_is_never_trusted(kernel, tmp_path):
    """Over a gateway a client sends KERNEL_WORKING_DIR, a path of its own machine: it is not
    a folder of this server's, and no cell reads or writes there."""
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "secret.txt").write_text("secret")
    async with kernel(env={"KERNEL_WORKING_DIR": str(tmp_path / "private")}) as (_, ws):
        code = "import os\nprint(sorted(n for n in os.listdir('.') if not n.startswith('.')))\n"
        code += "open('planted.txt', 'w').write('x')"
        reply, messages = await ws_execute(ws, code)
        assert reply["status"] == "ok" and stream_text(messages) == "['main.py']\n", messages
    assert sorted(os.listdir(tmp_path / "private")) == ["secret.txt"]
