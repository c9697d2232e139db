"""What the REST API shows of the engine: the view models of ``GET /lang``,
``GET /braindrill/workers`` and ``/braindrill/sessions``, beside the handlers that serve them."""

from __future__ import annotations

import dataclasses
import datetime

from .languages import Language

VERSION_WAIT_S = 15.0  # GET /lang waits this long for a runtime's version being learned


async def language_model(engine, language: Language) -> dict:
    """One language of ``GET /lang``: image, version, default and maximum limits."""
    image = await engine.image(language)
    defaults = dataclasses.asdict(engine.limits.defaults(language))
    return {
        "name": language.name,
        "display_name": language.display_name,
        "aliases": list(language.aliases),
        "kernel_name": language.kernel_name,
        "image": image or language.image,
        "image_available": image is not None,
        "version": await engine.version(language, VERSION_WAIT_S),
        "compiled": language.compile is not None,
        "source_file": language.source_file,
        "limits": defaults,
        "max_limits": {k: engine.limits.maximum(k) for k in defaults if engine.limits.maximum(k)},
    }


def workers_model(engine) -> dict:
    """``GET /braindrill/workers``: the queue and every worker host with its pool."""
    return {
        "master": engine.master_id,
        "queued": engine.scheduler.queued,
        "queue_size": engine.queue_size,
        "capacity": engine.scheduler.capacity,
        "image_source": engine.image_source.status() if engine.image_source else None,
        "workers": [
            {**h.status(), "pool": engine.host_pools[h.name].status()} for h in engine.workers
        ],
    }


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


def iso_time(seconds: float) -> str:
    """Epoch seconds as ISO 8601 in UTC with milliseconds: ``2025-01-31T12:00:00.000Z``."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
