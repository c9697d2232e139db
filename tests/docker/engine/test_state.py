"""Kernel state (issue 13), on real kernels and real containers: every cell still runs in a fresh
container, but what it leaves travels as data to the next cell — the work directory's files (any
language) and, for Python, the user namespace. Variables, functions (whose globals are the live
namespace), classes, instances and modules carry; files carry in Python, C and Bash (with their
mode and odd names), the source file, what the compile step built and display files do not; a
state is replaced, not merged; unpicklable names and files over the state cap are dropped and
named on stderr; an exception or a non-zero exit keeps the cell's state, a compile error, a
timeout, an output limit, an OOM kill or an interrupt leaves it as before; ``%reset`` and
``%%stateless``; a restart starts empty, a shutdown drops the state from the server; pandas and
numpy values in python-data. (A kernel whose consecutive cells run on two worker hosts:
test_state_hosts.py.)"""

from __future__ import annotations

import io
import tarfile

import pytest

from tests.helpers import (
    TIMEOUT,
    containers_left,
    eventually_sync,
    execute_cell,
    result_text,
    stream_text,
    wait_for_stream,
)

AS_BEFORE = "the state (variables and files) is as it was before"


@pytest.fixture
def kernel(embedded_engine, start):
    """``kernel(language)`` → (manager, client), on the module's embedded engine."""
    return start


def ok(kc, code: str) -> list[dict]:
    """Run a cell that must succeed; returns its iopub messages."""
    reply, messages = execute_cell(kc, code)
    assert reply["status"] == "ok", (reply, stream_text(messages, "stderr"))
    return messages


def failed(kc, code: str) -> dict:
    """Run a cell that must fail; returns its execute_reply."""
    reply, _ = execute_cell(kc, code)
    assert reply["status"] == "error", reply
    return reply


def kept_files(engine, km) -> list[str]:
    """The paths in the state the server keeps for kernel ``km`` (a tar; empty: none)."""
    blob = engine.states.get(km.provisioner.kernel.state_key)
    if not blob:
        return []
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        return sorted(tar.getnames())


# -- variables -------------------------------------------------------------------------------------
DEFINITIONS = """\
x = 41
import math
from math import sqrt
scale = 1
g = 1
import collections.abc as cabc

def f():
    return g * 2

def bump():
    global g
    g += 1
    return g

class Point:
    def __init__(self, x):
        self.x = x

    def scaled(self):
        return self.x * scale
"""


def test_variables_functions_classes_and_modules_carry(kernel):
    _, kc = kernel()
    ok(kc, DEFINITIONS)
    assert result_text(ok(kc, "x + 1")) == "42"
    # A function of an earlier cell reads the global's new value: its globals are the namespace.
    assert result_text(ok(kc, "g = 21\nf()")) == "42"
    # A class of an earlier cell, instantiated now; a function's global statement writes to
    # the namespace.
    assert result_text(ok(kc, "scale = 6\np = Point(7)\nbump()")) == "22"
    # The instance carries too, still an instance of the class (whose method reads the global
    # set in the cell before); modules, and names imported from them, are imported again.
    code = "p.scaled(), isinstance(p, Point), g, math.pi, sqrt(x + 8), cabc.Mapping.__name__"
    assert result_text(ok(kc, code)) == "(42, True, 22, 3.141592653589793, 7.0, 'Mapping')"


def test_unpicklable_names_are_dropped_and_named(kernel):
    _, kc = kernel()
    code = (
        "f = open('log.txt', 'w')\n"
        "f.write('kept')\n"
        "f.flush()\n"
        "g = (i for i in range(3))\n"
        "keep = [1, 2]\n"
    )
    note = stream_text(ok(kc, code), "stderr")
    assert "braindrill: not kept for the next cell (cannot be pickled): " in note, note
    assert "f (TextIOWrapper" in note and "g (generator" in note, note
    assert "keep" not in note, note
    messages = ok(kc, "print(keep, open('log.txt').read(), 'f' in globals(), 'g' in globals())")
    assert stream_text(messages) == "[1, 2] kept False False\n"


def test_python_data_values_carry(kernel):
    _, kc = kernel("python-data")
    ok(
        kc,
        "import numpy as np\nimport pandas as pd\n"
        "df = pd.DataFrame({'a': [1, 2, 3], 'b': ['x', 'y', 'z']})\n"
        "arr = np.arange(10).reshape(2, 5)",
    )
    code = "print(df['a'].sum(), ''.join(df['b']), arr.sum(), arr.shape, type(df).__name__)"
    assert stream_text(ok(kc, code)) == "6 xyz 45 (2, 5) DataFrame\n"


