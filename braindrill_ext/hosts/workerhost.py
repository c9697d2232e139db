"""WorkerHost: one Docker Engine endpoint that runs sandboxes."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import docker

from .. import metrics
from ..errors import TRANSPORT_ERRORS, HostUnavailable, ImageMissing, reason_of, swallow
from ..languages import Language
from ..sandbox.runner import Runner
from ..sandbox.sandbox import Sandbox
from .images import copy_image, image_id, resolve_image
from .kinds import SandboxKinds

UNABLE_RETRY_S = 300.0  # try again to get an image this long after failing
MEMORY_SHARE = 0.75  # the default memory budget: this share of the engine's total memory
COPY_TIMEOUT_S = 600  # one image load may take this long (the engine answers when it is unpacked)


class WorkerHost:
    """A Docker Engine endpoint (``unix://``, ``tcp://`` with mutual TLS, or ``ssh://``) with a
    number of slots, a memory budget and a health state.

    Health has two steps. The first sign of trouble (a missed health ping, a failed call) takes
    the host out of scheduling (``suspend``), but its running executions go on: an engine that is
    only slow (overloaded, its process paused a moment) answers the next ping and they finish
    normally. After ``lost_after_pings`` missed pings in a row the host is declared *failed*:
    every call waiting on it in ``call_watched`` raises ``HostUnavailable``, so its running
    executions end as ``worker_lost``. (An execution whose own connection breaks, as on a host
    that dies outright, is lost at once without waiting for the pings.)

    The memory budget bounds the sum of the memory limits of its containers (running executions
    and warm ones); by default it is ``MEMORY_SHARE`` of the engine's total memory, read when the
    engine first answers (no budget until then).

    Every Docker SDK call goes through ``call()``, on this host's own thread pool, so a slow or
    dead host never blocks the event loop nor starves the other hosts of threads.
    """

    def __init__(
        self,
        name: str,
        connect,
        slots: int,
        *,
        memory_mib: int | None = None,
        runtime: str = "",
        sandbox: str = "auto",
        images: dict | None = None,
        docker_timeout_s: float = 20.0,
        ping_timeout_s: float = 3.0,
        lost_after_pings: int = 2,
        runner_options: dict | None = None,
        runner_seccomp: str | None = None,
        channel: bool | None = None,
        on_image=None,
        log: logging.Logger | None = None,
    ):
        self.name = name
        # connect(timeout_s) → a Docker client for this endpoint whose calls time out then.
        self._connect = connect
        self.client: docker.DockerClient = connect(docker_timeout_s)
        self._ping_client: docker.DockerClient = connect(ping_timeout_s)
        self._on_image = on_image or (lambda language, image, image_id: None)
        self.slots = slots
        self.runtime = runtime
        self.log = log or logging.getLogger("braindrill")
        self.kinds = SandboxKinds(name, sandbox, self.log)  # auto, container or nested
        # max_executions, max_age_s of its slot runners (the pools' policy); their seccomp
        self.runner_options = {**(runner_options or {}), "seccomp": runner_seccomp}
        self.image_overrides = images or {}
        # Why its slot runners do not talk over a socket of the server's (sandbox/channel.py)
        # but the attach stream; None while they do: by default when its engine is a local
        # socket, until a runner cannot reach one (the engine's files are not the server's).
        local = self.client.api.base_url == "http+docker://localhost"
        on = local if channel is None else channel
        self.channel_off: str | None = None if on else "off" if local else "remote"
        self.ping_timeout_s = ping_timeout_s
        self.lost_after_pings = max(1, lost_after_pings)
        # One thread per slot reads output; the rest serve API calls (create, kill, remove...).
        self.executor = ThreadPoolExecutor(
            max_workers=2 * slots + 4, thread_name_prefix=f"braindrill-{name}"
        )
        self.schedulable = True  # in scheduling: new executions may come here
        self.missed_pings = 0  # in a row
        self.last_error: str | None = None
        # Accounting, changed by the scheduler alone: slots taken, the memory limits of the
        # running executions, executions finished.
        self.running = 0
        self.reserved_mib = 0
        self.completed = 0
        self.memory_mib = memory_mib  # the budget; None: not known yet (read from the engine)
        self._memory_from_engine = memory_mib is None
        # Hosts (or the master's own engine) a missing image is copied from (hostspec.make_hosts).
        self.image_sources: list[WorkerHost] = []
        self.unable: dict[str, str] = {}  # language → why this host cannot run it
        self._images: dict[str, str] = {}
        self._unable_since: dict[str, float] = {}
        self._obtaining: dict[str, asyncio.Future] = {}
        self._copying: dict[str, str] = {}  # language → progress, while an image is copied
        self._failure_waiters: set[asyncio.Future] = set()
        metrics.host_health(name, True)

    @property
    def failed(self) -> bool:
        """Declared failed (``lost_after_pings`` missed in a row): calls on it raise, its running
        executions are lost."""
        return self.missed_pings >= self.lost_after_pings

    @property
    def memory_free_mib(self) -> float:
        """Room left in the memory budget by the running executions (infinite with no budget)."""
        return float("inf") if self.memory_mib is None else self.memory_mib - self.reserved_mib

    def fits(self, memory_mib: float) -> bool:
        """Whether ``memory_mib`` fits in the host's whole budget (running executions aside)."""
        return self.memory_mib is None or memory_mib <= self.memory_mib

    async def call(self, fn, *args, **kwargs):
        """Run a blocking Docker SDK call on this host's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def call_watched(self, fn, *args, **kwargs):
        """Like ``call()``, but raise ``HostUnavailable`` as soon as the host is reported failing
        (by the health loop or another execution) instead of waiting for the call's own timeout.

        Used by the sandbox for the calls that may block as long as a hung engine lets them:
        creating and starting a container, and reading its output. The thread is left to finish
        on its own (closing the sandbox's socket wakes a blocked read). Raises at once on a host
        already declared failed."""
        if self.failed:
            raise HostUnavailable(self.name, self.last_error or "unhealthy")
        work = asyncio.ensure_future(self.call(fn, *args, **kwargs))
        failed = asyncio.get_running_loop().create_future()
        self._failure_waiters.add(failed)
        try:
            await asyncio.wait({work, failed}, return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                return work.result()
            work.add_done_callback(swallow)
            raise HostUnavailable(self.name, failed.result())
        except asyncio.CancelledError:
            work.add_done_callback(swallow)
            raise
        finally:
            self._failure_waiters.discard(failed)
            if not failed.done():
                failed.cancel()

    def nests(self, language: Language) -> bool:
        """Whether ``language`` runs in slot runners here (``kinds.py``)."""
        return self.kinds.nests(language)

    def sandbox(self, language: Language, image: str, limits, labels: dict, **kwargs) -> Sandbox:
        """A container for one execution, or a slot runner where ``language`` nests."""
        if self.nests(language):
            return Runner(self, language, image, limits, labels, **kwargs, **self.runner_options)
        return Sandbox(self, language, image, limits, labels, **kwargs)

    # -- images ----------------------------------------------------------------------------------
    async def image_for(self, language: Language) -> str:
        """The image this host runs ``language`` with.

        When the host lacks it, it is copied (``docker save`` → ``load``) from the first image
        source that has it; concurrent requests share one copy. Raises ``ImageMissing`` (and
        remembers the reason in ``unable``) when no source has it or the copy fails, and
        ``HostUnavailable`` when the host does not answer.
        """
        image = self._images.get(language.name)
        if image is not None:
            return image
        if language.name in self.unable:
            if time.monotonic() - self._unable_since.get(language.name, 0) < UNABLE_RETRY_S:
                raise ImageMissing(self.name, self.unable[language.name])
            del self.unable[language.name]
        fut = self._obtaining.get(language.name)
        if fut is None:
            fut = asyncio.ensure_future(self._obtain(language))
            self._obtaining[language.name] = fut
            fut.add_done_callback(lambda _: self._obtaining.pop(language.name, None))
        return await asyncio.shield(fut)

    async def _obtain(self, language: Language) -> str:
        override = self.image_overrides.get(language.name, "")
        try:
            image = await self.call(resolve_image, self.client, language, override)
        except TRANSPORT_ERRORS as e:
            raise HostUnavailable(self.name, f"cannot list images: {reason_of(e)}") from e
        if image is None:
            image = await self._copy_from_sources(language, override)
        try:
            self._on_image(language, image, await self.call(image_id, self.client, image))
        except TRANSPORT_ERRORS as e:
            raise HostUnavailable(self.name, f"cannot inspect {image}: {reason_of(e)}") from e
        self._images[language.name] = image
        return image

    async def _copy_from_sources(self, language: Language, override: str) -> str:
        wanted = override or f"{language.image} or {language.built_image}"
        problems = []
        for source in self.image_sources:
            if not source.schedulable:
                continue
            try:
                ref = await source.call(resolve_image, source.client, language, override)
            except TRANSPORT_ERRORS as e:
                problems.append(f"{source.name}: {reason_of(e)}")
                continue
            if ref is None:
                problems.append(f"{source.name}: has none")
                continue
            self.log.info("copying %s from %s to worker host %s", ref, source.name, self.name)
            self._copying[language.name] = f"{ref} from {source.name}: starting"

            def progress(text, lang=language.name, ref=ref, src=source.name):
                self._copying[lang] = f"{ref} from {src}: {text}"

            loader = self._connect(COPY_TIMEOUT_S)
            try:
                await self.call(copy_image, source.client, loader, ref, progress, self.log)
            except TRANSPORT_ERRORS as e:
                problems.append(f"copy from {source.name} failed: {reason_of(e)}")
                if not await self.ping():
                    raise HostUnavailable(self.name, f"lost while copying {ref}") from e
                continue
            finally:
                loader.close()
                self._copying.pop(language.name, None)
            return ref
        reason = (
            f"no image for {language.name} ({wanted}) on this host, and none could be copied "
            f"({'; '.join(problems) or 'no image source'}); run `braindrill-images prepare`"
        )
        self.unable[language.name] = reason
        self._unable_since[language.name] = time.monotonic()
        self.log.warning("worker host %s cannot run %s: %s", self.name, language.name, reason)
        raise ImageMissing(self.name, reason)

    # -- health ----------------------------------------------------------------------------------
    async def ping(self) -> bool:
        """Check the engine answers; update the health state. Called by the health loop."""
        try:
            # Its own client, whose per-call timeout is the ping's (the main one's is far longer).
            await asyncio.wait_for(self.call(self._ping_client.ping), self.ping_timeout_s + 1)
            if self._memory_from_engine and self.memory_mib is None:
                info = await asyncio.wait_for(self.call(self.client.api.info), 10)
                self.memory_mib = int(info["MemTotal"] * MEMORY_SHARE) >> 20
        except (asyncio.TimeoutError, *TRANSPORT_ERRORS) as e:
            self.missed_pings += 1
            why = reason_of(e) if str(e) else "timed out"
            reason = f"ping failed: {why} ({self.missed_pings} in a row)"
            self.suspend(reason)
            if self.failed:
                self._fail(reason)
            return False
        if not self.schedulable:  # it may have restarted meanwhile: look its images up again
            self.log.info("worker host %s is healthy again", self.name)
            self._images.clear()
            self.unable.clear()
        self.schedulable, self.missed_pings = True, 0
        metrics.host_health(self.name, True)
        return True

    def suspend(self, reason: str) -> None:
        """Take the host out of scheduling until a ping succeeds; its running executions go on.
        Called by ``ping`` and by the engine when an execution's call failed, on the loop."""
        if self.schedulable:
            self.log.warning("worker host %s is out of scheduling: %s", self.name, reason)
        self.schedulable = False
        self.last_error = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {reason}"
        metrics.host_health(self.name, False)

    def _fail(self, reason: str) -> None:
        """The host is now failed: every call waiting in ``call_watched`` raises."""
        if self.missed_pings == self.lost_after_pings:
            self.log.warning("worker host %s failed: its running executions are lost", self.name)
        for fut in list(self._failure_waiters):
            if not fut.done():
                fut.set_result(reason)

    def status(self) -> dict:
        """What GET /braindrill/workers shows of this host."""
        return {
            "name": self.name,
            "healthy": self.schedulable,
            "failed": self.failed,
            "missed_pings": self.missed_pings,
            "slots": self.slots,
            "running": self.running,
            "completed": self.completed,
            "memory_mib": self.memory_mib,
            "memory_reserved_mib": self.reserved_mib,
            "last_error": self.last_error,
            "images": dict(self._images),
            "copying": dict(self._copying),
            "unable": dict(self.unable),
            "runtime": self.runtime or None,
            "sandbox": self.kinds.setting,
            "sandboxes": self.kinds.status(),
            "channel": self.channel_off or "socket",
        }

    @property
    def channel(self) -> bool:
        """Whether its slot runners are given a channel (``channel_off``: why not)."""
        return self.channel_off is None

    def no_channel(self, reason: str) -> None:
        """A runner could not reach its channel: this host's runners use the attach stream."""
        if self.channel:
            self.channel_off = reason
            self.log.info("host %s: runners use the attach stream: %s", self.name, reason)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.client.close()
        self._ping_client.close()
