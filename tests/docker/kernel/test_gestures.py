"""A notebook's everyday gestures on real Braindrill kernels (both Python kernels, both sandbox
kinds), as a front end sends them over ZMQ: Tab completion from the live state, Shift+Tab help,
``input()`` and ``getpass()`` on the stdin channel, history, and what a cell keeps that used to be
lost (closed files, ``get_ipython()``). Interrupt is in ``test_kernels.py``."""

from __future__ import annotations

import functools
import time

import pytest

from tests.helpers import embedded_sandboxes as embedded_sandbox  # noqa: F401 (both kinds)
from tests.helpers import execute_cell, result_text, stream_text, warm_for_cells

pytestmark = pytest.mark.usefixtures("embedded_engine")
TIMEOUT = 60
PYTHONS = ["python", "python-data"]


@pytest.fixture(scope="module")
def embedded_config():
    """Warm pools on, as a user's engine has them: a completion's ~2 s deadline counts from its
    code's delivery, and a cold python-data container spends ~1.5 s of it on its preloads."""
    return {"WarmPools": {"enabled": True}}


def ok(kc, code, **kwargs):
    reply, messages = execute_cell(kc, code, **kwargs)
    assert reply["status"] == "ok", reply
    return messages


@pytest.fixture
def warm(embedded_engine):
    """``warm(language)``: wait until the pools hold a warm sandbox for its cells."""
    return functools.partial(warm_for_cells, embedded_engine)


def complete(kc, code, pos=None):
    pos = len(code) if pos is None else pos
    return kc.complete(code, pos, reply=True, timeout=TIMEOUT)["content"]


def inspect(kc, code, pos):
    return kc.inspect(code, pos, reply=True, timeout=TIMEOUT)["content"]


def applied(content: dict, code: str) -> set[str]:
    """The code as each match would leave it (a match replaces cursor_start:cursor_end)."""
    assert content["status"] == "ok" and content["cursor_end"] == len(code), content
    return {code[: content["cursor_start"]] + match for match in content["matches"]}


@pytest.mark.parametrize("language", PYTHONS)
def test_tab_completes_attributes_and_earlier_names(start, warm, language):
    _, kc = start(language)
    ok(kc, "class Box:\n    width = 3\n\nbox = Box()\nframe = {'a': 1}")
    warm(language)
    assert "box.width" in applied(complete(kc, "box.wi"), "box.wi")
    warm(language)
    content = complete(kc, "fra")
    assert "frame" in content["matches"] and content["cursor_start"] == 0, content
    warm(language)
    content = complete(kc, "import os; os.pa")
    assert "import os; os.path" in applied(content, "import os; os.pa"), content
    types = content["metadata"]["_jupyter_types_experimental"]
    assert {"start", "end", "text", "type"} <= set(types[0]), types


def test_tab_completes_a_dataframes_columns_and_methods(start, warm):
    _, kc = start("python-data")
    ok(kc, "import pandas as pd\ndf = pd.DataFrame({'alpha': [1, 2], 'beta': [3, 4]})")
    warm("python-data")
    wanted = {"df.alpha", "df.beta", "df.groupby", "df.describe"}
    assert wanted <= applied(complete(kc, "df."), "df.")


@pytest.mark.parametrize("language", PYTHONS)
def test_shift_tab_shows_signatures_and_docstrings(start, warm, language):
    _, kc = start(language)
    warm(language)
    content = inspect(kc, "len(", 3)
    assert content["status"] == "ok" and content["found"] is True, content
    assert "Return the number of items" in content["data"]["text/plain"], content
    ok(kc, "def area(width, height=2):\n    'The area of a rectangle.'\n    return width * height")
    warm(language)
    content = inspect(kc, "area(", 4)
    text = content["data"]["text/plain"]
    assert content["found"] and "width, height=2" in strip(text), text
    assert "The area of a rectangle." in text, text
    warm(language)
    content = inspect(kc, "no_such_name", 5)
    assert content == {"status": "ok", "found": False, "data": {}, "metadata": {}}


