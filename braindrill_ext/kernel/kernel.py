"""The Braindrill kernel: a Jupyter kernel served in-process whose every cell runs in a fresh
container.

``BraindrillKernel`` serves the five ZMQ sockets of one kernel (shell, iopub, stdin, control,
heartbeat) on a ``KernelLoop`` with ``jupyter_client.session.Session``; it starts no process. Each
``execute_request`` becomes an Execution (with cell semantics) through the kernel loop's engine,
carrying the kernel's state (``state.py``: its files and Python variables) from cell to cell;
stdout and stderr stream back as ``stream`` messages while the container runs, rich outputs as
``display_data``, ``update_display_data``, ``clear_output`` and ``execute_result``, an uncaught
exception as one ``error``. The provisioner starts these kernels inside the Jupyter server (or a
script); ``python -m braindrill_ext.kernel`` serves the same kernel as a process of its own.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import zmq
from jupyter_client.session import Session

from ..engine import Running
from ..languages import Language
from .folder import NotebookFolder
from .loop import KernelLoop
from .requests import KernelRequests

CHANNELS = {
    "shell": zmq.ROUTER,
    "iopub": zmq.XPUB,  # sees subscriptions, to welcome each subscriber (JEP 65)
    "stdin": zmq.ROUTER,
    "control": zmq.ROUTER,
    "hb": zmq.REP,
}
BIND_RETRY_S = 5.0  # a restart rebinds the same ports; the old sockets close asynchronously
STOP_WAIT_S = 15.0  # longest a stop waits for a running cell's container to be removed


class BraindrillKernel(KernelRequests):
    """One kernel: its sockets, its execution count and its running cell.

    Created and driven on its ``KernelLoop`` (the provisioner hops there), whose engine runs its
    cells; ``start()`` binds the sockets given by ``connection_info``; ``interrupt()`` cancels
    the running cell (its container is killed and removed); ``stop()`` ends the kernel and
    ``wait()`` returns its exit code.
    """

    def __init__(
        self,
        language: Language,
        connection_info: dict,
        kernel_loop: KernelLoop,
        *,
        kernel_id: str | None = None,
        log: logging.Logger | None = None,
        folder: str | None = None,
    ):
        self.language = language
        self.engine = kernel_loop.engine
        self.connection_info = dict(connection_info)
        self.kernel_loop = kernel_loop
        self.kernel_id = kernel_id or uuid.uuid4().hex
        self.log = log or logging.getLogger("braindrill")
        key = connection_info.get("key", b"")
        self.session = Session(
            key=key.encode() if isinstance(key, str) else key,
            signature_scheme=connection_info.get("signature_scheme", "hmac-sha256"),
            username="kernel",
        )
        self.execution_count = 0
        self.history: list[str] = [""]  # the cells kept in history, by execution count
        # The notebook's folder (folder.py), its caps and whether its files are synced now.
        self.folder = folder
        self.folder_settings = NotebookFolder(config=self.engine.config)
        self.folder_on = self.folder is not None and self.folder_settings.enabled
        self._folder_note = ""  # the last note about it, not repeated cell after cell
        self._folder_synced: dict | None = None  # its files as the state holds them
        self.exit_code: int | None = None
        self.sockets: dict[str, zmq.asyncio.Socket] = {}
        self._tasks: list[asyncio.Task] = []
        self._cell: Running | None = None  # the running cell
        self._stopping: asyncio.Task | None = None
        self._stopped = asyncio.Event()
        self._topic = f"kernel.{self.kernel_id}.".encode()
        # This kernel's state in the engine's store: a restart is a new kernel, starting empty.
        self.state_key = f"kernel:{self.kernel_id}:{uuid.uuid4().hex[:8]}"

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the sockets and start serving them. Called on the kernel's loop."""
        try:
            for name, kind in CHANNELS.items():
                sock = self.kernel_loop.context.socket(kind)
                sock.linger = 100
                if kind == zmq.ROUTER:
                    sock.router_handover = 1
                if kind == zmq.XPUB:
                    sock.xpub_verbose = 1  # every subscriber's subscription, not just the first
                self.sockets[name] = sock
                await self._bind(sock, name)
            # After binding: a client may connect while the engine starts (first kernel only).
            await self.engine.ensure_started()
            if self.language.prestart:  # completions in a sandbox: one waits for the first
                self.engine.prewarm(self.language)
        except BaseException:
            self._close_sockets()
            raise
        self._tasks = [
            asyncio.ensure_future(self._serve(self.sockets["shell"], sequential=True)),
            asyncio.ensure_future(self._serve(self.sockets["control"], sequential=False)),
            asyncio.ensure_future(self._heartbeat()),
            asyncio.ensure_future(self._welcome()),
            asyncio.ensure_future(self._serve_stdin()),
        ]
        self._publish("status", {"execution_state": "starting"}, None)

    async def _bind(self, sock, name: str) -> None:
        info = self.connection_info
        transport, ip, port = info.get("transport", "tcp"), info["ip"], info.get(f"{name}_port", 0)
        if not port:
            self.connection_info[f"{name}_port"] = sock.bind_to_random_port(f"{transport}://{ip}")
            return
        address = f"tcp://{ip}:{port}" if transport == "tcp" else f"{transport}://{ip}-{port}"
        deadline = asyncio.get_running_loop().time() + BIND_RETRY_S
        while True:
            try:
                sock.bind(address)
                return
            except zmq.ZMQError as e:
                if e.errno != zmq.EADDRINUSE or asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)

    def interrupt(self) -> None:
        """Interrupt the running cell as IPython does: ``KeyboardInterrupt`` in a Python cell,
        which keeps its state up to there; a cell still running a second later (or of another
        language) is killed with its container, and its reply says so. Called for
        ``interrupt_request`` and by the provisioner's ``send_signal(SIGINT)``."""
        if self._cell is not None:
            self._cell.interrupt()

    async def stop(self, exit_code: int = 0) -> int:
        """End the kernel: cancel the running cell (removing its container), close the sockets.
        Safe to call more than once; called for ``shutdown_request`` and by the provisioner."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(exit_code))
        await asyncio.shield(self._stopping)
        return self.exit_code

    async def _stop(self, exit_code: int) -> None:
        cell = self._cell
        if cell is not None:
            cell.cancel()
        if cell is not None:
            await cell.settled(STOP_WAIT_S)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._close_sockets()
        self.engine.drop_state(self.state_key)
        self.exit_code = exit_code
        self._stopped.set()

    async def wait(self) -> int:
        """Wait for the kernel to end; returns its exit code."""
        await self._stopped.wait()
        return self.exit_code

    def _close_sockets(self) -> None:
        for sock in self.sockets.values():
            sock.close(linger=0)
        self.sockets = {}

    # -- messages --------------------------------------------------------------------------------
    def _send(self, sock, msg_type: str, content: dict, parent, ident=None, metadata=None) -> None:
        # Through the asyncio socket itself (not Session.send, which writes through a shadow
        # socket): it then re-checks for messages that arrived meanwhile, so no receive stalls.
        if sock is None or sock.closed:
            return
        msg = self.session.msg(msg_type, content, parent=parent, metadata=metadata)
        sock.send_multipart(self.session.serialize(msg, ident))

    def _publish(self, msg_type: str, content: dict, parent) -> None:
        sock = self.sockets.get("iopub")
        self._send(sock, msg_type, content, parent, ident=self._topic + msg_type.encode())

    def _reply(self, sock, ident, parent, content: dict, metadata=None) -> None:
        msg_type = parent["header"]["msg_type"].replace("_request", "_reply")
        self._send(sock, msg_type, content, parent, ident=ident, metadata=metadata)

    async def _recv(self, sock):
        parts = await sock.recv_multipart()
        try:
            idents, parts = self.session.feed_identities(parts)
            return idents, self.session.deserialize(parts)
        except Exception as e:  # a bad signature or a malformed message: drop it
            self.log.warning("kernel %s dropped a bad message: %s", self.kernel_id, e)
            return [], None

    async def _serve(self, sock, sequential: bool) -> None:
        """Serve shell (one request at a time, in order, as clients expect) or control."""
        while True:
            ident, msg = await self._recv(sock)
            if msg is not None:
                queued = await self._dispatch(sock, ident, msg)
                for ident, msg in queued if sequential else ():
                    abort = msg["header"]["msg_type"] == "execute_request"
                    await self._dispatch(sock, ident, msg, abort=abort)

    async def _dispatch(self, sock, ident, msg, abort: bool = False) -> list:
        """Handle one request between busy and idle statuses. Returns the requests a failed cell
        took off the queue, to be aborted."""
        msg_type = msg["header"]["msg_type"]
        handler = getattr(self, "_on_" + msg_type, None)
        if handler is None:
            self.log.debug("kernel %s: unknown message type %s", self.kernel_id, msg_type)
            return []
        self._publish("status", {"execution_state": "busy"}, msg)
        try:
            if abort:
                self._reply(sock, ident, msg, {"status": "aborted"}, metadata={"status": "aborted"})
                return []
            return await handler(sock, ident, msg) or []
        except Exception:
            self.log.exception("kernel %s failed to handle %s", self.kernel_id, msg_type)
            return []
        finally:
            self._publish("status", {"execution_state": "idle"}, msg)

    async def _take_queued(self, sock) -> list:
        """The requests waiting on ``sock``. Called when a cell failed, before its reply: they
        were sent before the client knew, so their execute requests are aborted, as ipykernel
        does (``stop_on_error``); other requests are served as usual."""
        queued = []
        while not sock.closed and await sock.poll(0):
            ident, msg = await self._recv(sock)
            if msg is not None:
                queued.append((ident, msg))
        return queued

    async def _welcome(self) -> None:
        """Send ``iopub_welcome`` to each new IOPub subscriber: a client then knows its
        subscription is in place (no output of its first request is lost to a late join)."""
        sock = self.sockets["iopub"]
        while True:
            frame = await sock.recv()
            if frame[:1] == b"\x01":
                topic = frame[1:].decode("utf-8", "replace")
                self._publish("iopub_welcome", {"subscription": topic}, None)

    async def _heartbeat(self) -> None:
        sock = self.sockets["hb"]
        while True:
            sock.send_multipart(await sock.recv_multipart())
