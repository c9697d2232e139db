"""A host's warm pool (``HostPool``), its bookkeeping only: a fake host and fake sandboxes (the
warm pools on real containers are in tests/docker/engine/test_pools.py)."""

from __future__ import annotations

import asyncio
import logging
import time

from braindrill_ext.engine.limits import LimitsPolicy
from braindrill_ext.engine.pool import HostPool, WarmPools
from braindrill_ext.execution import Execution
from braindrill_ext.languages import LanguageRegistry
from tests.helpers import FakeHost


class FakeSandbox:
    def __init__(self, language, limits, gate: asyncio.Event):
        self.language, self.limits, self.gate = language, limits, gate
        self.destroyed = False
        self.deadline = None

    async def destroy(self) -> bool:
        await self.gate.wait()  # a slow engine: the removal takes a while
        self.destroyed = True
        return True


async def test_a_pool_never_hands_out_what_it_is_destroying():
    """maintain() sorts the ready sandboxes out before it awaits their removal: a take() meanwhile
    gets the kept one, never one being destroyed, and the pool keeps exactly its target."""
    host = FakeHost("h", 4)
    host.nests = lambda lang: False
    lang = LanguageRegistry.from_kernelspecs().get("python")
    limits = LimitsPolicy().defaults
    pool = HostPool(host, WarmPools(max_size=4), dict, limits, None, logging.getLogger())
    pool.fill = lambda: None  # no container is made here
    gate = asyncio.Event()
    sandboxes = [FakeSandbox(lang, limits(lang), gate) for _ in range(3)]
    ready = pool._pool(lang)
    ready.ready.extend((s, time.monotonic()) for s in sandboxes)
    ready.target = 1  # two of the three are beyond it
    maintaining = asyncio.ensure_future(pool.maintain([]))
    await asyncio.sleep(0)  # maintain() now waits on the first removal
    taken = pool.take(Execution(lang, "print(1)", limits(lang)))
    assert taken is sandboxes[0] and not taken.destroyed
    gate.set()
    await maintaining
    assert [s.destroyed for s in sandboxes] == [False, True, True]
    assert not ready.ready


def test_scripts_and_cells_have_their_own_warm_containers_but_share_runners():
    """On a host of containers, a prestarted language's warm containers for scripts (IPython only
    if used) and for cells (IPython ahead) are two pools; a slot runner's template serves both."""
    lang = LanguageRegistry.from_kernelspecs().get("python")
    limits = LimitsPolicy().defaults
    for nests, pools in ((False, {"python", "python (cells)"}), (True, {"python"})):
        host = FakeHost("h", 4)
        host.nests = lambda _, nests=nests: nests
        pool = HostPool(host, WarmPools(max_size=4), dict, limits, None, logging.getLogger())
        pool.fill = lambda: None
        script = Execution(lang, "print(1)", limits(lang))
        cell = Execution(lang, "1", limits(lang), interactive=True)
        assert pool.take(script) is None and pool.take(cell) is None  # misses: both counted
        assert set(pool.pools) == pools
        assert pool.pools["python"].cells is False


class FakeRunner(FakeSandbox):
    """A slot runner as the pool sees one: reusable after its execution."""

    def __init__(self, language, limits):
        super().__init__(language, limits, asyncio.Event())
        self.reusable, self.born = True, time.monotonic()


def runner_pool(slots=4):
    """A pool on a host of slot runners (the pool may keep one per slot), with what its fill()
    starts recorded instead of made."""
    host = FakeHost("h", slots)
    host.nests = lambda lang: True
    lang = LanguageRegistry.from_kernelspecs().get("python")
    limits = LimitsPolicy().defaults
    pool = HostPool(host, WarmPools(max_size=0), dict, limits, None, logging.getLogger())
    started = []

    async def fill_one(language_pool):
        started.append(language_pool)
        language_pool.filling -= 1

    pool._fill_one = fill_one
    return pool, lang, limits(lang), started


def language_pool(pool, lang):
    """The language's pool, as the first take() makes it."""
    return pool._pool(lang)


