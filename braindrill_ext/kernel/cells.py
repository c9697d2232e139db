"""What a kernel cell shows: the error of a failed cell (the program's own exception, or the
Braindrill status), the banner, whether a cell is complete, and the state magics. Pure
functions, used by the kernel."""

from __future__ import annotations

from ..engine import LIMITS_MAGIC
from ..errors import BraindrillError
from ..execution import Limits, Result, Status

RED, RESET = "\x1b[0;31m", "\x1b[0m"
RESET_MAGIC = "%reset"  # a first line: empty the kernel's state, then run the rest of the cell
STATELESS_MAGIC = "%%stateless"  # a first line: run the cell without the state, leave it as is

_WHY = {
    Status.ERROR: "the program exited with a non-zero code",
    Status.TIMEOUT: "the cell ran past its {timeout_s:g} s limit; its container was killed",
    Status.OOM: "the cell went past its {memory_mib} MiB memory limit; its container was killed",
    Status.OUTPUT_LIMIT: (
        "the cell wrote more than {output_bytes} bytes to one stream; its container was killed"
    ),
    Status.COMPILE_ERROR: "the compile step failed; the program did not run",
    Status.WORKER_LOST: "the worker host was lost while the cell ran",
    Status.INTERNAL_ERROR: "Braindrill could not run the cell (not the code's fault)",
}


def error_content(result: Result, limits: Limits) -> dict:
    """The ``error`` output and ``execute_reply`` fields of a failed cell: the exception the cell
    raised (its real ``ename``, ``evalue`` and traceback), or else ``ename`` is the Braindrill
    status and ``evalue`` says why and gives the exit code."""
    if result.error is not None:
        error = result.error
        return _error(error["ename"], error["evalue"], error["traceback"])
    why = _WHY[result.status].format(**vars(limits))
    evalue = f"{why} (exit code {result.exit_code})"
    if result.message:
        evalue += f": {result.message}"
    if result.state_message:
        evalue += f"; {result.state_message}"
    traceback = [f"{RED}{result.status.value}{RESET}: {evalue}"]
    if result.status is Status.COMPILE_ERROR and result.compile_output:
        traceback += result.compile_output.rstrip("\n").split("\n")
    return _error(result.status.value, evalue, traceback)


def interrupted_content(stateful: bool = False) -> dict:
    """A cell stopped by an interrupt (its container was killed and removed)."""
    evalue = "the cell was interrupted; its container was killed"
    if stateful:
        evalue += "; the state (variables and files) is as it was before this cell"
    return _error("interrupted", evalue, [f"{RED}interrupted{RESET}: {evalue}"])


def refused_content(error: BraindrillError) -> dict:
    """A cell the engine did not run: bad ``%%limits``, code too large, no capacity."""
    name = type(error).__name__
    return _error(name, str(error), [f"{RED}{name}{RESET}: {error}"])


def _error(ename: str, evalue: str, traceback: list[str]) -> dict:
    return {"status": "error", "ename": ename, "evalue": evalue, "traceback": traceback}


def banner(language, version: str | None, limits: Limits, stateful: bool = True) -> str:
    """The kernel banner: what the kernel runs, what carries over between cells, the limits."""
    name = f"{language.display_name} {version}" if version else language.display_name
    what = "variables, imports and files" if language.prestart else "files"
    if stateful:
        state = (
            f"Each cell runs in a fresh, locked-down container; its {what} carry over to the "
            f"next cell as data (up to {limits.state_mib} MiB). `{RESET_MAGIC}` empties them, "
            f"`{STATELESS_MAGIC}` runs a cell without them.\n"
        )
    else:
        state = (
            "Each cell runs as a whole program in a fresh, locked-down container: no state "
            "(variables, imports, files) carries over from one cell to the next.\n"
        )
    return (
        f"{name} on Braindrill\n{state}"
        f"Limits per cell: {limits.timeout_s:g} s, {limits.memory_mib} MiB, {limits.cpus:g} CPU; "
        f"change them with a first line such as `{LIMITS_MAGIC} timeout_s=30 memory_mib=512` "
        "(up to the operator's maxima)."
    )


def is_complete(language, code: str) -> dict:
    """The ``is_complete_reply`` for ``code``: for Python, IPython's own answer (``complete``,
    ``incomplete`` with the next line's indent, ``invalid``), found by parsing alone — nothing
    is run in the server; ``unknown`` for the other languages."""
    if language.language_info.get("name") != "python":
        return {"status": "unknown"}
    # Imported on first use: it costs a Jupyter server's start-up ~0.1 s otherwise. It compiles
    # (codeop) and never executes.
    from IPython.core.inputtransformer2 import TransformerManager

    status, indent = TransformerManager().check_complete(code)
    if status == "incomplete":
        return {"status": status, "indent": " " * (indent or 0)}
    return {"status": status}


def split_state_magic(code: str) -> tuple[str | None, str]:
    """Split a first line ``%reset`` (``-f`` allowed, as IPython's) or ``%%stateless`` off a
    cell: returns the magic (None without one) and the rest of the cell."""
    first, _, rest = code.partition("\n")
    words = first.split()
    if words[:1] == [STATELESS_MAGIC] and len(words) == 1:
        return STATELESS_MAGIC, rest
    if words[:1] == [RESET_MAGIC] and words[1:] in ([], ["-f"]):
        return RESET_MAGIC, rest
    return None, code
