"""The kernel ``bench_state.py`` runs its cells on, for both its tables: ``Kernel`` (a kernel
started by jupyter_client from this process, Braindrill's or ipykernel; it runs and times a cell
and, for a Braindrill kernel living in this process's embedded engine, reads the size of the state
the engine keeps for it and the warm pools' figures, and waits for the pools to refill), ``check``
(what is wrong with a cell's outcome) and ``mib`` (a size as the tables print it).
"""

from __future__ import annotations

import asyncio
import time

from jupyter_client import KernelManager

TIMEOUT = 120
STARTUP_S = 90  # longest wait for a new engine's warm pools to fill
MIB = 1 << 20


class Kernel:
    """One kernel started by jupyter_client from this process; ``cell`` runs and times a cell.
    For a Braindrill kernel (in this process) it also reads the engine's figures."""

    def __init__(self, kernel_name: str, cwd: str):
        self.name = kernel_name
        self.braindrill = kernel_name.startswith("braindrill-")
        self.language = kernel_name.removeprefix("braindrill-")
        self.km = KernelManager(kernel_name=kernel_name)
        self.km.start_kernel(cwd=cwd)  # ipykernel's files go there, not into the checkout
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=TIMEOUT)
        if not self.braindrill:
            self.cell("%matplotlib inline")  # plots inline, as under Braindrill
        self.settle(STARTUP_S, every=True)  # the engine's first pools filled, nothing competes

    def cell(self, code: str) -> dict:
        """Run ``code``; returns its time in ms, status, streams, result and display types."""
        out = {"stdout": "", "stderr": "", "result": None, "mimes": [], "error": None}

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif kind == "execute_result":
                out["result"] = content["data"].get("text/plain")
            elif kind == "display_data":
                out["mimes"] += sorted(content["data"])
            elif kind == "error":
                out["error"] = f"{content['ename']}: {content['evalue']}"

        started = time.perf_counter()
        reply = self.kc.execute_interactive(code, timeout=TIMEOUT, output_hook=hook)
        out["ms"] = (time.perf_counter() - started) * 1000
        out["status"] = reply["content"]["status"]
        return out

    def _on_loop(self, fn):
        loop = self.km.provisioner.kernel_loop

        async def call():
            return fn(loop.engine)

        return asyncio.run_coroutine_threadsafe(call(), loop.loop).result(30)

    def state_bytes(self) -> int | None:
        """The bytes of state the engine keeps for this kernel now (Braindrill only)."""
        if not self.braindrill:
            return None
        key = self.km.provisioner.kernel.state_key
        return self._on_loop(lambda engine: engine.states.size(key))

    def _pools(self) -> dict[str, tuple[int, int, int, int]]:
        """Every language's warm pool summed over the hosts: (hits, misses, ready, target)."""

        def count(engine):
            pools: dict[str, list[int]] = {}
            for host_pool in engine.host_pools.values():
                for lang, s in host_pool.status().items():
                    total = pools.setdefault(lang, [0, 0, 0, 0])
                    for i, field in enumerate(("hits", "misses", "ready", "target")):
                        total[i] += s[field]
            return {lang: tuple(total) for lang, total in pools.items()}

        return self._on_loop(count)

    def pool(self) -> tuple[int, int]:
        """Warm-pool hits and misses of this kernel's language so far."""
        if not self.braindrill:
            return 0, 0
        return self._pools().get(self.language, (0, 0, 0, 0))[:2]

    def settle(self, max_s: float, every: bool = False) -> None:
        """Wait (at most ``max_s``) until this language's warm pool (``every``: every pool of
        the engine) is full again, so that the next cell finds a warm container and no refill
        competes with it. Nothing to wait for with ipykernel."""
        deadline = time.monotonic() + max_s
        while self.braindrill and time.monotonic() < deadline:
            pools = self._pools()
            if not every:
                pools = {self.language: pools.get(self.language, (0, 0, 0, 1))}
            if all(ready >= max(target, 1) for _, _, ready, target in pools.values()):
                return
            time.sleep(0.05)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def check(out: dict, expected: str | None) -> str | None:
    """What is wrong with a cell's outcome (None when nothing)."""
    if out["status"] != "ok":
        return f"status {out['status']}: {out['error']}"
    if expected is not None and out["result"] != expected:
        return f"result {out['result']!r}, expected {expected!r}"
    if out["stderr"]:
        return f"stderr {out['stderr'].strip()!r}"
    return None


def mib(n: int | None) -> str:
    """A size as the tables print it: MiB to two places, bytes under 0.01 MiB, a dash for none."""
    if n is None:
        return "-"
    return f"{n / MIB:.2f}" if n >= MIB // 100 else f"{n} B"
