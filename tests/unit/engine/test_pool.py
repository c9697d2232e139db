"""A host's warm pool (``HostPool``), its bookkeeping only: a fake host and fake sandboxes (the
warm pools on real containers are in tests/docker/engine/test_pools.py)."""

from __future__ import annotations

import asyncio
import logging
import time

from braindrill_ext.engine.limits import LimitsPolicy
from braindrill_ext.engine.pool import HostPool, WarmPools
from braindrill_ext.execution import Execution
from braindrill_ext.languages import LanguageRegistry
from tests.helpers import FakeHost


class FakeSandbox:
    def __init__(self, language, limits, gate: asyncio.Event):
        self.language, self.limits, self.gate = language, limits, gate
        self.destroyed = False
        self.deadline = None

    async def destroy(self) -> bool:
        await self.gate.wait()  # a slow engine: the removal takes a while
        self.destroyed = True
        return True


async def test_a_pool_never_hands_out_what_it_is_destroying():
    """maintain() sorts the ready sandboxes out before it awaits their removal: a take() meanwhile
    gets the kept one, never one being destroyed, and the pool keeps exactly its target."""
    host = FakeHost("h", 4)
    host.nests = lambda lang: False
    lang = LanguageRegistry.from_kernelspecs().get("python")
    limits = LimitsPolicy().defaults
    pool = HostPool(host, WarmPools(max_size=4), dict, limits, None, logging.getLogger())
    pool.fill = lambda: None  # no container is made here
    gate = asyncio.Event()
    sandboxes = [FakeSandbox(lang, limits(lang), gate) for _ in range(3)]
    ready = pool._pool(lang)
    ready.ready.extend((s, time.monotonic()) for s in sandboxes)
    ready.target = 1  # two of the three are beyond it
    maintaining = asyncio.ensure_future(pool.maintain([]))
    await asyncio.sleep(0)  # maintain() now waits on the first removal
    taken = pool.take(Execution(lang, "print(1)", limits(lang)))
    assert taken is sandboxes[0] and not taken.destroyed
    gate.set()
    await maintaining
    assert [s.destroyed for s in sandboxes] == [False, True, True]
    assert not ready.ready


def test_scripts_and_cells_have_their_own_warm_containers_but_share_runners():
    """On a host of containers, a prestarted language's warm containers for scripts (IPython only
    if used) and for cells (IPython ahead) are two pools; a slot runner's template serves both."""
    lang = LanguageRegistry.from_kernelspecs().get("python")
    limits = LimitsPolicy().defaults
    for nests, pools in ((False, {"python", "python (cells)"}), (True, {"python"})):
        host = FakeHost("h", 4)
        host.nests = lambda _, nests=nests: nests
        pool = HostPool(host, WarmPools(max_size=4), dict, limits, None, logging.getLogger())
        pool.fill = lambda: None
        script = Execution(lang, "print(1)", limits(lang))
        cell = Execution(lang, "1", limits(lang), interactive=True)
        assert pool.take(script) is None and pool.take(cell) is None  # misses: both counted
        assert set(pool.pools) == pools
        assert pool.pools["python"].cells is False
