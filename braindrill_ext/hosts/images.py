"""Runtime images on a worker host: which one a language runs with, and copying one between
engines. (Making images — pull or build from Debian — is ``imagebuild.py``.)"""

from __future__ import annotations

import time

import docker
from docker.errors import APIError, ImageNotFound

from ..languages import Language


def image_present(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except ImageNotFound:
        return False
    return True


def resolve_image(
    client: docker.DockerClient, language: Language, override: str = ""
) -> str | None:
    """The image a host runs ``language`` with: the operator's override, else the official image,
    else the one built from Debian packages; None when the host has none of them."""
    candidates = [override] if override else [language.image, language.built_image]
    return next((ref for ref in candidates if image_present(client, ref)), None)


def image_id(client: docker.DockerClient, ref: str) -> str:
    """The content id of image ``ref`` on ``client``'s engine."""
    return client.api.inspect_image(ref)["Id"]


def copy_image(src_client, dst_client, ref: str, progress=None, log=None) -> None:
    """Copy image ``ref`` from one Docker Engine to another: ``docker save`` on the source streamed
    into ``docker load`` on the destination, never held whole in memory. ``progress(text)`` is
    called as bytes flow (every 16 MiB). Raises ``APIError`` (or a transport error) on failure.
    ``dst_client``'s per-call timeout must cover the whole load: the engine answers only once it
    has unpacked every layer.

    Called by ``WorkerHost.image_for`` when a host lacks a language's image."""
    start, sent, step = time.monotonic(), 0, 16 << 20
    say = progress or (lambda text: None)

    def chunks():
        nonlocal sent
        next_report = step
        for chunk in src_client.api.get_image(ref, chunk_size=1 << 20):
            sent += len(chunk)
            if sent >= next_report:
                next_report += step
                say(f"{sent >> 20} MiB sent")
                if log is not None:
                    log.info("copying %s: %d MiB sent", ref, sent >> 20)
            yield chunk

    for message in dst_client.api.load_image(chunks(), quiet=False):
        if isinstance(message, dict) and message.get("error"):
            raise APIError(f"loading {ref} failed: {message['error']}")
    if not image_present(dst_client, ref):
        raise APIError(f"loading {ref} finished but the image is not there")
    say(f"done: {sent >> 20} MiB in {time.monotonic() - start:.1f} s")
    if log is not None:
        log.info("copied %s (%d MiB) in %.1f s", ref, sent >> 20, time.monotonic() - start)
