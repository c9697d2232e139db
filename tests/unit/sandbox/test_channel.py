"""The engine's end of a runner's channel (``sandbox/channel.py``): it takes only the connection
that sends the runner token, leaves nothing on disk, and lets no one but the server reach its
directory. Real runners on it: tests/docker/sandbox/test_channel.py."""

from __future__ import annotations

import os
import socket
import stat
import time

import pytest

from braindrill_ext.sandbox import channel


def connect(path: str, hello: bytes | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    if hello is not None:
        sock.sendall(hello)
    return sock


def test_only_the_runner_token_gets_in(monkeypatch):
    """A silent connection and one with a wrong token are closed; the runner's is taken, and
    then the socket's path and directory are gone."""
    monkeypatch.setattr(channel, "HELLO_TIMEOUT_S", 0.2)
    listener = channel.Listener()
    base = os.path.dirname(listener.directory)
    assert stat.S_IMODE(os.stat(base).st_mode) == 0o700  # the server's alone
    assert listener.bind() == {listener.directory: {"bind": channel.MOUNT, "mode": "ro"}}
    silent = connect(listener.path, None)
    wrong = connect(listener.path, b"0123456789abcdef\n")
    right = connect(listener.path, b"fedcba9876543210\n")
    conn = listener.accept(b"fedcba9876543210", time.monotonic() + 5)
    assert conn is not None
    right.sendall(b"frames")
    assert conn.recv(16) == b"frames"
    for refused in (silent, wrong):
        refused.settimeout(1)
        assert refused.recv(16) == b""  # closed by the engine
    listener.close()
    assert not os.path.exists(listener.directory)
    assert not os.path.exists(base)  # no runner is starting: the server's directory goes too
    for sock in (silent, wrong, right, conn):
        sock.close()


def test_no_runner_by_the_deadline():
    listener = channel.Listener()
    started = time.monotonic()
    assert listener.accept(b"token", time.monotonic() + 0.3) is None
    assert time.monotonic() - started < 2
    listener.close()
    listener.close()  # twice: nothing left, no error
    assert not os.path.exists(listener.directory)


def test_a_connection_after_close_is_refused():
    listener = channel.Listener()
    listener.close()
    with pytest.raises(OSError):
        connect(listener.path, b"token\n")
