"""Hostile code is contained: each case gets a clear status and the host is unaffected."""

from __future__ import annotations

import os
import time

import docker
import pytest

from braindrill_ext.engine import ExecutionEngine
from braindrill_ext.execution import Execution, Limits
from braindrill_ext.sandbox.payload import GRACE_S, Tokens, build_payload
from braindrill_ext.sandbox.protocol import LABEL, RUNNER_MARK
from tests.helpers import sandbox_kinds as sandbox_kind  # noqa: F401 (a fixture: both kinds)


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
    # setuid(0) fails with EPERM in a container, EINVAL in a nested sandbox (no uid 0 there).
    code = (
        "import os\n"
        "status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines()"
        " if ':\\t' in l)\n"
        "print(status['Uid'].split()[0], status['CapEff'], status['CapBnd'], "
        "status['NoNewPrivs'], status['Seccomp'])\n"
        "try:\n    os.setuid(0)\n    print('setuid worked')\nexcept OSError:\n"
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
    """Nothing of an execution reaches the next: files, processes it left running, hostname.
    (With slot runners, the next one may well run in the same runner container.)"""
    first = await run(
        "bash",
        "echo x > /work/mark; echo y > /tmp/mark; (setsid sleep 120 &) ; hostname",
    )
    assert first["status"] == "ok"
    second = await run(
        "bash",
        "ls /work/mark /tmp/mark 2>&1 | grep -c 'No such'; "
        "grep -l sleep /proc/[0-9]*/comm 2>/dev/null | wc -l; hostname",
    )
    assert second["stdout"].splitlines()[:2] == ["2", "0"]
    assert first["stdout"].strip() != second["stdout"].splitlines()[2]


async def test_stdin_looking_like_a_payload_is_just_data(run):
    stdin = "12\nnot a header\n" + "\x00\x01binary-ish\n" * 100
    result = await run("python", "import sys; d = sys.stdin.read(); print(len(d))", stdin=stdin)
    assert result["stdout"] == f"{len(stdin)}\n"


@pytest.mark.parametrize(
    "language, code",
    [("python", "import os, time; os.fork(); time.sleep(60)"), ("bash", "sleep 60 & sleep 60")],
    ids=["prestart watchdog", "bootstrap timeout"],
)
async def test_backstop_kills_without_the_manager(language, code, sandbox_kind):  # noqa: F811
    """The in-container deadline fires even if the manager never kills (a crashed server): the
    container exits, or the runner reports its sandbox killed (and gone)."""
    manager = ExecutionEngine(sandbox=sandbox_kind)
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
        sandbox._send(*build_payload(execution, limits, Tokens()))
        started = time.monotonic()
        if sandbox_kind == "nested":  # the runner reports after the sandbox's pid namespace
            mark = RUNNER_MARK + sandbox.token.encode() + b" "
            out = b""
            for stream, chunk in sandbox._frames():
                out += chunk if stream == 1 else b""
                if mark in out and out.endswith(b"\n"):
                    break
            exit_code = int(out[out.index(mark) + len(mark) :].split()[1])  # after its number
        else:
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


async def test_no_namespaces_no_mounts_own_proc(run):
    """The program can make no namespace (the way back to capabilities), mount nothing, and sees
    its own processes only, with Docker's masks on /proc."""
    code = (
        'for ns in -U -m -n -p; do unshare $ns true 2>/dev/null && echo "unshare $ns worked"; '
        "done\n"
        "mount -t proc proc /tmp 2>/dev/null && echo 'proc mounted'\n"
        "echo 1 > /proc/sys/kernel/hostname 2>/dev/null && echo 'sysctl written'\n"
        "[ -s /proc/timer_list ] && echo 'timer_list readable'\n"
        "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c 'braindrill[-]runner'\n"
        "ls -d /proc/[0-9]* | wc -l\n"
    )
    result = await run("bash", code)
    lines = result["stdout"].split()
    assert lines[0] == "0", result  # no process of a runner is visible
    assert int(lines[1]) <= 8, result  # init, the watchdog, this shell and its pipeline
    assert len(lines) == 2, result


async def test_a_forged_runner_report_is_just_output(run):
    code = "printf '\\036braindrill-runner 0123456789abcdef 1 0 0 1 0\\n'; exit 3"
    result = await run("bash", code)
    assert result["status"] == "error" and result["exit_code"] == 3
    assert result["stdout"] == "\x1ebraindrill-runner 0123456789abcdef 1 0 0 1 0\n"


async def test_runners_are_reused_and_sandboxes_stopped_alone(run, sandbox_kind):  # noqa: F811
    """With slot runners, back-to-back executions run in fresh sandboxes of the same runner
    (hostname <runner>-<sandbox number>); one that times out or floods its output is stopped with
    its sandbox's every process, and what runs next finds none of them. With containers, every
    execution has its own container."""
    names = []
    for _ in range(3):
        result = await run("bash", "hostname")
        names.append(result["stdout"].strip())
    timed_out = await run(
        "bash", "hostname; (setsid sleep 300 &); sleep 30", limits={"timeout_s": 1}
    )
    assert timed_out["status"] == "timeout"
    flood = await run("bash", "hostname; (setsid sleep 300 &); yes")
    assert flood["status"] == "output_limit"
    stopped = [timed_out["stdout"].split()[0], flood["stdout"].split()[0]]
    after = await run("bash", "hostname; grep -l sleep /proc/[0-9]*/comm 2>/dev/null | wc -l")
    assert after["stdout"].split()[1] == "0"  # no process of the stopped ones is left
    every = [*names, *stopped, after["stdout"].split()[0]]
    assert len(set(every)) == len(every)  # a fresh sandbox (or container) each time
    if sandbox_kind == "nested":
        runners = [name.rpartition("-")[0] for name in every]
        assert len(set(runners)) < len(runners), every  # ...in runners used again
