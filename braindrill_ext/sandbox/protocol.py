"""The sandbox wire format and label schema: the one place that defines them.

The engine side (``sandbox.py``, ``runner.py``, ``payload.py``, ``output.py``, the reaper and the
pools) imports what it needs from here. The container side (the programs of ``container/``)
cannot import: each line of theirs that writes a constant of this module says so with a
``# protocol.<NAME>`` comment, and ``tests/unit/sandbox/test_programs.py`` checks, without
Docker, that the line holds this module's value, and that every constant a program must write
is written so.

Engine → container, on the attach stream's stdin:

- **payload**: ``b"<size>\\n"`` then ``size`` bytes of a plain USTAR tar, unpacked into ``/work``:
  the source file, the request's files, ``.braindrill/stdin`` (the program's stdin),
  ``.braindrill/job`` (``NAME=value`` lines, see ``JOB_*``; a shell fragment for the bootstrap)
  and, for prestart languages, ``.braindrill/argv`` (the run argv, NUL-separated). With a state
  (below) the header is ``b"<size> <state size>\\n"`` and the state's bytes come first: they are
  unpacked into ``/work`` before the payload, whose files win.
- **go-ahead**: after a successful compile step the bootstrap waits for the one byte ``GO``: the
  engine first lowers the container's memory limit to the run limit.
- **input reply** (a Python cell with ``JOB_INPUT``, after it asked with an ``input_request``
  record): ``b"<size>\\n"`` then ``size`` bytes of UTF-8, the user's answer. While the cell waits
  for it, its deadline is paused (the engine's, and the watchdog's: the program sends it
  SIGUSR1, then SIGUSR2 when the answer came).
- **interrupt** (not on stdin): SIGINT to the watchdog (``docker kill -s INT``, or a runner's
  ``FRAME_INTERRUPT``), which hands it to the program: ``KeyboardInterrupt`` in Python.

Container → engine, in the attach stream's stdout/stderr frames:

- **compile report** (stderr, before any user program ran): ``COMPILE_MARK`` + ``<exit code>
  <bytes>\\n`` then at most ``BD_COMPILE_OUTPUT`` bytes of the compiler's output.
- **output record** (stdout, in order with the program's own stdout): ``OUTPUT_MARK`` +
  ``<output token> <bytes>\\n`` then ``bytes`` of UTF-8 JSON: one Jupyter output
  (``display_data``, ``update_display_data``, ``execute_result``, ``error``, ``clear_output``;
  the .ipynb shapes, binary MIME data base64-encoded), or ``input_request`` (``prompt``,
  ``password``: the program waits for an input reply). Files a program leaves in ``DISPLAY_DIR``
  become ``display_data`` records at its end. The output token is random per execution and
  differs from the exit token: the program may know it (its display publisher writes records),
  so a forged record is only the program's own output, validated like any other.
- **state** (stdout, after the program ended, before the exit report; only when the job sets
  ``JOB_STATE_MAX``): ``STATE_MARK`` + ``<exit token> <bytes>\\n`` then ``bytes`` of a tar of the
  work directory: every regular file but ``JOB_DIR`` (save ``NAMESPACE``, Python's pickled
  variables), the source file and what a compile step wrote, smallest first, as many as fit in
  ``JOB_STATE_MAX`` bytes of tar (512 bytes of header per file, its data in 512-byte blocks,
  1024 bytes of end; the rest is named on stderr). The size is announced before the tar is
  written and the tar is cut or zero-padded to it, so a file changing meanwhile cannot break the
  framing. Written by the watchdog: the program does not know the exit token. The engine keeps
  it unopened for the next execution of the same kernel or session (``state.py``). A stateless
  payload with a ``STATE_ONLY`` file (one glob pattern a line, ``*`` matching ``/`` too: a
  request's ``return_files``) asks for a state of the matching files only, without ``NAMESPACE``:
  the engine takes the files the request asked for from it, and keeps nothing. When the
  execution left the state exactly as it got it (the same files, sizes and times; the same
  pickled variables), the record is ``STATE_MARK`` + ``<exit token> `` + ``STATE_SAME`` + ``\\n``
  and nothing follows: the engine keeps the state it has.
- **exit report** (both streams, last): ``EXIT_MARK`` + ``<exit token> <exit code>\\n``. The
  engine forwards the two streams independently, so each report ends its own stream. Only the
  watchdog (the bootstrap's shell, the prestart's parent) knows the exit token.

Engine → slot runner (sandbox kind "nested", ``container/runner.py``), on the runner container's
stdin, or after the token on its channel (``channel.py``; the relay says ``<token> channel`` or
``<token> nochannel <reason>`` on stdout first, and then writes there what it would write on
stdout and stderr, in the attach stream's frames): frames ``b"<kind> <sandbox number>
<size>\\n"`` + ``size`` bytes (``runner_frame``):
``FRAME_TOKEN`` first (number 0: the runner token, which no sandbox ever sees), then per
execution ``FRAME_DATA`` (what the bootstrap reads on its stdin: the payload, the go-ahead) and
``FRAME_STOP`` (no body: kill that sandbox) or ``FRAME_INTERRUPT`` (no body: SIGINT to it). The
runner numbers its sandboxes from 1, one per execution; it drops the frames of another number.

Slot runner → engine, on both streams, with the runner token: ``RUNNER_MARK`` + ``<token> ready
<template RSS KiB> <cgroup charge KiB>\\n`` once, when its first sandbox waits (or ``<token>
unable <reason>\\n``: it cannot make nested sandboxes here); then after each sandbox has ended and
its output was forwarded, ``<token> <number> <exit status> <OOM kills> <clean: 1|0> <stopped:
1|0>\\n``. Output before it is the execution's; the report ends the execution.

Container labels (``LABEL`` + suffix): ``owner`` (``<master id>:<pid>:<nonce>`` of the engine
that made it), ``execution`` (its id, or ``pool-…`` for a warm one), ``language``, ``pooled``
(``"1"`` on warm containers) and ``expires`` (epoch seconds when even its in-container deadline is
long past).
"""

