"""Where in-process kernels live: the event loop that serves their ZMQ sockets, and what they share.

A kernel's sockets must be served by a loop that keeps running between a client's calls, and its
cells go through the process's remote kernel manager, which belongs to the loop it was started on.
So each kernel lives on **its manager's loop** (``KernelLoop.for_manager``):

- in a Jupyter server, the server's loop: the extension app started the manager there, and
  ``/api/kernels``, JupyterLab and ``POST /lang`` then share one queue and one set of hosts;
- in a plain script (``KernelManager(...).start_kernel()``, nbclient, papermill), one daemon thread
  with its own loop per process: jupyter_client's synchronous KernelManager runs each call on a
  private loop that stops between calls, which could not serve a socket. The embedded manager is
  created and started on that thread too, so every kernel of the script shares it.
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import threading

import zmq.asyncio

MAX_SOCKETS = 1 << 15  # five per kernel; ZMQ's default of 1023 would stop at ~200 kernels
VERSION_WAIT_S = 15.0  # longest a kernel_info_reply waits for the language's version probe


class KernelLoop:
    """One event loop that serves in-process kernels, with what they share on it: one ZMQ context,
    the live kernels, and each language's ``language_info`` (the version probe runs once)."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.context = zmq.asyncio.Context()
        self.context.max_sockets = MAX_SOCKETS
        self.kernels: set = set()
        self.embedded: set = set()  # the managers started here for a plain script (not a server)
        self._versions: dict[str, asyncio.Task] = {}

    # -- which loop ------------------------------------------------------------------------------
    @classmethod
    def for_manager(cls, mgr, in_server: bool) -> KernelLoop:
        """The loop the kernels of ``mgr`` live on. Called by the provisioner before a launch.

        ``in_server``: the caller is a Jupyter server's kernel manager, whose loop runs for the
        server's lifetime; a manager not started yet is then started on that loop."""
        for stale in [loop for loop in _loops if loop.is_closed()]:
            del _loops[stale]
        loop = mgr.loop
        if loop is None:
            loop = asyncio.get_running_loop() if in_server else _background_loop()
        if loop.is_closed():
            raise RuntimeError("the Braindrill manager's event loop is closed")
        if loop not in _loops:
            _loops[loop] = cls(loop)
        if loop in _background:
            _loops[loop].embedded.add(mgr)
        return _loops[loop]

    async def call(self, coro):
        """Await ``coro`` on this loop, from any loop (kernels are driven from the caller's)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    # -- shared by kernels -----------------------------------------------------------------------
    async def language_info(self, mgr, language) -> dict:
        """The kernelspec's ``language_info`` with the version the runtime image reports (probed
        once per language; left out if the probe does not answer within ``VERSION_WAIT_S``)."""
        task = self._versions.get(language.name)
        if task is None or (task.done() and task.result() is None):
            task = self._versions[language.name] = asyncio.ensure_future(_version(mgr, language))
        info = {"name": language.name, **language.language_info}
        try:
            version = await asyncio.wait_for(asyncio.shield(task), VERSION_WAIT_S)
        except asyncio.TimeoutError:
            version = None
        info["version"] = version or ""
        return info


async def _version(mgr, language) -> str | None:
    try:
        return (await mgr.describe(language)).get("version")
    except Exception:  # a missing image or a saturated engine: no version, not a failed kernel
        return None


_loops: dict[asyncio.AbstractEventLoop, KernelLoop] = {}
_background: list[asyncio.AbstractEventLoop] = []
_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    """The process's kernel thread and its loop, started on first use."""
    with _lock:
        if not _background:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve():
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=serve, name="braindrill-kernels", daemon=True).start()
            ready.wait()
            _background.append(loop)
            atexit.register(_stop_background)
        return _background[0]


def _stop_background() -> None:
    """At interpreter exit, remove every container of the script's embedded managers: the running
    cells of kernels it did not shut down, and the warm ones. With blocking calls from here: the
    thread pools the engine calls normally go through have already stopped."""
    kernel_loop = _loops.get(_background[0])
    for mgr in kernel_loop.embedded if kernel_loop else ():
        try:
            mgr.remove_own_containers()
        except Exception as e:  # exiting anyway
            print(f"braindrill: could not remove containers at exit: {e}", file=sys.stderr)
