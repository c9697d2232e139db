"""The wire protocol has one source, ``sandbox/protocol.py``: the in-container programs cannot
import it, so each line of theirs that writes one of its constants says so (``# protocol.NAME``),
and these tests hold every such line to the module's value; they also check that each program
writes the constants its side of the protocol needs, and that the job's variables both sides
use are the module's ``JOB_*``. No Docker: they read the programs' text."""

from __future__ import annotations

import io
import re
import tokenize

import pytest

from braindrill_ext.sandbox import programs
from braindrill_ext.sandbox import protocol as p

PROGRAMS = (
    "bootstrap.sh",
    "node_cell.js",
    "prestart.py",
    "python_cell.py",
    "python_files.py",
    "python_output.py",
    "python_state.py",
    "runner.py",
)  # fmt: skip  (runner_sandbox.py and python_run.py write no constant of the protocol)
# What each program writes of the protocol (and so must say it writes).
WRITES = {
    "bootstrap.sh": {
        "COMPILE_MARK", "OUTPUT_MARK", "STATE_MARK", "EXIT_MARK", "NO_PAYLOAD", "DISPLAY_DIR",
        "GO",
    },
    "node_cell.js": {"OUTPUT_MARK"},
    "prestart.py": {"EXIT_MARK", "NO_PAYLOAD"},
    "python_output.py": {"OUTPUT_MARK", "DISPLAY_DIR"},
    "python_state.py": {"WORKDIR", "NAMESPACE", "PYTHON_LIB"},
    "python_files.py": {"STATE_MARK", "STATE_SAME", "STATE_ONLY", "JOB_DIR"},
    "python_cell.py": {"REPLY_MIME", "HISTORY"},
    "runner.py": {"RUNNER_MARK", "FRAME_TOKEN", "FRAME_DATA", "FRAME_STOP", "FRAME_INTERRUPT"},
}  # fmt: skip
CITE = re.compile(r"#\s*protocol\.([A-Z_]+)\b")


def annotated(name: str) -> list[tuple[str, str]]:
    """(constant, the code of its line) for every line of a program that cites one."""
    text = programs.text(name)
    if name.endswith(".py"):
        found = []
        lines = text.splitlines()
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            match = CITE.match(tok.string) if tok.type == tokenize.COMMENT else None
            code = lines[tok.start[0] - 1][: tok.start[1]] if match else ""
            if code.strip():
                found.append((match.group(1), code))
        return found
    found = []
    marker = "; // " if name.endswith(".js") else "  # "
    for line in text.replace("\\\n", " ").splitlines():  # continued lines, joined
        code, _, comment = line.partition(marker)
        match = CITE.match("# " + comment) if comment else None
        if match and code.strip():
            found.append((match.group(1), code))
    return found


def spellings(value) -> list[str]:
    """How a program may write ``value``: Python's literal, a shell printf's octal escape."""
    if isinstance(value, bytes):
        text = value.decode()
        octal = "".join(f"\\{ord(c):03o}" if ord(c) < 32 else c for c in text)
        return [repr(value)[2:-1], octal, text]
    return [str(value)]


@pytest.mark.parametrize("name", PROGRAMS)
def test_every_cited_constant_is_written_as_protocol_defines_it(name):
    cited = annotated(name)
    assert cited, f"{name} cites no constant of protocol.py"
    for constant, code in cited:
        assert hasattr(p, constant), f"{name} cites protocol.{constant}, which does not exist"
        value = getattr(p, constant)
        assert any(s in code for s in spellings(value)), (
            f"{name}: a line citing protocol.{constant} does not write {value!r}: {code.strip()}"
        )


@pytest.mark.parametrize("name", PROGRAMS)
def test_each_program_cites_what_it_writes(name):
    cited = {constant for constant, _ in annotated(name)}
    assert WRITES[name] <= cited, f"{name} writes without citing: {WRITES[name] - cited}"


def test_the_jobs_variables_are_protocols():
    """Every ``BD_*`` variable a program reads from the job is a ``JOB_*`` of protocol.py, and
    every ``JOB_*`` is read by some program (the bootstrap or the prestart)."""
    jobs = {getattr(p, name) for name in dir(p) if name.startswith("JOB_") and name != "JOB_DIR"}
    environment = {"BD_PRESTART"}  # a container's environment, not the job
    read = set()
    readers = ("bootstrap.sh", "prestart.py", "python_cell.py", "python_run.py", "python_files.py")
    for name in readers:
        read |= set(re.findall(r"\bBD_[A-Z_]+\b", programs.text(name))) - environment
    assert read <= jobs, f"read but not in protocol.py: {read - jobs}"
    assert jobs <= read, f"in protocol.py but read by no program: {jobs - read}"


def test_protocol_documents_the_runner_report_as_the_runner_writes_it():
    """The report's fields, in protocol.py's docstring and in the runner's comment, match the
    fields the engine parses (``sandbox/runner.py``)."""
    fields = "<number> <exit status> <OOM kills> <clean: 1|0> <stopped:"
    assert fields in " ".join(p.__doc__.split())
    assert "<number> <status> <OOM kills> <clean: 1|0> <stopped: 1|0>" in programs.RUNNER
