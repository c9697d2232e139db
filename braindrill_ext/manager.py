"""The remote kernel manager: owns the worker hosts, queues and places executions, reaps leftovers.

One instance per process: the extension app creates it and hands it to the REST handlers and the
kernels (see ``current()`` for scripts that run kernels without a Jupyter server).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import socket
import time
import uuid

import docker
from traitlets import Dict, Float, Instance, Integer, List, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from . import metrics
from .errors import HostUnavailable, ImageMissing, InvalidRequest, NoCapacity
from .execution import Execution, Result, Status
from .hostspec import check_host_spec, make_client
from .languages import Language, LanguageRegistry
from .limits import LimitsPolicy
from .pool import HostPool, WarmPools
from .reaper import Reaper
from .sandbox import LABEL, _reason
from .scheduler import Scheduler
from .workerhost import WorkerHost

VERSION_RE = re.compile(r"\d+(?:\.\d+)+")


class RemoteKernelManager(LoggingConfigurable):
    """Runs executions on worker hosts: one bounded FIFO queue, the least-loaded healthy host,
    a transparent retry on another host when one fails before the code started, ``worker_lost``
    when one fails mid-run, health checks, and a reaper for containers a crash left behind."""

    hosts = List(
        Dict(),
        config=True,
        help="Worker hosts: dicts with name, url (unix://, tcp:// or ssh://; empty = DOCKER_HOST "
        "or the local socket), slots, runtime (OCI runtime, e.g. runsc), tls {ca, cert, key}, "
        "insecure (allow tcp:// without TLS), images {language: image}. Default: the local engine.",
    )
    slots = Integer(4, config=True, help="Concurrent executions on a host whose entry sets none.")
    queue_size = Integer(64, config=True, help="Executions that may wait for a slot; more get 503.")
    queue_timeout_s = Float(
        30.0, config=True, help="Longest wait for a slot, in seconds (then 503)."
    )
    health_interval_s = Float(5.0, config=True, help="Seconds between pings of each worker host.")
    reap_interval_s = Float(
        60.0, config=True, help="Seconds between sweeps for leftover containers."
    )
    docker_timeout_s = Float(20.0, config=True, help="Timeout of one Docker API call, in seconds.")
    docker_api_version = Unicode(
        "1.41", config=True, help="Docker API version to speak (1.41: Engine 20.10 and later)."
    )
    ping_timeout_s = Float(
        3.0, config=True, help="Seconds a worker host has to answer a health ping."
    )
    lost_after_pings = Integer(
        2,
        config=True,
        help="Missed health pings in a row after which a worker host is declared failed and its "
        "running executions end as worker_lost (one missed ping only takes it out of scheduling).",
    )
    image_source_url = Unicode(
        "",
        config=True,
        help="Docker endpoint that worker hosts lacking a runtime image copy it from (docker "
        "save → load): empty = the master's local engine (DOCKER_HOST or the local socket); "
        "'none' = only other worker hosts. Healthy worker hosts that have the image come next.",
    )
    images = Dict(
        config=True, help="Image per language, overriding the kernelspec's default image."
    )
    master_id = Unicode(
        config=True,
        help="Name of this master in container labels (default: the "
        "host name). Masters sharing worker hosts need distinct names.",
    )

    pool_interval_s = Float(
        5.0, config=True, help="Seconds between warm-pool upkeep runs (TTL, shrink, refill)."
    )

    limits = Instance(LimitsPolicy)
    pools = Instance(WarmPools)
    registry = Instance(LanguageRegistry)

    @default("master_id")
    def _default_master_id(self):
        return socket.gethostname()

    @default("limits")
    def _default_limits(self):
        return LimitsPolicy(parent=self)

    @default("pools")
    def _default_pools(self):
        return WarmPools(parent=self)

    @default("registry")
    def _default_registry(self):
        return LanguageRegistry.from_kernelspecs()

    @validate("hosts")
    def _check_hosts(self, proposal):
        names = set()
        for spec in proposal["value"]:
            check_host_spec(spec, names)
        return proposal["value"]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.owner = f"{self.master_id}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.workers = [self._make_host(spec) for spec in (self.hosts or [{"name": "local"}])]
        self.scheduler = Scheduler(self.workers, self.queue_size, self.queue_timeout_s)
        self.reaper = Reaper(self.owner, self.master_id, self.log)
        self.host_pools = {h.name: self._make_pool(h) for h in self.workers}
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()
        self._started: asyncio.Future | None = None
        # The event loop the manager was started on and belongs to (kernels are served on it).
        self.loop: asyncio.AbstractEventLoop | None = None
        self._versions: dict[tuple[str, str], str] = {}
        self.image_source = self._make_image_source()
        for host in self.workers:
            others = [h for h in self.workers if h is not host]
            host.image_sources = [self.image_source, *others] if self.image_source else others

    def _client(self, url: str, tls: dict | None = None) -> docker.DockerClient:
        return make_client(url, tls, self.docker_timeout_s, self.docker_api_version)

    def _make_pool(self, host: WorkerHost) -> HostPool:
        def labels():
            return {
                f"{LABEL}.owner": self.owner,
                f"{LABEL}.pooled": "1",
                f"{LABEL}.execution": "pool-" + uuid.uuid4().hex[:12],
            }

        return HostPool(host, self.pools, self.registry, labels, self.limits.defaults, self.log)

    def _make_host(self, spec: dict) -> WorkerHost:
        return WorkerHost(
            spec["name"],
            self._client(spec.get("url", ""), spec.get("tls")),
            int(spec.get("slots", self.slots)),
            memory_mib=spec.get("memory_mib"),
            runtime=spec.get("runtime", ""),
            images={**self.images, **spec.get("images", {})},
            ping_timeout_s=self.ping_timeout_s,
            lost_after_pings=self.lost_after_pings,
            log=self.log,
        )

    def _make_image_source(self) -> WorkerHost | None:
        """The master's own engine, which hosts that lack an image copy it from; None when it is
        one of the worker hosts already or copying is off."""
        if self.image_source_url == "none":
            return None
        url = self.image_source_url
        if not url and any(not spec.get("url") for spec in self.hosts or [{}]):
            return None  # the local engine is a worker host: it is a source as one
        try:
            client = self._client(url)
        except docker.errors.DockerException as e:
            self.log.info("no image source engine (%s): hosts copy images from each other", e)
            return None
        return WorkerHost("master", client, 0, ping_timeout_s=self.ping_timeout_s, log=self.log)

    # -- lifecycle -------------------------------------------------------------------------------
    async def ensure_started(self) -> None:
        """Start once; called by the extension app at server start and before any use."""
        if self._started is None:
            self.loop = asyncio.get_running_loop()
            self._started = asyncio.ensure_future(self.start())
        await asyncio.shield(self._started)

    async def start(self) -> None:
        """Ping every host, remove what a crashed predecessor left, start the background loops."""
        await asyncio.gather(*(h.ping() for h in self._engines()))
        await self.reap()
        await self._maintain_pools()
        self._tasks = [
            asyncio.ensure_future(self._every(self.pool_interval_s, self._maintain_pools)),
            asyncio.ensure_future(self._every(self.health_interval_s, self._check_health)),
            asyncio.ensure_future(self._every(self.reap_interval_s, self.reap)),
        ]

    async def stop(self) -> None:
        """Stop the loops and the host thread pools. Called at server shutdown."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*(p.close() for p in self.host_pools.values()))
        for host in self._engines():
            host.close()
        self._started = None

    def remove_own_containers(self) -> int:
        """Remove every container this manager made, on every host, with blocking calls (no
        thread pool); returns how many. Called at interpreter exit for a plain script."""
        return sum(self.reaper.remove_owned(host) for host in self.workers)

    def _engines(self) -> list[WorkerHost]:
        return [*self.workers, self.image_source] if self.image_source else list(self.workers)

    async def _every(self, seconds, job):
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                self.log.exception("braindrill background job %s failed", job.__name__)

    async def _check_health(self):
        """Ping every host; a host that answers again gets queued work and its leftovers reaped.
        Called every ``health_interval_s`` by the health loop."""
        was = {h.name: h.healthy for h in self.workers}
        await asyncio.gather(*(h.ping() for h in self._engines()))
        back = [h for h in self.workers if h.healthy and not was[h.name]]
        if back:
            self.scheduler.dispatch()
            await asyncio.gather(*(self._reap_host(h) for h in back), return_exceptions=True)

    async def reap(self) -> int:
        """Remove labelled containers that no live execution owns: past their expiry, abandoned
        by an execution whose host stopped answering, or owned by a process of this master that
        is gone (a crash). Called at start, every ``reap_interval_s``, and when a host comes back.
        Returns how many were removed."""
        return await self.reaper.sweep([h for h in self.workers if h.healthy])

    # -- executions ------------------------------------------------------------------------------
    def make_execution(
        self, language: str, code, *, stdin="", args=None, files=None, limits=None
    ) -> Execution:
        """Validate one request into an Execution. Raises UnknownLanguage, InvalidRequest or
        PayloadTooLarge. Used by REST handlers and kernels alike."""
        lang = self.registry.get(language)
        if not isinstance(code, str):
            raise InvalidRequest("'code' must be a string")
        if not isinstance(stdin, str):
            raise InvalidRequest("'stdin' must be a string")
        args = [] if args is None else args
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise InvalidRequest("'args' must be a list of strings")
        files = {} if files is None else files
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise InvalidRequest("'files' must be an object of file name → text content")
        for name in files:
            if not _safe_file_name(name) or name == lang.source_file:
                raise InvalidRequest(
                    f"bad file name {name!r}: use a relative path without '..', not "
                    f"{lang.source_file!r} and not under .braindrill/"
                )
        self.limits.check_size(code, stdin, files)
        return Execution(lang, code, self.limits.resolve(lang, limits), stdin, args, files)

    async def run(self, execution: Execution, on_output=None) -> Result:
        """Run one execution on some worker host and return its Result.

        Raises ``NoCapacity`` when the queue is full or the wait runs out, and ``HostUnavailable``
        when no host could start it. Cancelling the task kills and removes the container. The
        container is removed after the result is returned; its slot is held until then.
        """
        queued_at = time.monotonic()
        tried: set[str] = set()
        while True:
            host = await self.scheduler.acquire(exclude=tried, memory_mib=execution.memory_mib)
            try:
                sandbox, result = await self._run_on(host, execution, on_output)
            except HostUnavailable as e:
                self.scheduler.release(host, execution.memory_mib)
                tried.add(host.name)
                if not isinstance(e, ImageMissing):
                    host.suspend(e.reason)
                self.log.warning(
                    "execution %s not started on %s: %s", execution.id, host.name, e.reason
                )
                if not any(h.healthy and h.name not in tried for h in self.workers):
                    raise
                continue
            except BaseException:
                self.scheduler.release(host, execution.memory_mib)
                raise
            self._spawn(self._clean_up(host, sandbox, execution.memory_mib))
            result.queued_ms = (time.monotonic() - queued_at) * 1000 - result.duration_ms
            metrics.record(result, time.monotonic() - queued_at)
            return result

    async def _run_on(self, host: WorkerHost, execution: Execution, on_output):
        """Run on ``host``: in a warm container if its pool has one, else in a new one. Returns
        (sandbox, result); the caller removes the sandbox. On an exception it is already removed."""
        pool = self.host_pools[host.name]
        sandbox = pool.take(execution)
        if sandbox is not None:
            try:
                return sandbox, await self._execute(host, sandbox, execution, on_output)
            except HostUnavailable as e:  # the warm container died while it waited: go cold
                self.log.info("warm container on %s unusable (%s); cold start", host.name, e)
        image = await host.image_for(execution.language)
        labels = {
            f"{LABEL}.owner": self.owner,
            f"{LABEL}.language": execution.language.name,
            f"{LABEL}.execution": execution.id,
        }
        sandbox = host.sandbox(execution.language, image, execution.limits, labels)
        return sandbox, await self._execute(host, sandbox, execution, on_output, cold=True)

    async def _execute(self, host, sandbox, execution, on_output, cold=False) -> Result:
        try:
            if cold:
                await sandbox.prepare()
            return await sandbox.execute(execution, on_output)
        except HostUnavailable:
            await sandbox.destroy()
            raise
        except BaseException as e:
            await sandbox.destroy()
            if not isinstance(e, Exception):
                raise  # cancelled: the client went away
            # A bug or an unexpected engine answer: report it, don't hang.
            self.log.exception("execution %s failed on %s", execution.id, host.name)
            return Result(
                execution.language.name, Status.INTERNAL_ERROR, worker=host.name, message=_reason(e)
            )

    async def _clean_up(self, host: WorkerHost, sandbox, memory_mib: int) -> None:
        """Remove an execution's container, then free its slot and memory and refill the host's
        pool."""
        try:
            await sandbox.destroy()
        finally:
            host.completed += 1
            self.scheduler.release(host, memory_mib)
            self.host_pools[host.name].fill()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _maintain_pools(self):
        """Called every ``pool_interval_s``: TTL, shrinking and refilling of the warm pools."""
        await asyncio.gather(*(p.maintain(self.registry) for p in self.host_pools.values()))

    # -- introspection ---------------------------------------------------------------------------
    async def describe(self, language: Language) -> dict:
        """What GET /lang shows of one language: image, version, default and maximum limits."""
        image, version = None, None
        for host in (h for h in self.workers if h.healthy):
            try:
                image = await host.image_for(language)
            except HostUnavailable:
                continue
            version = await self._version(language, image)
            break
        defaults = dataclasses.asdict(self.limits.defaults(language))
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
            "max_limits": {k: self.limits.maximum(k) for k in defaults if self.limits.maximum(k)},
        }

    async def _version(self, language: Language, image: str) -> str | None:
        key = (language.name, image)
        if key not in self._versions:
            probe = dataclasses.replace(
                language, run=language.version_command, compile=None, prestart=None
            )
            execution = Execution(probe, "", self.limits.defaults(language))
            try:
                result = await self.run(execution)
            except (NoCapacity, HostUnavailable):
                return None
            match = VERSION_RE.search(result.stdout + result.stderr)
            if result.status is not Status.OK or not match:
                return None
            self._versions[key] = match.group(0)
        return self._versions[key]

    def status(self) -> dict:
        """What GET /braindrill/workers shows: the queue and every worker host."""
        return {
            "master": self.master_id,
            "queued": self.scheduler.queued,
            "queue_size": self.queue_size,
            "capacity": self.scheduler.capacity,
            "image_source": self.image_source.status() if self.image_source else None,
            "workers": [
                {**h.status(), "pool": self.host_pools[h.name].status()} for h in self.workers
            ],
        }


def _safe_file_name(name: str) -> bool:
    parts = name.split("/")
    return (
        bool(name)
        and not name.startswith("/")
        and ".." not in parts
        and "" not in parts
        and parts[0] != ".braindrill"
        and "\0" not in name
        and len(name) <= 255
    )


_current: RemoteKernelManager | None = None


def set_current(manager: RemoteKernelManager | None) -> None:
    """Make ``manager`` the process's remote kernel manager. Called by the extension app."""
    global _current
    _current = manager


def current() -> RemoteKernelManager:
    """The process's remote kernel manager: the Jupyter server's, or (in a plain script using
    ``jupyter_client``) an embedded one on the local Docker Engine, created on first use."""
    global _current
    if _current is None:
        _current = RemoteKernelManager()
    return _current
