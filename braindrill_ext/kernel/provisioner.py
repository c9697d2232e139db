"""The kernel provisioner: starts Braindrill kernels inside this process, no child process.

Registered as ``braindrill-provisioner`` under the ``jupyter_client.kernel_provisioners`` entry
point and chosen by every Braindrill kernelspec's ``metadata.kernel_provisioner``. jupyter_client's
KernelManager calls the hooks below; the kernel itself lives on a ``KernelLoop`` (the Jupyter
server's loop, or the embedded engine's thread in a script), so each hook hops there.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase

from ..languages import KERNEL_PREFIX
from . import embedded
from .folder import resolve as resolve_folder
from .kernel import BraindrillKernel
from .loop import KernelLoop

SETTINGS_KEY = "braindrill_kernels"  # the extension app's KernelLoop in the server's settings


class BraindrillProvisioner(KernelProvisionerBase):
    """Starts an in-process ``BraindrillKernel``: starting one costs milliseconds, an idle one a
    few sockets. Its cells go through the engine of the process's owner: the Jupyter server's
    (the extension app's), or the embedded engine of a plain script.
    """

    kernel: BraindrillKernel | None = None
    kernel_loop: KernelLoop | None = None

    @property
    def has_process(self) -> bool:
        return self.kernel is not None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Called from ``KernelManager.pre_start_kernel()``: pick the ports (kept on restart) and
        write the connection file, as the local provisioner does."""
        km = self.parent
        kwargs.pop("extra_arguments", None)
        # The notebook's folder, as the server computed it from the notebook's path (never the
        # environment's KERNEL_WORKING_DIR: over a gateway that names the client's machine).
        self._cwd = kwargs.get("cwd")
        if km is not None:
            km.write_connection_file()
            self.connection_info = km.get_connection_info()
        return await super().pre_launch(cmd=[], **kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Called from ``KernelManager.launch_kernel()``: start the kernel on its loop."""
        self.kernel_loop = _kernel_loop(self.parent)
        name = self._kernel_name().removeprefix(KERNEL_PREFIX)
        language = self.kernel_loop.engine.language(name)
        kernel = await self.kernel_loop.call(self._start(language))
        self.kernel = kernel
        self.connection_info = kernel.connection_info
        return self.connection_info

    async def _start(self, language) -> BraindrillKernel:
        settings = _server_settings(self.parent)
        root = settings.get("server_root_dir") if settings is not None else None
        folder, why = resolve_folder(getattr(self, "_cwd", None), root or os.getcwd())
        if why:
            self.log.info("kernel %s gets no notebook folder: %s", self.kernel_id, why)
        kernel = BraindrillKernel(
            language,
            self.connection_info,
            self.kernel_loop,
            kernel_id=self.kernel_id,
            log=self.log,
            folder=folder,
        )
        await kernel.start()
        return kernel

    def _kernel_name(self) -> str:
        name = getattr(self.parent, "kernel_name", "")
        if name:
            return name
        return self.kernel_spec.metadata.get("kernel_name", "") if self.kernel_spec else ""

    async def poll(self) -> int | None:
        """Called from ``KernelManager.is_alive()``: None while the kernel runs."""
        return None if self.kernel is None else self.kernel.exit_code

    async def wait(self) -> int | None:
        """Called from ``KernelManager`` while it shuts a kernel down: wait for its end."""
        if self.kernel is None:
            return None
        kernel, code = self.kernel, await self.kernel_loop.call(self.kernel.wait())
        if self.kernel is kernel:
            self.kernel = None
        return code

    async def send_signal(self, signum: int) -> None:
        """Called from ``KernelManager.signal_kernel()``/``interrupt_kernel()``: SIGINT interrupts
        the running cell (its container is killed); SIGTERM and SIGKILL end the kernel."""
        if self.kernel is None or signum == 0:
            return
        if signum == signal.SIGINT:
            self.kernel_loop.loop.call_soon_threadsafe(self.kernel.interrupt)
        elif signum in (signal.SIGTERM, signal.SIGKILL):
            await self.kernel_loop.call(self.kernel.stop(128 + signum))

    async def kill(self, restart: bool = False) -> None:
        """Called from ``KernelManager.kill_kernel()``: end the kernel now; the running cell's
        container is killed and removed."""
        if self.kernel is not None:
            await self.kernel_loop.call(self.kernel.stop(-signal.SIGKILL))

    async def terminate(self, restart: bool = False) -> None:
        """Called from ``KernelManager.finish_shutdown()`` when a shutdown request went
        unanswered."""
        if self.kernel is not None:
            await self.kernel_loop.call(self.kernel.stop(-signal.SIGTERM))

    async def cleanup(self, restart: bool = False) -> None:
        """Called from ``KernelManager.cleanup_resources()``: the kernel has ended; nothing else
        is held (the connection file is the KernelManager's)."""
        if self.kernel is not None and self.kernel.exit_code is not None:
            self.kernel = None

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        """A shutdown waits for a running cell's container to be removed."""
        return max(recommended, 10.0)


def _kernel_loop(km) -> KernelLoop:
    """Where the kernel of ``km`` (a jupyter_client KernelManager) lives: in a Jupyter server, the
    extension app's kernel loop, found in the server's settings through the managers' parents
    (KernelManager → MultiKernelManager → ServerApp); elsewhere, the process's embedded engine."""
    settings = _server_settings(km)
    if settings is None:
        return embedded.kernel_loop()
    if SETTINGS_KEY not in settings:
        raise RuntimeError(
            "Braindrill kernels need the braindrill_ext server extension, which is not enabled "
            "in this Jupyter server: jupyter server extension enable braindrill_ext"
        )
    return settings[SETTINGS_KEY].bind_running_loop()


def _server_settings(km) -> dict | None:
    node = km
    while node is not None:
        web_app = getattr(node, "web_app", None)
        if web_app is not None:
            return web_app.settings
        node = getattr(node, "parent", None)
    return None
