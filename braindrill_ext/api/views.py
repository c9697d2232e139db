"""What the REST API shows of its sessions (``/braindrill/sessions``), beside the handlers that
serve them. (Languages and worker hosts the engine describes itself: ``describe.py``.)"""

from __future__ import annotations

import datetime


def session_model(sessions, session) -> dict:
    """One session of ``/braindrill/sessions``; times are ISO 8601 in UTC."""
    return {
        "id": session.id,
        "language": session.language,
        "created": iso_time(session.created),
        "last_used": iso_time(session.last_used),
        "expires_at": iso_time(sessions.expires_at(session)),
        "executions": session.executions,
        "state_bytes": sessions.state_bytes(session),
    }


def file_model(entry: dict) -> dict:
    """One file of ``/braindrill/sessions/<id>/files``: path, size in bytes, mtime (ISO 8601)."""
    return {"path": entry["path"], "size": entry["size"], "mtime": iso_time(entry["mtime"])}


def iso_time(seconds: float) -> str:
    """Epoch seconds as ISO 8601 in UTC with milliseconds: ``2025-01-31T12:00:00.000Z``."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
