"""Upkeep: the engine's background loops -- the health pings of the worker hosts (a host that
answers again gets the queue's work and its leftovers reaped), the warm pools' upkeep (TTL,
shrinking, refilling) and the reaper's sweeps. Started and stopped by the engine."""

from __future__ import annotations

import asyncio


class Upkeep:
    def __init__(self, workers, engines, scheduler, host_pools, reaper, languages, log):
        self.workers = workers  # the worker hosts
        self.engines = engines  # and the master's own engine, if it is an image source
        self.scheduler = scheduler
        self.host_pools = host_pools
        self.reaper = reaper
        self.languages = languages  # the registry: pools with a minimum exist from the start
        self.log = log
        self._tasks: list[asyncio.Task] = []

    def start(self, pool_interval_s: float, health_interval_s: float, reap_interval_s: float):
        """Start the loops; the pools' first upkeep runs at once (in the background)."""
        self._tasks = [
            asyncio.ensure_future(self._every(pool_interval_s, self.maintain_pools, now=True)),
            asyncio.ensure_future(self._every(health_interval_s, self.check_health)),
            asyncio.ensure_future(self._every(reap_interval_s, self.reap)),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def reap(self) -> int:
        """Remove labelled containers that no live execution owns, on the schedulable hosts.
        Returns how many were removed."""
        return await self.reaper.sweep([h for h in self.workers if h.schedulable])

    async def check_health(self) -> None:
        """Ping every host; a host that answers again gets queued work and its leftovers reaped
        (after a failure, its warm containers too: they did not outlive its engine)."""
        was = {h.name: (h.schedulable, h.failed) for h in self.workers}
        await asyncio.gather(*(h.ping() for h in self.engines))
        back = [h for h in self.workers if h.schedulable and not was[h.name][0]]
        if back:
            self.scheduler.dispatch()
            await asyncio.gather(
                *(self.host_pools[h.name].discard() for h in back if was[h.name][1])
            )
            await self.reaper.sweep(back)

    async def maintain_pools(self) -> None:
        """TTL, shrinking and refilling of the warm pools."""
        await asyncio.gather(*(p.maintain(self.languages) for p in self.host_pools.values()))

    async def _every(self, seconds, job, now=False):
        while True:
            if not now:
                await asyncio.sleep(seconds)
            now = False
            try:
                await job()
            except Exception:
                self.log.exception("braindrill background job %s failed", job.__name__)
