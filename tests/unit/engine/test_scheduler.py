"""The scheduler with fake hosts: most free slots first, ties round-robin, the bounded FIFO queue,
memory budgets (the real-engine proofs are in tests/docker/hosts/test_hosts*.py; a host's warm
pool: test_pool.py)."""

from __future__ import annotations

import asyncio

import pytest

from braindrill_ext.engine.scheduler import Scheduler
from braindrill_ext.errors import NoCapacity
from tests.helpers import FakeHost


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
