"""Nested sandboxes keep executions apart (issue 19): a sandbox stopped at its deadline -- even
one stopped before it read its payload, or one whose processes ignore every signal -- never writes
into, nor reads from, another execution. Many kernels share a few slot runners here, each with a
secret in its state, some cells stopped at their deadline, interrupted or abandoned, with and
without CPU load beside them: no kernel ever sees another's secret or text, no user sees protocol
bytes, every counter ends right. The same for REST sessions. And a runner whose clean check fails
is replaced, never reused.

Before the fix, a sandbox stopped while it was still starting left its payload in the runner's
shared stdin, the next sandbox ran it, and every later execution on that runner got the previous
one's sandbox (another kernel's output and pickled variables); a sandbox could also read the next
payload from its stdin, the runner's attach stream."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest
from tornado.httpclient import HTTPClientError

from braindrill_ext.sandbox.protocol import OWNER
from tests.helpers import TIMEOUT, eventually, execute_cell

PROTOCOL = "\x1ebraindrill"  # no user ever sees a report, record or frame header


@pytest.fixture(scope="module")
def embedded_sandbox():
    return "nested"


@pytest.fixture(scope="module")
def embedded_config():
    """Warm pools on: runners go back to their pool and serve kernel after kernel."""
    return {"WarmPools": {"enabled": True}, "ExecutionEngine": {"slots": 3}}


@pytest.fixture
def kernel_managers(embedded_engine, start):
    """``kernel_managers(n)`` → n (manager, client) of Python kernels on the module's embedded
    engine."""
    return lambda n: [start("python") for _ in range(n)]


@pytest.fixture
def kernels(kernel_managers):
    """``kernels(n)`` → n Python kernel clients."""
    return lambda n: [kc for _, kc in kernel_managers(n)]


def cell(kc, code: str) -> tuple[dict, str]:
    """Run a cell; returns its reply and everything it showed (streams, results, errors)."""
    reply, messages = execute_cell(kc, code, timeout=TIMEOUT * 2)
    shown = []
    for m in messages:
        content = m["content"]
        if m["msg_type"] == "stream":
            shown.append(content["text"])
        elif m["msg_type"] in ("execute_result", "display_data"):
            shown.append(json.dumps(content["data"]))
        elif m["msg_type"] == "error":
            shown.append(" ".join([content["ename"], content["evalue"], *content["traceback"]]))
    return reply, "".join(shown)


STUBBORN = """%%limits timeout_s=1
import os, signal, threading, time
for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
          signal.SIGQUIT):
    signal.signal(s, signal.SIG_IGN)

def steal(path):  # what a late sandbox could read: the next payload, if it held the stream
    try:
        data = os.read(os.open(path, os.O_RDONLY), 1 << 16)
        print("STOLEN", path, data[:200], flush=True)
    except OSError as e:
        print("NOTHING", path, type(e).__name__, flush=True)

for path in ("/proc/self/fd/0", "/proc/1/fd/0", f"/proc/{os.getppid()}/fd/0"):
    threading.Thread(target=steal, args=(path,), daemon=True).start()
if os.fork() == 0:  # a child that outlives its parent's stop, if it could
    os.setsid()
    for i in range(100):
        print("STUBBORN-CHILD", i, flush=True)
        time.sleep(0.05)
    os._exit(0)
for i in range(100):
    print("STUBBORN-LEAK", i, flush=True)
    time.sleep(0.05)