def strip(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_completion_and_help_never_change_the_state(start):
    _, kc = start("python")
    code = (
        "calls = []\n"
        "class Tracked:\n"
        "    @property\n"
        "    def inner(self):\n"
        "        calls.append(1)\n"
        "        return self\n"
        "t = Tracked()\nopen('kept.txt', 'w').write('kept')"
    )
    ok(kc, code)
    complete(kc, "t.inner.inn")  # the completer evaluates t.inner: in a sandbox of its own
    kc.inspect("t.inner", 7, reply=True, timeout=TIMEOUT)
    messages = ok(kc, "len(calls), open('kept.txt').read()")
    assert result_text(messages) == "(0, 'kept')"


def test_a_completion_past_its_deadline_gets_the_kernels_words(start):
    # Every sandbox of this kernel sleeps 5 s restoring its state: the completion's sandbox is
    # stopped at its ~2 s deadline, and the kernel answers from what it has (the names of the
    # cells, Python's keywords and builtins); help finds nothing.
    _, kc = start("python")
    ok(kc, "import time\nclass Slow:\n    def __reduce__(self):\n        return (time.sleep, (5,))")
    ok(kc, "zebra_count = 3\nslow_to_restore = Slow()")
    assert complete(kc, "zebra_c")["matches"] == ["zebra_count"]
    content = complete(kc, "x = zi")
    assert (content["matches"], content["cursor_start"]) == (["zip"], 4)
    assert inspect(kc, "zebra_count", 5)["found"] is False
    assert result_text(ok(kc, "zebra_count")) == "3"  # the state is untouched


def test_other_languages_complete_earlier_names_and_keywords(start):
    _, kc = start("javascript")
    ok(kc, "let alphabet = 'abc';\nconsole.log(alphabet);")
    assert "alphabet" in complete(kc, "alph")["matches"]
    content = complete(kc, "x = 1; cons")
    assert {"console", "const"} <= set(content["matches"]) and content["cursor_start"] == 7


def run_with_input(kc, code: str, answers: list[str], wait_s: float = 0.0):
    """Run a cell with ``allow_stdin``, answering its input requests on the stdin channel in
    turn (each ``wait_s`` after it came, as a person typing). Returns (the reply's content, the
    requests, the cell's stdout)."""
    msg_id = kc.execute(code, allow_stdin=True)
    asked: list[dict] = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if kc.stdin_channel.msg_ready():
            asked.append(kc.get_stdin_msg(timeout=1)["content"])
            time.sleep(wait_s)
            kc.input(answers[len(asked) - 1])
        if kc.shell_channel.msg_ready():
            reply = kc.get_shell_msg(timeout=1)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        time.sleep(0.01)
    else:
        raise AssertionError("no reply")
    out = []
    while True:  # the cell's output, up to its idle status
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
    return reply["content"], asked, "".join(out)


@pytest.mark.parametrize("language", PYTHONS)
def test_input_and_getpass_ask_the_front_end(start, language):
    _, kc = start(language)
    code = "import getpass\nname = input('Name? ')\nword = getpass.getpass()\nprint(len(word))"
    reply, asked, out = run_with_input(kc, code, ["Ada", "s3cret"])
    assert reply["status"] == "ok", reply
    assert asked == [
        {"prompt": "Name? ", "password": False},
        {"prompt": "Password: ", "password": True},
    ]
    assert out == "6\n"
    assert result_text(ok(kc, "name, word")) == "('Ada', 's3cret')"


def test_waiting_for_the_user_does_not_count_against_the_timeout(start):
    _, kc = start("python")
    code = "%%limits timeout_s=2\nprint('you said', input('? '))"
    reply, asked, out = run_with_input(kc, code, ["late"], wait_s=3)  # past its timeout_s
    assert reply["status"] == "ok", reply
    assert asked == [{"prompt": "? ", "password": False}] and out == "you said late\n"


def test_input_without_stdin_is_ipykernels_error(start):
    _, kc = start("python")
    reply, _ = execute_cell(kc, "input('? ')")
    assert reply["ename"] == "StdinNotImplementedError", reply
    assert reply["evalue"] == (
        "raw_input was called, but this frontend does not support input requests."
    )


def test_history_answers_tail_range_and_search_and_the_cells_see_it(start):
    _, kc = start("python")
    cells = ["a = 1", "b = a + 1", "print(a + b)"]
    for cell in cells:
        ok(kc, cell)
    history = kc.history(hist_access_type="tail", n=2, reply=True, timeout=TIMEOUT)["content"]
    assert history["history"] == [[1, 2, "b = a + 1"], [1, 3, "print(a + b)"]]
    content = kc.history(
        hist_access_type="range", session=0, start=1, stop=3, output=True, reply=True,
        timeout=TIMEOUT,
    )["content"]  # fmt: skip
    assert content["history"] == [[1, 1, ["a = 1", None]], [1, 2, ["b = a + 1", None]]]
    content = kc.history(hist_access_type="search", pattern="b*", reply=True, timeout=TIMEOUT)
    assert content["content"]["history"] == [[1, 2, "b = a + 1"]]
    messages = ok(kc, "%history -n 1-3")
    assert stream_text(messages) == "   1: a = 1\n   2: b = a + 1\n   3: print(a + b)\n"
    assert result_text(ok(kc, "In[2], _i3")) == "('b = a + 1', 'print(a + b)')"


@pytest.mark.parametrize("language", PYTHONS)
def test_closed_files_and_the_shell_are_kept_silently(start, language):
    _, kc = start(language)
    reply, messages = execute_cell(
        kc, "with open('notes.txt', 'w') as f:\n    f.write('n')\nip = get_ipython()"
    )
    assert reply["status"] == "ok" and stream_text(messages, "stderr") == "", messages
    code = "f.name, f.mode, f.closed, ip is get_ipython(), open('notes.txt').read()"
    assert result_text(ok(kc, code)) == "('notes.txt', 'w', True, True, 'n')"


@pytest.mark.parametrize("language", ["javascript", "typescript"])
def test_an_uncaught_exception_is_one_error_in_javascript_and_typescript(start, language):
    _, kc = start(language)
    reply, messages = execute_cell(kc, "console.log('before');\nthrow new RangeError('drill');")
    assert reply["ename"] == "RangeError" and reply["evalue"] == "drill", reply
    assert reply["traceback"][0] == "RangeError: drill" and "main.js" in reply["traceback"][1]
    errors = [m["content"] for m in messages if m["msg_type"] == "error"]
    assert len(errors) == 1 and stream_text(messages) == "before\n"
    assert stream_text(messages, "stderr") == "", messages
    reply, messages = execute_cell(kc, "Promise.reject(new Error('later'));")
    assert (reply["ename"], reply["evalue"]) == ("Error", "later"), reply


def test_comms_go_out_on_iopub_and_a_message_to_an_ended_cell_gets_a_note(start):
    _, kc = start("python")
    code = "from comm import create_comm\nc = create_comm('braindrill-test', data={'a': 1})"
    messages = ok(kc, code)
    opened = [m["content"] for m in messages if m["msg_type"] == "comm_open"]
    assert len(opened) == 1 and opened[0]["target_name"] == "braindrill-test", messages
    assert opened[0]["data"] == {"a": 1}
    comm_id = opened[0]["comm_id"]
    messages = ok(kc, "c.send({'b': 2})")  # the comm, carried to the next cell
    sent = [m["content"] for m in messages if m["msg_type"] == "comm_msg"]
    assert sent == [{"comm_id": comm_id, "data": {"b": 2}}], messages
    kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"c": 3}}))
    seen = []
    while not any(m["msg_type"] == "comm_close" for m in seen):
        seen.append(kc.get_iopub_msg(timeout=TIMEOUT))
    notes = [m["content"]["text"] for m in seen if m["msg_type"] == "stream"]
    assert any(f"comm {comm_id} cannot receive messages" in note for note in notes), seen
