"""An execution's outcome: its status, from what the sandbox reported (the collector) and what the
engine saw (the deadline, the host), and the ``Result`` it makes."""

from __future__ import annotations

from dataclasses import dataclass

from ..execution import Limits, Result, Status
from .attach import STDERR, STDOUT


@dataclass
class Outcome:
    """What the engine saw of one execution."""

    exit_code: int | None  # the program's (or, for a compile failure, the compiler's)
    oom: bool | None  # the OOM killer struck
    timed_out: bool  # killed at the deadline
    lost: bool  # the worker host, or the stream, was lost
    message: str | None  # why, when it was lost
    refused: str | None  # why the run step could not start after the compile step


def make_result(language: str, worker: str, collector, outcome: Outcome, limits: Limits,
                duration_ms: float) -> Result:  # fmt: skip
    """The Result of one execution."""
    status = _classify(collector, outcome)
    exit_code, message = outcome.exit_code, outcome.message
    if status is Status.COMPILE_ERROR:
        exit_code = collector.compile_exit
        message = _compile_failure(exit_code, outcome.oom, limits)
    elif outcome.refused and status is not Status.WORKER_LOST:
        status, message = Status.OOM, outcome.refused
    return Result(
        language=language,
        status=status,
        exit_code=exit_code,
        stdout=collector.text(STDOUT),
        stderr=collector.text(STDERR),
        stdout_truncated=collector.truncated[STDOUT],
        stderr_truncated=collector.truncated[STDERR],
        duration_ms=duration_ms,
        worker=worker,
        compile_output=collector.compile_text,
        message=message,
        outputs=collector.outputs,
        error=collector.error if status is Status.ERROR else None,
        state=collector.state,
        state_message=collector.state_message,
        state_unchanged=collector.state_unchanged,
    )


def _classify(collector, outcome: Outcome) -> Status:
    if outcome.timed_out:
        return Status.TIMEOUT
    if collector.overflow:
        return Status.OUTPUT_LIMIT
    if outcome.lost:
        return Status.WORKER_LOST
    if collector.compile_exit not in (None, 0):
        return Status.COMPILE_ERROR
    if outcome.oom:
        return Status.OOM
    return Status.OK if outcome.exit_code == 0 else Status.ERROR


def _compile_failure(exit_code, oom, limits: Limits) -> str:
    if oom:
        return f"the compiler ran out of memory (compile_memory_mib={limits.compile_memory_mib})"
    if exit_code == 137:  # killed, and not by the OOM killer: the compile step's timeout
        return f"the compiler hit its time limit (compile_timeout_s={limits.compile_timeout_s:g})"
    return f"the compile step failed with exit code {exit_code}"
