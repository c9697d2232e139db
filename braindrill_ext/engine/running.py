"""Running: one execution under way, as a front door holds it (a REST request, a kernel cell):
it awaits the result, and may cancel the execution from elsewhere -- the client went away, the
user interrupted the cell -- which kills and removes its sandbox. Written once for every front
door."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from ..execution import Result

INTERRUPT_GRACE_S = 1.0  # after an interrupt, a program still running is killed


class Control:
    """The way from a front door to the sandbox running its execution, once there is one; made
    by ``ExecutionEngine.start``, handed to the sandbox by the engine's placement."""

    def __init__(self):
        self.sandbox = None  # the sandbox the execution runs in, while it runs


class Running:
    """Made by ``ExecutionEngine.start`` (or around any awaitable of a Result, such as a REST
    session's turn)."""

    def __init__(self, work: Awaitable[Result], control: Control | None = None):
        self.task = asyncio.ensure_future(work)
        self.control = control or Control()
        self._cancelled = False
        self._asides: set[asyncio.Task] = set()

    def interrupt(self, grace_s: float = INTERRUPT_GRACE_S) -> None:
        """Interrupt as IPython does: SIGINT to a Python program (``KeyboardInterrupt``, its
        state kept up to there); still running ``grace_s`` later, or not a Python program, or
        not running yet: ``cancel()``."""
        sandbox = self.control.sandbox
        if sandbox is None or not sandbox.language.prestart or not sandbox.running:
            self.cancel()
            return
        self._aside(sandbox.interrupt())
        asyncio.get_running_loop().call_later(grace_s, self.cancel)

    def reply(self, text: str) -> None:
        """Answer the program's input request (``on_output("input", ...)``)."""
        if self.control.sandbox is not None and not self.task.done():
            self._aside(self.control.sandbox.reply(text))

    def _aside(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._asides.add(task)
        task.add_done_callback(self._asides.discard)

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
