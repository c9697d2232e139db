"""Hostile code is contained: each case gets a clear status and the host is unaffected."""

from __future__ import annotations

import os
import time

import docker
import pytest

from braindrill_ext.engine import ExecutionEngine
from braindrill_ext.execution import Execution, Limits
from braindrill_ext.protocol import LABEL
from braindrill_ext.sandbox import GRACE_S, Tokens, build_payload

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _host_unaffected(run, io_loop):
    """After every hostile case the engine still runs code."""
    yield
    result = io_loop.run_sync(lambda: run("python", "print('still fine')"))
    assert result["status"] == "ok" and result["stdout"] == "still fine\n"


async def test_fork_bomb_is_contained(run):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    result = await run("python", code, limits={"timeout_s": 3})
    assert result["status"] == "timeout"


async def test_shell_fork_bomb_is_contained(run):
    code = "import os; os.execvp('sh', ['sh', '-c', 'f() { f | f & }; f; sleep 30'])"
    result = await run("python", code, limits={"timeout_s": 3})
    assert result["status"] in ("timeout", "error")


async def test_pids_limit(run):
    code = (
        "import threading, time\nn = 0\ntry:\n"
        "    while True:\n"
        "        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
        "        n += 1\nexcept RuntimeError:\n    print(n)\n"
    )
    result = await run("python", code)
    assert result["status"] == "ok", result
    assert 50 <= int(result["stdout"]) < 64  # the pids limit (64) counts every thread


@pytest.mark.parametrize("target", ["/work/fill", "/tmp/fill"])
async def test_disk_fill_stops_at_the_work_dir_size(run, target):
    code = (
        f"f = open({target!r}, 'wb')\nn = 0\n"
        "while True:\n    f.write(b'x' * (1 << 20))\n    f.flush()\n    n += 1\n    print(n)\n"
    )
    result = await run("python", code)
    assert result["status"] == "error"
    assert (
        "No space left" in result["stderr"]
        or "File too large" in result["stderr"]
        or result["exit_code"] == 153
    )  # SIGXFSZ
    assert int(result["stdout"].split()[-1]) <= 64


async def test_no_network(run):
    code = (
        "import socket, os\n"
        "print(sorted(os.listdir('/sys/class/net')))\n"
        "for host in ['1.1.1.1', '172.17.0.1', '127.0.0.1']:\n"
        "    s = socket.socket()\n    s.settimeout(2)\n"
        "    try:\n        s.connect((host, 80))\n        print(host, 'connected')\n"
        "    except OSError as e:\n        print(host, type(e).__name__)\n"
    )
    result = await run("python", code)
    assert result["status"] == "ok", result
    lines = result["stdout"].splitlines()
    assert lines[0] == "['lo']"
    assert "connected" not in result["stdout"]


async def test_read_only_root_filesystem(run):
    result = await run("python", "open('/usr/bin/evil', 'w')")
    assert result["status"] == "error"
    assert "Read-only file system" in result["stderr"]


async def test_no_privileges(run):
    code = (
        "import os\n"
        "status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines()"
        " if ':\\t' in l)\n"
        "print(status['Uid'].split()[0], status['CapEff'], status['CapBnd'], "
        "status['NoNewPrivs'], status['Seccomp'])\n"
        "try:\n    os.setuid(0)\n    print('setuid worked')\nexcept PermissionError:\n"
        "    print('setuid refused')\n"
    )
    result = await run("python", code)
    assert result["stdout"].split() == [
        "65534",
        "0000000000000000",
        "0000000000000000",
        "1",
        "2",
        "setuid",
        "refused",
    ]


async def test_escape_attempts_fail(run):
    code = (
        "import os, subprocess\n"
        "print(os.path.exists('/var/run/docker.sock'), os.path.exists('/run/docker.sock'))\n"
        "for cmd in (['mount', '-t', 'tmpfs', 'x', '/work'], ['chroot', '/', 'true']):\n"
        "    r = subprocess.run(cmd, capture_output=True)\n    print(cmd[0], r.returncode != 0)\n"
        "try:\n    open('/proc/sysrq-trigger', 'w').write('b')\n    print('sysrq written')\n"
        "except OSError:\n    print('sysrq refused')\n"
    )
    result = await run("python", code)
    assert result["stdout"].splitlines() == [
        "False False",
        "mount True",
        "chroot True",
        "sysrq refused",
    ]


async def test_each_execution_is_fresh(run):
    first = await run(
        "python", "open('/work/mark', 'w').write('x'); import socket; print(socket.gethostname())"
    )
    second = await run(
        "python",
        "import os, socket; print(os.path.exists('/work/mark')); print(socket.gethostname())",
    )
    assert second["stdout"].splitlines()[0] == "False"
    assert first["stdout"].strip() != second["stdout"].splitlines()[1]


async def test_stdin_looking_like_a_payload_is_just_data(run):
    stdin = "12\nnot a header\n" + "\x00\x01binary-ish\n" * 100
    result = await run("python", "import sys; d = sys.stdin.read(); print(len(d))", stdin=stdin)
    assert result["stdout"] == f"{len(stdin)}\n"


@pytest.mark.parametrize(
    "language, code",
    [("python", "import os, time; os.fork(); time.sleep(60)"), ("bash", "sleep 60 & sleep 60")],
    ids=["prestart watchdog", "bootstrap timeout"],
)
async def test_backstop_kills_without_the_manager(language, code):
    """The in-container deadline fires even if the manager never kills (a crashed server)."""
    manager = ExecutionEngine()
    await manager.ensure_started()
    try:
        host = manager.workers[0]
        lang = manager.registry.get(language)
        limits = Limits(timeout_s=1)
        sandbox = host.sandbox(
            lang, await host.image_for(lang), limits, {f"{LABEL}.owner": manager.owner}
        )
        await sandbox.prepare()
        execution = Execution(lang, code, limits)
        from braindrill_ext.sandbox import _raw

        _raw(sandbox._sock).sendall(build_payload(execution, limits, Tokens()))
        started = time.monotonic()
        client = docker.from_env()
        exit_code = client.api.wait(sandbox.container_id, timeout=30)["StatusCode"]
        client.close()
        assert exit_code == 137
        assert time.monotonic() - started < 1 + GRACE_S + 3
        await sandbox.destroy()
    finally:
        await manager.stop()


async def test_reaper_removes_containers_of_a_dead_owner():
    client = docker.from_env()
    lang_image = None
    manager = ExecutionEngine()
    try:
        lang_image = await manager.workers[0].image_for(manager.registry.get("python"))
        dead_pid = 2**22 + 17  # above pid_max: no such process

        def labelled(owner: str, expires_in: int):
            expires = str(int(time.time()) + expires_in)
            labels = {f"{LABEL}.owner": owner, f"{LABEL}.expires": expires}
            return client.containers.create(lang_image, ["sleep", "60"], labels=labels)

        container = labelled(f"{manager.master_id}:{dead_pid}:abc", 3600)
        alive = labelled(f"{manager.master_id}:{os.getppid()}:abc", 3600)
        expired = labelled(f"elsewhere:{os.getppid()}:abc", -1)
        removed = await manager.reap()
        names = {c["Id"] for c in client.api.containers(all=True)}
        assert container.id not in names
        assert expired.id not in names
        assert alive.id in names  # its owner process lives: not ours to remove
        assert removed >= 2
        alive.remove(force=True)
    finally:
        await manager.stop()
        client.close()
