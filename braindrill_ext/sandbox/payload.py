"""What the engine sends a sandbox for one execution: the framed payload (``protocol.py``) and
the execution's tokens."""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import secrets
import shlex
import tarfile
import time
from importlib import resources

from ..execution import Execution, Limits
from . import programs
from . import protocol as p

GRACE_S = 2.0  # the in-container backstop fires this long after the engine's deadline


@dataclasses.dataclass(frozen=True)
class Tokens:
    """One execution's tokens (``protocol.py``): the exit report's, known to the watchdog only,
    and the output records', known to the program's display publisher."""

    exit: str = dataclasses.field(default_factory=lambda: secrets.token_hex(8))
    output: str = dataclasses.field(default_factory=lambda: secrets.token_hex(8))


def build_payload(
    execution: Execution, limits: Limits, tokens: Tokens, lib=True
) -> tuple[bytes, ...]:
    """The framed payload the bootstrap reads: ``<size>\\n`` then a tar of the work directory;
    with a state, ``<size> <state size>\\n``, the state, then the tar (``protocol.py``). In
    pieces, sent one after the other: a state goes as it is kept, not copied to be framed."""
    lang = execution.language
    job = {
        p.JOB_TIMEOUT: f"{limits.timeout_s + GRACE_S:g}",
        p.JOB_EXIT_TOKEN: tokens.exit,
        p.JOB_OUTPUT_TOKEN: tokens.output,
        p.JOB_OUTPUT_MAX: str(limits.output_record_bytes),
        p.JOB_INTERACTIVE: "1" if execution.interactive else "0",
        p.JOB_EXECUTION_COUNT: str(execution.execution_count),
    }
    if execution.tool:
        job[p.JOB_TOOL] = execution.tool
    if execution.input is not None:
        job[p.JOB_INPUT] = "1" if execution.input else "0"
    stateful = execution.state is not None
    cap = state_cap(execution, limits)
    if cap is not None:
        job[p.JOB_STATE_MAX] = str(cap)
        job[p.JOB_SOURCE] = shlex.quote(lang.source_file)
    if lang.compile:
        job[p.JOB_COMPILE] = shlex.quote(shlex.join(lang.compile))
        job[p.JOB_COMPILE_TIMEOUT] = f"{limits.compile_timeout_s:g}"
        job[p.JOB_COMPILE_OUTPUT] = str(limits.compile_output_bytes)
    cell = execution.interactive and lang.cell_run is not None
    argv = [*(lang.cell_run if cell else lang.run), *execution.args]
    lines = [f"{name}={value}" for name, value in job.items()]
    lines.append("set -- " + shlex.join(argv))
    entries = {**execution.files, lang.source_file: execution.code}
    entries[f"{p.JOB_DIR}/stdin"] = execution.stdin
    entries[f"{p.JOB_DIR}/job"] = "\n".join(lines) + "\n"
    if execution.history:
        entries[p.HISTORY] = json.dumps(execution.history)
    for name in lang.cell_files if cell else ():
        entries[f"{p.JOB_DIR}/{name}"] = programs.text(name).replace(
            "{{output_token}}", tokens.output
        )
    if not stateful and execution.return_files:  # a state of the files asked for, no more
        entries[p.STATE_ONLY] = "".join(f"{pattern}\n" for pattern in execution.return_files)
    if lang.prestart:  # the same argv, for a reader that is not a shell
        entries[f"{p.JOB_DIR}/argv"] = "\0".join(argv)
        if stateful and lib:  # what pickles the variables, whatever the image has
            entries.update(python_lib())
        for path, data in execution.site.items():  # installed packages, on sys.path
            entries[f"{p.SITE_DIR}/{path}"] = data
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content in entries.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    body = buf.getvalue()
    if not stateful:
        return f"{len(body)}\n".encode(), body
    return f"{len(body)} {len(execution.state)}\n".encode(), execution.state, body


def state_cap(execution: Execution, limits: Limits) -> int | None:
    """The most bytes of state tar the sandbox sends back (``protocol.JOB_STATE_MAX``): a
    stateful execution's ``state_mib``; for a stateless one with ``return_files``, room for
    whatever its work directory can hold (the engine applies ``return_files_bytes`` and names
    what is over it); None: no state comes back."""
    if execution.state is not None:
        return limits.state_bytes
    if execution.return_files:
        return (limits.workdir_mib << 21) + (1 << 20)  # the files, their headers
    return None


@functools.cache
def python_lib() -> dict[str, str]:
    """cloudpickle's source (this server's copy), carried in a stateful Python payload under
    ``protocol.PYTHON_LIB``: the prestart pickles the variables with it, so that state works on
    any image with a Python (the official ones have no cloudpickle) and every container of a
    kernel speaks the same pickle dialect."""
    package = resources.files("cloudpickle")
    return {
        f"{p.PYTHON_LIB}/cloudpickle/{item.name}": item.read_text()
        for item in package.iterdir()
        if item.name.endswith(".py")
    }


@functools.cache
def python_lib_json() -> str:
    """``python_lib()`` as JSON, for a prestarted interpreter's command: it imports cloudpickle
    before the payload, and stateful payloads to it carry none."""
    return json.dumps(python_lib())
