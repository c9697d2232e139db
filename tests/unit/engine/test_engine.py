"""The engine's configuration: its defaults, and the old section name that still works."""

from __future__ import annotations

from traitlets.config import Config

from braindrill_ext.engine import ExecutionEngine

NO_ENGINE = [{"name": "h", "url": "unix:///nonexistent"}]  # nothing is asked of it here


def test_configuration_written_for_remote_kernel_manager_still_applies():
    """The engine was called RemoteKernelManager: that section still configures it, and the new
    name's section wins where both say something."""
    config = Config({"RemoteKernelManager": {"slots": 3, "queue_size": 5}})
    config.ExecutionEngine.queue_size = 7
    engine = ExecutionEngine(config=config, hosts=NO_ENGINE)
    assert (engine.slots, engine.queue_size) == (3, 7)


def test_the_default_sandbox_kind_is_auto():
    engine = ExecutionEngine(hosts=NO_ENGINE)
    assert engine.sandbox == "auto"
    assert engine.workers[0].kinds.setting == "auto"