# -- files -----------------------------------------------------------------------------------------
def test_files_carry_in_python(kernel, embedded_engine):
    km, kc = kernel()
    ok(
        kc,
        "import os\nopen('data.txt', 'w').write('from cell 1')\n"
        "os.makedirs('sub', exist_ok=True)\nopen('sub/nested.txt', 'w').write('nested')\n"
        "gone = 1",
    )
    # The variables and the files; not the source file.
    kept = [".braindrill/namespace", "data.txt", "sub/nested.txt"]
    assert kept_files(embedded_engine, km) == kept
    messages = ok(kc, "print(open('data.txt').read(), open('sub/nested.txt').read())")
    assert stream_text(messages) == "from cell 1 nested\n"
    # The state is replaced, not merged: what a cell removed stays removed.
    ok(kc, "os.remove('data.txt')\ndel gone")
    assert (
        result_text(ok(kc, "os.path.exists('data.txt'), 'gone' in globals()")) == "(False, False)"
    )


def test_a_cell_that_changes_directory_keeps_its_state(kernel):
    _, kc = kernel()
    ok(kc, "x = 1")
    messages = ok(kc, "import os\nos.chdir('/tmp')\nx = 2\nopen('/work/c.txt', 'w').write('c')")
    assert stream_text(messages, "stderr") == ""
    assert result_text(ok(kc, "x, open('c.txt').read()")) == "(2, 'c')"


C_WRITE = """\
#include <stdio.h>
int main(void) {
    FILE *f = fopen("data.txt", "w");
    fputs("from cell 1", f);
    return fclose(f);
}
"""
C_READ = """\
#include <dirent.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    char line[64] = "";
    FILE *f = fopen("data.txt", "r");
    if (f) { fgets(line, sizeof line, f); fclose(f); }
    printf("read: %s\\n", line);
    DIR *d = opendir(".");
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            printf("%s\\n", e->d_name);
    return closedir(d);
}
"""


def test_files_carry_in_c_but_not_the_source_or_the_binary(kernel, embedded_engine):
    km, kc = kernel("c")
    ok(kc, C_WRITE)
    # main.c (the source) and main (what the compile step wrote) are built again, not kept.
    assert kept_files(embedded_engine, km) == ["data.txt"]
    reply = failed(kc, "int main(void) { this is not C }")
    assert reply["ename"] == "compile_error" and AS_BEFORE in reply["evalue"], reply
    lines = stream_text(ok(kc, C_READ)).splitlines()
    assert lines[0] == "read: from cell 1"
    assert sorted(lines[1:]) == [".braindrill", "data.txt", "main", "main.c"]  # this cell's own


def test_files_carry_in_bash_within_the_state_cap(kernel, embedded_engine):
    km, kc = kernel("bash")
    code = (
        "%%limits state_mib=1\n"
        "echo 'from cell 1' > notes.txt\n"
        "head -c 2097152 /dev/zero > big.bin\n"
        "printf '#!/bin/sh\\necho tool ran\\n' > tool.sh\nchmod +x tool.sh\n"
        'echo shown > "$BRAINDRILL_DISPLAY/note.txt"\n'
    )
    messages = ok(kc, code)
    note = stream_text(messages, "stderr")
    assert "braindrill: not kept for the next execution (over the state cap" in note, note
    assert "big.bin (2097152 bytes)" in note and "notes.txt" not in note, note
    assert [m["msg_type"] for m in messages].count("display_data") == 1
    assert kept_files(embedded_engine, km) == ["notes.txt", "tool.sh"]
    # The files with their mode; not the display file, shown once; not the source file.
    messages = ok(kc, "./tool.sh\ncat notes.txt\nls -A")
    assert (
        stream_text(messages) == "tool ran\nfrom cell 1\n.braindrill\nmain.sh\nnotes.txt\ntool.sh\n"
    )
    assert "display_data" not in [m["msg_type"] for m in messages]


ODD_NAMES = ["' lead.txt'", "-dash.txt", "ünï.txt", "'tab\tquote\"$\\.txt'", ".hidden"]
NEWLINE_NAME = "\"$(printf 'nl\\nname.txt')\""


def test_files_with_odd_names_carry_in_bash(kernel):
    """Odd names carry; a name with a newline (which a shell's file lists cannot hold) is not
    kept, and stderr says so."""
    _, kc = kernel("bash")
    messages = ok(kc, "".join(f"echo kept > ./{name}\n" for name in [*ODD_NAMES, NEWLINE_NAME]))
    note = stream_text(messages, "stderr")
    assert "not kept for the next execution: 1 file(s) whose name holds a newline" in note, note
    checks = "".join(f"[ -f ./{name} ] && echo yes || echo missing {name}\n" for name in ODD_NAMES)
    assert stream_text(ok(kc, checks)) == "yes\n" * len(ODD_NAMES)
    assert stream_text(ok(kc, f"[ -e ./{NEWLINE_NAME} ] || echo gone")) == "gone\n"


