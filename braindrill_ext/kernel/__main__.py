"""The Braindrill kernel as a process of its own: ``python -m braindrill_ext.kernel -f <connection
file> --spec <kernelspec folder>`` (the kernelspecs' ``argv``).

Used when the provisioner is not (a client that launches kernels from ``argv`` itself). The same
kernel as the in-process one, served on this process's loop with its own engine, configured from
Jupyter Server's config files like a script's (``embedded.py``); SIGINT interrupts the running
cell, SIGTERM ends the kernel.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal

from ..engine import ExecutionEngine
from ..languages import KERNEL_PREFIX
from .embedded import read_jupyter_config
from .kernel import BraindrillKernel
from .loop import KernelLoop


def language_of(spec_dir: str) -> str:
    """The language a kernelspec folder defines: its name, without the ``braindrill-`` prefix of
    installed kernelspecs (``kernels/python`` and ``.../kernels/braindrill-python`` alike)."""
    return os.path.basename(os.path.normpath(spec_dir)).removeprefix(KERNEL_PREFIX)


async def serve(language: str, connection_info: dict, kernel_id: str) -> int:
    """Serve one kernel until it is shut down; returns its exit code."""
    engine = ExecutionEngine(config=read_jupyter_config())
    kernel_loop = KernelLoop(engine, asyncio.get_running_loop())
    await engine.ensure_started()
    try:
        lang = engine.language(language)
        kernel = BraindrillKernel(lang, connection_info, kernel_loop, kernel_id=kernel_id)
        await kernel.start()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, kernel.interrupt)
        loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(kernel.stop(143)))
        return await kernel.wait()
    finally:
        await engine.stop()
        kernel_loop.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m braindrill_ext.kernel",
        description="Serve a Braindrill kernel whose every cell runs in a fresh container.",
    )
    parser.add_argument("-f", dest="connection_file", required=True, help="connection file")
    parser.add_argument("--spec", required=True, help="kernelspec folder; its name is the language")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[braindrill kernel] %(message)s")
    with open(args.connection_file) as f:
        info = json.load(f)
    kernel_id = os.path.splitext(os.path.basename(args.connection_file))[0]
    raise SystemExit(asyncio.run(serve(language_of(args.spec), info, kernel_id)))


if __name__ == "__main__":
    main()
