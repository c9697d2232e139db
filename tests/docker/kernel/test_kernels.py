"""Braindrill kernels from a plain script: jupyter_client's KernelManager, real kernels over ZMQ,
real containers. Covers kernel_info, live streaming, error statuses, stop_on_error, per-cell limits,
interrupt, restart, shutdown and kill (no container left behind), the small requests, the
heartbeat, and the standalone kernel process of the kernelspecs' argv."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.kernelspec import KernelSpecManager

from tests.helpers import containers_left, eventually_sync, labelled_containers, stream_text
from tests.helpers import embedded_sandboxes as embedded_sandbox  # noqa: F401 (both kinds)
from tests.helpers import execute_cell as execute
from tests.helpers import wait_for_stream as wait_output

pytestmark = pytest.mark.usefixtures("embedded_engine")
TIMEOUT = 60


def errors(messages):
    return [m["content"] for m in messages if m["msg_type"] == "error"]


def wait_reply(kc, msg_id):
    while True:
        reply = kc.get_shell_msg(timeout=TIMEOUT)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]


@pytest.mark.parametrize(
    "language, mimetype, extension, lexer",
    [
        ("python", "text/x-python", ".py", "python3"),
        ("javascript", "application/javascript", ".js", "javascript"),
        ("java", "text/x-java", ".java", "java"),
    ],
)
def test_kernel_info(start, language, mimetype, extension, lexer):
    _, kc = start(language)
    info = kc.kernel_info(reply=True, timeout=TIMEOUT)["content"]
    lang = info["language_info"]
    assert info["status"] == "ok"
    assert info["implementation"] == "braindrill"
    assert lang["name"] == language
    assert lang["mimetype"] == mimetype
    assert lang["file_extension"] == extension
    assert lang["pygments_lexer"] == lexer
    assert lang["codemirror_mode"]
    assert lang["version"][0].isdigit(), lang  # probed from the runtime image
    assert "fresh" in info["banner"] and "carry over to the next cell" in info["banner"]


def test_kernelspec_limits_in_banner(start):
    _, kc = start("java")  # kernels/java sets timeout_s 15 and memory_mib 512
    banner = kc.kernel_info(reply=True, timeout=TIMEOUT)["content"]["banner"]
    assert "15 s, 512 MiB" in banner


def test_output_streams_while_the_cell_runs(start):
    _, kc = start()
    code = "import sys, time\nprint('first', flush=True)\ntime.sleep(4)\nprint('second')"
    msg_id = kc.execute(code)
    wait_output(kc, "first")
    assert not kc.shell_channel.msg_ready()  # the cell is still running
    assert wait_reply(kc, msg_id)["status"] == "ok"


def test_stdout_stderr_and_execution_count(start):
    _, kc = start()
    reply, msgs = execute(kc, "import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert reply["status"] == "ok" and reply["execution_count"] == 1
    assert stream_text(msgs) == "out\n" and stream_text(msgs, "stderr") == "err\n"
    assert [m["content"]["execution_count"] for m in msgs if m["msg_type"] == "execute_input"] == [
        1
    ]
    reply, _ = execute(kc, "print(2)")
    assert reply["execution_count"] == 2
    reply, msgs = execute(kc, "print(3)", silent=True)
    assert reply["status"] == "ok" and reply["execution_count"] == 2
    assert stream_text(msgs) == ""  # silent: no output published
    reply, msgs = execute(kc, "x = 1")
    reply, msgs = execute(kc, "print(y)")  # never defined
    assert reply["status"] == "error" and reply["ename"] == "NameError"
    assert stream_text(msgs, "stderr") == ""  # the error message, not a second copy on stderr


def test_failed_cell_names_status_and_exit_code(start):
    _, kc = start()
    reply, msgs = execute(kc, "import sys; sys.exit(3)")
    assert reply["status"] == "error" and reply["ename"] == "error"
    assert "exit code 3" in reply["evalue"]
    assert errors(msgs) == [{k: reply[k] for k in ("ename", "evalue", "traceback")}]


def test_timeout_and_output_limit(start):
    _, kc = start()
    reply, msgs = execute(kc, "%%limits timeout_s=2\nwhile True: pass")
    assert reply["status"] == "error" and reply["ename"] == "timeout"
    assert "2 s limit" in reply["evalue"] and errors(msgs)[0]["ename"] == "timeout"
    reply, _ = execute(kc, "%%limits output_bytes=1000\nprint('x' * 100000)")
    assert reply["ename"] == "output_limit"


def test_oom(start):
    _, kc = start()
    reply, _ = execute(kc, "%%limits memory_mib=64\nb = bytearray(512 << 20)\nprint(len(b))")
    assert reply["ename"] == "oom" and "64 MiB" in reply["evalue"]


def test_cell_limits_cannot_pass_the_maxima(start):
    _, kc = start()
    reply, msgs = execute(kc, "%%limits timeout_s=100000\nprint(1)")
    assert reply["status"] == "error" and reply["ename"] == "InvalidRequest"
    assert "maximum" in reply["evalue"] and stream_text(msgs) == ""
    reply, _ = execute(kc, "%%limits memory_mib=lots\nprint(1)")
    assert reply["ename"] == "InvalidRequest"
    reply, msgs = execute(kc, "%%limits timeout_s=5 memory_mib=128\nprint('ok')")
    assert reply["status"] == "ok" and stream_text(msgs) == "ok\n"


def test_queued_cells_after_an_error_are_aborted(start):
    _, kc = start()
    ids = [kc.execute("import sys; sys.exit(1)"), kc.execute("print(1)"), kc.execute("print(2)")]
    replies = [wait_reply(kc, i) for i in ids]
    assert [r["status"] for r in replies] == ["error", "aborted", "aborted"]
    reply, msgs = execute(kc, "print('runs again')")
    assert reply["status"] == "ok" and stream_text(msgs) == "runs again\n"
    ids = [kc.execute("import sys; sys.exit(1)", stop_on_error=False), kc.execute("print(1)")]
    assert [wait_reply(kc, i)["status"] for i in ids] == ["error", "ok"]


def test_empty_cell_runs_no_container(start):
    _, kc = start()
    reply, msgs = execute(kc, "  \n")
    assert reply["status"] == "ok" and reply["execution_count"] == 1 and stream_text(msgs) == ""


def _running_container():
    """The id of a running container of this process, once there is one."""

    def running():
        return next((c["Id"] for c in labelled_containers() if c["State"] == "running"), None)

    found = eventually_sync(running, TIMEOUT, every_s=0.1)
    assert found, "no running container"
    return found


@pytest.mark.parametrize("how", ["signal", "message"])
def test_interrupt_raises_keyboard_interrupt_and_keeps_the_state(start, how):
    km, kc = start()
    code = "import time\nn = 1\nprint('started', flush=True)\ntime.sleep(60)\nn = 2"
    msg_id = kc.execute(code)
    wait_output(kc, "started")
    _running_container()
    if how == "signal":
        km.interrupt_kernel()  # the provisioner's send_signal(SIGINT)
    else:
        msg = kc.session.msg("interrupt_request", {})
        kc.control_channel.send(msg)
        assert kc.get_control_msg(timeout=TIMEOUT)["content"]["status"] == "ok"
    reply = wait_reply(kc, msg_id)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
    assert "time.sleep(60)" in re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(reply["traceback"]))
    assert containers_left() == []
    reply, msgs = execute(kc, "print('still alive', n)")
    assert stream_text(msgs) == "still alive 1\n"  # the state up to the interrupt


def test_interrupt_kills_a_cell_that_ignores_it(start):
    km, kc = start()
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    msg_id = kc.execute(code + "print('started', flush=True)\ntime.sleep(60)")
    wait_output(kc, "started")
    _running_container()
    t0 = time.monotonic()
    km.interrupt_kernel()
    reply = wait_reply(kc, msg_id)
    assert reply["status"] == "error" and reply["ename"] == "interrupted", reply
    assert 0.9 < time.monotonic() - t0 < 10  # after the grace second, not at the 60 s
    assert containers_left(0) == []  # removed before the reply was sent


def test_interrupting_another_language_kills_its_container(start):
    km, kc = start("bash")
    msg_id = kc.execute("echo started\nsleep 60")
    wait_output(kc, "started")
    km.interrupt_kernel()
    reply = wait_reply(kc, msg_id)
    assert reply["status"] == "error" and reply["ename"] == "interrupted", reply
    assert containers_left(0) == []


@pytest.mark.parametrize("how", ["restart", "shutdown", "kill"])
def test_stopping_a_kernel_mid_cell_leaves_no_container(start, how):
    km, kc = start()
    kc.execute("import time\nprint('started', flush=True)\ntime.sleep(60)")
    wait_output(kc, "started")
    _running_container()
    if how == "restart":
        km.restart_kernel()
        kc.wait_for_ready(timeout=TIMEOUT)
        assert containers_left() == []
        reply, msgs = execute(kc, "print('restarted')")
        assert reply["execution_count"] == 1 and stream_text(msgs) == "restarted\n"
    else:
        km.shutdown_kernel(now=how == "kill")
        assert not km.is_alive()
        assert containers_left() == []


def test_small_requests_get_valid_replies(start):
    _, kc = start()
    assert wait_reply(kc, kc.is_complete("for i in range(3):")) == {
        "status": "incomplete",
        "indent": "    ",
    }
    content = kc.complete("pri", 3, reply=True, timeout=TIMEOUT)["content"]
    assert content["status"] == "ok" and "print" in content["matches"], content
    assert content["cursor_start"] == 0 and content["cursor_end"] == 3
    content = kc.inspect("print", reply=True, timeout=TIMEOUT)["content"]
    assert content["status"] == "ok" and content["found"] is True, content
    content = kc.history(reply=True, timeout=TIMEOUT)["content"]
    assert content == {"status": "ok", "history": []}  # no cell yet
    content = kc.comm_info(reply=True, timeout=TIMEOUT)["content"]
    assert content == {"status": "ok", "comms": {}}


def heartbeat(ip, port) -> bytes | None:
    """Ping a kernel's heartbeat socket (waiting for it to be bound); returns the echo."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    try:
        sock.connect(f"tcp://{ip}:{port}")
        sock.send(b"ping")
        return sock.recv() if sock.poll(TIMEOUT * 1000) else None
    finally:
        sock.close()
        ctx.term()


