"""Where in-process kernels live: the event loop that serves their ZMQ sockets, and the engine
their cells go through.

A kernel's sockets must be served by a loop that keeps running between a client's calls, and its
cells go through an engine that belongs to the loop it was started on. So each kernel lives on
**its engine's loop**: in a Jupyter server, the server's loop (the extension app owns the engine
and its ``KernelLoop``); in a plain script, the embedded engine's thread (``embedded.py``).
"""

from __future__ import annotations

import asyncio

import zmq.asyncio

MAX_SOCKETS = 1 << 15  # five per kernel; ZMQ's default of 1023 would stop at ~200 kernels


class KernelLoop:
    """One event loop that serves in-process kernels, with what they share on it: one ZMQ context
    and the engine. Created by the engine's owner; the loop is bound when known (a server's, on
    the first kernel start)."""

    def __init__(self, engine, loop: asyncio.AbstractEventLoop | None = None):
        self.engine = engine
        self.loop = loop
        self.context = zmq.asyncio.Context()
        self.context.max_sockets = MAX_SOCKETS

    def bind_running_loop(self) -> KernelLoop:
        """Bind to the running loop if not bound yet. Called by the provisioner in a server, on
        the server's loop."""
        if self.loop is None or self.loop.is_closed():
            self.loop = asyncio.get_running_loop()
        return self

    async def call(self, coro):
        """Await ``coro`` on this loop, from any loop (kernels are driven from the caller's)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        self.context.term()
