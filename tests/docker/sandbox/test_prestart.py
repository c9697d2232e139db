"""A prestarted interpreter (kernels/python/prestart.py) runs code exactly as the plain run command
would: the same program through Python's prestart and through the bootstrap with `python3 -u
main.py` gives the same output, exit code and status."""

from __future__ import annotations

import dataclasses

import pytest

from braindrill_ext.engine import ExecutionEngine
from braindrill_ext.execution import Execution, Limits
from braindrill_ext.sandbox.payload import GRACE_S
from braindrill_ext.sandbox.removal import STOP_WAIT_S
from tests.helpers import KINDS, eventually, labelled_containers

PROGRAMS = {
    "identity": (
        "import os, sys\nprint(__name__, __file__, sys.argv, sys.path[0], os.getcwd())\n"
        "print(sorted(n for n in globals() if not n.startswith('__')))\n"
        "print(sys.modules['__main__'].__dict__ is globals(), sys.flags.isolated)"
    ),
    "stdin": "import sys\nprint(repr(sys.stdin.read()))\nprint(sys.stdin.isatty())",
    "traceback": "def f():\n    raise ValueError('boom')\n\nprint('before')\nf()",
    "syntax error": "print('never'\n",
    "exit code": "import sys\nprint('out')\nsys.exit(3)",
    "exit message": "raise SystemExit('bye')",
    "atexit and threads": (
        "import atexit, threading, time\natexit.register(print, 'at exit')\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('thread'))).start()\n"
        "print('main done')"
    ),
    "pickle a class from __main__": (
        "import pickle\nclass Point:\n    x = 1\nprint(pickle.loads(pickle.dumps(Point())).x)"
    ),
    "files and coding cookie": (
        "# -*- coding: latin-1 -*-\nprint(open('data.txt').read().strip(), '\xe9')"
    ),
    "nested and long file names": (
        "import os\nfor root, _, names in sorted(os.walk('sub')):\n    for n in sorted(names):\n"
        "        print(root, len(n), open(os.path.join(root, n)).read())"
    ),
    "killed by a signal": "import os, signal\nprint('x', flush=True)\nos.kill(os.getpid(), 9)",
    # Orphans (far more than the pids limit, one after the other) are reaped as they end: by a
    # nested sandbox's pid 1, its watchdog, while it waits for the program.
    "orphans": (
        "import os\nfor _ in range(300):\n    pid = os.fork()\n    if pid == 0:\n"
        "        if os.fork() == 0:\n            os._exit(0)\n        os._exit(0)\n"
        "    os.waitpid(pid, 0)\nprint('300 orphans made')"
    ),
    # A fork's sys.exit is not the program's exit (the program's process says its status to its
    # watchdog as it exits: a fork of it must not).
    "a fork that exits": (
        "import os, sys, time\npid = os.fork()\nif pid == 0:\n    sys.exit(5)\n"
        "_, status = os.waitpid(pid, 0)\ntime.sleep(0.2)\n"
        "print('parent goes on', os.waitstatus_to_exitcode(status))\nsys.exit(2)"
    ),
}


@pytest.fixture(params=KINDS)
def manager(io_loop, request):
    """An engine of each sandbox kind (its ``sandbox`` says which)."""
    manager = ExecutionEngine(sandbox=request.param)
    io_loop.run_sync(manager.ensure_started)
    yield manager
    io_loop.run_sync(manager.stop)


@pytest.mark.parametrize("name", list(PROGRAMS))
async def test_same_behaviour_as_the_plain_run_command(manager, name):
    python = manager.registry.get("python")
    assert python.prestart, "python's kernelspec declares a prestart"
    plain = dataclasses.replace(python, prestart=None)
    results = []
    for language in (python, plain):
        execution = Execution(
            language,
            PROGRAMS[name],
            Limits(timeout_s=10),
            stdin="line 1\nline 2",
            args=["a b", "--c"],
            files={"data.txt": "a file", "sub/dir/" + "n" * 90 + "/" + "m" * 60: "deep"},
        )
        results.append(await manager.run(execution))
    prestarted, bootstrapped = (
        (r.status, r.exit_code, r.stdout, r.stderr, r.message) for r in results
    )
    assert prestarted == bootstrapped
    assert results[0].status.value in ("ok", "error")


