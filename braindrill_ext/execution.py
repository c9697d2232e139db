"""Execution and Result: one request and its outcome, plain data shared by REST and kernels."""

from __future__ import annotations

import enum
import uuid
from dataclasses import asdict, dataclass, field

from .languages import Language


class Status(str, enum.Enum):
    OK = "ok"  # exit code 0
    ERROR = "error"  # non-zero exit code
    COMPILE_ERROR = "compile_error"  # the compile step failed; the program did not run
    TIMEOUT = "timeout"  # killed at the wall-clock deadline
    OOM = "oom"  # killed by the kernel's OOM killer at the memory limit
    OUTPUT_LIMIT = "output_limit"  # killed for writing more than the output cap
    WORKER_LOST = "worker_lost"  # the worker host failed while the code ran
    INTERNAL_ERROR = "internal_error"  # the engine failed; not the code's fault


@dataclass(frozen=True)
class Limits:
    """Resource limits of one execution; see ``LimitsPolicy`` for defaults and maxima."""

    timeout_s: float = 10.0
    memory_mib: int = 256
    cpus: float = 1.0
    pids: int = 64
    output_bytes: int = 1 << 20
    workdir_mib: int = 64
    nofile: int = 256
    compile_timeout_s: float = 30.0
    compile_output_bytes: int = 64 << 10
    compile_memory_mib: int = 512
    display_bytes: int = 16 << 20  # all rich outputs (displays, plots) of one execution
    output_record_bytes: int = 8 << 20  # one rich output
    state_mib: int = 64  # the state a kernel or session carries to its next execution
    return_files_bytes: int = 16 << 20  # the files a request's return_files bring back, in all

    @property
    def state_bytes(self) -> int:
        """``state_mib`` in bytes: the most a state's tar may take."""
        return self.state_mib << 20


@dataclass
class Execution:
    language: Language
    code: str
    limits: Limits = field(default_factory=Limits)
    stdin: str = ""
    args: list[str] = field(default_factory=list)
    files: dict[str, str | bytes] = field(default_factory=dict)  # path → text or bytes
    # Cell semantics (the last expression's value is shown, an exception is an ``error``
    # output), as in a notebook; False: the code runs as a script (REST's default).
    interactive: bool = False
    execution_count: int = 0  # the cell's number, for its execute_result
    # A kernel's earlier cells, by execution count (index 0 unused), for a Python cell's
    # ``%history`` and ``In``.
    history: list[str] = field(default_factory=list)
    # A kernel cell's input() and getpass(): True, they ask the front end (its allow_stdin);
    # False, they fail as under ipykernel without stdin; None (REST): they read ``stdin``.
    input: bool | None = None
    # "complete" or "inspect": a Python kernel's answer to a completion or help request about
    # ``code`` (JSON: code, cursor_pos, detail_level), from the state it restores and never keeps.
    tool: str = ""
    warm: bool = True  # may take a warm container (False: a cold one, e.g. a version probe)
    # The state of a kernel or REST session (``state.py``): an opaque blob made by an earlier
    # sandbox, restored in this one before the code runs; None: stateless, nothing restored or
    # kept (b"": an empty state, and what this execution leaves is kept).
    state: bytes | None = None
    user: str = ""  # who asked: the Jupyter user of a REST request, the kernel of a cell
    # Glob patterns (relative to the work directory) of files whose contents come back in the
    # Result's ``files``, up to ``limits.return_files_bytes``.
    return_files: list[str] = field(default_factory=list)
    # Requirements (``tabulate==0.9.0``) a REST request installs before its code runs, for its
    # session or for itself (``engine/packages.py``); and the site tree of its owner's packages
    # (path → bytes), set by the engine and carried in the payload under ``protocol.SITE_DIR``.
    packages: list[str] = field(default_factory=list)
    site: dict[str, bytes] = field(default_factory=dict, repr=False)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def memory_mib(self) -> int:
        """The most memory its container may use: what it takes of a host's memory budget."""
        return container_memory_mib(self.language, self.limits)


def container_memory_mib(language: Language, limits: Limits) -> int:
    """The memory limit a container of ``language`` reaches: a compiled language's container
    runs its compile step under ``compile_memory_mib``."""
    if language.compile:
        return max(limits.memory_mib, limits.compile_memory_mib)
    return limits.memory_mib


@dataclass
class Result:
    language: str
    status: Status
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_ms: float = 0.0
    worker: str | None = None
    compile_output: str | None = None
    queued_ms: float = 0.0
    message: str | None = None
    # Rich outputs (display_data, update_display_data, clear_output, execute_result) in order,
    # shaped as in .ipynb; and the uncaught exception of a cell ({ename, evalue, traceback}).
    outputs: list[dict] = field(default_factory=list)
    error: dict | None = None
    # A stateful execution's new state (None: the state stays as it was) and, when the state
    # did not simply move on, why (not kept, as before, some files or variables left behind).
    state: bytes | None = field(default=None, repr=False)
    state_message: str | None = None
    state_unchanged: bool = field(default=False, repr=False)  # left as it came: keep the one kept
    # The files ``return_files`` asked for ({path, size, base64}), and what did not come back.
    files: list[dict] = field(default_factory=list)
    files_message: str | None = None
    # What the request's ``packages`` installed ({name, version}, dependencies included).
    packages: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        data = asdict(self)
        del data["state"]  # opaque, never shown
        del data["state_unchanged"]
        data["status"] = self.status.value
        data["duration_ms"] = round(self.duration_ms, 1)
        data["queued_ms"] = round(self.queued_ms, 1)
        return data
