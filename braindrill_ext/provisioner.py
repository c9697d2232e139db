"""The kernel provisioner: starts Braindrill kernels inside this process, no child process.

Registered as ``braindrill-provisioner`` under the ``jupyter_client.kernel_provisioners`` entry
point and chosen by every Braindrill kernelspec's ``metadata.kernel_provisioner``. jupyter_client's
KernelManager calls the hooks below; the kernel itself lives on its manager's ``KernelLoop`` (the
Jupyter server's loop, or the process's kernel thread in a script), so each hook hops there.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase

from . import manager as manager_module
from .kernel import BraindrillKernel
from .kernelloop import KernelLoop
from .languages import KERNEL_PREFIX

SERVER_KERNEL_MANAGER = "jupyter_server.services.kernels.kernelmanager"


class BraindrillProvisioner(KernelProvisionerBase):
    """Starts an in-process ``BraindrillKernel``: starting one costs milliseconds, an idle one a
    few sockets. Every cell goes through the process's remote kernel manager
    (``manager.current()``): the Jupyter server's, or an embedded one on the local Docker Engine.
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
        if km is not None:
            km.write_connection_file()
            self.connection_info = km.get_connection_info()
        return await super().pre_launch(cmd=[], **kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Called from ``KernelManager.launch_kernel()``: start the kernel on its loop."""
        mgr = manager_module.current()
        self.kernel_loop = KernelLoop.for_manager(mgr, in_server=_in_server(self.parent))
        language = mgr.registry.get(self._kernel_name().removeprefix(KERNEL_PREFIX))
        kernel = await self.kernel_loop.call(self._start(language, mgr))
        self.kernel = kernel
        self.connection_info = kernel.connection_info
        return self.connection_info

    async def _start(self, language, mgr) -> BraindrillKernel:
        kernel = BraindrillKernel(
            language,
            mgr,
            self.connection_info,
            self.kernel_loop,
            kernel_id=self.kernel_id,
            log=self.log,
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


def _in_server(km) -> bool:
    """Is ``km`` a Jupyter server's kernel manager (whose loop runs for the server's life)?"""
    module = sys.modules.get(SERVER_KERNEL_MANAGER)
    return module is not None and isinstance(km, module.ServerKernelManager)