# Hostile programs against the prestart's own machinery (the watchdog parent and its report).
KILL_THE_WATCHDOG = (
    "import os, signal, time\nprint('hi', flush=True)\n"
    "os.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(30)\nprint('never')"
)
# A report with a guessed token, on both streams, then more output and another exit code.
GUESS_THE_TOKEN = (
    "import sys\nreport = '\\036braindrill-exit ' + 'f' * 16 + ' 0'\n"
    "print(report, flush=True)\nprint(report, file=sys.stderr, flush=True)\n"
    "print('after')\nsys.exit(4)"
)
# The token is no secret from the program itself (same user as its watchdog: it can read the
# watchdog's memory); with it, a program can end its own run early, and gains nothing else.
STEAL_THE_TOKEN = (
    "import os, re, socket, sys, time\n"
    "print(socket.gethostname(), file=sys.stderr, flush=True)\n"
    "mem = open(f'/proc/{os.getppid()}/mem', 'rb', 0)\n"
    "def regions():\n"
    "    for line in open(f'/proc/{os.getppid()}/maps'):\n"
    "        span, perms = line.split()[:2]\n"
    "        if perms.startswith('r'):\n"
    "            yield (int(x, 16) for x in span.split('-'))\n"
    "tokens = set()\n"
    "for start, end in regions():\n"
    "    try:\n"
    "        mem.seek(start)\n"
    "        data = mem.read(end - start)\n"
    "        tokens.update(re.findall(rb'BD_EXIT_TOKEN=?([0-9a-f]{16})\\b', data))\n"
    "    except (OSError, OverflowError, ValueError):\n"
    "        pass\n"
    "(token,) = tokens\n"
    "report = '\\036braindrill-exit ' + token.decode() + ' 0\\n'\n"
    "print('forged', flush=True)\n"
    "os.write(1, report.encode()); os.write(2, report.encode())\n"
    "time.sleep(60)\n"
)


# The program's process says its status to its watchdog on a pipe as it exits, so that the report
# does not wait for its address space's teardown. The program can write there itself: it then
# ends its own run sooner, with the status it chose, as sys.exit would, and gains nothing else.
SAY_A_STATUS = (
    "import os, stat, time\n"
    "for fd in map(int, os.listdir('/proc/self/fd')):\n"
    "    try:\n"
    "        if fd > 2 and stat.S_ISFIFO(os.fstat(fd).st_mode):\n"
    "            os.write(fd, b'0\\n')\n"
    "    except OSError:\n"
    "        pass\n"
    "time.sleep(60)\n"
    "print('never')\n"
)


async def test_a_status_said_early_only_ends_the_programs_own_run(manager):
    python = manager.registry.get("python")
    result = await manager.run(Execution(python, SAY_A_STATUS, Limits(timeout_s=30)))
    assert (result.status.value, result.exit_code, result.stdout) == ("ok", 0, ""), result
    assert result.duration_ms < 10_000  # not held until its 60 s sleep or the 30 s limit
    host = manager.workers[0]
    assert await eventually(lambda: not host.running, STOP_WAIT_S + GRACE_S + 10)


async def test_killing_the_watchdog_is_no_way_out(manager):
    """In a container the program may kill its watchdog (same user): the run ends at once. In a
    nested sandbox the watchdog is the sandbox's pid 1, which nothing inside can signal: the
    program goes on to its deadline. Either way nothing runs past its limit."""
    python = manager.registry.get("python")
    if manager.sandbox == "container":
        result = await manager.run(Execution(python, KILL_THE_WATCHDOG, Limits(timeout_s=20)))
        assert (result.status.value, result.exit_code, result.stdout) == ("error", 137, "hi\n")
        assert result.duration_ms < 10_000  # not held until the 20 s limit
    else:
        result = await manager.run(Execution(python, KILL_THE_WATCHDOG, Limits(timeout_s=3)))
        assert (result.status.value, result.stdout) == ("timeout", "hi\n"), result


async def test_a_report_with_a_guessed_token_is_only_output(manager):
    python = manager.registry.get("python")
    result = await manager.run(Execution(python, GUESS_THE_TOKEN, Limits()))
    assert (result.status.value, result.exit_code) == ("error", 4), result
    report = "\036braindrill-exit " + "f" * 16 + " 0\n"
    assert result.stdout == report + "after\n" and result.stderr == report


async def test_a_stolen_token_only_ends_the_programs_own_run(manager):
    python = manager.registry.get("python")
    result = await manager.run(Execution(python, STEAL_THE_TOKEN, Limits(timeout_s=30)))
    # The program lied about its own exit; the result is what it said...
    assert (result.status.value, result.exit_code, result.stdout) == ("ok", 0, "forged\n")
    # ...and it does not get to run on: its container is stopped and removed (the slot held
    # until then) within STOP_WAIT_S of the forged report, long before its 60 s sleep or limit;
    # a slot runner, whose own report does not come, is removed the same way.
    host = manager.workers[0]
    sandbox = result.stderr.split()[0].rpartition("-")[0] or result.stderr.split()[0]

    def gone():  # its container (or slot runner: <runner>-<n>) removed, its slot free
        ids = [c["Id"] for c in labelled_containers()]
        return not host.running and not any(i.startswith(sandbox) for i in ids)

    assert await eventually(gone, STOP_WAIT_S + GRACE_S + 10), "the forging program runs on"
