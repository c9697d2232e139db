"""The audit line: one log line per execution, at info level -- who, what, how it ended, where,
how long -- as key=value text or as one JSON object (``ExecutionEngine.audit_format``)."""

from __future__ import annotations

import json


def audit_line(fmt: str, execution, result, seconds: float = 0, container=None, refused=None):
    """The arguments of one ``log.info`` call: for a result, or for a refusal (``refused``,
    after ``seconds`` in the queue)."""
    line = {
        "event": "execution",
        "id": execution.id,
        "user": execution.user,
        "language": execution.language.name,
        "status": result.status.value if result else "refused",
        "exit_code": result.exit_code if result else None,
        "duration_ms": round(result.duration_ms) if result else None,
        "queued_ms": round(result.queued_ms) if result else round(seconds * 1000),
        "host": result.worker if result else None,
        "container": container[:12] if container else None,
    }
    if refused is not None:
        line["refused"] = f"{type(refused).__name__}: {refused}"
    if fmt == "json":
        return "%s", json.dumps(line)
    return "braindrill %s", " ".join(f"{k}={_quoted(v)}" for k, v in line.items())


def _quoted(value) -> str:
    text = "-" if value is None else str(value)
    return json.dumps(text) if (" " in text or '"' in text or not text) else text
