"""Runner: the "nested" sandbox kind. One long-lived container per slot and language runs one
execution at a time, each in a fresh nested namespace sandbox (``container/runner.py``) instead
of a fresh container: a sandbox costs milliseconds, a container's lifecycle 150-250 ms of the
engine's CPU.

The runner container is made like a sandbox container (``Sandbox``: same user, read-only root, no
capability, no network, no new privileges, limits) with two differences that namespace creation
needs: the seccomp profile ``container/seccomp-nested.json`` (Docker's default plus ``clone`` and
``unshare`` with namespace flags, ``mount`` and ``sethostname``), and no masked or read-only
paths on ``/proc`` (the kernel mounts a fresh ``/proc`` only where the container's one is fully
visible; each sandbox masks its own ``/proc`` again as Docker would). Its cgroup is the
execution's: one execution at a time, so the memory, CPU and pids limits, and OOM detection (the
runner reports the cgroup's OOM kills), stay per execution; a request with other memory or CPU
limits gets them applied first (``docker update``). The runner's own memory (relay, template) is
added to the execution's memory limit.

In the container, a relay owns the attach stream and a template forks the sandboxes: a sandbox
gets its payload through a pipe of its own and writes through pipes of its own, never the
stream. The engine writes frames (``protocol.runner_frame``): the runner token first (the
sandboxes never see it), then per execution its data (the payload, a compile step's go-ahead)
and, at a deadline or an output flood, a stop, each with the number of the execution's sandbox;
the relay drops frames of another number. The result goes out at the program's exit reports, as
a container's; then the runner's report, which names the sandbox, says it is gone and whether the
runner is clean (``settle``). The runner is reused (``HostPool.recycle``) only if its report
came for this sandbox and says clean, the stop sent to it (if any) was written, and it is under
its execution and age limits; on any doubt it is removed and another one made.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from concurrent.futures import Future

from ..errors import TRANSPORT_ERRORS, CannotNest, HostUnavailable, reason_of
from ..execution import Execution, Limits, Result
from . import attach, channel, programs
from . import protocol as p
from .attach import STDERR, STDOUT, raw
from .isolation import ENVIRONMENT
from .payload import GRACE_S, python_lib_json
from .removal import STOP_WAIT_S
from .sandbox import Sandbox

# Docker's masked paths outside /proc stay masked; those in /proc are masked by each sandbox.
MASKED_PATHS = ["/sys/firmware", "/sys/devices/virtual/powercap"]
RUNNER_PIDS = 3  # the relay, the template and a sandbox's parent: on top of `pids`
READY_TIMEOUT_S = 120  # a runner's template has this long to be ready (python-data: ~2 s)
CPU_PERIOD_US = 100_000


class Runner(Sandbox):
    """A slot runner: ``prepare()`` makes the container and waits until its first sandbox waits
    for a payload, ``execute()`` runs one execution in it, ``reusable`` tells whether it may take
    another; ``destroy()`` removes it."""

    HOST_CONFIG = {"MaskedPaths": MASKED_PATHS, "ReadonlyPaths": []}

    def __init__(self, *args, max_executions=1000, max_age_s=600.0, seccomp=None, **kwargs):
        # Scripts and notebook cells alike fork the template, which holds IPython's shell
        # already: a script costs no interpreter start either way.
        super().__init__(*args, **{**kwargs, "script": False})
        self.labels = {**self.labels, p.POOLED: "1"}  # a runner outlives its first execution
        self.needs_lib = not self.language.prestart  # a template has cloudpickle
        self.reads_to_the_end = False  # the result goes out at the exit reports (settle())
        self.token = secrets.token_hex(8)
        self.seccomp = seccomp or programs.SECCOMP  # the host's runner profile, or the shipped
        self.max_executions = max_executions
        self.max_age_s = max_age_s
        self.born = time.monotonic()
        # It lives through max_age_s of executions (the pools take it no longer), and then its
        # last one: the in-container backstop, counted from now.
        self.idle_life_s = max(self.idle_life_s, int(max_age_s) + 60)
        self.deadline = self.born + self.life_s
        self.executions = 0
        self.reusable = False
        self.template_kib = 0  # the template's resident memory, shared by every sandbox
        # What the runner's own processes (relay, template, a waiting sandbox) take in its cgroup
        # when ready: added to every execution's memory limit, which is the sandbox's own.
        self.own_mib = 0
        self._number = 1  # the sandbox of the execution under way
        # exit status, OOM kills, clean, stopped (the runner got the engine's stop)
        self._report: tuple[int, int, bool, bool] | None = None
        self._stop: Future | None = None  # the stop frame's send, during this execution
        self._send_lock = threading.Lock()  # frames from the loop's and the reader's threads
        # The limits the container has now (docker update changes them between executions).
        self._applied = self._limits_of(self.limits, start=True)
        self._listener: channel.Listener | None = None  # until the relay is on its channel
        self.on_channel = False  # whether the relay talks over the channel, not the attach stream

    # -- the container ---------------------------------------------------------------------------
    def _program(self) -> list[str]:
        lang, work = self.language, str(self.limits.workdir_mib)
        path = f"{channel.MOUNT}/{channel.NAME}" if self._listener is not None else "-"
        if lang.prestart:  # the template imports the server's cloudpickle once
            program, lib = programs.script(lang.prestart_script), python_lib_json()
            runner = [*lang.prestart, programs.RUNNER, work, path]
            return [*runner, "template", program, lib, lang.source_file, *lang.preload]
        runner = ["python3", "-u", "-c", programs.RUNNER, work, path]
        return [*runner, "exec", "sh", "-c", programs.BOOTSTRAP, "braindrill"]

    def _environment(self) -> dict:
        return ENVIRONMENT

    def _host_config(self) -> dict:
        config = super()._host_config()
        lim = self.limits
        config["security_opt"] = ["no-new-privileges", f"seccomp={self.seccomp}"]
        config["pids_limit"] = lim.pids + RUNNER_PIDS
        del config["nano_cpus"]  # CPU as period and quota: what docker update can change
        config["cpu_period"] = CPU_PERIOD_US
        config["cpu_quota"] = int(lim.cpus * CPU_PERIOD_US)
        # Mount points for the sandboxes' own /work and /tmp; the template's caches (matplotlib's
        # font list) in its /tmp.
        config["tmpfs"] = {"/work": "size=64k,uid=65534,gid=65534,mode=0700", "/tmp": "size=16m"}
        if self._listener is not None:
            config["binds"] = self._listener.bind()
        return config

    def _prepare_sync(self):
        if self.host.channel:
            try:
                self._listener = channel.Listener()
            except OSError as e:
                self.host.no_channel(f"no socket on this machine: {e}")
        try:
            super()._prepare_sync()
            if self._sock is None:  # given up meanwhile
                return
            token = self.token.encode()
            with self._send_lock:
                raw(self._sock).sendall(p.runner_frame(p.FRAME_TOKEN, 0, token))
            self._await_ready()
        finally:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    def _take_channel(self, deadline: float) -> None:
        """The relay is on its channel (it said so on the attach stream): take its connection
        and leave the attach stream."""
        conn = self._listener.accept(self.token.encode(), deadline)
        self._listener.close()  # before any payload: no sandbox ever sees the socket's path
        self._listener = None
        if conn is None:
            self.host.no_channel("a runner's connection did not come")
            raise HostUnavailable(self.host.name, "its runner did not connect to its socket")
        attached, self._sock = self._sock, conn
        self.on_channel = True
        if attached is not None:
            attach.close(attached)

    def _await_ready(self) -> None:
        """Read the runner's first words: ready (with its template's size), or why it cannot
        make nested sandboxes here. Raises ``CannotNest``: another host, or kind, may run it."""
        errors = bytearray()  # what it wrote on stderr: why it ended, if it did
        words = self._words(errors)
        try:
            while (word := next(words, None)) is not None:
                kind, rest = word
                sizes = rest.split()
                if kind == "channel" and self._listener is not None:
                    self._take_channel(time.monotonic() + READY_TIMEOUT_S)
                    words = self._words(errors)  # the rest comes on the channel
                elif kind == "nochannel":
                    self.host.no_channel(f"a runner could not reach its socket: {rest}")
                elif kind == "ready" and len(sizes) == 2 and all(x.isdigit() for x in sizes):
                    self.template_kib = int(sizes[0])
                    self.own_mib = -(-int(sizes[1]) // 1024)
                    self.host.kinds.confirmed(self.language)
                    return
                else:
                    raise CannotNest(self.host.name, f"the runner cannot nest: {rest}")
        except TimeoutError as e:
            reason = f"the runner was not ready within {READY_TIMEOUT_S} s"
            raise CannotNest(self.host.name, reason) from e
        finally:
            if self._sock is not None:
                raw(self._sock).settimeout(None)
        said = errors.decode(errors="replace").strip()[-300:]
        if "python3" in said and ("No such file" in said or "not found" in said):
            said = "the image has no python3 (the runner's interpreter)"
        raise CannotNest(self.host.name, f"the runner ended before it was ready: {said}")

    def _words(self, errors: bytearray):
        """``(kind, rest)`` of each runner line (mark and token) on stdout, until the stream
        ends or READY_TIMEOUT_S passes (``TimeoutError``); stderr is added to ``errors``."""
        mark = p.RUNNER_MARK + self.token.encode() + b" "
        raw(self._sock).settimeout(READY_TIMEOUT_S)
        out = b""
        for stream, chunk in self._frames():
            if stream != STDOUT:
                errors += chunk
                del errors[:-4096]
                continue
            out += chunk
            while (at := out.find(mark)) >= 0 and (end := out.find(b"\n", at)) >= 0:
                line, out = out[at + len(mark) : end], out[end + 1 :]
                kind, _, rest = line.decode(errors="replace").partition(" ")
                yield kind, rest

    # -- limits ------------------------------------------------------------------------------------
    def _limits_of(self, limits: Limits, start: bool) -> dict:
        """The updatable limits (``docker update``) the container needs for ``limits``; ``start``:
        at an execution's start (a compiled language's compile step has its own memory)."""
        memory = limits.compile_memory_mib if start and self.language.compile else limits.memory_mib
        memory = self._memory_mib(memory)
        return {
            "mem_limit": memory << 20,
            "memswap_limit": memory << 20,
            "cpu_quota": int(limits.cpus * CPU_PERIOD_US),
        }

    def _memory_mib(self, limit_mib: int) -> int:
        return limit_mib + self.own_mib

    def _update_sync(self, changed: dict) -> None:
        self.host.client.api.update_container(self.container_id, **changed)
        self._applied.update(changed)

    def _start_run_sync(self) -> None:
        super()._start_run_sync()
        if not self._refused:
            self._applied.update(self._limits_of(self.limits, start=False))

    # -- an execution ------------------------------------------------------------------------------
    async def execute(self, execution: Execution, on_output=None) -> Result:
        self.reusable, self._report, self._stop = False, None, None
        self._number = self.executions + 1
        self.limits = execution.limits  # the run limit the compile step's go-ahead sets
        wanted = self._limits_of(execution.limits, start=True)
        changed = {k: v for k, v in wanted.items() if self._applied.get(k) != v}
        try:
            if changed:  # else no engine call
                await self.host.call(self._update_sync, changed)
        except TRANSPORT_ERRORS as e:  # a warm runner that cannot take it: the caller goes cold
            reason = f"cannot set its runner's limits: {reason_of(e)}"
            raise HostUnavailable(self.host.name, reason) from e
        result = await super().execute(execution, on_output)
        self._stopping = False  # the container goes on: removing it means killing it
        self.executions += 1
        return result

    async def _outcome_known(self, reader: asyncio.Future) -> None:
        await asyncio.wait({reader}, timeout=GRACE_S + 3)  # the runner's report

    async def settle(self) -> None:
        """The result went out at the program's exit reports; the runner's report, after its
        sandbox's pid namespace is gone, says whether it may run another. Called by the engine's
        clean-up, which holds the slot until then."""
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=STOP_WAIT_S + GRACE_S)
        doubt = await self._doubt()
        if doubt:
            self.log.info("runner %s on %s retired: %s", self.container_id, self.host.name, doubt)
        self.reusable = (
            not doubt
            and self.executions < self.max_executions
            and time.monotonic() - self.born < self.max_age_s
        )

    async def _doubt(self) -> str | None:
        """Why the runner may not be clean after this execution; None when it is."""
        if self._report is None:
            return "no report for its sandbox"
        if not self._report[2]:
            return "not clean (a process or tmpfs pages left, or its pipes held open)"
        if not await self._stop_delivered():
            return "its stop could not be sent"
        return None

    def _send(self, *parts: bytes) -> None:
        """The execution's stdin (its payload, the go-ahead): a data frame for its sandbox."""
        header = p.runner_frame_header(p.FRAME_DATA, self._number, sum(map(len, parts)))
        with self._send_lock:  # the header, then the data as it is (a large state: no copy)
            sock = raw(self._sock)
            sock.sendall(header)
            for part in parts:
                sock.sendall(part)

    def _chunks(self, collector):
        """The frames up to the runner's report on both streams (which ends the execution, and
        is not output). The relay writes nothing of a sandbox after its report."""
        mark = p.RUNNER_MARK + self.token.encode() + b" "
        held = {STDOUT: b"", STDERR: b""}
        reports: dict[int, bytes] = {}
        for stream, chunk in self._frames():
            if stream in reports or stream not in held:
                continue
            data = held[stream] + chunk
            at = data.find(mark)
            end = data.find(b"\n", at) if at >= 0 else -1
            if end >= 0:
                reports[stream], held[stream] = data[at + len(mark) : end], b""
                if at:
                    yield stream, data[:at]
                if len(reports) == 2:
                    break
                continue
            keep = len(data) - at if at >= 0 else _partial(data, mark)
            held[stream] = data[len(data) - keep :] if keep else b""
            if len(data) > keep:
                yield stream, data[: len(data) - keep]
        if STDOUT not in reports:
            return
        fields = reports[STDOUT].split()
        if len(fields) == 5 and all(f.isdigit() for f in fields):
            number, status, oom_kills, clean, stopped = map(int, fields)
            if number == self._number:
                self._report = (status, oom_kills, clean == 1, stopped == 1)

    def _outcome_sync(self, compile_failed: bool = False) -> tuple[int, bool]:
        if self._report is None:  # no report (the runner ended, or is stuck): ask the engine
            super()._kill_sync()
            return super()._outcome_sync(compile_failed)
        status, oom_kills, _, _ = self._report
        return status, oom_kills > 0

    def _request_kill(self):
        self._stop = self.host.executor.submit(self._kill_sync)

    async def _stop_delivered(self) -> bool:
        """Whether the stop sent during this execution, if any, was written to the runner."""
        if self._stop is None:
            return True
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self._stop), STOP_WAIT_S)
        except (asyncio.TimeoutError, *TRANSPORT_ERRORS):
            return False

    def _interrupt_sync(self) -> None:
        """SIGINT to the running sandbox's watchdog, through the relay."""
        sock = self._sock
        if sock is not None:
            with self._send_lock:
                raw(sock).sendall(p.runner_frame(p.FRAME_INTERRUPT, self._number))

    def _kill_sync(self) -> bool:
        """Stop the running sandbox (the engine's deadline, an output flood): the relay kills it,
        reports, and may run the next one. Returns whether the stop was written."""
        sock = self._sock
        if sock is None:
            return False
        try:
            with self._send_lock:
                raw(sock).sendall(p.runner_frame(p.FRAME_STOP, self._number))
        except (OSError, AttributeError):
            return False  # already gone
        return True


def _partial(data: bytes, mark: bytes) -> int:
    """How many bytes at the end of ``data`` may be the start of ``mark``."""
    at = data.rfind(mark[:1], max(0, len(data) - len(mark)))
    while at >= 0:
        if mark.startswith(data[at:]):
            return len(data) - at
        at = data.rfind(mark[:1], max(0, len(data) - len(mark)), at)
    return 0
