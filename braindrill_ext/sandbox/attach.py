"""A container's attach stream, as the Docker Engine serves it: one socket (unix, TLS or SSH)
whose input is the program's stdin and whose output is stdout and stderr in frames of an 8-byte
header (stream, size) and the bytes. Blocking calls, for a worker host's threads."""

from __future__ import annotations

import os
import select
import socket
import struct

STDOUT, STDERR = 1, 2
CHUNK = 1 << 20  # the most one read takes: a slot runner's relay sends a state in 1 MiB frames


def raw(sock):
    """The object to send on and set timeouts on, for unix (SocketIO), TLS and SSH sockets."""
    return getattr(sock, "_sock", sock)


def frames(sock):
    """``(stream, bytes)`` as the attach stream delivers them, until it ends."""
    while True:
        header = read_exactly(sock, 8)
        if header is None:
            return
        stream, size = struct.unpack(">BxxxL", header)
        while size:
            chunk = recv(sock, min(size, CHUNK))
            if not chunk:
                return
            size -= len(chunk)
            yield stream, chunk


def readable(sock) -> bool:
    """Whether the socket has data or end-of-stream waiting (poll: no FD_SETSIZE limit)."""
    try:
        poller = select.poll()
        poller.register(_pollable(sock), select.POLLIN | select.POLLHUP | select.POLLERR)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def recv(sock, n: int) -> bytes:
    sock = raw(sock)
    if hasattr(sock, "recv"):
        return sock.recv(n)
    return os.read(sock.fileno(), n)


def read_exactly(sock, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = recv(sock, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def close(sock) -> None:
    try:  # wakes a thread blocked reading it (close alone does not)
        raw(sock).shutdown(socket.SHUT_RDWR)
    except Exception:
        pass
    for obj in (getattr(sock, "_response", None), sock, raw(sock)):
        try:
            if obj is not None:
                obj.close()
        except Exception:
            pass


def _pollable(sock):
    sock = raw(sock)
    proc = getattr(sock, "proc", None)  # docker's SSHSocket: the stream is `ssh`'s stdout
    return proc.stdout if proc is not None else sock
