"""Runner: the "nested" sandbox kind. One long-lived container per slot and language runs one
execution at a time, each in a fresh nested namespace sandbox (``container/runner.sh``,
``container/nest.sh``) instead of a fresh container: a sandbox costs milliseconds, a container's
lifecycle 150-250 ms of the engine's CPU.

The runner container is made like a sandbox container (``Sandbox``: same user, read-only root, no
capability, no network, no new privileges, limits) with two differences that namespace creation
needs: the seccomp profile ``container/seccomp-nested.json`` (Docker's default plus ``unshare``,
``mount`` and ``sethostname``), and no masked or read-only paths on ``/proc`` (the kernel mounts a
fresh ``/proc`` only where the container's one is fully visible; each sandbox masks its own
``/proc`` again as Docker would). Its cgroup is the execution's: one execution at a time, so the
memory, CPU and pids limits, and OOM detection (the runner reports the cgroup's OOM kills), stay
per execution; a request with other memory or CPU limits gets them applied first
(``docker update``).

The engine reads an execution's output as from a container, then the runner's report (its
token is never in a sandbox). At a deadline or an output flood it sends the runner a stop signal,
SIGHUP for an odd-numbered execution and SIGINT for an even one, which kills the sandbox alone: a
stop that arrives after its sandbox ended by itself is not taken for the next one's. The runner
is reused (``HostPool.recycle``) only if it reported the sandbox gone and nothing left
(processes, mounts, tmpfs pages), the stop sent to it (if any) was delivered, and it is under its
execution and age limits; on any doubt it is removed and another one made.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from concurrent.futures import Future

from docker.errors import DockerException
from docker.types import Ulimit

from . import protocol as p
from .errors import TRANSPORT_ERRORS, HostUnavailable, reason_of
from .execution import Execution, Limits, Result
from .languages import CONTAINER
from .output import STDERR, STDOUT
from .sandbox import STOP_WAIT_S, Sandbox

RUNNER = CONTAINER.joinpath("runner.sh").read_text()
NEST = CONTAINER.joinpath("nest.sh").read_text()
SECCOMP = json.dumps(json.loads(CONTAINER.joinpath("seccomp-nested.json").read_text()))
# Docker's masked paths outside /proc stay masked; those in /proc are masked by each sandbox.
MASKED_PATHS = ["/sys/firmware", "/sys/devices/virtual/powercap"]
RUNNER_PIDS = (
    3  # the runner's sh, unshare and the sandbox's init: on top of `pids`, as a container has none
)


class Runner(Sandbox):
    """A slot runner: ``prepare()`` makes the container (its first sandbox starts at once),
    ``execute()`` runs one execution in the waiting sandbox, ``reusable`` tells whether it may take
    another; ``destroy()`` removes it."""

    HOST_CONFIG = {"MaskedPaths": MASKED_PATHS, "ReadonlyPaths": []}
    # --foreground: `timeout` passes each stop signal to the runner alone (in its default mode it
    # also signals its process group, then ignores that signal for good: a second stop was lost).
    BACKSTOP = ("timeout", "--foreground", "-s", "KILL")

    def __init__(self, *args, max_executions=1000, max_age_s=600.0, cells: bool = False, **kwargs):
        # A runner's sandboxes are for scripts or for notebook cells (``cells``): only cells get
        # IPython ahead of their code.
        super().__init__(*args, **{**kwargs, "script": not cells})
        self.labels = {**self.labels, p.POOLED: "1"}  # a runner outlives its first execution
        self.token = secrets.token_hex(8)
        self.max_executions = max_executions
        self.max_age_s = max_age_s
        self.born = time.monotonic()
        # It lives through max_age_s of executions (the pools take it no longer), and then its
        # last one: the in-container backstop, counted from now.
        self.idle_life_s = max(self.idle_life_s, int(max_age_s) + 60)
        self.deadline = self.born + self.life_s
        self.executions = 0
        self.reusable = False
        # exit status, OOM kills, clean, stopped (the runner got the engine's stop signal)
        self._report: tuple[int, int, bool, bool] | None = None
        self._stop: Future | None = None  # the stop signal's docker kill, during this execution
        # The limits the container has now (docker update changes them between executions).
        self._applied = self._limits_of(self.limits, start=True)

    @property
    def cells(self) -> bool:
        return not self.script

    # -- the container ---------------------------------------------------------------------------
    def _program(self) -> list[str]:
        sandbox = super()._program()
        work = str(self.limits.workdir_mib)
        return ["sh", "-c", RUNNER, "braindrill-runner", self.token, work, NEST, *sandbox]

    def _host_config(self) -> dict:
        config = super()._host_config()
        lim = self.limits
        config["security_opt"] = ["no-new-privileges", f"seccomp={SECCOMP}"]
        config["pids_limit"] = lim.pids + RUNNER_PIDS
        # Mount points for the sandboxes' own /work and /tmp: the runner writes nothing.
        config["tmpfs"] = {"/work": "size=64k,uid=65534,gid=65534,mode=0700", "/tmp": "size=64k"}
        config["ulimits"] = [
            Ulimit(name="nofile", soft=lim.nofile, hard=lim.nofile),
            Ulimit(name="fsize", soft=lim.workdir_mib << 20, hard=lim.workdir_mib << 20),
            Ulimit(name="core", soft=0, hard=0),
        ]
        return config

    # -- limits ------------------------------------------------------------------------------------
    def _limits_of(self, limits: Limits, start: bool) -> dict:
        """The updatable limits (``docker update``) the container needs for ``limits``; ``start``:
        at an execution's start (a compiled language's compile step has its own memory)."""
        memory = limits.compile_memory_mib if start and self.language.compile else limits.memory_mib
        return {
            "Memory": memory << 20,
            "MemorySwap": memory << 20,
            "NanoCpus": int(limits.cpus * 1e9),
        }

    def _update_sync(self, wanted: dict) -> None:
        changed = {k: v for k, v in wanted.items() if self._applied.get(k) != v}
        if changed:
            api = self.host.client.api
            url = api._url("/containers/{0}/update", self.container_id)
            api._raise_for_status(api._post_json(url, data=changed))
            self._applied.update(changed)

    def _start_run_sync(self) -> None:
        super()._start_run_sync()
        if not self._refused:
            self._applied.update(self._limits_of(self.limits, start=False))

    # -- an execution ------------------------------------------------------------------------------
    async def execute(self, execution: Execution, on_output=None) -> Result:
        self.reusable, self._report, self._stop = False, None, None
        self.limits = execution.limits  # the run limit the compile step's go-ahead sets
        try:
            await self.host.call(self._update_sync, self._limits_of(execution.limits, start=True))
        except TRANSPORT_ERRORS as e:  # a warm runner that cannot take it: the caller goes cold
            reason = f"cannot set its runner's limits: {reason_of(e)}"
            raise HostUnavailable(self.host.name, reason) from e
        result = await super().execute(execution, on_output)
        self._stopping = False  # the container goes on: removing it means killing it
        self.executions += 1
        doubt = await self._doubt()
        if doubt:
            self.log.info("runner %s on %s retired: %s", self.container_id, self.host.name, doubt)
        self.reusable = (
            not doubt
            and self.executions < self.max_executions
            and time.monotonic() - self.born < self.max_age_s
        )
        return result

    async def _doubt(self) -> str | None:
        """Why the runner may not be clean after this execution; None when it is."""
        if self._report is None:
            return "no report"
        if not self._report[2]:
            return "not clean (a process, a mount or tmpfs pages left)"
        if not await self._stop_delivered():
            return "its stop signal was not delivered"
        return None

    def _chunks(self, collector):
        """The frames up to the runner's report on both streams (which ends the execution, and
        is not output); what a sandbox writes after its exit report is dropped by the collector."""
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
        if len(fields) == 4 and all(f.isdigit() for f in fields):
            status, oom_kills, clean, stopped = map(int, fields)
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
        """Whether the stop signal sent during this execution, if any, has reached the runner's
        container (then it cannot outlive the next sandbox's start by a whole execution)."""
        if self._stop is None:
            return True
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self._stop), STOP_WAIT_S)
        except (asyncio.TimeoutError, *TRANSPORT_ERRORS):
            return False

    def _kill_sync(self) -> bool:
        """Stop the running sandbox (the engine's deadline, an output flood): the runner kills
        it, reports, and may run the next one. The signal's parity is the execution's (see
        ``container/runner.sh``). Returns whether the signal was delivered."""
        signal = "SIGHUP" if (self.executions + 1) % 2 else "SIGINT"
        try:
            self.host.client.api.kill(self.container_id, signal=signal)
        except DockerException:
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
