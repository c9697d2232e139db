"""The Jupyter kernel conformance suite (``jupyter_kernel_test``) against real Braindrill kernels.

Every test that applies to a stateless kernel runs. Skipped by leaving their samples empty, and why:
- ``test_execute_result``, ``test_display_data``, ``test_clear_output``, ``test_pager``: a cell is a
  whole program in a container; only its stdout/stderr come back (no rich display, no pager).
- ``test_history``: needs ``code_execute_result``; no history is kept (history_reply is empty, as
  ``tests/test_kernels.py`` checks).
- ``test_inspect``: needs ``found: true``; there is no live object to inspect (the reply is valid
  and says ``found: false``).
- ``test_is_complete`` for incomplete and invalid samples: every cell is run as a whole program, so
  the kernel answers ``complete`` (complete samples are tested).
"""

from __future__ import annotations

import jupyter_kernel_test
import pytest

from .conftest import containers_left

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("embedded_engine")]


class BraindrillKernelTests(jupyter_kernel_test.KernelTests):
    __test__ = False  # only the language classes below run

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        assert containers_left() == []

    # A completion request gets a valid reply with no matches.
    completion_samples = [{"text": "pri", "matches": []}]


@pytest.mark.docker
class TestPythonKernel(BraindrillKernelTests):
    __test__ = True
    kernel_name = "braindrill-python"
    language_name = "python"
    file_extension = ".py"
    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('oops', file=sys.stderr)"
    code_generate_error = "import sys; sys.exit(3)"  # exits non-zero, writes nothing
    complete_code_samples = ["print('hi')", "x = 1\nprint(x)"]


@pytest.mark.docker
class TestIopubWelcome(jupyter_kernel_test.IopubWelcomeTests):
    kernel_name = "braindrill-python"
    support_iopub_welcome = True


@pytest.mark.docker
class TestJavaScriptKernel(BraindrillKernelTests):
    __test__ = True
    kernel_name = "braindrill-javascript"
    language_name = "javascript"
    file_extension = ".js"
    code_hello_world = "console.log('hello, world')"
    code_stderr = "console.error('oops')"
    code_generate_error = "process.exit(3)"
    complete_code_samples = ["console.log(1)"]
