"""The engine of a process that has no Jupyter server: a plain script using jupyter_client,
nbclient or papermill, or the standalone kernel of the kernelspecs' ``argv``.

Such a process owns one ``EmbeddedEngine``, made on its first Braindrill kernel: the engine reads
the same configuration files a Jupyter server reads (``jupyter_server_config.py`` / ``.json`` in
the config directories of ``jupyter --paths``, and the current directory), so an operator's
limits, hosts and pools apply to scripts too. Its kernels live on a daemon thread with its own
loop (jupyter_client's synchronous KernelManager runs each call on a private loop that stops
between calls, which could not serve a socket). At interpreter exit every container of the engine
is removed.
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import threading

from jupyter_core.application import JupyterApp
from traitlets.config import Config

from ..engine import ExecutionEngine
from .loop import KernelLoop

STOP_TIMEOUT_S = 30.0


class _ConfigReader(JupyterApp):
    """Reads Jupyter Server's configuration files, the way Jupyter applications do."""

    name = "braindrill-embedded"
    config_file_name = "jupyter_server_config"


def read_jupyter_config() -> Config:
    """The configuration in Jupyter Server's config files (an empty one if there is none)."""
    reader = _ConfigReader()
    reader.load_config_file()
    return reader.config


class EmbeddedEngine:
    """A process's own engine and the thread its kernels live on."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, name="braindrill-kernels", daemon=True)
        self.thread.start()
        ready.wait()
        self.engine = ExecutionEngine(config=read_jupyter_config())
        self.kernels = KernelLoop(self.engine, self.loop)

    def stop(self) -> None:
        """Stop the engine (its warm containers are removed) and the thread."""
        future = asyncio.run_coroutine_threadsafe(self.engine.stop(), self.loop)
        future.result(STOP_TIMEOUT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(STOP_TIMEOUT_S)
        self.kernels.close()

    def remove_containers(self) -> None:
        """At interpreter exit: remove every container of the engine — the running cells of
        kernels the script did not shut down, and the warm ones — with blocking calls (the
        thread pools the engine normally calls through have already stopped)."""
        try:
            self.engine.remove_own_containers()
        except Exception as e:  # exiting anyway
            print(f"braindrill: could not remove containers at exit: {e}", file=sys.stderr)


_lock = threading.Lock()
_current: list[EmbeddedEngine] = []  # the process's, once made


def kernel_loop() -> KernelLoop:
    """The process's embedded engine's kernel loop, made on first use. Called by the
    provisioner outside a Jupyter server."""
    with _lock:
        if not _current:
            _current.append(EmbeddedEngine())
            atexit.register(_at_exit, _current[0])
        return _current[0].kernels


def shutdown() -> None:
    """Stop the process's embedded engine, if any; the next kernel makes a new one (reading the
    configuration again)."""
    with _lock:
        embedded = _current.pop() if _current else None
    if embedded is not None:
        atexit.unregister(_at_exit)
        embedded.stop()


def _at_exit(embedded: EmbeddedEngine) -> None:
    embedded.remove_containers()
