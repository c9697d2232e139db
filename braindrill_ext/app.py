"""The Jupyter Server extension: creates the remote kernel manager and registers the handlers."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Instance, Type

from . import handlers, manager


class BraindrillApp(ExtensionApp):
    """Braindrill: ``POST /lang/<language>`` and kernels whose every cell runs in a fresh container.

    Configure the engine through its own classes: ``RemoteKernelManager`` (worker hosts, slots,
    queue, images) and ``LimitsPolicy`` (default and maximum limits).
    """

    name = "braindrill_ext"
    load_other_extensions = True

    manager_class = Type(
        manager.RemoteKernelManager,
        klass=manager.RemoteKernelManager,
        config=True,
        help="The remote kernel manager class.",
    )
    manager = Instance(manager.RemoteKernelManager, allow_none=True)

    def initialize_settings(self):
        self.manager = self.manager_class(parent=self.serverapp, log=self.log)
        manager.set_current(self.manager)
        self.settings["braindrill_manager"] = self.manager

    def initialize_handlers(self):
        self.handlers.extend(handlers.default_handlers)

    async def _start_jupyter_server_extension(self, serverapp):
        """Called by Jupyter Server once its event loop runs: ping hosts, reap, start loops."""
        await self.manager.ensure_started()

    async def stop_extension(self):
        """Called by Jupyter Server at shutdown."""
        if self.manager is not None:
            await self.manager.stop()
            manager.set_current(None)
