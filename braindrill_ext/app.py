"""The Jupyter Server extension: owns the execution engine, the REST sessions and the MCP endpoint,
hands them to the REST and MCP handlers and the kernels, registers the handlers."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Instance, Type

from .api import mcp_http, rest_handlers
from .api.sessions import RestSessionManager
from .engine.engine import ExecutionEngine
from .kernel.loop import KernelLoop
from .kernel.provisioner import SETTINGS_KEY


class BraindrillApp(ExtensionApp):
    """Braindrill: ``POST /lang/<language>`` and kernels whose every cell runs in a fresh container.

    Configure the engine through its own classes: ``ExecutionEngine`` (worker hosts, slots,
    queue, images), ``LimitsPolicy`` (default and maximum limits) and ``WarmPools``; REST
    sessions through ``RestSessionManager`` (idle timeout, sessions per user).
    """

    name = "braindrill_ext"
    load_other_extensions = True

    engine_class = Type(
        ExecutionEngine,
        klass=ExecutionEngine,
        config=True,
        help="The execution engine class.",
    )
    engine = Instance(ExecutionEngine, allow_none=True)
    sessions = Instance(RestSessionManager, allow_none=True)
    mcp = Instance(mcp_http.MCPEndpoint, allow_none=True)

    def initialize_settings(self):
        self.engine = self.engine_class(parent=self.serverapp, log=self.log)
        self.settings["braindrill_engine"] = self.engine
        self.sessions = RestSessionManager(parent=self.serverapp, engine=self.engine, log=self.log)
        self.settings["braindrill_sessions"] = self.sessions
        self.mcp = mcp_http.MCPEndpoint(self.engine, self.sessions)  # /braindrill/mcp
        self.settings["braindrill_mcp"] = self.mcp
        # The server's kernels live on its loop (bound at the first kernel start).
        self.settings[SETTINGS_KEY] = KernelLoop(self.engine)

    def initialize_handlers(self):
        self.handlers.extend(rest_handlers + mcp_http.default_handlers)

    async def _start_jupyter_server_extension(self, serverapp):
        """Called by Jupyter Server once its event loop runs: ping hosts, reap, start loops."""
        self.sessions.ensure_started()
        await self.engine.ensure_started()

    async def stop_extension(self):
        """Called by Jupyter Server at shutdown."""
        if self.mcp is not None:
            await self.mcp.stop()
        if self.sessions is not None:
            await self.sessions.stop()
        if self.engine is not None:
            await self.engine.stop()
            self.settings[SETTINGS_KEY].close()
