"""Warm pools: per worker host and language, containers created and started ahead of time, each
waiting for its code. A pooled container has never run user code and is used exactly once.

Capacity: pooled containers count against the host's slots and memory budget. A pool fills only
while ``running + pooled < slots`` and the memory limits of running and pooled containers leave
room for one more, so under load it stops refilling and drains through its hits; it never blocks
an execution (the scheduler admits on running executions alone) and never destroys a warm
container to make room (that would waste the engine's work creating it).
Sizing: a language's target starts at its minimum, grows by one on every miss (up to its maximum),
shrinks by one after ``shrink_after_s`` without a hit; an idle container older than ``ttl_s`` is
replaced. Slot runners come back after their execution (``recycle``): those out count toward the
target, and a miss while one of them is coming back (its execution over, its clean check under
way: milliseconds) waits for it rather than start a runner cold (a second of CPU). A pool that
cannot fill (image missing, engine error) backs off, and executions take the cold path; the
reason shows in ``/braindrill/workers``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time

from traitlets import Bool, Dict, Float, Integer, TraitError, validate
from traitlets.config import LoggingConfigurable

from ..errors import CannotNest, HostUnavailable
from ..execution import Execution, Limits, container_memory_mib
from ..languages import Language
from ..sandbox.protocol import EXECUTION

# Limits fixed when a container is created; a request that changes one takes the cold path.
CONTAINER_LIMITS = ("memory_mib", "cpus", "pids", "workdir_mib", "nofile", "compile_memory_mib")
# A slot runner's: the others it applies before the execution (runner.py).
RUNNER_LIMITS = ("pids", "workdir_mib", "nofile")
RETURN_WAIT_S = 0.5  # a miss waits this long at most for a slot runner coming back


class WarmPools(LoggingConfigurable):
    """Warm-pool policy; one ``HostPool`` per worker host does the work."""

    enabled = Bool(True, config=True, help="Keep warm containers; False: every execution is cold.")
    min_size = Integer(0, config=True, help="Warm containers per language and host, at least.")
    max_size = Integer(4, config=True, help="Warm containers per language and host, at most.")
    languages = Dict(
        config=True,
        help="Per-language {'min': n, 'max': n}; {'max': 0} turns the pool off for a language. "
        "On a host of containers, a prestarted language (Python) has two pools with these "
        "bounds each: for scripts and for notebook cells.",
    )
    ttl_s = Float(
        300.0,
        config=True,
        help="A warm container waiting longer, or a slot runner (sandbox 'nested') older, is "
        "replaced, in s.",
    )
    runner_executions = Integer(
        1000, config=True, help="A slot runner is replaced after this many executions."
    )
    shrink_after_s = Float(60.0, config=True, help="Shrink a pool by one after this long idle, s.")
    retry_after_s = Float(30.0, config=True, help="Wait before refilling a pool that failed, s.")

    @validate("languages")
    def _check_languages(self, proposal):
        for lang, sizes in proposal["value"].items():
            if not isinstance(sizes, dict) or set(sizes) - {"min", "max"}:
                raise TraitError(f"WarmPools.languages[{lang!r}] must be {{'min': n, 'max': n}}")
        return proposal["value"]

    def bounds(self, language: str, slots: int = 0) -> tuple[int, int]:
        """A language's pool size bounds; ``slots``: on a host of slot runners, which may keep
        one runner per slot unless the language's own maximum says otherwise."""
        if not self.enabled:
            return 0, 0
        sizes = self.languages.get(language, {})
        high = sizes.get("max", max(self.max_size, slots))
        return min(sizes.get("min", self.min_size), high), high


@dataclasses.dataclass
class _LanguagePool:
    language: Language
    limits: Limits
    ready: collections.deque = dataclasses.field(default_factory=collections.deque)
    target: int = 0
    filling: int = 0
    hits: int = 0
    misses: int = 0
    last_used: float = dataclasses.field(default_factory=time.monotonic)
    last_error: str | None = None
    retry_at: float = 0.0
    cells: bool = False  # warm containers for notebook cells (HostPool._pool)
    # Slot runners out for an execution: sandbox -> whether it is coming back (execution over).
    out: dict = dataclasses.field(default_factory=dict)
    returned: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    @property
    def memory_mib(self) -> int:
        return container_memory_mib(self.language, self.limits)


