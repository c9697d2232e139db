"""Kernel gateway mode: a plain Jupyter Server started with ``--gateway-url`` pointing at a
Braindrill server (two real server processes) lists the Braindrill kernels, starts one, runs cells
with streamed output, interrupts, restarts and shuts it down. Every request goes to the SECOND
(gateway-client) server only, as a JupyterLab user's browser would; containers are made by the
Braindrill subprocess, so they are found by its pid in their ``braindrill.owner`` label."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from tests.helpers import (
    TIMEOUT,
    eventually,
    eventually_sync,
    free_port,
    kernel_message,
    leftover_containers,
    ws_execute_timed,
    ws_wait_for_output,
)

pytestmark = pytest.mark.timeout(120)
BRAINDRILL_TOKEN = "braindrill-gateway-token"
LAB_TOKEN = "lab-token"


@dataclass
class Server:
    name: str
    url: str
    token: str
    process: subprocess.Popen
    log: Path

    def logs(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} server log (last {lines} lines) ---\n" + "\n".join(text)


def _start_server(name: str, base: Path, token: str, *args: str, config: dict | None = None):
    """``jupyter server`` as a subprocess (``python -m jupyter_server``: its pid is the server's,
    the one in the containers' owner label), with its own config, data and runtime dirs; returns
    once ``GET /api/status`` answers with the token."""
    port = free_port()
    home = base / name
    for sub in ("config", "data", "runtime", "root"):
        (home / sub).mkdir(parents=True)
    if config:
        (home / "config" / "jupyter_server_config.json").write_text(json.dumps(config))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    log = home / "server.log"
    argv = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--ServerApp.open_browser=False",
        "--allow-root",
        f"--ServerApp.root_dir={home / 'root'}",
        *args,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, f"http://127.0.0.1:{port}", token, process, log)

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{name} server exited ({process.returncode})\n{server.logs()}")
        try:
            status = requests.get(
                f"{server.url}/api/status", headers=_auth(token), timeout=2, proxies={}
            )
        except requests.ConnectionError:
            return False
        return status.status_code == 200

    if not eventually_sync(up, 60):
        _stop(server)
        raise RuntimeError(f"{name} server not ready in 60 s\n{server.logs()}")
    return server


def _stop(server: Server) -> int:
    """SIGTERM (a clean shutdown: its kernels shut down), SIGKILL if it takes over 30 s; returns
    the exit code (killed: the negative signal)."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(10)
    return server.process.returncode


def _auth(token: str) -> dict:
    return {"Authorization": f"token {token}"}


def containers_of(pid: int) -> list[str]:
    """The Braindrill containers (any state) that process ``pid`` made: their ``braindrill.owner``
    label is ``<master id>:<pid>:<nonce>``."""
    return leftover_containers(pid=pid)


@dataclass
class Servers:
    braindrill: Server
    lab: Server  # the plain Jupyter Server in gateway mode


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    base = tmp_path_factory.mktemp("gateway")
    braindrill = _start_server(
        "braindrill",
        base,
        BRAINDRILL_TOKEN,
        "--WarmPools.enabled=False",  # lean: every container seen belongs to a running cell
    )
    lab = None
    try:
        lab = _start_server(
            "lab",
            base,
            LAB_TOKEN,
            f"--gateway-url={braindrill.url}",
            f"--GatewayClient.auth_token={BRAINDRILL_TOKEN}",
            # a plain Jupyter Server: Braindrill is installed in this environment, not wanted here
            config={"ServerApp": {"jpserver_extensions": {"braindrill_ext": False}}},
        )
        yield Servers(braindrill, lab)
    finally:
        codes = {s.name: (_stop(s), s) for s in (lab, braindrill) if s is not None}
        for name, (code, server) in codes.items():
            print(server.logs(40))
            assert code in (0, -signal.SIGTERM), f"{name} server exited with {code}"
        assert containers_of(braindrill.process.pid) == []


async def api(server: Server, path: str, method: str = "GET", body: dict | None = None):
    """A REST call with the server's token; returns (status code, decoded JSON or None)."""
    request = HTTPRequest(
        f"{server.url}/{path}",
        method=method,
        headers={**_auth(server.token), "Content-Type": "application/json"},
        body=None if body is None and method in ("GET", "DELETE") else json.dumps(body or {}),
        request_timeout=TIMEOUT,
    )
    response = await AsyncHTTPClient().fetch(request, raise_error=False)
    is_json = response.headers.get("Content-Type", "").startswith("application/json")
    decoded = json.loads(response.body) if response.body and is_json else None
    return response.code, decoded


def streams(iopub) -> list[tuple[float, str]]:
    return [(at, m["content"]["text"]) for at, m in iopub if m["msg_type"] == "stream"]


async def kernel_ids(server: Server) -> set[str]:
    code, kernels = await api(server, "api/kernels")
    assert code == 200
    return {k["id"] for k in kernels}


async def assert_gone(servers, lab, kernel_id: str) -> None:
    """The kernel is gone from both servers, and so are its containers."""
    assert kernel_id not in await kernel_ids(lab)
    assert kernel_id not in await kernel_ids(servers.braindrill)
    pid = servers.braindrill.process.pid
    assert await eventually(lambda: not containers_of(pid), 15), containers_of(pid)


@pytest.fixture
def kernel(servers):
    """Start braindrill-python through the gateway server, as an async context manager giving
    (kernel id, websocket); on leaving it the kernel is deleted (again through the gateway) and
    must be gone from both servers, with no container left."""

    @contextlib.asynccontextmanager
    async def kernel():
        lab = servers.lab
        code, model = await api(lab, "api/kernels", "POST", {"name": "braindrill-python"})
        assert code == 201, (model, lab.logs())
        kernel_id = model["id"]
        ws_url = lab.url.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels"
        request = HTTPRequest(ws_url, headers=_auth(lab.token), request_timeout=TIMEOUT)
        ws = await websocket_connect(request)
        try:
            yield kernel_id, ws
        finally:
            ws.close()
            code, _ = await api(lab, f"api/kernels/{kernel_id}", "DELETE")
            assert code == 204, lab.logs()
        await assert_gone(servers, lab, kernel_id)

    return kernel


async def test_gateway_lists_the_braindrill_kernelspecs(servers):
    code, _ = await api(servers.lab, "braindrill/workers")
    assert code == 404  # a plain Jupyter Server: no Braindrill extension of its own
    code, specs = await api(servers.lab, "api/kernelspecs")
    assert code == 200
    names = set(specs["kernelspecs"])
    assert {"braindrill-python", "braindrill-javascript"} <= names, names
    python = specs["kernelspecs"]["braindrill-python"]["spec"]
    assert python["language"] == "python" and "Braindrill" in python["display_name"]


async def test_cells_stream_through_the_gateway(servers, kernel):
    async with kernel() as (kernel_id, ws):
        assert kernel_id in await kernel_ids(servers.braindrill)  # the kernel lives there
        code = "for i in range(3): print(i, flush=True); import time; time.sleep(0.5)"
        reply, reply_at, iopub = await ws_execute_timed(ws, code)
        assert reply["status"] == "ok", reply
        out = streams(iopub)
        assert "".join(text for _, text in out) == "0\n1\n2\n"
        early = [at for at, _ in out if at < reply_at]
        # streamed, not buffered: several chunks, the first ~1.5 s before the reply
        assert len(early) >= 2, out
        assert reply_at - early[0] > 0.8, (reply_at, out)
        assert early[-1] - early[0] > 0.4, out


async def test_interrupt_through_the_gateway(servers, kernel):
    async with kernel() as (kernel_id, ws):
        interrupted = []

        async def interrupt_once_running(message):
            if message["msg_type"] == "stream" and "started" in message["content"]["text"]:
                await asyncio.sleep(1)
                code, _ = await api(servers.lab, f"api/kernels/{kernel_id}/interrupt", "POST")
                assert code == 204, servers.lab.logs()
                interrupted.append(time.monotonic())

        code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
        reply, reply_at, _ = await ws_execute_timed(ws, code, interrupt_once_running)
        assert interrupted, reply
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
        assert reply_at - interrupted[0] < 5  # at once, not when the 60 s sleep ends


async def test_restart_through_the_gateway(servers, kernel):
    async with kernel() as (kernel_id, ws):
        reply, _, _ = await ws_execute_timed(ws, "print('before')")
        assert reply["status"] == "ok" and reply["execution_count"] == 1
        # restart while a cell runs (what a stuck notebook's user does): its container goes
        code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
        await ws.write_message(json.dumps(kernel_message("execute_request", {"code": code})))
        await ws_wait_for_output(ws, "started")
        pid = servers.braindrill.process.pid
        assert containers_of(pid)
        code, model = await api(servers.lab, f"api/kernels/{kernel_id}/restart", "POST")
        assert code == 200 and model["id"] == kernel_id, (model, servers.lab.logs())
        assert await eventually(lambda: not containers_of(pid), 15), containers_of(pid)
        reply, _, iopub = await ws_execute_timed(ws, "print('after restart')")
        assert reply["status"] == "ok", reply
        assert reply["execution_count"] == 1  # a new kernel: the count starts again
        assert "".join(text for _, text in streams(iopub)) == "after restart\n"


async def test_notebook_session_through_the_gateway(servers):
    """What JupyterLab does on opening a notebook: POST /api/sessions, then the kernel's
    websocket with the session id; closing it deletes the session and with it the kernel."""
    lab = servers.lab
    body = {"path": "gw.ipynb", "type": "notebook", "kernel": {"name": "braindrill-python"}}
    code, session = await api(lab, "api/sessions", "POST", body)
    assert code == 201, (session, lab.logs())
    kernel_id = session["kernel"]["id"]
    assert kernel_id in await kernel_ids(servers.braindrill)
    ws_url = lab.url.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels"
    ws_url += f"?session_id={session['id']}"
    ws = await websocket_connect(
        HTTPRequest(ws_url, headers=_auth(lab.token), request_timeout=TIMEOUT)
    )
    try:
        reply, _, iopub = await ws_execute_timed(ws, "print('in a notebook')")
        assert reply["status"] == "ok", reply
        assert "".join(text for _, text in streams(iopub)) == "in a notebook\n"
    finally:
        ws.close()
        code, _ = await api(lab, f"api/sessions/{session['id']}", "DELETE")
    assert code == 204, lab.logs()
    await assert_gone(servers, lab, kernel_id)
