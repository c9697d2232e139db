"""The files of a state: a session's work directory between executions, read and written by the
server as a tar archive in memory.

A state (``state.py``; format in ``sandbox/protocol.py``) is a tar made in a sandbox: the work
directory's regular files and, for Python, ``NAMESPACE`` (the pickled variables). The functions
here read and write only its files: regular members with checked names, never extracted to the
server's disk, never anything run or unpickled. ``NAMESPACE`` is carried as it came, bytes for
bytes, first in the archive as the sandbox writes it. What they write is what a sandbox restores:
plain USTAR, regular files only (no directory members: the restore makes parent folders), each
header and its data in 512-byte blocks, then 1024 bytes of end; a name too long for USTAR is
refused. Pure functions of bytes, unit-tested without Docker; the engine calls them under a
session's lock (``ExecutionEngine.read_state_file`` and the like).
"""

from __future__ import annotations

import base64
import fnmatch
import io
import tarfile
import time
from dataclasses import dataclass

from ..errors import BadFilePath, BadState, StateTooLarge, UnknownFile
from ..execution import Execution, Result, Status
from ..sandbox.protocol import JOB_DIR, NAMESPACE

BLOCK = 512
END = bytes(2 * BLOCK)
SANDBOX_ID = 65534  # the owner of what a sandbox writes (its user, nobody)
MAX_PATTERNS = 32


@dataclass
class Member:
    """One regular file of a state: its USTAR header fields and its bytes."""

    path: str
    data: bytes
    mode: int = 0o644
    mtime: int = 0

    def header(self) -> bytes:
        info = tarfile.TarInfo(self.path)
        info.size, info.mode, info.mtime = len(self.data), self.mode & 0o777, self.mtime
        info.uid = info.gid = SANDBOX_ID
        try:
            return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
        except ValueError as e:  # a name USTAR cannot hold (the restore reads USTAR only)
            raise BadFilePath(f"the path {self.path!r} is too long for a state: {e}") from e


def check_path(path: str, reserved: tuple[str, ...] = ()) -> str:
    """``path`` if it is a plain relative path inside the work directory: not empty, not
    absolute, no ``.``, ``..`` or empty parts, no newline or NUL, not under ``.braindrill/`` and
    not one of ``reserved`` (the language's source file, which every execution writes). Raises
    ``BadFilePath`` naming the rule."""
    parts = path.split("/")
    if not path or path.startswith("/") or "" in parts or "." in parts or ".." in parts:
        raise BadFilePath(
            f"bad file path {path!r}: use a relative path inside the work directory, without "
            "'.', '..' or empty parts"
        )
    if parts[0] == JOB_DIR:
        raise BadFilePath(f"bad file path {path!r}: {JOB_DIR}/ holds the sandbox's own files")
    if "\n" in path or "\0" in path or len(path.encode()) > 255:
        raise BadFilePath(f"bad file path {path!r}: no newline or NUL, at most 255 bytes")
    if path in reserved:
        raise BadFilePath(f"bad file path {path!r}: every execution writes its code there")
    return path


def check_patterns(patterns) -> list[str]:
    """The ``return_files`` of a request: a list of glob patterns relative to the work directory
    (``fnmatch``: ``*`` also matches ``/``). Raises ``BadFilePath`` (an ``InvalidRequest``)."""
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise BadFilePath("'return_files' must be a list of glob patterns (strings)")
    if len(patterns) > MAX_PATTERNS:
        raise BadFilePath(f"'return_files' has {len(patterns)} patterns; at most {MAX_PATTERNS}")
    for pattern in patterns:
        parts = pattern.split("/")
        if not pattern or pattern.startswith("/") or ".." in parts or len(pattern) > 255:
            raise BadFilePath(
                f"bad pattern {pattern!r} in 'return_files': a glob relative to the work "
                "directory, without '..'"
            )
        if "\n" in pattern or "\0" in pattern:
            raise BadFilePath(f"bad pattern {pattern!r} in 'return_files': no newline or NUL")
    return patterns


def members(blob: bytes) -> tuple[Member | None, list[Member]]:
    """The state's ``NAMESPACE`` member (None without one) and its other regular files, in the
    archive's order. Members that are not regular files, or whose names leave the work directory
    or lie under ``.braindrill/``, are left out. Raises ``BadState`` for an archive that cannot
    be read."""
    if not blob:
        return None, []
    namespace, files = None, []
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
            for info in tar:
                if not info.isreg():
                    continue
                name = info.name.removeprefix("./")
                handle = tar.extractfile(info)
                data = handle.read() if handle is not None else b""
                if len(data) != info.size:
                    raise BadState(f"the state's file {name!r} is cut short")
                member = Member(name, data, info.mode, int(info.mtime))
                if name == NAMESPACE:
                    namespace = member
                    continue
                try:
                    check_path(name)
                except BadFilePath:
                    continue
                files.append(member)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BadState(f"the session's state cannot be read: {e}") from e
    return namespace, files


