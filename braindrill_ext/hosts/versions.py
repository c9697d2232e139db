"""Runtime versions, learned once per image: what ``GET /lang`` and a kernel's ``language_info``
show.

A version belongs to an image (by its content id), so it is learned once — by
``braindrill-images prepare`` when it makes the image, or by the engine in the background the first
time a worker host resolves an image whose version nobody recorded — and kept in a small JSON file
(image id → version) that every process on the machine shares. Nothing on a kernel's start path
waits for it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir
from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

VERSION_RE = re.compile(r"\d+(?:\.\d+)+")


def parse_version(text: str) -> str | None:
    """The first ``N.N[.N…]`` a version command printed."""
    match = VERSION_RE.search(text)
    return match.group(0) if match else None


def default_cache_path() -> str:
    return os.path.join(jupyter_data_dir(), "braindrill", "image-versions.json")


def read_cache(path: str) -> dict[str, str]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def record(path: str, image_id: str, version: str) -> None:
    """Add one image's version to the cache file (atomically: other processes read it)."""
    data = {**read_cache(path), image_id: version}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".versions-")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


class ImageVersions(LoggingConfigurable):
    """The versions the engine knows, by image. ``probe(language)`` (the engine's, handed down)
    runs a language's ``version_command`` and returns its Result."""

    cache_path = Unicode(
        config=True,
        help="JSON file of image id → runtime version, shared with `braindrill-images prepare` "
        "(default: <Jupyter data dir>/braindrill/image-versions.json).",
    )

    @default("cache_path")
    def _default_cache_path(self):
        return default_cache_path()

    def __init__(self, probe=None, **kwargs):
        super().__init__(**kwargs)
        self._probe_with = probe
        self._known = read_cache(self.cache_path)  # image id → version
        self._ids: dict[str, str] = {}  # image reference → its id, as last seen
        self._probes: dict[str, asyncio.Task] = {}  # image id → its probe

    def get(self, language, image: str) -> str | None:
        """The version of ``image``, if known."""
        return self._known.get(self._ids.get(image, ""))

    async def learned(self, language, image: str, timeout_s: float) -> str | None:
        """The version of ``image``, waiting up to ``timeout_s`` for its probe if one runs."""
        probe = self._probes.get(self._ids.get(image, ""))
        if probe is not None and not probe.done():
            await asyncio.wait({probe}, timeout=timeout_s)
        return self.get(language, image)

    def learn(self, language, image: str, image_id: str) -> None:
        """A worker host resolved ``image`` for ``language``: look its version up, or probe it in
        the background once. Called by ``WorkerHost`` (on the loop) when it first sees an image."""
        self._ids[image] = image_id
        if image_id in self._known or image_id in self._probes:
            return
        self._known.update(read_cache(self.cache_path))  # prepared since this process started?
        if image_id in self._known:
            return
        self._probes[image_id] = asyncio.ensure_future(self._probe(language, image_id))

    async def _probe(self, language, image_id: str) -> None:
        try:
            result = await self._probe_with(language)
        except Exception as e:  # no capacity, no host: learned another time
            self.log.info("version of %s not learned: %s", language.name, e)
            del self._probes[image_id]
            return
        version = parse_version(result.stdout + result.stderr)
        if result.status.value != "ok" or version is None:
            self.log.warning(
                "%s: %s printed no version (%s)",
                language.name,
                " ".join(language.version_command),
                result.status.value,
            )
            return  # not probed again by this process
        self._known[image_id] = version
        try:
            record(self.cache_path, image_id, version)
        except OSError as e:
            self.log.info("cannot record the version of %s: %s", language.name, e)

    async def close(self) -> None:
        """Cancel probes still running. Called by the engine's ``stop()``."""
        for task in self._probes.values():
            task.cancel()
        await asyncio.gather(*self._probes.values(), return_exceptions=True)
