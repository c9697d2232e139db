"""Scheduler and warm-pool bookkeeping unit tests with fake hosts (the real-engine proofs are in
test_hosts*.py and test_pools.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import pytest

from braindrill_ext.errors import NoCapacity
from braindrill_ext.execution import Execution
from braindrill_ext.languages import LanguageRegistry
from braindrill_ext.limits import LimitsPolicy
from braindrill_ext.pool import HostPool, WarmPools
from braindrill_ext.scheduler import Scheduler


@dataclass
class FakeHost:
    name: str
    slots: int
    running: int = 0
    schedulable: bool = True
    last_error: str | None = None
    memory_mib: int | None = None
    reserved_mib: int = 0
    completed: int = 0

    @property
    def memory_free_mib(self) -> float:
        return float("inf") if self.memory_mib is None else self.memory_mib - self.reserved_mib

    def fits(self, memory_mib: float) -> bool:
        return self.memory_mib is None or memory_mib <= self.memory_mib


def hosts(*slots, memory=None):
    return [FakeHost(f"h{i}", n, memory_mib=memory) for i, n in enumerate(slots)]


async def test_most_free_slots_first():
    a, b = hosts(2, 4)
    s = Scheduler([a, b], queue_size=4, queue_timeout_s=1)
    picked = [(await s.acquire()).name for _ in range(4)]
    # b has the most free slots until both have 2 free... then round-robin between them.
    assert picked[:2] == ["h1", "h1"]
    assert sorted(picked[2:]) == ["h0", "h1"]
    assert a.running + b.running == 4


async def test_ties_spread_round_robin():
    three = hosts(2, 2, 2)
    s = Scheduler(three, queue_size=4, queue_timeout_s=1)
    first = [(await s.acquire()).name for _ in range(3)]
    assert sorted(first) == ["h0", "h1", "h2"]
    for h in three:
        s.release(h)
    again = [(await s.acquire()).name for _ in range(3)]
    assert sorted(again) == ["h0", "h1", "h2"]


async def test_unhealthy_and_excluded_hosts_are_skipped():
    a, b, c = hosts(2, 2, 2)
    b.schedulable = False
    s = Scheduler([a, b, c], queue_size=4, queue_timeout_s=1)
    got = {(await s.acquire(exclude={"h0"})).name for _ in range(2)}
    assert got == {"h2"}
    assert b.running == 0 and a.running == 0


async def test_no_healthy_host_is_no_capacity_at_once():
    a, b = hosts(1, 1)
    a.schedulable = b.schedulable = False
    a.last_error = "ping failed"
    s = Scheduler([a, b], queue_size=4, queue_timeout_s=10)
    with pytest.raises(NoCapacity, match="no healthy worker host") as e:
        await s.acquire()
    assert "ping failed" in str(e.value) and e.value.retry_after > 0


async def test_fifo_queue_when_busy():
    (a,) = hosts(1)
    s = Scheduler([a], queue_size=3, queue_timeout_s=5)
    await s.acquire()
    order = []

    async def wait(i):
        host = await s.acquire()
        order.append(i)
        await asyncio.sleep(0)
        s.release(host)

    waiters = [asyncio.ensure_future(wait(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    assert s.queued == 3
    s.release(a)
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2]
    assert a.running == 0 and s.queued == 0


async def test_full_queue_is_refused():
    (a,) = hosts(1)
    s = Scheduler([a], queue_size=1, queue_timeout_s=5)
    await s.acquire()
    waiting = asyncio.ensure_future(s.acquire())
    await asyncio.sleep(0.01)
    with pytest.raises(NoCapacity, match="queue of 1 is full") as e:
        await s.acquire()
    assert e.value.retry_after >= 1
    s.release(a)
    assert (await waiting) is a


async def test_wait_past_the_limit_is_refused():
    (a,) = hosts(1)
    s = Scheduler([a], queue_size=2, queue_timeout_s=0.05)
    await s.acquire()
    with pytest.raises(NoCapacity, match="waited"):
        await s.acquire()
    assert s.queued == 0


async def test_cancelled_waiter_leaves_the_queue_and_keeps_no_slot():
    (a,) = hosts(1)
    s = Scheduler([a], queue_size=2, queue_timeout_s=5)
    await s.acquire()
    waiting = asyncio.ensure_future(s.acquire())
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert s.queued == 0
    s.release(a)
    assert a.running == 0


async def test_host_coming_back_serves_the_queue():
    a, b = hosts(1, 1)
    b.schedulable = False
    s = Scheduler([a, b], queue_size=2, queue_timeout_s=5)
    await s.acquire()
    waiting = asyncio.ensure_future(s.acquire())
    await asyncio.sleep(0.01)
    b.schedulable = True
    s.dispatch()  # what the health loop does when a host answers again
    assert (await waiting) is b
    assert s.capacity == 2


async def test_memory_budget_bounds_a_host_like_its_slots():
    a, b = hosts(4, 4)
    a.memory_mib, b.memory_mib = 1024, 300
    s = Scheduler([a, b], queue_size=4, queue_timeout_s=5)
    big = [await s.acquire(memory_mib=512) for _ in range(2)]
    assert big == [a, a]  # b has more free slots, but no room for 512 MiB
    assert a.reserved_mib == 1024
    small = await s.acquire(memory_mib=256)
    assert small is b and b.reserved_mib == 256
    waiting = asyncio.ensure_future(s.acquire(memory_mib=512))
    await asyncio.sleep(0.01)
    assert s.queued == 1  # free slots everywhere, memory nowhere
    s.release(b, 256)
    await asyncio.sleep(0.01)
    assert not waiting.done()  # b's whole budget is too small for it
    s.release(a, 512)
    assert (await waiting) is a and a.reserved_mib == 1024 and b.reserved_mib == 0


async def test_queue_stays_fifo_with_memory():
    (a,) = hosts(4, memory=1000)
    s = Scheduler([a], queue_size=4, queue_timeout_s=5)
    await s.acquire(memory_mib=800)
    first = asyncio.ensure_future(s.acquire(memory_mib=600))
    second = asyncio.ensure_future(s.acquire(memory_mib=100))  # would fit, but waits its turn
    await asyncio.sleep(0.01)
    assert not first.done() and not second.done()
    s.release(a, 800)
    assert (await first) is a and (await second) is a
    assert a.reserved_mib == 700


async def test_larger_than_every_budget_is_refused_at_once():
    a, b = hosts(2, 2, memory=512)
    s = Scheduler([a, b], queue_size=4, queue_timeout_s=5)
    with pytest.raises(NoCapacity, match="larger than the memory budget") as e:
        await s.acquire(memory_mib=1024)
    assert "512 MiB" in str(e.value) and s.queued == 0


# -- a host's warm pool (HostPool), its bookkeeping only: fake host and sandboxes ---------------
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
