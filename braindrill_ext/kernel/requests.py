"""What a Braindrill kernel answers: the shell and control requests (``_on_<msg_type>``) of the
Jupyter messaging protocol. A mixin of ``BraindrillKernel`` (``kernel.py``), which owns the
sockets, the lifecycle and the dispatch; each cell runs through the engine's public API."""

from __future__ import annotations

import asyncio
import json

from jupyter_client._version import protocol_version

from .. import __version__
from ..engine import REPLY_MIME, split_limits
from ..errors import BraindrillError, HostUnavailable, NoCapacity, TooManyRequests
from ..execution import Status
from . import folder, introspect
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
from .pip import run_pip, split_pip

FLUSH_S = 0.05  # output is sent at most this long after the container wrote it
TOOL_TIMEOUT_S = 2.0  # a completion or help request past this gets an empty answer


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
        if content.get("store_history", True) and not silent:
            self.history += [""] * (count - len(self.history))
            self.history[count:] = [code]  # by count: In[count]
        allow_stdin = bool(content.get("allow_stdin", False)) and not silent
        reply = await self._run_cell(code, msg, silent, count, user, ident, allow_stdin)
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

    async def _run_cell(
        self, code: str, msg, silent: bool, count: int, user: str, ident=None, allow_stdin=False
    ) -> dict:
        """Run one cell in a fresh container; returns the reply's status fields."""
        folder_on, code = folder.split_magic(code)
        if folder_on is not None:
            self.folder_on = folder_on and self.folder is not None
        magic, code = split_state_magic(code)
        stateful = self.engine.keeps_kernel_state and magic != STATELESS_MAGIC
        if magic == RESET_MAGIC:
            self.engine.drop_state(self.state_key)
            self._folder_synced = None
        try:
            limits, code = split_limits(code)
            pips, code = split_pip(code) if self.language.prestart else ([], code)
            if not code.strip() and not pips:
                return {"status": "ok"}
            python = bool(self.language.prestart)
            execution = self.engine.execution(
                self.language.name,
                code,
                limits=limits,
                interactive=True,
                execution_count=count,
                user=user,
                history=introspect.recent(self.history, count) if python else [],
                input=allow_stdin if python else None,
            )
        except BraindrillError as e:
            return refused_content(e)

        def publish(name: str, text: str) -> None:
            if not silent:
                self._publish("stream", {"name": name, "text": text}, msg)

        streams = StreamCoalescer(publish)
        if pips:  # before the rest of the cell, which imports what they install

            def say(text):
                publish("stdout", text)

            failed = await run_pip(self.engine, self.state_key, self.language, pips, say)
            if failed is not None or not code.strip():
                return {"status": "ok"} if failed is None else refused_content(failed)

        def on_output(kind: str, value) -> None:
            if kind == "input":
                streams.flush()
                self._ask(value, ident, msg)
            elif kind == "comm":
                if not silent:
                    streams.flush()
                    self._publish(value["msg_type"], value["content"], msg)
            elif kind != "output":
                streams.write(kind, value)
            elif not silent:
                streams.flush()  # what the program printed before it, first
                self._publish_output(value, count, msg)

        key = self.state_key if stateful else None
        before = await self._folder_in(msg, silent) if stateful and self.folder_on else None
        self._cell = self.engine.start(execution, on_output, state=key, packages=self.state_key)
        try:
            result = await self._cell.result()
        except (NoCapacity, HostUnavailable, TooManyRequests) as e:
            return refused_content(e)
        finally:
            self._cell = None
            streams.flush()
        if before is not None:
            await self._folder_out(before, msg, silent)
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

    # -- the notebook's folder (folder.py) --------------------------------------------------------
    async def _folder_in(self, msg, silent: bool) -> dict | None:
        """Make the folder's files the state's; what the cell got (None: not synced now)."""
        settings = self.folder_settings
        caps = (settings.max_mib << 20, settings.max_files, (self.language.source_file,))
        files, left = await asyncio.to_thread(folder.read, self.folder, *caps)
        note = ""
        if left:
            note = (
                f"left out of /work (over the notebook folder's caps of {settings.max_mib} MiB "
                f"and {settings.max_files} files, or not regular files): {', '.join(left[:20])}"
            )
        try:
            if files != self._folder_synced:  # else the state holds them already
                await self.engine.replace_state_files(self.state_key, files, self.language)
        except BraindrillError as e:
            files, note = None, f"the notebook's folder is not this cell's /work: {e}"
        self._note_folder(note, msg, silent)
        return files

    async def _folder_out(self, before: dict, msg, silent: bool) -> None:
        """Write into the folder what the cell changed there."""
        try:
            after = await self.engine.state_file_contents(self.state_key)
        except BraindrillError:
            return
        room = self.engine.default_limits(self.language).state_bytes
        room -= self.engine.state_bytes(self.state_key) + 2048

        def may_delete(path):  # a file the state had no room for is not a deleted one
            return len(before[path][0]) + 512 < room and path != self.language.source_file

        args = (self.folder, before, after, may_delete)
        refused = await asyncio.to_thread(folder.write_back, *args)
        self._folder_synced = None if refused else after  # the folder as the state has it
        if refused:
            note = (
                "not changed in the notebook's folder (notebooks, hidden files, symlinks and "
                f"special files are kept as they are): {', '.join(refused[:20])}"
            )
            self._note_folder(note, msg, silent, again=True)

    def _note_folder(self, note: str, msg, silent: bool, again: bool = False) -> None:
        if note and (again or note != self._folder_note) and not silent:
            self._publish("stream", {"name": "stderr", "text": f"braindrill: {note}\n"}, msg)
        if not again:
            self._folder_note = note

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
        code = msg["content"].get("code", "")
        pos = msg["content"].get("cursor_pos", len(code))
        content = await self._ask_sandbox("complete", {"code": code, "cursor_pos": pos}, msg)
        if content is None:  # not Python, or its sandbox gave no answer in time: the words
            name = self.language.language_info.get("name", self.language.name)
            content = introspect.complete_words(name, self.history, code, pos)
        self._reply(sock, ident, msg, {**content, "status": "ok"})

    async def _on_inspect_request(self, sock, ident, msg) -> None:
        c = msg["content"]
        code = c.get("code", "")
        request = {"code": code, "cursor_pos": c.get("cursor_pos", len(code))}
        request["detail_level"] = 1 if c.get("detail_level") == 1 else 0
        content = await self._ask_sandbox("inspect", request, msg)
        content = content or {"found": False, "data": {}, "metadata": {}}
        self._reply(sock, ident, msg, {**content, "status": "ok"})

    async def _ask_sandbox(self, tool: str, request: dict, msg) -> dict | None:
        """A Python kernel's completion or help: IPython's, in a sandbox holding the kernel's
        state (never changed), within ``TOOL_TIMEOUT_S``; an empty answer when the sandbox
        failed to give one. None for the other languages, and past the deadline or when no
        sandbox could run."""
        if not self.language.prestart:
            return None
        empty = introspect.empty_tool_reply(tool, request["cursor_pos"])
        try:
            execution = self.engine.execution(
                self.language.name,
                json.dumps(request),
                limits={"timeout_s": TOOL_TIMEOUT_S},
                interactive=True,
                user=msg["header"].get("username") or "kernel",
                tool=tool,
            )
            stateful = self.engine.keeps_kernel_state
            key = self.state_key if stateful else None
            running = self.engine.start(execution, state=key, packages=self.state_key)
            result = await asyncio.wait_for(running.result(), TOOL_TIMEOUT_S + 3)
        except (BraindrillError, asyncio.TimeoutError) as e:
            self.log.info("kernel %s: no %s answer: %s", self.kernel_id, tool, e)
            return None
        if result.status is not Status.OK:  # past its deadline, its memory...
            self.log.info("kernel %s: no %s answer: %s", self.kernel_id, tool, result.status)
            return None
        return introspect.tool_reply(result, REPLY_MIME, empty)

    def _ask(self, request: dict, ident, parent) -> None:
        """The running cell asks for a line (``input()``): an ``input_request`` on the stdin
        channel; the front end's ``input_reply`` goes to the cell (``_serve_stdin``)."""
        content = {"prompt": request["prompt"], "password": request["password"]}
        self._send(self.sockets.get("stdin"), "input_request", content, parent, ident=ident)

    async def _serve_stdin(self) -> None:
        """Hand each ``input_reply`` to the running cell (none running: dropped)."""
        sock = self.sockets["stdin"]
        while True:
            _, msg = await self._recv(sock)
            if msg is not None and msg["header"]["msg_type"] == "input_reply":
                if self._cell is not None:
                    self._cell.reply(str(msg["content"].get("value", "")))

    async def _on_history_request(self, sock, ident, msg) -> None:
        history = introspect.history_entries(self.history, msg["content"])
        self._reply(sock, ident, msg, {"status": "ok", "history": history})

    async def _on_comm_info_request(self, sock, ident, msg) -> None:
        self._reply(sock, ident, msg, {"status": "ok", "comms": {}})

    async def _on_comm_open(self, sock, ident, msg) -> None:
        # No comm targets (no state lives in the kernel): close it, as ipykernel does for
        # unknown targets, so that a front end does not wait on it.
        comm_id = msg["content"].get("comm_id", "")
        self._publish("comm_close", {"comm_id": comm_id, "data": {}}, msg)

    async def _on_comm_msg(self, sock, ident, msg) -> None:
        """A front end's message to a comm a cell opened: that cell's sandbox has ended, so
        nothing can receive it; say so, and close the comm."""
        comm_id = msg["content"].get("comm_id", "")
        note = (
            f"braindrill: comm {comm_id} cannot receive messages: the cell that opened it has "
            "ended, and its sandbox with it (widgets and comms need a live kernel process)\n"
        )
        self._publish("stream", {"name": "stderr", "text": note}, msg)
        self._publish("comm_close", {"comm_id": comm_id, "data": {}}, msg)
