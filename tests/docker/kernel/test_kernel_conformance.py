"""The Jupyter kernel conformance suite (``jupyter_kernel_test``) against real Braindrill kernels,
with the samples a user would write: a raised exception, an expression's result, ``display()``,
``clear_output``, complete, incomplete and invalid cells, Tab completion, Shift+Tab help and the
history (tail, range, search).

Skipped by leaving their samples empty, and why:
- ``test_pager``: no pager payloads (``?`` help runs in the container and prints).
- JavaScript: no rich display (its programs show files through ``$BRAINDRILL_DISPLAY``, tested in
  ``tests/docker/kernel/test_cells.py``), ``is_complete`` answers ``unknown``, and help
  (``inspect``) is Python's only.
"""

from __future__ import annotations

import jupyter_kernel_test
import pytest

from braindrill_ext.kernel import embedded
from tests.helpers import TIMEOUT, containers_left, warm_for_cells

pytestmark = pytest.mark.usefixtures("embedded_engine")


@pytest.fixture(scope="module")
def embedded_config():
    """Warm pools on, as a user's engine has them (the engine's teardown checks that none of
    their containers is left)."""
    return {"WarmPools": {"enabled": True}}


class BraindrillKernelTests(jupyter_kernel_test.KernelTests):
    __test__ = False  # only the language classes below run

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        assert containers_left(include_pooled=False) == []

    supported_history_operations = ("tail", "range", "search")


class TestPythonKernel(BraindrillKernelTests):
    __test__ = True
    kernel_name = "braindrill-python"
    language_name = "python"
    file_extension = ".py"
    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('oops', file=sys.stderr)"
    code_generate_error = "raise ValueError('something went wrong')"
    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": "'a' + 'b'", "result": "'ab'"},
        {"code": "x = [1, 2]\nx + [3]", "result": "[1, 2, 3]"},
    ]
    code_display_data = [
        {"code": "from IPython.display import display\ndisplay(1)", "mime": "text/plain"},
        {"code": "from IPython.display import HTML, display\ndisplay(HTML('<b>b</b>'))",
         "mime": "text/html"},
        {"code": "from IPython.display import Markdown\ndisplay(Markdown('*m*'))",
         "mime": "text/markdown"},
    ]  # fmt: skip
    code_clear_output = "from IPython.display import clear_output\nclear_output()"
    completion_samples = [{"text": "zi", "matches": {"zip"}}]
    code_inspect_sample = "print"
    code_history_pattern = "6 *"
    complete_code_samples = ["print('hi')", "x = 1\nprint(x)", "def f():\n    return 1\n"]
    incomplete_code_samples = ["print('''hello", "def f():", "for i in range(3):"]
    invalid_code_samples = ["x = ]", "1 +* 2"]

    @classmethod
    def setUpClass(cls):
        """The kernel, after a first cell, with a warm sandbox for the next (as when a person
        types after a cell): the completion and help samples run in a sandbox within ~2 s."""
        super().setUpClass()
        cls.kc.execute_interactive("pass", timeout=TIMEOUT)
        warm_for_cells(embedded.kernel_loop().engine, cls.kernel_name.removeprefix("braindrill-"))


class TestPythonDataKernel(TestPythonKernel):
    kernel_name = "braindrill-python-data"
    code_display_data = [
        *TestPythonKernel.code_display_data,
        {"code": "import pandas as pd\ndisplay(pd.DataFrame({'a': [1, 2]}))", "mime": "text/html"},
        {"code": "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()",
         "mime": "image/png"},
    ]  # fmt: skip


class TestIopubWelcome(jupyter_kernel_test.IopubWelcomeTests):
    kernel_name = "braindrill-python"
    support_iopub_welcome = True


class TestJavaScriptKernel(BraindrillKernelTests):
    __test__ = True
    kernel_name = "braindrill-javascript"
    language_name = "javascript"
    file_extension = ".js"
    code_hello_world = "console.log('hello, world')"
    code_stderr = "console.error('oops')"
    code_generate_error = "throw new Error('something went wrong')"
    completion_samples = [{"text": "cons", "matches": {"console", "const"}}]
    # No is_complete samples: the kernel answers "unknown" for every language but Python
    # (tests/docker/kernel/test_cells.py checks that).
