"""The execution engine: owns the worker hosts, queues and places executions, reaps leftovers.

Created by whoever owns the process — the extension app in a Jupyter server, ``EmbeddedEngine``
for a plain script or a standalone kernel — and handed down to the REST handlers and the kernels.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid

import docker
from traitlets import (
    Dict,
    Enum,
    Float,
    Instance,
    Integer,
    List,
    TraitError,
    Unicode,
    default,
    validate,
)
from traitlets.config import LoggingConfigurable

from . import metrics, protocol
from .errors import BraindrillError, CannotRunHere, HostUnavailable
from .execution import Execution, Result, Status
from .fairness import UserLimits
from .hostspec import SANDBOX_KINDS, check_host_spec, make_client
from .languages import Language, LanguageRegistry
from .limits import LimitsPolicy
from .pool import HostPool, WarmPools
from .reaper import Reaper
from .sandbox import reason_of
from .scheduler import Scheduler
from .state import StateStore
from .versions import ImageVersions
from .workerhost import WorkerHost


class ExecutionEngine(LoggingConfigurable):
    """Runs executions on worker hosts: one bounded FIFO queue, the least-loaded schedulable host,
    a transparent retry on another host when one fails before the code started, ``worker_lost``
    when one fails mid-run, health checks, and a reaper for containers a crash left behind.

    The one owner of what happens to a host because of an execution: a host that fails a call
    is taken out of scheduling here (``_host_failed``); the scheduler alone counts its slots and
    memory; the reaper alone tracks the containers that could not be removed."""

    hosts = List(
        Dict(),
        config=True,
        help="Worker hosts: dicts with name, url (unix://, tcp:// or ssh://; empty = DOCKER_HOST "
        "or the local socket), slots, runtime (OCI runtime, e.g. runsc), sandbox ('container' "
        "or 'nested'), tls {ca, cert, key}, insecure (allow tcp:// without TLS), images "
        "{language: image}. Default: the local engine.",
    )
    sandbox = Enum(
        SANDBOX_KINDS,
        "container",
        config=True,
        help="The sandbox kind of a host whose entry sets none: 'container' (a fresh container "
        "per execution) or 'nested' (slot runners, a fresh nested namespace sandbox per "
        "execution; see the README for what it trades).",
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
    audit_format = Unicode(
        "text",
        config=True,
        help="The audit line of each execution (at info level): 'text' (key=value pairs) or "
        "'json' (one JSON object a line, for log collectors).",
    )
    pool_interval_s = Float(
        5.0, config=True, help="Seconds between warm-pool upkeep runs (TTL, shrink, refill)."
    )

    limits = Instance(LimitsPolicy)
    pools = Instance(WarmPools)
    registry = Instance(LanguageRegistry)
    versions = Instance(ImageVersions)
    fairness = Instance(UserLimits)
    states = Instance(StateStore)

    @classmethod
    def section_names(cls) -> list[str]:
        # The class was called RemoteKernelManager: configs written for it keep working (the
        # new name's section comes later and wins).
        return ["RemoteKernelManager", *super().section_names()]

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

    @default("fairness")
    def _default_fairness(self):
        return UserLimits(parent=self)

    @default("states")
    def _default_states(self):
        return StateStore(parent=self)

    @validate("audit_format")
    def _check_audit_format(self, proposal):
        if proposal["value"] not in ("text", "json"):
            raise TraitError(f"audit_format must be 'text' or 'json', not {proposal['value']!r}")
        return proposal["value"]

    @default("versions")
    def _default_versions(self):
        return ImageVersions(parent=self)

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
        self.image_source = self._make_image_source()
        for host in self.workers:
            others = [h for h in self.workers if h is not host]
            host.image_sources = [self.image_source, *others] if self.image_source else others

    def _connector(self, url: str, tls: dict | None = None):
        """Makes Docker clients for one endpoint, with a per-call timeout in seconds."""
        return lambda timeout_s: make_client(url, tls, timeout_s, self.docker_api_version)

    def _make_pool(self, host: WorkerHost) -> HostPool:
        def labels():
            return protocol.labels(self.owner, "pool-" + uuid.uuid4().hex[:12], pooled=True)

        return HostPool(host, self.pools, labels, self.limits.defaults, self.reaper, self.log)

    def _make_host(self, spec: dict) -> WorkerHost:
        host = WorkerHost(
            spec["name"],
            self._connector(spec.get("url", ""), spec.get("tls")),
            int(spec.get("slots", self.slots)),
            memory_mib=spec.get("memory_mib"),
            runtime=spec.get("runtime", ""),
            sandbox=spec.get("sandbox", self.sandbox),
            images={**self.images, **spec.get("images", {})},
            docker_timeout_s=self.docker_timeout_s,
            ping_timeout_s=self.ping_timeout_s,
            lost_after_pings=self.lost_after_pings,
            on_image=self.versions.learn,
            log=self.log,
        )
        host.runner_options = {
            "max_executions": self.pools.runner_executions,
            "max_age_s": self.pools.ttl_s,
        }
        return host

    def _make_image_source(self) -> WorkerHost | None:
        """The master's own engine, which hosts that lack an image copy it from; None when it is
        one of the worker hosts already or copying is off."""
        if self.image_source_url == "none":
            return None
        url = self.image_source_url
        if not url and any(not spec.get("url") for spec in self.hosts or [{}]):
            return None  # the local engine is a worker host: it is a source as one
        try:
            return WorkerHost(
                "master",
                self._connector(url),
                0,
                docker_timeout_s=self.docker_timeout_s,
                ping_timeout_s=self.ping_timeout_s,
                log=self.log,
            )
        except docker.errors.DockerException as e:
            self.log.info("no image source engine (%s): hosts copy images from each other", e)
            return None

    # -- lifecycle -------------------------------------------------------------------------------
    async def ensure_started(self) -> None:
        """Start once, on the running loop; called by the owner of the engine (the extension
        app, the embedded engine of a script) and before any use."""
        if self._started is None:
            self._started = asyncio.ensure_future(self.start())
        await asyncio.shield(self._started)

    async def start(self) -> None:
        """Ping every host, remove what a crashed predecessor left, start the background loops.
        The warm pools fill in the background: a process's first kernel (or request) does not
        wait for warm containers (it goes cold if none is ready yet)."""
        await asyncio.gather(*(h.ping() for h in self._engines()))
        await self.reap()
        self._tasks = [
            asyncio.ensure_future(
                self._every(self.pool_interval_s, self._maintain_pools, now=True)
            ),
            asyncio.ensure_future(self._every(self.health_interval_s, self._check_health)),
            asyncio.ensure_future(self._every(self.reap_interval_s, self.reap)),
        ]

    async def stop(self) -> None:
        """Stop the loops and the host thread pools. Called by the engine's owner at shutdown."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*(p.close() for p in self.host_pools.values()))
        await self.versions.close()
        for host in self._engines():
            host.close()
        self._started = None

    def remove_own_containers(self) -> int:
        """Remove every container this engine made, on every host, with blocking calls (no
        thread pool); returns how many. Called at interpreter exit for a plain script."""
        return sum(self.reaper.remove_owned(host) for host in self.workers)

    def _engines(self) -> list[WorkerHost]:
        return [*self.workers, self.image_source] if self.image_source else list(self.workers)

    async def _every(self, seconds, job, now=False):
        while True:
            if not now:
                await asyncio.sleep(seconds)
            now = False
            try:
                await job()
            except Exception:
                self.log.exception("braindrill background job %s failed", job.__name__)

    async def _check_health(self):
        """Ping every host; a host that answers again gets queued work and its leftovers reaped
        (after a failure, its warm containers too: they did not outlive its engine). Called
        every ``health_interval_s`` by the health loop."""
        was = {h.name: (h.schedulable, h.failed) for h in self.workers}
        await asyncio.gather(*(h.ping() for h in self._engines()))
        back = [h for h in self.workers if h.schedulable and not was[h.name][0]]
        if back:
            self.scheduler.dispatch()
            await asyncio.gather(
                *(self.host_pools[h.name].discard() for h in back if was[h.name][1])
            )
            await self.reaper.sweep(back)

    async def reap(self) -> int:
        """Remove labelled containers that no live execution owns. Called at start, every
        ``reap_interval_s``, and when a host comes back. Returns how many were removed."""
        return await self.reaper.sweep([h for h in self.workers if h.schedulable])

    # -- executions ------------------------------------------------------------------------------
    async def run(self, execution: Execution, on_output=None) -> Result:
        """Run one execution on some worker host and return its Result.

        ``on_output(kind, value)`` is called on the loop as the program writes: ``("stdout",
        text)``, ``("stderr", text)``, ``("output", a Jupyter output dict)``. Raises
        ``TooManyRequests`` when its user is past a per-user limit, ``NoCapacity`` when the queue
        is full or the wait runs out, and ``HostUnavailable`` when no host could start it.
        Cancelling the task kills and removes the container. The container is removed after the
        result is returned; its slot is held until then. Every execution gets an audit line.
        """
        queued_at = time.monotonic()
        try:
            with self.fairness.admit(execution.user):
                result, container = await self._place(execution, on_output)
        except BraindrillError as e:
            self._audit(execution, None, time.monotonic() - queued_at, refused=e)
            raise
        result.queued_ms = (time.monotonic() - queued_at) * 1000 - result.duration_ms
        metrics.record(result, time.monotonic() - queued_at)
        self._audit(execution, result, time.monotonic() - queued_at, container=container)
        return result

    async def _place(self, execution: Execution, on_output) -> tuple[Result, str | None]:
        """Run on the first host that can start it; returns the result and its container id."""
        tried: set[str] = set()
        while True:
            host = await self.scheduler.acquire(exclude=tried, memory_mib=execution.memory_mib)
            try:
                sandbox, result = await self._run_on(host, execution, on_output)
            except HostUnavailable as e:
                self.scheduler.release(host, execution.memory_mib, completed=False)
                tried.add(host.name)
                if not isinstance(e, CannotRunHere):
                    self._host_failed(host, e.reason)
                self.log.warning(
                    "execution %s not started on %s: %s", execution.id, host.name, e.reason
                )
                if not any(h.schedulable and h.name not in tried for h in self.workers):
                    raise
                continue
            except BaseException:
                self.scheduler.release(host, execution.memory_mib, completed=False)
                raise
            if result.status is Status.WORKER_LOST:
                self._host_failed(host, result.message)
            container = sandbox.container_id
            self._spawn(self._clean_up(host, sandbox, execution))
            return result, container

    def _audit(self, execution, result, seconds: float, container=None, refused=None) -> None:
        """One line per execution at info level: who, what, how it ended, where, how long."""
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
        if self.audit_format == "json":
            self.log.info("%s", json.dumps(line))
        else:
            self.log.info("braindrill %s", " ".join(f"{k}={_quoted(v)}" for k, v in line.items()))

    def _host_failed(self, host: WorkerHost, reason: str) -> None:
        """A call for an execution failed on ``host``: out of scheduling until a ping answers."""
        host.suspend(reason)

    async def _run_on(self, host: WorkerHost, execution: Execution, on_output):
        """Run on ``host``: in a warm container if its pool has one, else in a new one. Returns
        (sandbox, result); the caller removes the sandbox. On an exception it is already removed."""
        sandbox = self.host_pools[host.name].take(execution)
        if sandbox is not None:
            try:
                return sandbox, await self._execute(host, sandbox, execution, on_output)
            except HostUnavailable as e:  # the warm container died while it waited: go cold
                self.log.info("warm container on %s unusable (%s); cold start", host.name, e)
        image = await host.image_for(execution.language)
        labels = protocol.labels(self.owner, execution.id, language=execution.language.name)
        sandbox = host.sandbox(
            execution.language,
            image,
            execution.limits,
            labels,
            script=not execution.interactive,  # its code comes at once: start IPython if used
        )
        return sandbox, await self._execute(host, sandbox, execution, on_output, cold=True)

    async def _execute(self, host, sandbox, execution, on_output, cold=False) -> Result:
        try:
            if cold:
                await sandbox.prepare()
            return await sandbox.execute(execution, on_output)
        except HostUnavailable:
            await self._destroy(host, sandbox)
            raise
        except BaseException as e:
            await self._destroy(host, sandbox)
            if not isinstance(e, Exception):
                raise  # cancelled: the client went away
            # A bug or an unexpected engine answer: report it, don't hang.
            self.log.exception("execution %s failed on %s", execution.id, host.name)
            return Result(
                execution.language.name,
                Status.INTERNAL_ERROR,
                worker=host.name,
                message=reason_of(e),
            )

    async def _destroy(self, host: WorkerHost, sandbox) -> None:
        if not await sandbox.destroy():
            self.reaper.abandon(host, sandbox.labels[protocol.EXECUTION])

    async def _clean_up(self, host: WorkerHost, sandbox, execution: Execution) -> None:
        """Remove an execution's container (or give its slot runner back to the pool), then free
        its slot and memory and refill the host's pool."""
        try:
            if not self.host_pools[host.name].recycle(sandbox):
                await self._destroy(host, sandbox)
        finally:
            self.scheduler.release(host, execution.memory_mib, completed=True)
            self.host_pools[host.name].fill()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _maintain_pools(self):
        """Called every ``pool_interval_s``: TTL, shrinking and refilling of the warm pools."""
        await asyncio.gather(*(p.maintain(self.registry) for p in self.host_pools.values()))

    # -- what the runtimes are -------------------------------------------------------------------
    async def image(self, language: Language) -> str | None:
        """The image the first schedulable host runs ``language`` with (None if none has one).
        Only looks images up (no container)."""
        for host in (h for h in self.workers if h.schedulable):
            try:
                return await host.image_for(language)
            except HostUnavailable:
                continue
        return None

    async def version(self, language: Language, wait_s: float = 0) -> str | None:
        """The runtime's version as its image reports it: learned once per image (when it was
        prepared, or in the background when first seen). With ``wait_s`` 0 (a kernel's start)
        only what is known already; ``GET /lang`` waits that long for a probe."""
        image = await self.image(language)
        if image is None:
            return None
        return await self.versions.learned(language, image, wait_s)

    def probe_version(self, language: Language) -> Execution:
        """The execution that learns a runtime's version: its ``version_command``, cold."""
        return Execution(
            language.variant(run=language.version_command, compile=None, prestart=None),
            "",
            self.limits.defaults(language),
            warm=False,
            user="braindrill:version-probe",  # the engine's own, in the audit lines
        )


def _quoted(value) -> str:
    text = "-" if value is None else str(value)
    return json.dumps(text) if (" " in text or '"' in text or not text) else text