def test_the_state_cap_in_python(kernel):
    _, kc = kernel()
    code = (
        "%%limits state_mib=1\n"
        "open('big.bin', 'wb').write(b'x' * (2 << 20))\n"
        "open('small.txt', 'w').write('small')\n"
        "v = 1\n"
    )
    note = stream_text(ok(kc, code), "stderr")
    assert "not kept for the next execution (over the state cap" in note, note
    assert "big.bin (2097152 bytes)" in note and "small.txt" not in note, note
    messages = ok(kc, "import os\nprint(os.path.exists('big.bin'), open('small.txt').read(), v)")
    assert stream_text(messages) == "False small 1\n"


def test_variables_over_the_state_cap_leave_only_the_largest_out(kernel):
    _, kc = kernel()
    ok(kc, "earlier = 'kept'")
    code = "%%limits state_mib=1\nbig = b'x' * (2 << 20)\nsmall_var = 1\n"
    note = stream_text(ok(kc, code), "stderr")
    assert "not kept for the next cell (over the state cap of 1048576 bytes): big (" in note, note
    assert "small_var" not in note and "earlier" not in note, note
    messages = ok(kc, "print('big' in dir(), small_var, earlier)")
    assert stream_text(messages) == "False 1 kept\n"


# -- which outcomes keep a cell's state ------------------------------------------------------------
def test_kept_after_an_exception_not_after_a_timeout_output_limit_oom_or_a_kill(kernel):
    km, kc = kernel()
    reply = failed(kc, "x = 5\nopen('a.txt', 'w').write('a')\nraise ValueError('boom')")
    assert reply["ename"] == "ValueError" and reply["evalue"] == "boom"
    # A non-zero exit is an error too: its state is kept.
    code = "import sys\nprint(x, open('a.txt').read())\nx = 6\nsys.exit(3)"
    reply, messages = execute_cell(kc, code)
    assert stream_text(messages) == "5 a\n" and reply["ename"] == "error", reply

    changes = "x = 99\nopen('a.txt', 'w').write('changed')\nopen('b.txt', 'w').write('b')\n"
    reply = failed(kc, "%%limits timeout_s=1\nimport time\n" + changes + "time.sleep(30)")
    assert reply["ename"] == "timeout" and AS_BEFORE in reply["evalue"], reply
    reply = failed(kc, "%%limits output_bytes=1000\n" + changes + "print('y' * 100000)")
    assert reply["ename"] == "output_limit" and AS_BEFORE in reply["evalue"], reply
    reply = failed(kc, "%%limits memory_mib=64\n" + changes + "b = bytearray(512 << 20)")
    assert reply["ename"] == "oom" and AS_BEFORE in reply["evalue"], reply

    # A cell that ignores the interrupt (KeyboardInterrupt) is killed a second later.
    stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    msg_id = kc.execute(changes + stubborn + "print('started', flush=True)\ntime.sleep(60)")
    wait_for_stream(kc, "started")
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == msg_id
    reply = reply["content"]
    assert reply["ename"] == "interrupted" and AS_BEFORE in reply["evalue"], reply

    code = "import os\nx, open('a.txt').read(), os.path.exists('b.txt')"
    assert result_text(ok(kc, code)) == "(6, 'a', False)"


# -- %reset and %%stateless ------------------------------------------------------------------------
def test_reset_and_stateless(kernel, embedded_engine):
    km, kc = kernel()
    ok(kc, "x = 1\nopen('f.txt', 'w').write('f')")
    probe = "import os\nprint('x' in globals(), os.path.exists('f.txt'))\n"
    # %%stateless: the cell sees nothing, and what it leaves is not kept.
    messages = ok(kc, "%%stateless\n" + probe + "y = 2\nopen('g.txt', 'w').write('g')")
    assert stream_text(messages) == "False False\n"
    code = "import os\nprint(x, open('f.txt').read(), 'y' in globals(), os.path.exists('g.txt'))"
    assert stream_text(ok(kc, code)) == "1 f False False\n"
    # %reset: empty first, then the rest of the cell runs and its state is kept.
    assert stream_text(ok(kc, "%reset\n" + probe + "z = 3")) == "False False\n"
    assert stream_text(ok(kc, "print('x' in globals(), z)")) == "False 3\n"
    # Alone (IPython's -f allowed), it runs no container and leaves no state.
    ok(kc, "%reset -f")
    assert embedded_engine.states.size(km.provisioner.kernel.state_key) == 0
    assert stream_text(ok(kc, "print('z' in globals())")) == "False\n"