class HostPool:
    """The warm containers of one worker host. Used by the engine: ``take()`` in the placement's
    ``_run_on``, ``fill()`` when a slot frees, ``maintain()`` from its periodic loop."""

    def __init__(self, host, policy: WarmPools, labels, limits_for, reaper, log):
        self.host = host
        self.reaper = reaper  # keeps what could not be removed
        self.policy = policy
        self.labels = labels  # () -> the labels of a new warm container
        self.limits_for = limits_for  # Language -> default Limits
        self.log = log
        self.pools: dict[str, _LanguagePool] = {}
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    @property
    def pooled(self) -> int:
        return sum(len(p.ready) + p.filling for p in self.pools.values())

    @property
    def pooled_mib(self) -> int:
        """The memory limits of the warm containers (ready and being created)."""
        return sum((len(p.ready) + p.filling) * p.memory_mib for p in self.pools.values())

    def _bounds(self, lang: Language) -> tuple[int, int]:
        return self.policy.bounds(lang.name, self.host.slots if self.host.nests(lang) else 0)

    def _pool(self, lang: Language, cells: bool = False) -> _LanguagePool:
        """A language's pool. Where it runs in containers, a prestarted language has a second
        one for notebook cells (``cells``): their containers start IPython ahead of the code,
        those for scripts only if the script uses it (``container/prestart.py``), so scripts
        don't pay for cells. A slot runner's template serves both."""
        cells = cells and bool(lang.prestart) and not self.host.nests(lang)
        key = f"{lang.name} (cells)" if cells else lang.name
        pool = self.pools.get(key)
        if pool is None:
            low, _ = self._bounds(lang)
            pool = _LanguagePool(lang, self.limits_for(lang), target=low, cells=cells)
            self.pools[key] = pool
        return pool

    def take(self, execution: Execution):
        """A warm sandbox for ``execution``, or None (then the caller starts a cold one). Counts a
        miss, which grows the pool; the refill comes with ``lend``."""
        pool = self._pool_for(execution)
        if pool is None:
            return None
        sandbox = self._pop_ready(pool, execution)
        self._count(pool, sandbox)
        return sandbox

    async def take_or_wait(self, execution: Execution):
        """``take()``; on a miss while a slot runner of the pool is coming back, that runner
        (up to ``RETURN_WAIT_S``; then None). The one taken is out until ``recycle``."""
        sandbox = self.take(execution)
        pool = self._pool_for(execution) if sandbox is None else None
        if pool is None:
            return sandbox
        give_up = time.monotonic() + RETURN_WAIT_S
        while sandbox is None and any(pool.out.values()) and time.monotonic() < give_up:
            pool.returned.clear()
            try:
                await asyncio.wait_for(pool.returned.wait(), give_up - time.monotonic())
            except asyncio.TimeoutError:
                break
            sandbox = self._pop_ready(pool, execution)
        return sandbox

    def prewarm(self, lang: Language) -> None:
        """A kernel of ``lang`` started: its cells will come, and its completions, which
        JupyterLab drops after 1 s (a runner's start takes about that): the pool keeps one. Slot
        runners only: a container of cells (IPython and the preloads ahead) is a second of CPU
        per kernel start, and its pool grows on the first cell's miss as before."""
        if self._bounds(lang)[1] == 0 or not self.host.nests(lang):
            return
        pool = self._pool(lang, cells=True)
        if pool.language == lang:
            pool.target, pool.last_used = max(pool.target, 1), time.monotonic()
            self.fill()

    def lend(self, sandbox) -> None:
        """A sandbox goes out for an execution (warm or cold); then the pools refill. A slot
        runner counts toward its pool's target until ``recycle`` or ``forget``: a cold one
        started on a miss is the runner that miss added, not one more."""
        pool = self._runners_pool(sandbox)
        if pool is not None:
            pool.out[sandbox] = False
        self.fill()

    def coming_back(self, sandbox) -> None:
        """A slot runner's execution is over: it is back in milliseconds, after its clean check."""
        for pool in self.pools.values():
            if sandbox in pool.out:
                pool.out[sandbox] = True

    def forget(self, sandbox) -> None:
        """A sandbox that is not coming back (removed)."""
        for pool in self.pools.values():
            if pool.out.pop(sandbox, None) is not None:
                pool.returned.set()  # a waiter goes cold now

    def _runners_pool(self, sandbox) -> _LanguagePool | None:
        """The pool a slot runner belongs to: the one of its language, made by a take(). None
        for a container, and for a runner of a variant of the language (a version probe's, or
        one with another run command), which must never make or join the language's pool."""
        if not (self.host.nests(sandbox.language) and hasattr(sandbox, "reusable")):
            return None
        pool = self.pools.get(sandbox.language.name)
        return pool if pool is not None and pool.language == sandbox.language else None

    def _pool_for(self, execution: Execution) -> _LanguagePool | None:
        """The pool that may serve ``execution`` (None: it goes cold)."""
        lang = execution.language
        if self._bounds(lang)[1] == 0 or not execution.warm:
            return None
        pool = self._pool(lang, execution.interactive)
        if pool.language != lang:  # a variant (another run command, no prestart): go cold
            return None
        pool.last_used = time.monotonic()
        fixed = RUNNER_LIMITS if self.host.nests(lang) else CONTAINER_LIMITS
        if any(getattr(execution.limits, k) != getattr(pool.limits, k) for k in fixed):
            return None
        return pool

    def _pop_ready(self, pool: _LanguagePool, execution: Execution):
        while pool.ready:
            candidate, born = pool.ready.popleft()
            if time.monotonic() - born < self.policy.ttl_s and _lasts(candidate, execution):
                return candidate
            self._spawn(self._destroy(candidate))
        return None

    def _count(self, pool: _LanguagePool, sandbox) -> None:
        """A hit, or a miss (which grows the pool); then a refill."""
        if sandbox is None:
            low, high = self._bounds(pool.language)
            pool.misses += 1
            pool.target = min(high, max(pool.target + 1, low, 1))
        else:
            pool.hits += 1

    def recycle(self, sandbox) -> bool:
        """Take back a slot runner after its execution if it may run another (``reusable``) and
        its pool has room; False: the caller removes it. A container is never reused."""
        self.forget(sandbox)
        if self._closed or not getattr(sandbox, "reusable", False) or not self.host.schedulable:
            return False
        pool = self._runners_pool(sandbox)
        if pool is None:
            return False
        if any(getattr(sandbox.limits, k) != getattr(pool.limits, k) for k in RUNNER_LIMITS):
            return False
        if len(pool.ready) + pool.filling + len(pool.out) >= self._bounds(pool.language)[1]:
            return False
        pool.ready.append((sandbox, sandbox.born))
        pool.returned.set()
        return True

    def fill(self) -> None:
        """Start creating warm containers where a pool is below target and the host has room."""
        if self._closed or not self.host.schedulable:
            return
        now = time.monotonic()
        for pool in sorted(self.pools.values(), key=lambda p: len(p.ready) - p.target):
            while (
                len(pool.ready) + pool.filling + len(pool.out) < pool.target
                and self.host.running + self.pooled < self.host.slots
                and self.pooled_mib + pool.memory_mib <= self.host.memory_free_mib
                and now >= pool.retry_at
            ):
                pool.filling += 1
                self._spawn(self._fill_one(pool))

    async def _fill_one(self, pool: _LanguagePool) -> None:
        try:
            image = await self.host.image_for(pool.language)
            sandbox = self.host.sandbox(
                pool.language, image, pool.limits, self.labels(),
                idle_life_s=int(self.policy.ttl_s) + 60, script=not pool.cells,
            )  # fmt: skip
            await sandbox.prepare()
        except Exception as e:
            pool.filling -= 1
            reason = e.reason if isinstance(e, HostUnavailable) else repr(e)
            if isinstance(e, CannotNest) and self.host.kinds.refused(pool.language, reason):
                self.fill()  # an `auto` host: containers for this language, from now on
                return
            pool.last_error = f"{time.strftime('%H:%M:%S')} {reason}"
            pool.retry_at = time.monotonic() + self.policy.retry_after_s
            self.log.warning(
                "warm pool %s on %s cannot fill: %s", pool.language.name, self.host.name, reason
            )
            return
        pool.filling -= 1
        if self._closed:
            await self._destroy(sandbox)
            return
        pool.last_error = None
        pool.ready.append((sandbox, time.monotonic()))

    async def maintain(self, languages) -> None:
        """Replace containers past their TTL, shrink idle pools, refill; pools with a minimum
        exist from the start. Called every ``pool_interval_s`` by the engine."""
        for lang in languages:
            if self._bounds(lang)[0] > 0:
                self._pool(lang)
                self._pool(lang, cells=True)  # the same pool where a runner serves both
        now = time.monotonic()
        for pool in list(self.pools.values()):  # recycle() may add one while this awaits
            low, high = self._bounds(pool.language)
            if now - pool.last_used > self.policy.shrink_after_s and pool.target > low:
                pool.target -= 1
                pool.last_used = now
            pool.target = min(pool.target, high)
            # Sorted out before any await: meanwhile take() and recycle() use pool.ready, and a
            # sandbox being destroyed must not be handed out (nor one recycled meanwhile lost).
            keep, doomed = collections.deque(), []
            for sandbox, born in pool.ready:
                if now - born >= self.policy.ttl_s or len(keep) + len(pool.out) >= pool.target:
                    doomed.append(sandbox)
                else:
                    keep.append((sandbox, born))
            pool.ready = keep
            for sandbox in doomed:
                await self._destroy(sandbox)
        self.fill()

    async def close(self) -> None:
        """Destroy every warm container. Called at shutdown."""
        self._closed = True
        # Fills in flight finish and, seeing the pool closed, destroy what they made.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.discard()

    async def discard(self) -> None:
        """Destroy the warm containers waiting now, then refill. Called at shutdown (``close``)
        and by the engine when its host is back after a failure: they died with its engine."""
        for pool in self.pools.values():
            while pool.ready:
                sandbox, _ = pool.ready.popleft()
                await self._destroy(sandbox)
        self.fill()

    def status(self) -> dict:
        return {
            name: {
                "ready": len(p.ready),
                "target": p.target,
                "hits": p.hits,
                "misses": p.misses,
                "last_error": p.last_error,
            }
            for name, p in sorted(self.pools.items())
        }

    async def _destroy(self, sandbox) -> None:
        if not await sandbox.destroy():
            self.reaper.abandon(self.host, sandbox.labels[EXECUTION])

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _lasts(sandbox, execution: Execution) -> bool:
    """Whether a warm container or runner outlives ``execution``'s limits (its in-container
    backstop; a runner's counts from its creation)."""
    deadline = getattr(sandbox, "deadline", None)
    lim = execution.limits
    return deadline is None or time.monotonic() + lim.compile_timeout_s + lim.timeout_s < deadline
