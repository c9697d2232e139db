"""A slot runner's channel: a unix socket between the engine and the runner's relay, for a worker
host whose Docker Engine runs on the server's own machine. It carries what the attach stream
carries (``attach.py``: the engine's frames in; stdout and stderr out, in 8-byte-header frames),
without the engine's copies in between: measured here, a 7 MiB state went to a container and
back in 50 ms through attach, in 5 ms through a socket.

The engine listens on ``<private dir>/<runner>/channel`` (the private dir is the server's alone,
0700, and exists only while a runner is being started); the runner container gets ``<runner>/``
bind-mounted read-only at ``MOUNT``. Its relay connects once it has the runner token (from the
attach stream) and sends it back first. The engine takes the first connection that sends it, then
removes the socket's path and closes the listener, all before the first payload: no sandbox can
ever reach it, and nobody else can pose as the runner. A relay that cannot reach it (the engine's
files are not the server's: a server in a container, a remote engine behind a local socket) says so
on the attach stream, which then stays its channel, and the host stops trying
(``WorkerHost.channel``).
"""

from __future__ import annotations

import hmac
import os
import select
import shutil
import socket
import tempfile
import threading
import time

from . import attach

MOUNT = "/run/braindrill"  # where a runner sees its own directory
NAME = "channel"  # the socket's name in it
HELLO_TIMEOUT_S = 5.0  # a connection has this long to send the token
_base: str | None = None  # the server's directory of runner directories, while it has one
_base_lock = threading.Lock()


def _runner_dir() -> str:
    """A new runner directory (0755) in the server's own (0700), made if needed."""
    global _base
    with _base_lock:
        if _base is None or not os.path.isdir(_base):
            _base = tempfile.mkdtemp(prefix="braindrill-channels-")
        directory = tempfile.mkdtemp(dir=_base)
    os.chmod(directory, 0o755)  # the runner's user (65534) connects
    return directory


def _remove_dir(directory: str) -> None:
    """Remove a runner directory, and the server's once no runner's is left in it: nothing
    stays on disk between runner starts, even if the server is killed."""
    global _base
    shutil.rmtree(directory, ignore_errors=True)
    with _base_lock:
        if _base is not None:
            try:
                os.rmdir(_base)
                _base = None
            except FileNotFoundError:
                _base = None
            except OSError:
                pass  # another runner's is there


class Listener:
    """One runner's listening socket, until its relay has connected (``accept``) or it gave up
    (``close``). Nothing of it is left on disk after either."""

    def __init__(self):
        self.directory = _runner_dir()
        self.path = os.path.join(self.directory, NAME)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.bind(self.path)
            os.chmod(self.path, 0o666)
            self.sock.listen(4)
        except OSError:
            self.close()
            raise

    def bind(self) -> dict:
        """The container's bind mount of the runner's directory (``create_host_config(binds=)``)."""
        return {self.directory: {"bind": MOUNT, "mode": "ro"}}

    def accept(self, token: bytes, deadline: float) -> socket.socket | None:
        """The connection that sends ``token`` + ``\\n`` first (others are closed), before the
        monotonic ``deadline``; None at it."""
        hello = token + b"\n"
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.sock], [], [], left)[0]:
                break
            conn, _ = self.sock.accept()
            conn.settimeout(min(HELLO_TIMEOUT_S, max(0.01, deadline - time.monotonic())))
            try:
                said = attach.read_exactly(conn, len(hello)) or b""
            except OSError:
                said = b""
            if hmac.compare_digest(said, hello):
                conn.settimeout(None)
                self.close()
                return conn
            conn.close()
        return None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            _remove_dir(self.directory)
