"""Slot runners on the local engine talk to the server over a socket of their own
(``sandbox/channel.py``) instead of Docker's attach stream: what goes through it (large states
both ways, outputs, stops), that no sandbox can see or reach it, that nothing of it is left, and
that a runner which cannot reach it keeps the attach stream (the host then stops trying). The
listener's refusals of a wrong token: tests/unit/sandbox/test_channel.py."""

from __future__ import annotations

import json
import os
import tempfile

import pytest

from braindrill_ext.sandbox import channel
from tests.helpers import eventually, workers

# What a cell can find of the channel: its mount, a connect to its path, a socket held by any
# process the sandbox can see.
LOOK = """
import os, socket
print(sorted(os.listdir("/run/braindrill")) if os.path.isdir("/run/braindrill") else "no dir")
s = socket.socket(socket.AF_UNIX)
try:
    s.connect("/run/braindrill/channel")
    print("connected")
except OSError as e:
    print("refused", type(e).__name__)
s.close()
links = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
print([link for link in links if link.startswith("socket:")])
"""


@pytest.fixture
def sandbox_kind():
    return "nested"


@pytest.fixture
def braindrill_config():
    return {"ExecutionEngine": {"slots": 1}}


def runners(engine):
    """The runners waiting in the local host's pools."""
    return [r for pool in engine.host_pools["local"].pools.values() for r, _ in pool.ready]


async def session(jp_fetch, run):
    response = await jp_fetch(
        "braindrill", "sessions", method="POST", body=json.dumps({"language": "python"})
    )
    return json.loads(response.body)["id"]


async def test_runners_use_the_channel(jp_fetch, run, engine):
    """The local host's runners are on the channel; a session's 12 MiB state goes in and out
    through it, output and a timeout's stop too; a cell finds no socket, and no file is left of
    the listener once the runner is on it."""
    sid = await session(jp_fetch, run)
    code = "import os\nblob = os.urandom(12 << 20)\nprint(len(blob))"
    first = await run("python", code=code, session=sid, limits={"state_mib": 64})
    assert first["status"] == "ok" and first["stdout"] == f"{12 << 20}\n", first
    pooled = await eventually(lambda: runners(engine))  # back in its pool after its check
    host = (await workers(jp_fetch))["local"]
    assert host["channel"] == "socket", host
    assert pooled and all(runner.on_channel for runner in pooled), pooled
    again = await run("python", code="print(len(blob), blob[:4].hex() != '')", session=sid)
    assert again["status"] == "ok" and again["stdout"] == f"{12 << 20} True\n", again
    flood = await run("python", code="print('x' * (3 << 20))")
    assert flood["status"] == "output_limit", flood
    stopped = await run("python", code="while True: pass", limits={"timeout_s": 1})
    assert stopped["status"] == "timeout", stopped
    look = await run("python", code=LOOK)
    assert look["status"] == "ok", look
    lines = look["stdout"].splitlines()
    assert lines[0] == "[]", lines  # the mount is empty: the socket's path is gone
    assert lines[1].startswith("refused"), lines
    assert lines[2] == "[]", lines  # no process of the sandbox holds a socket
    assert channel._base is None  # no listener left on disk, nor the server's directory


@pytest.fixture
def elsewhere(monkeypatch):
    """Runners whose mount is not their listener's directory: as when the engine's files are
    not the server's (a server in a container talking to its host's engine)."""
    empty = tempfile.mkdtemp()
    os.chmod(empty, 0o755)
    monkeypatch.setattr(channel.Listener, "bind", lambda self: {empty: {"bind": channel.MOUNT}})
    yield
    os.rmdir(empty)


async def test_a_runner_that_cannot_reach_it_keeps_the_attach_stream(elsewhere, run, engine):
    """The runner says why on the attach stream and works through it; the host stops trying."""
    result = await run("python", code="print(6 * 7)")
    assert result["status"] == "ok" and result["stdout"] == "42\n", result
    host = engine.workers[0]
    assert not host.channel and "could not reach" in host.channel_off, host.channel_off
    assert host.status()["channel"] == host.channel_off
    pooled = await eventually(lambda: runners(engine))
    assert pooled and not any(runner.on_channel for runner in pooled), pooled
    again = await run("python", code="print(7 * 6)")
    assert again["stdout"] == "42\n", again
    assert channel._base is None
