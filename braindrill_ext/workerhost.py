"""WorkerHost: one Docker Engine endpoint that runs sandboxes."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import docker

from .errors import ImageMissing
from .images import resolve_image
from .languages import Language
from .sandbox import TRANSPORT_ERRORS, Sandbox, _reason


class WorkerHost:
    """A Docker Engine endpoint (``unix://``, ``tcp://`` with mutual TLS, or ``ssh://``) with a
    number of slots and a health state.

    Every Docker SDK call goes through ``call()``, on this host's own thread pool, so a slow or
    dead host never blocks the event loop nor starves the other hosts of threads.
    """

    def __init__(
        self,
        name: str,
        client: docker.DockerClient,
        slots: int,
        *,
        runtime: str = "",
        images: dict | None = None,
        log: logging.Logger | None = None,
    ):
        self.name = name
        self.client = client
        self.slots = slots
        self.runtime = runtime
        self.image_overrides = images or {}
        self.log = log or logging.getLogger("braindrill")
        # One thread per slot reads output; the rest serve API calls (create, kill, remove...).
        self.executor = ThreadPoolExecutor(
            max_workers=2 * slots + 4, thread_name_prefix=f"braindrill-{name}"
        )
        self.healthy = True
        self.last_error: str | None = None
        self.running = 0
        self.completed = 0
        self.idle_life_s = 0  # extra lifetime of a prepared container waiting for its code
        self._images: dict[str, str] = {}

    @property
    def free(self) -> int:
        return self.slots - self.running

    async def call(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def sandbox(self, language: Language, image: str, limits, labels: dict) -> Sandbox:
        return Sandbox(self, language, image, limits, labels)

    async def image_for(self, language: Language) -> str:
        """The image this host runs ``language`` with; raises ``ImageMissing`` if it has none."""
        image = self._images.get(language.name)
        if image is None:
            override = self.image_overrides.get(language.name, "")
            image = await self.call(resolve_image, self.client, language, override)
            if image is None:
                wanted = override or f"{language.image} or {language.built_image}"
                raise ImageMissing(
                    self.name,
                    f"no image for {language.name} ({wanted}); run `braindrill-images prepare`",
                )
            self._images[language.name] = image
        return image

    async def ping(self) -> bool:
        """Check the engine answers; update the health state. Called by the health loop."""
        try:
            await asyncio.wait_for(self.call(self.client.ping), 5)
        except (asyncio.TimeoutError, *TRANSPORT_ERRORS) as e:
            self.report_failure(f"ping failed: {_reason(e) if str(e) else 'timed out'}")
            return False
        if not self.healthy:
            self.log.info("worker host %s is healthy again", self.name)
            self._images.clear()
        self.healthy = True
        return True

    def report_failure(self, reason: str) -> None:
        """Take the host out of scheduling until a ping succeeds. Called on transport errors."""
        if self.healthy:
            self.log.warning("worker host %s is unhealthy: %s", self.name, reason)
        self.healthy = False
        self.last_error = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {reason}"

    def status(self) -> dict:
        return {
            "name": self.name,
            "healthy": self.healthy,
            "slots": self.slots,
            "running": self.running,
            "completed": self.completed,
            "last_error": self.last_error,
        }

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.client.close()
