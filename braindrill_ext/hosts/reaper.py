"""The reaper: removes labelled containers that no live execution owns.

Every sandbox carries the labels of ``protocol.py``: its owner (the engine that made it), its
execution and its expiry. A container is garbage when it is past its expiry, when its execution
was abandoned because its host stopped answering, or when its owner is a process of this master
that is gone (a crashed or killed server).
"""

from __future__ import annotations

import asyncio
import os
import time

from ..errors import TRANSPORT_ERRORS
from ..sandbox import protocol

ABANDONED_TTL_S = 3600.0  # forget an abandoned execution after this long


class Reaper:
    """Removes leftovers; the one keeper of the containers that could not be removed."""

    def __init__(self, owner: str, master_id: str, log):
        self.owner = owner
        self.master_id = master_id
        self.log = log
        # Per host name: executions whose container could not be removed → when.
        self.abandoned: dict[str, dict[str, float]] = {}

    def abandon(self, host, execution_id: str) -> None:
        """The container of ``execution_id`` could not be removed from ``host`` (it did not
        answer): remove it when the host is back. Called by the engine and the warm pools."""
        now = time.time()
        kept = self.abandoned.get(host.name, {})
        kept = {k: t for k, t in kept.items() if now - t < ABANDONED_TTL_S}
        kept[execution_id] = now
        self.abandoned[host.name] = kept

    async def sweep(self, hosts) -> int:
        """Remove garbage containers on ``hosts``; returns how many. Called by the engine at
        start, every ``reap_interval_s``, and when a host comes back."""
        results = await asyncio.gather(*(self._sweep(h) for h in hosts), return_exceptions=True)
        return sum(r for r in results if isinstance(r, int))

    async def _sweep(self, host) -> int:
        containers = await host.call(
            host.client.api.containers, all=True, filters={"label": protocol.OWNER}
        )
        now, removed = time.time(), 0
        abandoned_here = self.abandoned.get(host.name, {})
        for c in containers:
            labels = c.get("Labels") or {}
            owner = labels.get(protocol.OWNER, "")
            execution = labels.get(protocol.EXECUTION, "")
            abandoned = owner == self.owner and execution in abandoned_here
            expired = now >= protocol.expiry(labels)
            if owner == self.owner and not expired and not abandoned:
                continue
            if abandoned or expired or self.owner_is_dead(owner):
                try:
                    await host.call(host.client.api.remove_container, c["Id"], force=True)
                    removed += 1
                    abandoned_here.pop(execution, None)
                except TRANSPORT_ERRORS as e:
                    self.log.debug("reaper: %s on %s: %s", c["Id"][:12], host.name, e)
        if removed:
            self.log.info("reaper removed %d leftover containers on %s", removed, host.name)
        return removed

    def remove_owned(self, host) -> int:
        """Remove every container of this owner on ``host`` with blocking calls, in the calling
        thread; returns how many. For interpreter exit, when thread pools no longer run."""
        api, removed = host.client.api, 0
        try:
            owned = api.containers(all=True, filters={"label": f"{protocol.OWNER}={self.owner}"})
        except TRANSPORT_ERRORS as e:
            self.log.warning("could not list containers on %s: %s", host.name, e)
            return 0
        for c in owned:
            try:
                api.remove_container(c["Id"], force=True)
                removed += 1
            except TRANSPORT_ERRORS as e:
                self.log.warning("could not remove %s on %s: %s", c["Id"][:12], host.name, e)
        return removed

    def owner_is_dead(self, owner: str) -> bool:
        """Is ``owner`` another engine of this master whose process is gone (or an earlier
        engine of this very process)? Engines of other masters are never judged."""
        master, pid = protocol.parse_owner(owner)
        if master != self.master_id or pid is None or owner == self.owner:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return pid == os.getpid()