def pack(namespace: Member | None, files: list[Member]) -> bytes:
    """A state of ``namespace`` (first, as its bytes came) and ``files``, as a sandbox restores
    it; b"" (an empty state) when there is nothing."""
    if namespace is None and not files:
        return b""
    out = io.BytesIO()
    for member in ([namespace] if namespace else []) + files:
        out.write(member.header())
        out.write(member.data)
        out.write(bytes(-len(member.data) % BLOCK))
    out.write(END)
    return out.getvalue()


def list_files(blob: bytes) -> list[dict]:
    """The work directory's files in a state: ``{"path", "size", "mtime"}`` (epoch seconds),
    sorted by path."""
    _, files = members(blob)
    return sorted(
        ({"path": m.path, "size": len(m.data), "mtime": m.mtime} for m in files),
        key=lambda f: f["path"],
    )


def read_file(blob: bytes, path: str) -> bytes:
    """The bytes of ``path`` in a state. Raises ``BadFilePath``, ``UnknownFile``."""
    check_path(path)
    _, files = members(blob)
    for member in files:
        if member.path == path:
            return member.data
    raise UnknownFile(path)


def write_file(blob: bytes, path: str, data: bytes, cap: int, reserved=()) -> bytes:
    """The state with ``path`` holding ``data`` (replaced, keeping its mode, or added), at most
    ``cap`` bytes of tar. Raises ``StateTooLarge``, or ``BadFilePath`` for a bad path
    (``check_path`` with ``reserved``), a parent of it that is a file, or a folder at it."""
    check_path(path, reserved)
    namespace, files = members(blob)
    kept = [m for m in files if m.path != path]
    for member in kept:
        if path.startswith(member.path + "/"):
            raise BadFilePath(f"bad file path {path!r}: {member.path!r} is a file")
        if member.path.startswith(path + "/"):
            raise BadFilePath(f"bad file path {path!r}: it is a folder (of {member.path!r})")
    mode = next((m.mode for m in files if m.path == path), 0o644)
    kept.append(Member(path, data, mode, int(time.time())))
    new = pack(namespace, kept)
    if len(new) > cap:
        raise StateTooLarge(
            f"with {path!r} ({len(data)} bytes) the session's state would be {len(new)} bytes "
            f"of tar, over its cap of {cap} bytes (state_mib)"
        )
    return new


def with_files(blob: bytes, files: dict[str, tuple[bytes, int]], cap: int) -> bytes:
    """The state with exactly ``files`` (path → (bytes, mtime)) as its files, its ``NAMESPACE``
    kept. Raises ``BadFilePath`` for a bad path, ``StateTooLarge`` over ``cap`` bytes of tar."""
    namespace, _ = members(blob)
    new = pack(namespace, [Member(check_path(p), d, 0o644, t) for p, (d, t) in files.items()])
    if len(new) > cap:
        raise StateTooLarge(
            f"the files ({len(new)} bytes of tar) are over the state's cap of {cap} bytes"
        )
    return new


def delete_file(blob: bytes, path: str) -> bytes:
    """The state without ``path``. Raises ``BadFilePath``, ``UnknownFile``."""
    check_path(path)
    namespace, files = members(blob)
    kept = [m for m in files if m.path != path]
    if len(kept) == len(files):
        raise UnknownFile(path)
    return pack(namespace, kept)


def pick_files(blob: bytes, patterns: list[str], cap: int) -> tuple[list[dict], str | None]:
    """The files of a state that match ``patterns`` (``return_files``), sorted by path, as
    ``{"path", "size", "base64"}``, as many as fit in ``cap`` bytes (``return_files_bytes``,
    of file contents); and a note naming what was over the cap and the patterns that matched
    nothing (None when all is there)."""
    _, files = members(blob)
    matched = sorted(
        (m for m in files if any(fnmatch.fnmatchcase(m.path, p) for p in patterns)),
        key=lambda m: m.path,
    )
    picked, over, total = [], [], 0
    for member in matched:
        if total + len(member.data) > cap:
            over.append(f"{member.path} ({len(member.data)} bytes)")
            continue
        total += len(member.data)
        encoded = base64.b64encode(member.data).decode("ascii")
        picked.append({"path": member.path, "size": len(member.data), "base64": encoded})
    notes = []
    if over:
        notes.append(
            f"not returned (over return_files_bytes, {cap} bytes in all): {', '.join(over)}"
        )
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(m.path, p) for m in files)]
    if unmatched:
        notes.append(f"no file matches {', '.join(repr(p) for p in unmatched)}")
    return picked, "; ".join(notes) or None


def return_files(execution: Execution, result: Result, kept: bytes) -> None:
    """Fill ``result.files`` with what ``execution.return_files`` asked for, from the work
    directory the sandbox sent back (``result.state``: a session's new state, or a stateless
    request's tar of the matching files), or from ``kept`` when the sandbox left the state as it
    came; ``files_message`` says what is not there. Called by the engine's ``run``."""
    if result.state is not None:
        blob = result.state
    elif result.state_unchanged:
        blob = kept
    else:
        status = result.status
        why = "" if status in (Status.OK, Status.ERROR) else f" (status {status.value})"
        result.files_message = f"no files returned: the work directory did not come back{why}"
        return
    try:
        result.files, result.files_message = pick_files(
            blob, execution.return_files, execution.limits.return_files_bytes
        )
    except BadState as e:
        result.files_message = f"no files returned: {e}"
