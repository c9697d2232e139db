"""Placement: the path of one execution across the worker hosts. It waits for a slot (the
scheduler), takes a warm sandbox from the chosen host's pool or prepares a cold one, runs the
execution, and cleans up after it; a host that fails before the code started is taken out of
scheduling and the execution goes to another one, without the user noticing.

Made by the ``ExecutionEngine``, which hands it the scheduler, the pools and the reaper; it is
their only user on an execution's path (the engine's loops look after them otherwise).
"""

from __future__ import annotations

import asyncio

from ..errors import CannotNest, CannotRunHere, HostUnavailable, reason_of
from ..execution import Execution, Result, Status
from ..sandbox import protocol


class Placement:
    """Runs executions on hosts. Called by ``ExecutionEngine.run``."""

    def __init__(self, workers, scheduler, host_pools, reaper, owner: str, log):
        self.workers = workers
        self.scheduler = scheduler
        self.host_pools = host_pools  # host name -> HostPool
        self.reaper = reaper
        self.owner = owner  # the engine's, in every container's labels
        self.log = log
        self.background: set[asyncio.Task] = set()  # clean-ups after results went out

    async def run(self, execution: Execution, on_output, control=None) -> tuple[Result, str | None]:
        """Run on the first host that can start it; returns the result and its container id.
        Raises ``NoCapacity`` (no slot in time) and ``HostUnavailable`` (no host could start
        it). Cancelling it kills and removes the sandbox."""
        tried: set[str] = set()
        while True:
            host = await self.scheduler.acquire(exclude=tried, memory_mib=execution.memory_mib)
            try:
                sandbox, result = await self._run_on(host, execution, on_output, control)
            except HostUnavailable as e:
                self.scheduler.release(host, execution.memory_mib, completed=False)
                tried.add(host.name)
                if not isinstance(e, CannotRunHere):
                    host.suspend(e.reason)  # out of scheduling until a ping answers
                self.log.warning(
                    "execution %s not started on %s: %s", execution.id, host.name, e.reason
                )
                if not any(h.schedulable and h.name not in tried for h in self.workers):
                    raise
                continue
            except BaseException:
                self.scheduler.release(host, execution.memory_mib, completed=False)
                raise
            if result.status is Status.WORKER_LOST:
                host.suspend(result.message)
            self.host_pools[host.name].coming_back(sandbox)
            container = sandbox.container_id
            self._spawn(self._clean_up(host, sandbox, execution))
            return result, container

    async def _run_on(self, host, execution: Execution, on_output, control=None):
        """Run on ``host``: in a warm sandbox if its pool has one, else in a new one. Returns
        (sandbox, result); the caller removes the sandbox. On an exception it is already removed."""
        pools = self.host_pools[host.name]
        sandbox = await pools.take_or_wait(execution)
        if sandbox is not None:
            pools.lend(sandbox)
            try:
                return sandbox, await self._execute(host, sandbox, execution, on_output, control)
            except HostUnavailable as e:  # the warm container died while it waited: go cold
                self.log.info("warm container on %s unusable (%s); cold start", host.name, e)
        image = await host.image_for(execution.language)
        labels = protocol.labels(self.owner, execution.id, language=execution.language.name)
        while True:
            sandbox = host.sandbox(
                execution.language,
                image,
                execution.limits,
                labels,
                script=not execution.interactive,  # its code comes at once: IPython if used
            )
            pools.lend(sandbox)
            try:
                return sandbox, await self._execute(
                    host, sandbox, execution, on_output, control, cold=True
                )
            except CannotNest as e:  # an `auto` host: a container here, now and from now on
                if not host.kinds.refused(execution.language, e.reason):
                    raise

    async def _execute(self, host, sandbox, execution, on_output, control, cold=False) -> Result:
        try:
            if cold:
                await sandbox.prepare()
            if control is not None:
                control.sandbox = sandbox
            return await sandbox.execute(execution, on_output)
        except HostUnavailable:
            await self.destroy(host, sandbox)
            raise
        except BaseException as e:
            await self.destroy(host, sandbox)
            if not isinstance(e, Exception):
                raise  # cancelled: the client went away
            # A bug or an unexpected engine answer: report it, don't hang.
            self.log.exception("execution %s failed on %s", execution.id, host.name)
            return Result(
                execution.language.name,
                Status.INTERNAL_ERROR,
                worker=host.name,
                message=reason_of(e),
            )

    async def destroy(self, host, sandbox) -> None:
        """Remove a sandbox; one that cannot be removed now is left to the reaper."""
        self.host_pools[host.name].forget(sandbox)
        if not await sandbox.destroy():
            self.reaper.abandon(host, sandbox.labels[protocol.EXECUTION])

    async def _clean_up(self, host, sandbox, execution: Execution) -> None:
        """Remove an execution's container (or give its slot runner back to the pool), then free
        its slot and memory and refill the host's pool."""
        try:
            await sandbox.settle()
            if not self.host_pools[host.name].recycle(sandbox):
                await self.destroy(host, sandbox)
        finally:
            self.scheduler.release(host, execution.memory_mib, completed=True)
            self.host_pools[host.name].fill()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def drain(self) -> None:
        """Wait for the clean-ups under way. Called by the engine's ``stop()``."""
        await asyncio.gather(*self.background, return_exceptions=True)
