"""The reaper: removes labelled containers that no live execution owns.

Every sandbox carries ``braindrill.owner`` (``<master id>:<pid>:<nonce>`` of the manager that made
it), ``braindrill.execution`` and ``braindrill.expires`` (when even its in-container deadline is
long past). A container is garbage when it is past its expiry, when its execution was abandoned
because its host stopped answering, or when its owner is a process of this master that is gone (a
crashed or killed server).
"""

from __future__ import annotations

import asyncio
import os
import time

from .sandbox import LABEL, TRANSPORT_ERRORS


class Reaper:
    def __init__(self, owner: str, master_id: str, log):
        self.owner = owner
        self.master_id = master_id
        self.log = log

    async def sweep(self, hosts) -> int:
        """Remove garbage containers on ``hosts``; returns how many. Called by the remote kernel
        manager at start, every ``reap_interval_s``, and when a host comes back."""
        results = await asyncio.gather(*(self._sweep(h) for h in hosts), return_exceptions=True)
        return sum(r for r in results if isinstance(r, int))

    async def _sweep(self, host) -> int:
        containers = await host.call(
            host.client.api.containers, all=True, filters={"label": f"{LABEL}.owner"}
        )
        now, removed = time.time(), 0
        for c in containers:
            labels = c.get("Labels") or {}
            owner = labels.get(f"{LABEL}.owner", "")
            execution = labels.get(f"{LABEL}.execution", "")
            abandoned = owner == self.owner and execution in host.abandoned
            if owner == self.owner and now < _expiry(labels) and not abandoned:
                continue
            if abandoned or now >= _expiry(labels) or self._owner_is_dead(owner):
                try:
                    await host.call(host.client.api.remove_container, c["Id"], force=True)
                    removed += 1
                    host.abandoned.pop(execution, None)
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
            owned = api.containers(all=True, filters={"label": f"{LABEL}.owner={self.owner}"})
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

    def _owner_is_dead(self, owner: str) -> bool:
        master, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        if master != self.master_id or not pid.isdigit() or owner == self.owner:
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return int(pid) == os.getpid()  # an earlier manager of this very process


def _expiry(labels: dict) -> float:
    try:
        return float(labels.get(f"{LABEL}.expires", "inf"))
    except ValueError:
        return 0.0
