"""Deadline: an execution's ``timeout_s`` on the engine's side, paused while a cell waits for its
user's answer to ``input()`` (the time a person takes to type is not the program's)."""

from __future__ import annotations

import asyncio
import time


class Deadline:
    """Made when the program starts; ``pause()`` when it asks for input, ``resume()`` when the
    answer is sent. Used on the loop only."""

    def __init__(self, timeout_s: float):
        self.ends = time.monotonic() + timeout_s
        self._paused_at: float | None = None
        self._changed = asyncio.get_running_loop().create_future()

    def left(self) -> float | None:
        """Seconds left; None while paused (no deadline runs)."""
        if self._paused_at is not None:
            return None
        return max(0.0, self.ends - time.monotonic())

    def pause(self) -> None:
        if self._paused_at is None:
            self._paused_at = time.monotonic()
            self._wake()

    def resume(self) -> None:
        if self._paused_at is not None:
            self.ends += time.monotonic() - self._paused_at
            self._paused_at = None
            self._wake()

    def changed(self) -> asyncio.Future:
        """Done when the deadline was paused or resumed since this was called."""
        if self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def _wake(self) -> None:
        if not self._changed.done():
            self._changed.set_result(None)

    async def wait(self, aws: set) -> set:
        """Wait for the first of ``aws`` within the deadline; the done ones (empty: it passed)."""
        while True:
            changed = self.changed()
            done, _ = await asyncio.wait(
                {*aws, changed}, timeout=self.left(), return_when=asyncio.FIRST_COMPLETED
            )
            done.discard(changed)
            if done:
                if not changed.done():
                    changed.cancel()
                return done
            if not changed.done():  # the time ran out
                changed.cancel()
                return set()