async def test_a_miss_waits_for_a_runner_coming_back_rather_than_start_one_cold():
    """Cells back to back: the next one comes while the runner of the last one makes its clean
    check (milliseconds). It waits for that runner, not for a cold one (a second of CPU); the
    miss still grows the pool, so that two runners take turns from then on."""
    pool, lang, limits, started = runner_pool()
    language_pool(pool, lang)
    runner = FakeRunner(lang, limits)
    for cell in range(2):
        pool.lend(runner)  # out for a cell
        pool.coming_back(runner)  # its cell is over
        waiting = asyncio.ensure_future(pool.take_or_wait(Execution(lang, "1", limits)))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        assert pool.recycle(runner)
        assert await waiting is runner
        if cell == 0:  # the first miss: a target of 1, the runner out is that one
            assert (pool.status()["python"]["target"], len(started)) == (1, 0)
    pool.lend(runner)  # out for the third cell, as the engine lends what it took: a refill
    await asyncio.sleep(0)
    stats = pool.status()["python"]
    assert (stats["misses"], stats["target"], len(started)) == (2, 2, 1)  # a second runner


async def test_a_cold_runner_started_on_a_miss_is_the_runner_that_miss_adds():
    """The first cell of a kernel misses (its pool's first runner is still starting): the cold
    runner it starts joins the pool afterwards, so the refill must not start another one for the
    same miss (a runner too many, removed again by the next upkeep: a second of CPU wasted)."""
    pool, lang, limits, started = runner_pool()
    language_pool(pool, lang).target = 1
    pool.fill()
    await asyncio.sleep(0)
    assert len(started) == 1  # the prewarmed runner, starting
    language_pool(pool, lang).filling = 1  # (the fake start returned at once: still starting)
    assert pool.take(Execution(lang, "1", limits)) is None  # a miss: the target is now 2
    cold = FakeRunner(lang, limits)
    pool.lend(cold)  # the engine starts one cold and lends it
    await asyncio.sleep(0)
    assert (language_pool(pool, lang).target, len(started)) == (2, 1)
    pool.coming_back(cold)
    assert pool.recycle(cold)


async def test_a_miss_goes_cold_when_no_runner_is_coming_back():
    """A runner still running its execution is not waited for, and a waiter goes cold at once
    when the runner it waits for is removed instead of coming back."""
    pool, lang, limits, _ = runner_pool()
    language_pool(pool, lang)
    busy = FakeRunner(lang, limits)
    pool.lend(busy)  # running: not coming back soon
    started = time.monotonic()
    assert await pool.take_or_wait(Execution(lang, "1", limits)) is None
    assert time.monotonic() - started < 0.1
    pool.coming_back(busy)
    waiting = asyncio.ensure_future(pool.take_or_wait(Execution(lang, "2", limits)))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    pool.forget(busy)  # not clean: removed instead
    assert await asyncio.wait_for(waiting, 0.1) is None


async def test_runners_out_count_toward_the_target_and_the_maximum():
    """A pool of runners does not make a new one for each that is out running a cell: they come
    back. And one comes back only while the pool, with those out, is under its maximum."""
    pool, lang, limits, started = runner_pool(slots=2)  # at most 2 runners
    runners = [FakeRunner(lang, limits) for _ in range(3)]
    language_pool(pool, lang)
    for runner in runners[:2]:
        pool.lend(runner)
    language_pool(pool, lang).target = 2  # the misses that started them
    pool.fill()
    await asyncio.sleep(0)
    assert not started  # both of the target are out
    pool.lend(runners[2])  # a cold one besides (the pool was empty)
    assert not pool.recycle(runners[0])  # 2 still out: three runners, two too many
    assert pool.recycle(runners[1])  # 1 out
    assert pool.recycle(runners[2])  # 1 ready, none out
    assert [r for r, _ in pool._pool(lang).ready] == runners[1:]


async def test_a_variants_runner_never_makes_or_joins_the_pool():
    """The version probe's runner (the language with another run command and no prestart) comes
    first on a new host: it must not make the language's pool as its own, or every cell after it
    would find the pool's language another and go cold."""
    pool, lang, limits, _ = runner_pool()
    probe = FakeRunner(lang.variant(run=["python3", "--version"], prestart=None), limits)
    pool.lend(probe)
    pool.coming_back(probe)
    assert not pool.recycle(probe) and not pool.pools
    runner = FakeRunner(lang, limits)
    assert pool.take(Execution(lang, "1", limits)) is None  # the language's pool, made here
    pool.lend(runner)
    pool.lend(probe)  # a variant's runner out: not the pool's
    assert list(pool.pools["python"].out) == [runner]
    assert pool.recycle(runner) and not pool.recycle(probe)
