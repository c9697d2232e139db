"""The execution engine: owns the worker hosts, queues and places executions, keeps the states of
kernels and sessions, reaps leftovers.

Created by whoever owns the process -- the extension app in a Jupyter server, ``EmbeddedEngine``
for a plain script or a standalone kernel -- and handed down to the front doors (the REST API,
the kernels), which use only its public methods (see ``engine/__init__.py``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid

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

from .. import metrics
from ..errors import BraindrillError, HostUnavailable
from ..execution import Execution, Limits, Result
from ..hosts.hostspec import SANDBOX_KINDS, check_host_spec, make_hosts
from ..hosts.reaper import Reaper
from ..hosts.versions import ImageVersions
from ..hosts.workerhost import WorkerHost
from ..languages import Language, LanguageRegistry
from ..sandbox import protocol
from . import describe, statefiles, validation
from .audit import audit_line
from .fairness import UserLimits
from .files import StateFileAccess
from .limits import LimitsPolicy
from .packages import PackageAccess, Packages
from .placement import Placement
from .pool import HostPool, WarmPools
from .running import Control, Running
from .scheduler import Scheduler
from .state import StateStore, keep_state
from .upkeep import Upkeep

VERSION_WAIT_S = 15.0  # describe_language waits this long for a runtime's version being learned
STOP_WAIT_S = 15.0  # at shutdown, the executions still running get this long to be removed


class ExecutionEngine(StateFileAccess, PackageAccess, LoggingConfigurable):
    """Runs executions on worker hosts: one bounded FIFO queue, the least-loaded schedulable host,
    a transparent retry on another host when one fails before the code started, ``worker_lost``
    when one fails mid-run, health checks, and a reaper for containers a crash left behind.

    Its parts each own one thing: the scheduler a host's slots and memory, the pools the warm
    sandboxes, the placement an execution's path, the reaper what could not be removed, the
    state store the kernels' and sessions' states."""

    hosts = List(
        Dict(),
        config=True,
        help="Worker hosts: dicts with name, url (unix://, tcp:// or ssh://; empty = DOCKER_HOST "
        "or the local socket), slots, runtime (OCI runtime, e.g. runsc), sandbox ('auto', "
        "'container' or 'nested'), runner_seccomp (its slot runners' seccomp profile), channel "
        "(false: its runners use the attach stream, not a local socket), tls {ca, cert, key}, "
        "insecure (tcp:// without TLS), images {language: image}. Default: the local engine.",
    )
    sandbox = Enum(
        SANDBOX_KINDS,
        "auto",
        config=True,
        help="The sandbox kind of a host whose entry sets none: 'auto' (nested where the host "
        "and the language's image allow it, else container), 'container' (a fresh container "
        "per execution) or 'nested' (slot runners: a fresh nested namespace sandbox per "
        "execution). See the README for what each trades.",
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
    images = Dict(config=True, help="Image per language, overriding the kernelspec's default.")
    master_id = Unicode(
        config=True,
        help="Name of this master in container labels (default: the host name). Masters sharing "
        "worker hosts need distinct names.",
    )
    audit_format = Unicode(
        "text",
        config=True,
        help="Each execution's audit line (info level): 'text' (key=value) or 'json' (a line).",
    )
    pool_interval_s = Float(5.0, config=True, help="Seconds between warm-pool upkeeps.")

    limits = Instance(LimitsPolicy)
    pools = Instance(WarmPools)
    registry = Instance(LanguageRegistry)
    versions = Instance(ImageVersions)
    fairness = Instance(UserLimits)
    states = Instance(StateStore)
    packages = Instance(Packages)

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

    @default("packages")
    def _default_packages(self):
        return Packages(parent=self)

    @default("versions")
    def _default_versions(self):
        return ImageVersions(parent=self, probe=self._probe_version)

    @validate("audit_format")
    def _check_audit_format(self, proposal):
        if proposal["value"] not in ("text", "json"):
            raise TraitError(f"audit_format must be 'text' or 'json', not {proposal['value']!r}")
        return proposal["value"]

    @validate("hosts")
    def _check_hosts(self, proposal):
        names = set()
        for spec in proposal["value"]:
            check_host_spec(spec, names)
        return proposal["value"]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.owner = f"{self.master_id}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.workers, self.image_source = make_hosts(
            self.hosts or [{"name": "local"}],
            image_source_url=self.image_source_url,
            api_version=self.docker_api_version,
            defaults={"slots": self.slots, "sandbox": self.sandbox, "images": self.images},
            docker_timeout_s=self.docker_timeout_s,
            ping_timeout_s=self.ping_timeout_s,
            lost_after_pings=self.lost_after_pings,
            runner_options={
                "max_executions": self.pools.runner_executions,
                "max_age_s": self.pools.ttl_s,
            },
            on_image=self.versions.learn,
            log=self.log,
        )
        self.scheduler = Scheduler(self.workers, self.queue_size, self.queue_timeout_s)
        self.reaper = Reaper(self.owner, self.master_id, self.log)
        self.host_pools = {h.name: self._make_pool(h) for h in self.workers}
        self.placement = Placement(
            self.workers, self.scheduler, self.host_pools, self.reaper, self.owner, self.log
        )
        self.upkeep = Upkeep(
            self.workers, self._engines(), self.scheduler, self.host_pools, self.reaper,
            self.registry, self.log,
        )  # fmt: skip
        self._started: asyncio.Future | None = None
        self._running: set[Running] = set()  # started and not ended: stopped with the engine

    # == the front doors' API =====================================================================
    def language(self, name: str) -> Language:
        """The language of a name or alias. Raises ``UnknownLanguage`` (listing the known)."""
        return self.registry.get(name)

    def languages(self) -> list[Language]:
        return list(self.registry)

    def execution(self, language: str, code, **fields) -> Execution:
        """Check one request and make its Execution (``validation.make_execution``: stdin, args,
        files, limits, interactive, execution_count, user). Raises ``UnknownLanguage``,
        ``InvalidRequest`` or ``PayloadTooLarge``."""
        return validation.make_execution(self.registry, self.limits, language, code, **fields)

    @property
    def code_bytes(self) -> int:
        """The most bytes of code, stdin and files one request may send."""
        return self.limits.code_bytes

    def default_limits(self, language: Language) -> Limits:
        return self.limits.defaults(language)

    async def run(
        self, execution: Execution, on_output=None, state=None, control=None, packages=None
    ) -> Result:
        """Run one execution on some worker host and return its Result.

        ``on_output(kind, value)`` is called on the loop as the program writes: ``("stdout",
        text)``, ``("stderr", text)``, ``("output", a Jupyter output dict)``. With ``state`` (a
        kernel's or session's key) the execution starts from that state and, when it ends
        normally or with an error, leaves its own (``state.keep_state``). Raises
        ``TooManyRequests`` when its user is past a per-user limit, ``NoCapacity`` when the queue
        is full or the wait runs out, and ``HostUnavailable`` when no host could start it.
        Cancelling it kills and removes the sandbox. The sandbox is removed after the result is
        returned; its slot is held until then. Every execution gets an audit line. A ``tool``
        execution (completion, help) starts from the state and never changes it. ``control``
        (``Running``'s) is given the sandbox while it runs. The packages of ``packages`` (a
        key; default: ``state``) are on its ``sys.path``; ``execution.packages`` installs first.
        """
        if state is not None:
            execution.state = self.states.get(state)
        queued_at = time.monotonic()
        try:
            with self.fairness.admit(execution.user):
                installed = await self._with_packages(execution, packages or state)
                result, container = await self.placement.run(execution, on_output, control)
        except BraindrillError as e:
            self.log.info(
                *audit_line(
                    self.audit_format, execution, None, time.monotonic() - queued_at, refused=e
                )
            )
            raise
        result.queued_ms = (time.monotonic() - queued_at) * 1000 - result.duration_ms
        result.packages = installed
        metrics.record(result, time.monotonic() - queued_at)
        self.log.info(*audit_line(self.audit_format, execution, result, container=container))
        if state is not None and not execution.tool:
            keep_state(self.states, state, result)
        if execution.return_files:
            kept = b"" if state is None else self.states.get(state)
            await asyncio.to_thread(statefiles.return_files, execution, result, kept)
        result.state = None  # kept in the store, or dropped: never handed on
        return result

    def start(self, execution: Execution, on_output=None, state=None, packages=None) -> Running:
        """``run`` as a ``Running`` a front door awaits, and may cancel, interrupt or answer."""
        control = Control()
        running = Running(self.run(execution, on_output, state, control, packages), control)
        self._running.add(running)
        running.task.add_done_callback(lambda _: self._running.discard(running))
        return running

    def prewarm(self, language: Language) -> None:
        """A kernel of ``language`` started: each host's pool keeps a sandbox ready for it."""
        for pool in self.host_pools.values():
            pool.prewarm(language)

    @property
    def keeps_kernel_state(self) -> bool:
        """Whether kernels carry their state from cell to cell (``StateStore.kernels``)."""
        return self.states.kernels

    def drop_state(self, key: str) -> None:
        """Forget a kernel's or session's state and packages (restart, shutdown, %reset, end)."""
        self.states.drop(key)
        self.packages.drop(key)

    def state_bytes(self, key: str) -> int:
        return self.states.size(key)

    async def version(self, language: Language, wait_s: float = 0) -> str | None:
        """The runtime's version as its image reports it: learned once per image (when it was
        prepared, or in the background when first seen). With ``wait_s`` 0 (a kernel's start)
        only what is known already; ``GET /lang`` waits that long for a probe."""
        image = await self._image(language)
        if image is None:
            return None
        return await self.versions.learned(language, image, wait_s)

    async def describe_language(self, language: Language) -> dict:
        """One language as ``GET /lang`` shows it: image, version, default and maximum limits."""
        image = await self._image(language)
        version = await self.version(language, VERSION_WAIT_S)
        return describe.language(language, image, version, self.limits)

    def describe_hosts(self) -> dict:
        """``GET /braindrill/workers``: the queue and every worker host with its pool."""
        return describe.hosts(
            self.master_id, self.queue_size, self.scheduler, self.image_source, self.host_pools
        )

    # == lifecycle ================================================================================
    async def ensure_started(self) -> None:
        """Start once, on the running loop; called by the owner of the engine (the extension
        app, the embedded engine of a script) and before any use."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        """Ping every host, remove what a crashed predecessor left, start the background loops.
        The warm pools fill in the background: a process's first kernel (or request) does not
        wait for warm containers (it goes cold if none is ready yet)."""
        await asyncio.gather(*(h.ping() for h in self._engines()))
        await self.reap()
        self.upkeep.start(self.pool_interval_s, self.health_interval_s, self.reap_interval_s)

    async def stop(self) -> None:
        """Stop the executions still running (their sandboxes removed), the loops and the host
        thread pools. Called by the engine's owner at shutdown, before its kernels stop."""
        await self.upkeep.stop()
        running = list(self._running)
        for execution in running:
            execution.cancel()
        if running:
            await asyncio.wait([r.task for r in running], timeout=STOP_WAIT_S)
        await self.placement.drain()
        await asyncio.gather(*(p.close() for p in self.host_pools.values()))
        await self.versions.close()
        for host in self._engines():
            host.close()
        self._started = None

    def remove_own_containers(self) -> int:
        """Remove every container this engine made, on every host, with blocking calls (no
        thread pool); returns how many. Called at interpreter exit for a plain script."""
        return sum(self.reaper.remove_owned(host) for host in self.workers)

    async def reap(self) -> int:
        """Remove labelled containers that no live execution owns. Called at start, every
        ``reap_interval_s``, and when a host comes back. Returns how many were removed."""
        return await self.upkeep.reap()

    # == inside ===================================================================================
    def _make_pool(self, host: WorkerHost) -> HostPool:
        def labels():
            return protocol.labels(self.owner, "pool-" + uuid.uuid4().hex[:12], pooled=True)

        return HostPool(host, self.pools, labels, self.limits.defaults, self.reaper, self.log)

    def _engines(self) -> list[WorkerHost]:
        return [*self.workers, self.image_source] if self.image_source else list(self.workers)

    async def _image(self, language: Language) -> str | None:
        """The image the first schedulable host runs ``language`` with (None if none has one).
        Only looks images up (no container)."""
        for host in (h for h in self.workers if h.schedulable):
            try:
                return await host.image_for(language)
            except HostUnavailable:
                continue
        return None

    async def _probe_version(self, language: Language) -> Result:
        """Learn a runtime's version: run its ``version_command``, cold. Handed to
        ``ImageVersions``, which calls it once per image."""
        probe = Execution(
            language.variant(run=language.version_command, compile=None, prestart=None),
            "",
            self.limits.defaults(language),
            warm=False,
            user="braindrill:version-probe",  # the engine's own, in the audit lines
        )
        return await self.run(probe)