from __future__ import annotations

import time

# -- stdin -----------------------------------------------------------------------------------------
GO = b"g"
JOB_DIR = ".braindrill"  # under /work; reserved: a request's files may not go there
JOB_TIMEOUT = "BD_TIMEOUT"  # the in-container deadline of the run step, in seconds
JOB_EXIT_TOKEN = "BD_EXIT_TOKEN"
JOB_OUTPUT_TOKEN = "BD_OUTPUT_TOKEN"
JOB_OUTPUT_MAX = "BD_OUTPUT_MAX"  # the largest output record, in bytes of JSON
JOB_INTERACTIVE = "BD_INTERACTIVE"  # "1": cell semantics (last expression shown), else a script
JOB_EXECUTION_COUNT = "BD_EXECUTION_COUNT"  # the cell's number, for execute_result
JOB_COMPILE = "BD_COMPILE"
JOB_STATE_MAX = "BD_STATE_MAX"  # bytes of tar the state may take; unset: keep no state
JOB_SOURCE = "BD_SOURCE"  # the source file, which a state does not keep
JOB_COMPILE_TIMEOUT = "BD_COMPILE_TIMEOUT"
JOB_COMPILE_OUTPUT = "BD_COMPILE_OUTPUT"
# A cell's answer instead of its run (Python): "complete" or "inspect" a request's code (JSON in
# the source file) in the restored state; the answer is one REPLY_MIME display record.
JOB_TOOL = "BD_TOOL"
# A cell's input() and getpass(): "1", they ask the front end (input_request records); "0", they
# fail as under ipykernel without stdin; unset, they read the program's stdin.
JOB_INPUT = "BD_INPUT"
HISTORY = f"{JOB_DIR}/history"  # a cell's earlier cells (JSON list; index = execution count)

