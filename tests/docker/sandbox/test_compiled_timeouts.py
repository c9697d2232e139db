"""The run step's deadline counts from the moment the program starts, for every compiled
language: an endless program is ``timeout`` at its ``timeout_s`` (killed by the engine), not an
``error`` with exit code 137 from the in-container backstop after the compile time ran too.
Through REST and through a kernel."""

from __future__ import annotations

import pytest
from jupyter_client import KernelManager

from tests.helpers import TIMEOUT, containers_left

LIMIT_S = 3
ENDLESS = {
    "c": "int main(void) { for (;;); }",
    "cpp": "int main() { volatile int x = 0; for (;;) { x++; } }",
    "go": "package main\n\nfunc main() {\n\tfor {\n\t}\n}\n",
    "rust": "fn main() { loop {} }",
    "typescript": "while (true) {}",
}
SLEEPING = {
    "go": 'package main\n\nimport "time"\n\nfunc main() {\n\ttime.Sleep(100 * time.Second)\n}\n',
    "c": "#include <unistd.h>\nint main(void) { sleep(100); return 0; }",
}


@pytest.mark.parametrize(
    "language, code",
    [*ENDLESS.items(), *((f"{lang} (sleeping)", code) for lang, code in SLEEPING.items())],
)
async def test_an_endless_program_is_a_timeout(run, language, code):
    result = await run(language.split()[0], code, limits={"timeout_s": LIMIT_S})
    assert result["status"] == "timeout", result
    assert result["compile_output"] is not None  # it did compile, then ran into its deadline


@pytest.mark.usefixtures("embedded_engine")
def test_a_kernel_cell_of_a_compiled_language_times_out():
    km = KernelManager(kernel_name="braindrill-c")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        code = f"%%limits timeout_s={LIMIT_S}\n{ENDLESS['c']}"
        reply = kc.execute_interactive(code, timeout=TIMEOUT)["content"]
        assert reply["status"] == "error" and reply["ename"] == "timeout", reply
        assert f"{LIMIT_S:g} s limit" in reply["evalue"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert containers_left() == []