def test_heartbeat_echoes(start):
    km, _ = start()
    assert heartbeat(km.ip, km.hb_port) == b"ping"


def test_two_kernels_share_one_manager(start):
    km1, _ = start()
    km2, kc2 = start("javascript")
    assert km1.provisioner.kernel.engine is km2.provisioner.kernel.engine
    assert km1.provisioner.kernel_loop is km2.provisioner.kernel_loop
    assert stream_text(execute(kc2, "console.log(6 * 7)")[1]) == "42\n"


def test_standalone_kernel_process(tmp_path):
    """The kernelspecs' argv: ``python -m braindrill_ext.kernel -f ... --spec ...``."""
    spec = KernelSpecManager().get_kernel_spec("braindrill-python")
    connection_file = str(tmp_path / "kernel-standalone.json")
    info = write_connection_file(connection_file, key=os.urandom(16).hex().encode())[1]
    argv = [
        sys.executable
        if a == "python3"
        else a.format(connection_file=connection_file, resource_dir=spec.resource_dir)
        for a in spec.argv
    ]
    proc = subprocess.Popen(argv)
    try:
        assert heartbeat(info["ip"], info["hb_port"]) == b"ping"  # the process is serving
        kc = BlockingKernelClient(connection_file=connection_file)
        kc.load_connection_file()
        kc.start_channels()
        kc.wait_for_ready(timeout=TIMEOUT)
        reply, msgs = execute(kc, "print('standalone')")
        assert reply["status"] == "ok" and stream_text(msgs) == "standalone\n"
        kc.shutdown()
        assert proc.wait(timeout=TIMEOUT) == 0
        kc.stop_channels()
    finally:
        proc.kill()
    assert labelled_containers(proc.pid) == []