NO_PAYLOAD = 123  # the exit code of a sandbox whose stdin closed before a payload came

# -- the sandbox's environment ---------------------------------------------------------------------
WORKDIR = "/work"
DISPLAY_DIR = f"{WORKDIR}/{JOB_DIR}/display"  # $BRAINDRILL_DISPLAY: files shown at the end
DISPLAY_ENV = "BRAINDRILL_DISPLAY"
NAMESPACE = f"{JOB_DIR}/namespace"  # Python's variables in a state (cloudpickle), in /work
PYTHON_LIB = f"{JOB_DIR}/lib"  # cloudpickle's source, carried in a stateful Python payload
REPLY_MIME = "application/vnd.braindrill.reply+json"  # a tool's answer (JOB_TOOL)
STATE_ONLY = f"{JOB_DIR}/only"  # patterns: a state of the matching files only (return_files)
# The packages a kernel or session installed (engine/packages.py), unpacked wheels carried in a
# Python payload: the program puts this directory on sys.path, before site-packages.
SITE_DIR = f"{JOB_DIR}/site"

# -- stdout/stderr -------------------------------------------------------------------------------
COMPILE_MARK = b"\x1ebraindrill-compile "
OUTPUT_MARK = b"\x1ebraindrill-output "
STATE_MARK = b"\x1ebraindrill-state "
STATE_SAME = b"same"  # in place of the state's size: the state is as it came
EXIT_MARK = b"\x1ebraindrill-exit "
RUNNER_MARK = b"\x1ebraindrill-runner "  # a slot runner's report (container/runner.py)

# -- engine → slot runner --------------------------------------------------------------------------
FRAME_TOKEN, FRAME_DATA, FRAME_STOP = b"token", b"data", b"stop"
FRAME_INTERRUPT = b"interrupt"  # SIGINT to the sandbox's watchdog, which hands it to the program
MAX_HEADER = 64  # the longest header line of a report or record

# -- labels ----------------------------------------------------------------------------------------
LABEL = "braindrill"
OWNER, EXECUTION, LANGUAGE, POOLED, EXPIRES = (
    f"{LABEL}.{name}" for name in ("owner", "execution", "language", "pooled", "expires")
)


def runner_frame(kind: bytes, number: int, body: bytes = b"") -> bytes:
    """One frame of the engine to a slot runner."""
    return runner_frame_header(kind, number, len(body)) + body


def runner_frame_header(kind: bytes, number: int, size: int) -> bytes:
    """The header of a frame whose ``size`` bytes of body follow it."""
    return b"%s %d %d\n" % (kind, number, size)


def exit_mark(token: str) -> bytes:
    """The start of an execution's exit report."""
    return EXIT_MARK + token.encode() + b" "


def state_mark(token: str) -> bytes:
    """The start of an execution's state (its token is the exit token: the watchdog's)."""
    return STATE_MARK + token.encode() + b" "


def output_mark(token: str) -> bytes:
    """The start of an execution's output records."""
    return OUTPUT_MARK + token.encode() + b" "


def labels(owner: str, execution: str, *, language: str = "", pooled: bool = False) -> dict:
    """The labels of a new sandbox container (``expires`` is added when it is created)."""
    made = {OWNER: owner, EXECUTION: execution}
    if language:
        made[LANGUAGE] = language
    if pooled:
        made[POOLED] = "1"
    return made


def expires_label(life_s: float) -> str:
    return str(int(time.time() + life_s))


def expiry(labels: dict) -> float:
    """When a container is garbage whatever its owner (0 for a malformed label)."""
    try:
        return float(labels.get(EXPIRES, "inf"))
    except ValueError:
        return 0.0


def parse_owner(owner: str) -> tuple[str, int | None]:
    """``(master id, pid)`` of an owner label (pid None when malformed)."""
    master, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return master, int(pid) if pid.isdigit() else None
