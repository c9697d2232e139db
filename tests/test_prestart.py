"""A prestarted interpreter (kernels/python/prestart.py) runs code exactly as the plain run command
would: the same program through Python's prestart and through the bootstrap with `python3 -u
main.py` gives the same output, exit code and status."""

from __future__ import annotations

import dataclasses

import pytest

from braindrill_ext.execution import Execution, Limits
from braindrill_ext.manager import RemoteKernelManager

pytestmark = pytest.mark.docker

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
}


@pytest.fixture
def manager(io_loop):
    manager = RemoteKernelManager()
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
