"""Sandbox: one fresh, locked-down container on one worker host, used for one execution.

Lifecycle (after Piston's prime → execute → cleanup): ``prepare()`` creates, attaches to and starts
the container, which then waits for its code (so a container can be prepared ahead of time);
``execute()`` delivers the framed payload through the attach stream, reads the output while it
streams, enforces the deadline and classifies the outcome; ``destroy()`` removes the container and
is called in a ``finally`` on every path.
"""

from __future__ import annotations

import asyncio
import time

from docker.errors import APIError, DockerException

from ..errors import TRANSPORT_ERRORS, HostUnavailable, reason_of, swallow
from ..execution import Execution, Limits, Result
from ..languages import Language
from . import attach, programs
from . import protocol as p
from .deadline import Deadline
from .isolation import ENVIRONMENT, SANDBOX_USER, host_config
from .outcome import Outcome, make_result
from .output import OutputCollector
from .payload import GRACE_S, Tokens, build_payload, python_lib_json
from .removal import Removal


class Sandbox(Removal):
    """One container for one execution. Create with ``host.sandbox(...)``."""

    HOST_CONFIG: dict = {}  # HostConfig fields create_host_config has no argument for
    reads_to_the_end = True  # execute() returns once the reader is done, not at the exit reports
    # + life_s + the program: the in-container deadline. --foreground: an interrupt reaches the
    # program once (the watchdog hands it on), not again through timeout's process group; at the
    # backstop timeout's end ends the container's init, and the kernel kills what is left.
    BACKSTOP = ("timeout", "--foreground", "-s", "KILL")

    def __init__(
        self,
        host,
        language: Language,
        image: str,
        limits: Limits,
        labels: dict,
        idle_life_s: int = 0,
        script: bool = False,
    ):
        self.host = host
        self.idle_life_s = idle_life_s  # how long a warm container may wait for its code
        # For a script (not a notebook cell): a prestart then starts IPython only if the script
        # uses it (prestart.py's lazy mode), not ahead of its code. A warm container may take
        # either, so it is not for a script: its IPython starts before its code arrives.
        self.script = script
        self.needs_lib = script  # a prestarted interpreter has imported cloudpickle
        self.language = language
        self.image = image
        self.limits = limits
        self.labels = labels
        self.container_id: str | None = None
        self._sock = None
        self._preparing: asyncio.Future | None = None
        self._creating = False  # a create was sent and not answered yet
        self._given_up = False  # destroy() was called: a create answered late is undone
        self._refused: str | None = None  # why the run step could not start, after compiling
        self._stopping = False  # the program reported its exit: the container stops by itself
        self._run_started: asyncio.Future | None = None  # the program (after a compile) started
        self._output_done: asyncio.Future | None = None  # its exit reports are in
        self._reader: asyncio.Future | None = None  # the reading of its output
        self._deadline: Deadline | None = None  # the program's, once it started
        self.log = host.log

    # -- prime ---------------------------------------------------------------------------------
    async def prepare(self) -> None:
        """Create, attach to and start the container; it then waits for its payload.

        Called by the engine's placement before the code is delivered (or ahead of time, for a
        pool). Raises ``HostUnavailable`` when the host cannot do it: the execution may go
        elsewhere.
        """
        if not self.host.schedulable:  # out of scheduling since it was picked: start nothing
            raise HostUnavailable(self.host.name, self.host.last_error or "out of scheduling")
        # Shielded: if the caller is cancelled, the host thread still finishes creating the
        # container, and destroy() waits for it before removing.
        self._preparing = asyncio.ensure_future(self.host.call_watched(self._prepare_sync))
        try:
            await asyncio.shield(self._preparing)
        except asyncio.CancelledError:  # destroy() waits for the rest; how it ends is no news
            self._preparing.add_done_callback(swallow)
            raise
        except HostUnavailable:
            await self.destroy()
            raise
        except TRANSPORT_ERRORS as e:
            await self.destroy()
            raise HostUnavailable(self.host.name, reason_of(e)) from e

    def _prepare_sync(self):
        api = self.host.client.api
        life = self.life_s
        labels = {**self.labels, p.EXPIRES: p.expires_label(life + 60)}
        self._creating = True
        try:
            container = self._create_sync(api, life, labels)
        finally:
            self._creating = False
        self.container_id = cid = container["Id"]
        if self._given_up:  # the engine answered after the execution gave up on it (a hung host)
            self._remove_sync(cid)
            return
        self._sock = sock = api.attach_socket(
            cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        attach.raw(sock).settimeout(None)
        api.start(cid)

    def _create_sync(self, api, life: int, labels: dict) -> dict:
        return api.create_container(
            self.image,
            entrypoint=[],  # the image's own (scipy-notebook's start.sh) would run first
            command=[*self.BACKSTOP, str(life), *self._program()],
            user=SANDBOX_USER,
            working_dir=p.WORKDIR,
            environment=self._environment(),
            stdin_open=True,  # the SDK also sets StdinOnce: stdin closes when we detach
            network_disabled=not self.language.network,
            labels=labels,
            host_config={**api.create_host_config(**self._host_config()), **self.HOST_CONFIG},
        )

    def _environment(self) -> dict:
        if self.script and self.language.prestart:
            return {**ENVIRONMENT, "BD_PRESTART": "lazy"}
        return ENVIRONMENT

    @property
    def life_s(self) -> int:
        """The in-container backstop: the container is killed this long after it started."""
        lim = self.limits
        return int(lim.compile_timeout_s + lim.timeout_s + 2 * GRACE_S) + self.idle_life_s

    def _host_config(self) -> dict:
        """The container's isolation and limits (``create_host_config`` arguments)."""
        return host_config(self.language, self.limits, self.host.runtime)

    def _program(self) -> list[str]:
        """What waits for the payload: the language's prestarted interpreter, or the bootstrap."""
        lang = self.language
        if lang.prestart:  # cloudpickle imported ahead, unless nothing is (a lazy script's)
            return programs.prestart_command(lang, "" if self.script else python_lib_json())
        return ["sh", "-c", programs.BOOTSTRAP, "braindrill"]

    # -- execute -------------------------------------------------------------------------------
    async def execute(self, execution: Execution, on_output=None) -> Result:
        """Deliver ``execution`` to the prepared container and wait for its result.

        ``on_output(kind, value)`` is called on the loop as output arrives (see
        ``OutputCollector``). Never raises for what the code does; ``HostUnavailable`` only if
        the payload could not be delivered (nothing ran, so the caller may retry elsewhere). A
        host lost during the run is a ``worker_lost`` result; the engine decides what that means
        for the host.
        """
        loop = asyncio.get_running_loop()
        lim = execution.limits
        # The payload's language decides the compile protocol, not the one the container was
        # prepared for (a warm container may have been prepared for a variant of it).
        compiled = execution.language.compile is not None
        emit = None
        if on_output is not None:

            def asked(kind, value):  # on the loop: the deadline stops while a person answers
                if kind == "input":
                    if execution.input is not True or self._deadline is None:
                        return  # not asked of anyone: the program waits on, within its deadline
                    self._deadline.pause()
                on_output(kind, value)

            def emit(kind, value):
                loop.call_soon_threadsafe(asked, kind, value)

        tokens = Tokens()
        collector = OutputCollector.for_execution(execution, tokens, emit)
        payload = build_payload(execution, lim, tokens, lib=self.needs_lib)
        if attach.readable(self._sock):
            # A waiting container writes nothing: end-of-stream or output now means it is gone.
            raise HostUnavailable(self.host.name, "the container ended before its code arrived")
        try:
            await self.host.call(self._send, *payload)
        except TRANSPORT_ERRORS as e:
            raise HostUnavailable(self.host.name, f"cannot deliver the code: {reason_of(e)}") from e
        started = time.monotonic()
        self._run_started = loop.create_future()
        if not compiled:
            self._run_started.set_result(None)
        self._output_done = loop.create_future()
        reader = asyncio.ensure_future(self.host.call_watched(self._read_sync, collector))
        self._reader = reader
        timed_out = lost = False
        message = None
        try:
            timed_out = not await self._wait(reader, lim, compiled)
        except TRANSPORT_ERRORS as e:
            lost, message = True, f"lost the output stream: {reason_of(e)}"
        except HostUnavailable as e:  # the health loop or another execution saw the host fail
            lost, message = True, f"worker host failed during the run: {e.reason}"
        if timed_out:
            await self._kill()
            await asyncio.wait({reader}, timeout=GRACE_S + 3)
        duration_ms = (time.monotonic() - started) * 1000
        exit_code = oom = None
        if collector.done and collector.exit_code < 128 and not timed_out:
            # The program exited by itself (not by a signal: no OOM kill to look up), and said so
            # before the container finished stopping: no need to wait for the engine.
            exit_code, oom = collector.exit_code, False
            self._stopping = True
        elif not lost:
            await self._outcome_known(reader)
            try:
                compile_failed = collector.compile_exit not in (None, 0)
                exit_code, oom = await asyncio.wait_for(
                    self.host.call_watched(self._outcome_sync, compile_failed), 10
                )
            except (asyncio.TimeoutError, HostUnavailable, *TRANSPORT_ERRORS) as e:
                lost, message = True, f"worker host stopped answering: {reason_of(e)}"
        outcome = Outcome(exit_code, oom, timed_out, lost, message, self._refused)
        return make_result(self.language.name, self.host.name, collector, outcome, lim, duration_ms)

    async def _wait(self, reader: asyncio.Future, lim: Limits, compiled: bool) -> bool:
        """Wait until the program's output is all in (its exit reports) or the reader ended,
        within the deadlines; False when one passed. The compile step has ``compile_timeout_s``
        (its own in-container limit, plus the grace); the program's ``timeout_s`` counts from
        the moment it starts (the go-ahead)."""
        if compiled:
            await asyncio.wait(
                {reader, self._run_started},
                timeout=lim.compile_timeout_s + GRACE_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if reader.done():
                reader.result()  # raises what the reader raised
                return True
            if not self._run_started.done():
                return False
        self._deadline = Deadline(lim.timeout_s)
        done = await self._deadline.wait({reader, self._output_done})
        if reader in done:
            reader.result()  # raises what the reader raised
        elif done and self.reads_to_the_end:  # the reader stops at the exit reports: at once
            await asyncio.wait({reader}, timeout=GRACE_S)
        return bool(done)

    @property
    def running(self) -> bool:
        """The program started (after its payload and any compile step) and has not ended."""
        return self._deadline is not None and not (self._reader and self._reader.done())

    async def reply(self, text: str) -> None:
        """Answer the program's input request (``on_output("input", ...)``) with ``text``; its
        deadline runs again."""
        if self._deadline is not None:
            self._deadline.resume()
        data = text.encode("utf-8", "replace")
        try:
            await self.host.call(self._send, b"%d\n" % len(data) + data)
        except (HostUnavailable, *TRANSPORT_ERRORS) as e:  # it ends anyway: its result says how
            self.log.info("could not answer %s's input request: %s", self.container_id, e)

    async def interrupt(self) -> None:
        """SIGINT to the program (``KeyboardInterrupt`` in a Python cell); it goes on running if
        it catches it: the caller kills it after a grace period."""
        try:
            await self.host.call(self._interrupt_sync)
        except (HostUnavailable, *TRANSPORT_ERRORS) as e:
            self.log.info("could not interrupt %s: %s", self.container_id, e)

    def _interrupt_sync(self) -> None:
        try:
            self.host.client.api.kill(self.container_id, signal="SIGINT")
        except DockerException:
            pass  # already gone or stopped

    async def _outcome_known(self, reader: asyncio.Future) -> None:
        """Before the exit code is asked for (the program did not report a normal exit): what
        the sandbox still has to say. A container's engine knows it; a slot runner says it."""

    async def settle(self) -> None:
        """After the result went out, before the sandbox is removed or used again: what is
        still to be known of it. Nothing, for a container; called by the engine's clean-up."""

    def _read_sync(self, collector: OutputCollector) -> None:
        """Runs in a host thread: read frames until the exit report or the end of the stream.

        When a stream goes past its cap the container is killed (from another thread) and the
        rest is drained and dropped: the engine cannot finish killing a container whose output
        nobody reads."""
        killing = run_started = False
        try:
            for stream, chunk in self._chunks(collector):
                if not collector.feed(stream, chunk) and not killing:
                    killing = True
                    self._request_kill()
                if collector.compile_done and not run_started:
                    run_started = True
                    if collector.compile_exit == 0:
                        self._start_run_sync()
                if collector.done and not self._output_done.done():
                    self._output_done.get_loop().call_soon_threadsafe(_set, self._output_done)
        finally:
            collector.finish()

    def _chunks(self, collector: OutputCollector):
        """The output up to the exit report (or the end of the stream)."""
        if collector.done:
            return
        for stream, chunk in self._frames():
            yield stream, chunk
            if collector.done:
                return

    def _frames(self):
        """``(stream, bytes)`` as the attach stream delivers them, until it ends."""
        return attach.frames(self._sock)

    def _start_run_sync(self) -> None:
        """Runs in the reader thread once the compile step succeeded: set the run memory limit,
        then give the bootstrap its go-ahead. If the limit cannot be lowered (what the compile step
        left in /work and /tmp is charged as memory and does not fit), the sandbox is killed."""
        lim = self.limits
        if lim.compile_memory_mib != lim.memory_mib:
            memory = f"{self._memory_mib(lim.memory_mib)}m"
            try:
                self.host.client.api.update_container(
                    self.container_id, mem_limit=memory, memswap_limit=memory
                )
            except APIError as e:
                self._refused = (
                    f"the run step does not fit in memory_mib={lim.memory_mib}: {reason_of(e)}"
                )
                self._kill_sync()
                return
        self._send(p.GO)
        self._run_started.get_loop().call_soon_threadsafe(_set, self._run_started)

    def _memory_mib(self, limit_mib: int) -> int:
        """The container's memory limit for an execution's ``limit_mib``."""
        return limit_mib

    def _send(self, *parts: bytes) -> None:
        """Write to the program's stdin (a host thread): the payload, the go-ahead."""
        sock = attach.raw(self._sock)
        for part in parts:
            sock.sendall(part)

    def _outcome_sync(self, compile_failed: bool = False) -> tuple[int, bool]:
        """The container's exit code, and whether the OOM killer struck in it (the compiler may
        have been its victim even though the container exited 0)."""
        api = self.host.client.api
        exit_code = api.wait(self.container_id, timeout=10)["StatusCode"]
        oom = False
        if exit_code == 137 or compile_failed:
            oom = api.inspect_container(self.container_id)["State"]["OOMKilled"]
        return exit_code, oom


def _set(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
