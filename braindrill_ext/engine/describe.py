"""What the engine shows of itself to the front doors: a language (``GET /lang``) and the worker
hosts with the queue (``GET /braindrill/workers``), as plain JSON-able dicts."""

from __future__ import annotations

import dataclasses


def language(language, image: str | None, version: str | None, policy) -> dict:
    """One language: image, version, default and maximum limits (``policy``: the
    ``LimitsPolicy``)."""
    defaults = dataclasses.asdict(policy.defaults(language))
    return {
        "name": language.name,
        "display_name": language.display_name,
        "aliases": list(language.aliases),
        "kernel_name": language.kernel_name,
        "image": image or language.image,
        "image_available": image is not None,
        "version": version,
        "compiled": language.compile is not None,
        "source_file": language.source_file,
        "limits": defaults,
        "max_limits": {k: policy.maximum(k) for k in defaults if policy.maximum(k)},
    }


def hosts(master: str, queue_size: int, scheduler, image_source, host_pools) -> dict:
    """The queue and every worker host with its pool (``host_pools``: by host name, in the
    hosts' order)."""
    return {
        "master": master,
        "queued": scheduler.queued,
        "queue_size": queue_size,
        "capacity": scheduler.capacity,
        "image_source": image_source.status() if image_source else None,
        "workers": [{**pool.host.status(), "pool": pool.status()} for pool in host_pools.values()],
    }
