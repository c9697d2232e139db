"""What a Braindrill kernel answers: the shell and control requests (``_on_<msg_type>``) of the
Jupyter messaging protocol. A mixin of ``BraindrillKernel`` (``kernel.py``), which owns the
sockets, the lifecycle and the dispatch; each cell runs through the engine's public API."""

from __future__ import annotations

import asyncio

from jupyter_client._version import protocol_version

from .. import __version__
from ..engine import split_limits
from ..errors import BraindrillError, HostUnavailable, NoCapacity, TooManyRequests
from ..execution import Status
from .cells import (
    RESET_MAGIC,
    STATELESS_MAGIC,
    banner,
    error_content,
    interrupted_content,
    is_complete,
    refused_content,
    split_state_magic,
)

FLUSH_S = 0.05  # output is sent at most this long after the container wrote it


class StreamCoalescer:
    """Joins a cell's output chunks into fewer ``stream`` messages: a chunk is sent within
    ``FLUSH_S``, or at once when the other stream writes (so the order is kept)."""

    def __init__(self, publish):
        self._publish = publish
        self._name: str | None = None
        self._parts: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def write(self, name: str, text: str) -> None:
        """Called on the loop with each chunk of a stream's text."""
        if name != self._name:
            self.flush()
            self._name = name
        self._parts.append(text)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._parts:
            text, self._parts = "".join(self._parts), []
            self._publish(self._name, text)


class KernelRequests:
    """The request handlers; ``BraindrillKernel`` provides ``engine``, ``language``,
    ``state_key``, ``execution_count``, ``_cell``, ``_publish``, ``_reply``, ``_take_queued`` and
    ``_stop``."""

    # -- requests --------------------------------------------------------------------------------
    async def _on_kernel_info_request(self, sock, ident, msg) -> None:
        version = await self.engine.version(self.language)  # known already, or left out
        info = {"name": self.language.name, **self.language.language_info, "version": version or ""}
        limits = self.engine.default_limits(self.language)
        content = {
            "status": "ok",
            "protocol_version": protocol_version,
            "implementation": "braindrill",
            "implementation_version": __version__,
            "language_info": info,
            "banner": banner(
                self.language, info.get("version"), limits, self.engine.keeps_kernel_state
            ),
            "help_links": [],
            "debugger": False,
        }
        self._reply(sock, ident, msg, content)

    async def _on_execute_request(self, sock, ident, msg) -> list:
        content = msg["content"]
        code = content.get("code", "")
        silent = content.get("silent", False)
        if content.get("store_history", True) and not silent:  # silent forces no history
            self.execution_count += 1
        count = self.execution_count
        if not silent:
            self._publish("execute_input", {"code": code, "execution_count": count}, msg)
        user = msg["header"].get("username") or "kernel"
        reply = await self._run_cell(code, msg, silent, count, user)
        if reply["status"] == "error" and not silent:
            error = {k: reply[k] for k in ("ename", "evalue", "traceback")}
            self._publish("error", error, msg)
        reply = {**reply, "execution_count": count}
        if reply["status"] == "ok":
            reply.update(payload=[], user_expressions={})
        queued = []
        if reply["status"] == "error" and content.get("stop_on_error", True):
            queued = await self._take_queued(sock)
        self._reply(sock, ident, msg, reply, metadata={"status": reply["status"]})
        return queued

    async def _run_cell(self, code: str, msg, silent: bool, count: int, user: str) -> dict:
        """Run one cell in a fresh container; returns the reply's status fields."""
        magic, code = split_state_magic(code)
        stateful = self.engine.keeps_kernel_state and magic != STATELESS_MAGIC
        if magic == RESET_MAGIC:
            self.engine.drop_state(self.state_key)
        try:
            limits, code = split_limits(code)
            if not code.strip():
                return {"status": "ok"}
            execution = self.engine.execution(
                self.language.name,
                code,
                limits=limits,
                interactive=True,
                execution_count=count,
                user=user,
            )
        except BraindrillError as e:
            return refused_content(e)

        def publish(name: str, text: str) -> None:
            if not silent:
                self._publish("stream", {"name": name, "text": text}, msg)

        streams = StreamCoalescer(publish)

        def on_output(kind: str, value) -> None:
            if kind != "output":
                streams.write(kind, value)
            elif not silent:
                streams.flush()  # what the program printed before it, first
                self._publish_output(value, count, msg)

        key = self.state_key if stateful else None
        self._cell = self.engine.start(execution, on_output, state=key)
        try:
            result = await self._cell.result()
        except (NoCapacity, HostUnavailable, TooManyRequests) as e:
            return refused_content(e)
        finally:
            self._cell = None
            streams.flush()
        if result is None:
            return interrupted_content(stateful)
        if result.compile_output and result.status is Status.OK and not silent:
            self._publish("stream", {"name": "stderr", "text": result.compile_output}, msg)
        in_error = result.status is not Status.OK and result.error is None  # error_content's
        if result.state_message and not in_error and not silent:
            note = f"braindrill: {result.state_message}\n"
            self._publish("stream", {"name": "stderr", "text": note}, msg)
        if result.status is Status.OK:
            return {"status": "ok"}
        return error_content(result, execution.limits)

    def _publish_output(self, output: dict, count: int, parent) -> None:
        """One rich output of the running cell, as its IOPub message."""
        kind = output["output_type"]
        content = {k: v for k, v in output.items() if k != "output_type"}
        if kind == "execute_result":
            content["execution_count"] = count
        elif kind != "clear_output":
            content.setdefault("transient", {})
        self._publish(kind, content, parent)

    async def _on_shutdown_request(self, sock, ident, msg) -> None:
        content = {"status": "ok", "restart": bool(msg["content"].get("restart", False))}
        self._reply(sock, ident, msg, content)
        self._publish("shutdown_reply", content, msg)
        # Runs once this handler has returned and published its idle status.
        self._stopping = self._stopping or asyncio.ensure_future(self._stop(0))

    async def _on_interrupt_request(self, sock, ident, msg) -> None:
        self.interrupt()
        self._reply(sock, ident, msg, {"status": "ok"})

    async def _on_is_complete_request(self, sock, ident, msg) -> None:
        self._reply(sock, ident, msg, is_complete(self.language, msg["content"].get("code", "")))

    async def _on_complete_request(self, sock, ident, msg) -> None:
        pos = msg["content"].get("cursor_pos", len(msg["content"].get("code", "")))
        content = {"matches": [], "cursor_start": pos, "cursor_end": pos, "metadata": {}}
        self._reply(sock, ident, msg, {"status": "ok", **content})

    async def _on_inspect_request(self, sock, ident, msg) -> None:
        self._reply(sock, ident, msg, {"status": "ok", "found": False, "data": {}, "metadata": {}})

    async def _on_history_request(self, sock, ident, msg) -> None:
        self._reply(sock, ident, msg, {"status": "ok", "history": []})

    async def _on_comm_info_request(self, sock, ident, msg) -> None:
        self._reply(sock, ident, msg, {"status": "ok", "comms": {}})

    async def _on_comm_open(self, sock, ident, msg) -> None:
        # No comm targets (no state lives in the kernel): close it, as ipykernel does for
        # unknown targets, so that a front end does not wait on it.
        comm_id = msg["content"].get("comm_id", "")
        self._publish("comm_close", {"comm_id": comm_id, "data": {}}, msg)
