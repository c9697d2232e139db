"""Running: one execution under way, as a front door holds it (a REST request, a kernel cell):
it awaits the result, and may cancel the execution from elsewhere -- the client went away, the
user interrupted the cell -- which kills and removes its sandbox. Written once for every front
door."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from ..execution import Result


class Running:
    """Made by ``ExecutionEngine.start`` (or around any awaitable of a Result, such as a REST
    session's turn)."""

    def __init__(self, work: Awaitable[Result]):
        self.task = asyncio.ensure_future(work)
        self._cancelled = False

    def cancel(self) -> None:
        """Stop the execution: its sandbox is killed and removed. Safe to call more than once (a
        second cancel would cut short the removal)."""
        if not self.task.done() and not self._cancelled:
            self._cancelled = True
            self.task.cancel()

    async def result(self) -> Result | None:
        """The execution's result; None when ``cancel()`` stopped it. Raises what the engine
        refused it with (``NoCapacity``, ``HostUnavailable``, ``TooManyRequests``...), and
        ``CancelledError`` when the awaiting task itself is cancelled."""
        try:
            return await self.task
        except asyncio.CancelledError:
            if self._cancelled and self.task.cancelled():
                return None
            raise

    async def settled(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for it to end, whatever the outcome."""
        await asyncio.wait({self.task}, timeout=timeout_s)
