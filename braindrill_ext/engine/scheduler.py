"""Scheduler: slots and memory on worker hosts, and one bounded FIFO queue in front of them."""

from __future__ import annotations

import asyncio
import collections

from .. import metrics
from ..errors import NoCapacity


class Scheduler:
    """Hands out slots: the healthy host with the most free slots whose memory budget has room
    for the execution's memory limit, ties spread round-robin.

    When no host has both, a request waits in one FIFO queue of at most ``queue_size``; a full
    queue, or a wait longer than ``queue_timeout_s``, raises ``NoCapacity``, and so does a request
    larger than every host's whole budget. The one writer of a host's accounting (``running``,
    ``reserved_mib``, ``completed``). Pure logic: hosts need only ``name``, ``schedulable``,
    ``last_error``, those three counters, ``slots``, ``memory_mib`` (the budget, None for none),
    ``memory_free_mib`` and ``fits(memory_mib)``.
    """

    def __init__(self, hosts, queue_size: int, queue_timeout_s: float):
        self.hosts = list(hosts)
        self.queue_size = queue_size
        self.queue_timeout_s = queue_timeout_s
        self._queue: collections.deque = collections.deque()
        self._turn = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _pick(self, exclude=(), memory_mib=0):
        n = len(self.hosts)
        best = None
        for i in range(n):
            host = self.hosts[(self._turn + i) % n]
            if (
                host.schedulable
                and host.name not in exclude
                and host.running < host.slots
                and memory_mib <= host.memory_free_mib
            ):
                if best is None or host.slots - host.running > best.slots - best.running:
                    best = host
        if best is not None:
            self._turn = (self.hosts.index(best) + 1) % n
            best.running += 1
            best.reserved_mib += memory_mib
        return best

    def _check_any_host(self, exclude, memory_mib):
        candidates = [h for h in self.hosts if h.schedulable and h.name not in exclude]
        if not candidates:
            errors = "; ".join(f"{h.name}: {h.last_error or 'excluded'}" for h in self.hosts)
            metrics.REJECTED.labels("no_healthy_host").inc()
            raise NoCapacity(f"no healthy worker host ({errors})", retry_after=5)
        if not any(h.fits(memory_mib) for h in candidates):
            metrics.REJECTED.labels("too_large").inc()
            largest = max(h.memory_mib for h in candidates)
            raise NoCapacity(
                f"the execution's memory limit ({memory_mib} MiB) is larger than the memory "
                f"budget of every worker host (the largest: {largest} MiB)",
                retry_after=60,
            )

    async def acquire(self, exclude=(), memory_mib=0):
        """Take a slot and ``memory_mib`` of a host's memory budget; returns the host. Release
        both with ``release(host, memory_mib)``."""
        self._check_any_host(exclude, memory_mib)
        if not self._queue:
            host = self._pick(exclude, memory_mib)
            if host is not None:
                metrics.slots(self)
                return host
        if len(self._queue) >= self.queue_size:
            metrics.REJECTED.labels("queue_full").inc()
            raise NoCapacity(
                f"all {self.capacity} slots are busy and the queue of {self.queue_size} is full",
                retry_after=2,
            )
        fut = asyncio.get_running_loop().create_future()
        waiter = (fut, frozenset(exclude), memory_mib)
        self._queue.append(waiter)
        metrics.slots(self)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.queue_timeout_s)
        except asyncio.TimeoutError:
            if fut.done():  # granted at the last moment
                return fut.result()
            metrics.REJECTED.labels("queue_timeout").inc()
            raise NoCapacity(
                f"waited {self.queue_timeout_s:g} s in the queue for a free slot", retry_after=5
            ) from None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result(), memory_mib, completed=False)
            raise
        finally:
            if waiter in self._queue:
                self._queue.remove(waiter)
            if not fut.done():
                fut.cancel()
            metrics.slots(self)

    def release(self, host, memory_mib=0, completed=False) -> None:
        """Give back what ``acquire`` took; ``completed``: the execution ran to a result."""
        host.running -= 1
        host.reserved_mib -= memory_mib
        host.completed += completed
        self.dispatch()
        metrics.slots(self)

    def dispatch(self) -> None:
        """Hand free slots to waiting requests, first come first served. Called when a slot is
        released and when a host becomes healthy."""
        while self._queue:
            fut, exclude, memory_mib = self._queue[0]
            if fut.done():
                self._queue.popleft()
                continue
            host = self._pick(exclude, memory_mib)
            if host is None:
                return
            self._queue.popleft()
            fut.set_result(host)

    @property
    def capacity(self) -> int:
        return sum(h.slots for h in self.hosts if h.schedulable)