# -- restart and shutdown --------------------------------------------------------------------------
def test_a_restart_starts_empty(kernel, embedded_engine):
    before = embedded_engine.states.used
    km, kc = kernel()
    ok(kc, "x = 'a value'\nopen('f.txt', 'w').write('f')")
    assert embedded_engine.states.used > before
    km.restart_kernel()
    kc.wait_for_ready(timeout=TIMEOUT)
    assert eventually_sync(lambda: embedded_engine.states.used == before)  # the old one dropped
    reply = failed(kc, "x")
    assert reply["ename"] == "NameError" and reply["execution_count"] == 1
    assert stream_text(ok(kc, "import os\nprint(os.path.exists('f.txt'))")) == "False\n"


def test_a_shutdown_drops_the_state(kernel, embedded_engine):
    before = embedded_engine.states.used
    km, kc = kernel()
    ok(kc, "x = 'y' * 100000\nopen('f.txt', 'w').write(x)")
    assert embedded_engine.states.used >= before + 200000
    kc.stop_channels()
    km.shutdown_kernel()
    assert eventually_sync(lambda: embedded_engine.states.used == before)
    assert containers_left() == []


# -- hostile states ----------------------------------------------------------------------------
def test_a_state_is_never_unpickled_in_the_server(kernel, tmp_path):
    """A variable whose unpickling runs code: the code runs in the next cell's sandbox (the
    user's own), never in the server, which keeps the state unopened."""
    marker = tmp_path / "unpickled-in-the-server"
    _, kc = kernel()
    ok(
        kc,
        "import os\n"
        "class Trap:\n"
        "    def __reduce__(self):\n"
        f"        return (os.system, ('touch /work/unpickled-here {marker}',))\n"
        "trap = Trap()\n",
    )
    messages = ok(kc, "import os\nprint(os.path.exists('/work/unpickled-here'))")
    assert stream_text(messages) == "True\n"
    assert not marker.exists()


def test_output_that_looks_like_a_state_is_output(kernel):
    """The state record needs the watchdog's token: a program that writes one is printing."""
    _, kc = kernel()
    ok(kc, "x = 1")
    forged = "\\x1ebraindrill-state 0123456789abcdef 5\\nhello"
    messages = ok(kc, f"print('{forged}')\nx = 2")
    assert stream_text(messages) == forged.encode().decode("unicode_escape") + "\n"
    assert result_text(ok(kc, "x")) == "2"


def test_links_and_special_files_are_not_carried(kernel):
    """Only regular files travel: a symbolic link (to a file outside the work directory) or a
    FIFO left in /work is not there in the next cell, and nothing outside /work is."""
    _, kc = kernel()
    ok(kc, "import os\nos.symlink('/etc/hostname', 'link')\nos.mkfifo('fifo')\nopen('/tmp/t', 'w')")
    messages = ok(kc, "import os\nprint([os.path.lexists(p) for p in ('link', 'fifo', '/tmp/t')])")
    assert stream_text(messages) == "[False, False, False]\n"


def test_a_cell_that_leaves_the_state_as_it_came_sends_nothing_back(kernel, embedded_engine):
    """Variables that pickle as they came and files left alone: the sandbox says so and the
    state kept is the very same one (no digest of it is taken: the pickle is compared with the
    restored file as it is written, which stays untouched). A value changed in place, to one of
    the same size, is a new state; so is a smaller one. (The first cell after the one that made
    the variables may send them back once: pickle writes a string shared by two names once, and
    an unpickled module's name is no longer the very string of its key.)"""
    km, kc = kernel("python")
    ok(kc, "import os\nxs = [1, 2, 3]\nblob = os.urandom(1 << 20)")
    ok(kc, "pass")
    states, key = embedded_engine.states, km.provisioner.kernel.state_key
    first = states.get(key)
    for code in ("len(blob) + sum(xs)", "print(sorted(xs))", "[x * 2 for x in xs]"):
        ok(kc, code)
        assert states.get(key) is first, code
    ok(kc, "xs[0] = 9")  # the same size, another value
    assert states.get(key) is not first
    ok(kc, "del blob")
    assert result_text(ok(kc, "xs, 'blob' in globals()")) == "([9, 2, 3], False)"
    assert len(states.get(key)) <= len(first) - (1 << 20)  # without the blob