SCRIPT_START = """
import time
from jupyter_client.manager import KernelManager
from braindrill_ext.kernel import embedded

km = KernelManager(kernel_name="braindrill-python")
km.start_kernel()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
"""
# Ends with a warm container: the cell was a miss, so the embedded manager's pool grows.
WARM_AT_EXIT = """
kc.execute_interactive("print('cell')", timeout=60)
kc.stop_channels()
km.shutdown_kernel()
engine = embedded.kernel_loop().engine
for _ in range(100):
    pool = engine.describe_hosts()["workers"][0]["pool"].get("python", {})
    if pool.get("ready"):
        break
    time.sleep(0.1)
print("warm containers", "yes" if pool.get("ready") else "none")
"""
# Ends with a cell still running in its container, and the kernel never shut down.
RUNNING_AT_EXIT = """
kc.execute("import time; print('started', flush=True); time.sleep(120)")
while kc.get_iopub_msg(timeout=60)["content"].get("text") != "started\\n":
    pass
print("running", embedded.kernel_loop().engine.describe_hosts()["workers"][0]["running"])
"""


@pytest.mark.parametrize(
    "ending, said",
    [(WARM_AT_EXIT, "warm containers yes"), (RUNNING_AT_EXIT, "running 1")],
    ids=["warm container", "running cell"],
)
def test_a_script_leaves_no_container_at_exit(tmp_path, ending, said):
    """The containers of a plain script's embedded manager are removed when it exits."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT_START + ending)
    # Not this module's configuration (pools off): the script reads the user's, pools on.
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_DIR"}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert said in out, (out, err)  # the container was there when the script ended
    assert labelled_containers(proc.pid) == []
