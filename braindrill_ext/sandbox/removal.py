"""Removal: how a sandbox is killed and removed (the clean-up of ``Sandbox``'s prime → execute →
cleanup), on every path: a finished execution, a deadline, an output flood, a client gone."""

from __future__ import annotations

import asyncio

from docker.errors import DockerException, NotFound

from ..errors import TRANSPORT_ERRORS, HostUnavailable
from . import attach

STOP_WAIT_S = 5  # after its exit report, a container is given this long to stop before removal


class Removal:
    """The clean-up half of ``Sandbox`` (a mixin: it uses the sandbox's host, container id,
    attach socket and the state of its preparation)."""

    async def _kill(self):
        try:
            await self.host.call_watched(self._kill_sync)
        except (HostUnavailable, *TRANSPORT_ERRORS) as e:
            self.log.warning("could not kill %s on %s: %s", self.container_id, self.host.name, e)

    def _request_kill(self):
        """Kill from another thread (the reader must go on draining the stream meanwhile)."""
        self.host.executor.submit(self._kill_sync)

    def _kill_sync(self):
        try:
            self.host.client.api.kill(self.container_id)
        except DockerException:
            pass  # already gone or stopped

    async def destroy(self) -> bool:
        """Remove the container, whatever state it is in. Safe to call more than once. Returns
        False when it could not be removed (the host does not answer): the caller then leaves it
        to the reaper, which removes it when the host is back.

        Shielded from cancellation: a client that goes away still gets its container removed.
        """
        self._given_up = True
        if self._sock is not None:
            sock, self._sock = self._sock, None
            attach.close(sock)
        if not self.host.schedulable:  # don't wait on a dead engine
            # A create still unanswered may yet make a container: the reaper's, if so.
            return self.container_id is None and not self._creating
        if self._preparing is not None and not self._preparing.done():
            await asyncio.shield(asyncio.wait({self._preparing}))
        if self._sock is not None:  # attached while we waited
            sock, self._sock = self._sock, None
            attach.close(sock)
        if self.container_id is None:
            return True
        cid, self.container_id = self.container_id, None
        try:
            await asyncio.shield(self.host.call(self._remove_sync, cid))
        except asyncio.CancelledError:
            raise
        except TRANSPORT_ERRORS as e:
            self.log.warning("could not remove %s on %s: %s", cid[:12], self.host.name, e)
            return False
        return True

    def _remove_sync(self, cid):
        api = self.host.client.api
        if self._stopping:
            # Let it finish stopping (milliseconds; the result is already out): killing a container
            # that is stopping anyway costs the engine more CPU than waiting for it.
            try:
                api.wait(cid, timeout=STOP_WAIT_S)
            except TRANSPORT_ERRORS:
                pass  # still running, or the host is slow: remove by force
        try:
            api.remove_container(cid, force=True)
        except NotFound:
            pass