"""


def kernel_life(kc, i: int, steps: int, stop_every: int, hostile: bool) -> dict:
    """One kernel's life: a secret, then ``steps`` increments of ``n``; every ``stop_every``-th
    step is instead a cell stopped at its deadline (the stubborn one when ``hostile``). Returns
    what the kernel saw and how its counter ended."""
    secret = f"S3CRET-of-kernel-{i:02d}-"
    reply, shown = cell(kc, f"secret = {secret!r} * 20\nn = 0\nprint('kernel', {i})")
    assert reply["status"] == "ok", shown
    seen, expected, stopped = [shown], 0, []
    for step in range(steps):
        if stop_every and step % stop_every == stop_every - 1:
            code = STUBBORN if hostile else "%%limits timeout_s=1\nimport time; time.sleep(5)"
            reply, shown = cell(kc, code)
            stopped.append(reply)
            seen.append(shown)
            continue
        reply, shown = cell(kc, f"n += 1\nprint('kernel {i} step', n, secret[:20])")
        seen.append(shown)
        if reply["status"] == "ok":
            expected += 1
    reply, shown = cell(kc, "print('final', n)")
    return {"seen": seen, "final": shown, "expected": expected, "stopped": stopped}


def check_isolation(lives: list[dict]) -> None:
    for i, life in enumerate(lives):
        text = "".join(life["seen"]) + life["final"]
        assert PROTOCOL not in text, (i, text[:2000])
        for j in range(len(lives)):
            if j != i:
                assert f"S3CRET-of-kernel-{j:02d}" not in text, (i, j, text[:2000])
                assert f"kernel {j} step" not in text, (i, j, text[:2000])
        assert life["final"].strip() == f"final {life['expected']}", (i, life)
        for reply in life["stopped"]:
            assert reply["status"] == "error", reply
            assert reply["ename"] == "timeout", reply


@pytest.fixture(params=[False, True], ids=["idle", "cpu-load"])
def load(request):
    """Two CPU-bound processes beside the kernels (when the param says so)."""
    hogs = []
    if request.param:
        spin = "import time\nend = time.time() + 600\nwhile time.time() < end: pass"
        hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2)]
    yield request.param
    for hog in hogs:
        hog.kill()
        hog.wait()


def test_many_kernels_with_deadlines_keep_their_own_state(kernels, load):
    """Eight kernels at once on three runners; every other one has cells stopped at their
    deadline (the sandbox may still be starting then, with the CPU taken by the hogs)."""
    clients = kernels(8)
    with ThreadPoolExecutor(len(clients)) as pool:
        lives = list(
            pool.map(lambda a: kernel_life(a[1], a[0], 8, 4 if a[0] % 2 == 0 else 0, False),
                     enumerate(clients))
        )  # fmt: skip
    check_isolation(lives)


def test_a_cell_that_ignores_every_signal_is_never_seen_elsewhere(kernels):
    """Four kernels; in one, three cells that ignore every catchable signal, fork a child that
    escapes into its own session, try to read the stdin of their parent and of pid 1, and print
    past their deadline. Their text appears in no other kernel, and nothing they read is another
    execution's: a sandbox's stdin is a pipe of its own, empty after its payload."""
    clients = kernels(4)
    with ThreadPoolExecutor(len(clients)) as pool:
        lives = list(
            pool.map(lambda a: kernel_life(a[1], a[0], 9, 3 if a[0] == 0 else 0, True),
                     enumerate(clients))
        )  # fmt: skip
    check_isolation(lives)
    for i, life in enumerate(lives):
        text = "".join(life["seen"]) + life["final"]
        if i:
            assert "STUBBORN" not in text and "STOLEN" not in text, (i, text[:2000])
    stubborn = "".join(lives[0]["seen"])
    assert "STUBBORN-LEAK 0" in stubborn
    # What the stubborn cells could read of their stdin: nothing more of their own payload, and
    # nothing of anyone else's (a kernel's code and secret).
    for line in stubborn.splitlines():
        if line.startswith("STOLEN"):
            assert "kernel" not in line and "S3CRET" not in line, line


def test_interrupted_cells_keep_kernels_apart(kernel_managers):
    """Cells interrupted while they run -- or while their sandbox may still be starting -- beside
    busy kernels: no text crosses, every counter ends right."""
    pairs = kernel_managers(4)

    def interrupted(index):
        km, kc = pairs[index]
        reply, shown = cell(kc, f"secret = 'S3CRET-of-kernel-{index:02d}-' * 20\nn = 0")
        assert reply["status"] == "ok", shown
        seen, expected = [], 0
        for step in range(6):
            if index < 2 and step % 2:
                timer = threading.Timer(0.05 + 0.15 * step, km.interrupt_kernel)
                timer.start()
                reply, shown = cell(kc, "import time\nprint('INTERRUPTED-CELL')\ntime.sleep(30)")
                timer.join()
                assert reply["status"] == "error", reply
            else:
                reply, shown = cell(kc, f"n += 1\nprint('kernel {index} step', n, secret[:20])")
                expected += reply["status"] == "ok"
            seen.append(shown)
        _, final = cell(kc, "print('final', n)")
        return {"seen": seen, "final": final, "expected": expected, "stopped": []}

    with ThreadPoolExecutor(len(pairs)) as pool:
        lives = list(pool.map(interrupted, range(len(pairs))))
    check_isolation(lives)
    for life in lives[2:]:
        assert "INTERRUPTED-CELL" not in "".join(life["seen"])


# -- REST sessions, and the runners themselves, on a Jupyter server --------------------------------
@pytest.fixture
def sandbox_kind():
    return "nested"


@pytest.fixture
def braindrill_config():
    return {"ExecutionEngine": {"slots": 3}}


async def post(jp_fetch, code: str, **fields) -> dict:
    body = json.dumps({"code": code, **fields})
    headers = {"Content-Type": "application/json"}
    response = await jp_fetch("lang", "python", method="POST", body=body, headers=headers)
    return json.loads(response.body)


async def session_life(jp_fetch, i: int, hostile: bool) -> dict:
    """A REST session's life: a secret, increments; when ``hostile``, requests stopped at their
    deadline (the stubborn cell's code) and requests whose client goes away mid-run."""
    body = json.dumps({"language": "python"})
    response = await jp_fetch("braindrill", "sessions", method="POST", body=body)
    sid = json.loads(response.body)["id"]
    result = await post(jp_fetch, f"secret = 'S3CRET-of-kernel-{i:02d}-' * 20\nn = 0", session=sid)
    assert result["status"] == "ok", result
    seen, expected, stopped = [], 0, []
    for step in range(8):
        if hostile and step % 4 == 1:
            code = STUBBORN.partition("\n")[2]  # without %%limits: a script's limits field
            result = await post(jp_fetch, code, session=sid, limits={"timeout_s": 1})
            assert result["status"] == "timeout", result
        elif hostile and step % 4 == 3:
            with pytest.raises(HTTPClientError) as e:
                await jp_fetch(
                    "lang", "python", method="POST", request_timeout=0.8,
                    body=json.dumps({"code": "import time; time.sleep(5); n = -100",
                                     "session": sid}),
                    headers={"Content-Type": "application/json"},
                )  # fmt: skip
            assert e.value.code == 599  # the client gave up: the execution is cancelled
            continue
        else:
            code = f"n += 1\nprint('kernel {i} step', n, secret[:20])"
            result = await post(jp_fetch, code, session=sid)
            expected += result["status"] == "ok"
        seen.append(result["stdout"] + result["stderr"] + json.dumps(result["outputs"]))
    # a cancelled execution may still be ending: the session runs one execution at a time
    final = await post(jp_fetch, "print('final', n)", session=sid)
    await jp_fetch("braindrill", "sessions", sid, method="DELETE")
    return {"seen": seen, "final": final["stdout"], "expected": expected, "stopped": stopped}


async def test_rest_sessions_with_deadlines_and_disconnects_stay_apart(jp_fetch):
    """Six REST sessions at once on three runners, half of them with requests stopped at their
    deadline and requests abandoned by their client, and stateless requests beside them."""

    async def stateless(k):
        result = await post(jp_fetch, f"print('stateless {k}')")
        assert result["stdout"] == f"stateless {k}\n", result

    lives = await asyncio.gather(
        *(session_life(jp_fetch, i, hostile=i % 2 == 0) for i in range(6)),
        *(stateless(k) for k in range(6)),
    )
    check_isolation(lives[:6])


HOSTNAME = {
    "bash": "hostname",
    "python": "import socket\nprint(socket.gethostname(), flush=True)",
    "c": "#include <stdio.h>\n#include <unistd.h>\nint main(void) { char h[80];\n"
    "gethostname(h, sizeof h); puts(h); fflush(stdout); return 0; }\n",
}


async def post_lang(jp_fetch, language: str, code: str, **fields) -> dict:
    body = json.dumps({"code": code, **fields})
    headers = {"Content-Type": "application/json"}
    response = await jp_fetch("lang", language, method="POST", body=body, headers=headers)
    return json.loads(response.body)


def runner_processes(hostname: str) -> list[str] | None:
    """The processes in the runner container whose sandbox had ``hostname`` (``<container
    id[:12]>-<n>``); None when that runner is gone."""
    client = docker.from_env()
    try:
        ids = [c["Id"] for c in client.api.containers(filters={"label": OWNER})]
        found = [i for i in ids if i.startswith(hostname.rpartition("-")[0])]
        if not found:
            return None
        top = client.api.top(found[0], ps_args="-o pid,args")
        # A runner's life (the backstop's seconds) follows the limits it was made for: not
        # what it holds.
        return sorted(re.sub(r"KILL \d+", "KILL <life>", row[-1])[:60] for row in top["Processes"])
    except docker.errors.APIError:  # gone meanwhile
        return None
    finally:
        client.close()


async def settled_processes(hostname: str) -> list[str] | None:
    """A runner's processes once they stay the same (its next sandbox is made after the result
    went out)."""
    last = runner_processes(hostname)
    for _ in range(50):
        await asyncio.sleep(0.2)
        now = runner_processes(hostname)
        if now == last:
            return now
        last = now
    return last


VFORK = (
    HOSTNAME["c"].replace("return 0; }", "")
    + r"""
    if (vfork() == 0) for (;;) {}  /* a child that never execs: its parent waits for ever */
    return 0;
}
"""
)


@pytest.mark.parametrize(
    "language, code",
    [
        ("bash", "trap '' INT HUP TERM QUIT USR1 USR2; hostname; "
                 "while :; do echo tick; sleep 0.05; done"),
        ("c", VFORK),
        ("python", HOSTNAME["python"] + "\nimport os, signal, time\nif os.fork() == 0:\n"
                   "    os.setsid()\n    signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
                   "    while True: print('orphan', flush=True); time.sleep(0.05)\n"
                   "time.sleep(30)"),
    ],
    ids=["ignores-signals", "vfork-without-exec", "child-outlives-parent"],
)  # fmt: skip
async def test_a_stopped_sandbox_leaves_nothing_in_its_runner(jp_fetch, language, code):
    """A sandbox stopped at its deadline is gone, every process of it, before its runner serves
    anyone else: its runner then holds what an idle runner holds, and the next execution sees
    nothing of it."""
    idle = await post_lang(jp_fetch, language, HOSTNAME[language])
    assert idle["status"] == "ok", idle
    stopped = await post_lang(jp_fetch, language, code, limits={"timeout_s": 1})
    assert stopped["status"] == "timeout", stopped
    after = await post_lang(jp_fetch, language, HOSTNAME[language])
    assert after["status"] == "ok", after
    assert "tick" not in after["stdout"] and "orphan" not in after["stdout"], after
    baseline = await settled_processes(idle["stdout"].split()[0])
    assert baseline, "the runner of an ordinary execution is kept"
    # the stopped sandbox's runner: gone (replaced), or as an idle one
    host = stopped["stdout"].split()[0]
    same = await eventually(lambda: runner_processes(host) in (None, baseline), 10)
    assert same, (runner_processes(host), baseline)


class TestOneRunner:
    @pytest.fixture
    def braindrill_config(self):
        return {"ExecutionEngine": {"slots": 1}}  # one runner per language

    async def test_a_runner_that_is_not_clean_is_replaced(self, jp_fetch):
        """A process in the runner container outside any sandbox (here: put there by `docker exec`)
        fails the clean check after the next execution: the runner reports it and is removed; the
        execution after runs in another runner."""
        first = (await post_lang(jp_fetch, "bash", "hostname"))["stdout"].strip()
        client = docker.from_env()
        try:
            ids = [c["Id"] for c in client.api.containers(filters={"label": OWNER})]
            runner = next(i for i in ids if i.startswith(first.rpartition("-")[0]))
            exec_id = client.api.exec_create(runner, ["sleep", "60"], user="65534")
            client.api.exec_start(exec_id, detach=True)
            second = (await post_lang(jp_fetch, "bash", "hostname"))["stdout"].strip()
            assert second.rpartition("-")[0] == first.rpartition("-")[0]  # ran in the same runner
            gone = await eventually(
                lambda: runner not in {c["Id"] for c in client.api.containers()}
            )
            assert gone, "a runner that was not clean was kept"
        finally:
            client.close()
        third = (await post_lang(jp_fetch, "bash", "hostname"))["stdout"].strip()
        assert third.rpartition("-")[0] != first.rpartition("-")[0]
