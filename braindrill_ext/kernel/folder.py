"""The notebook's own folder: a kernel's working directory, as Jupyter passes it, seen by every
cell as ``/work``, and what a cell writes there written back.

Before a cell the folder's current files become the files of the kernel's state (the folder is
the truth for files; the state keeps the variables); after it, the files the cell created or
changed are written into the folder and those it deleted are deleted there, so they appear in
JupyterLab's file browser (the last writer wins). Rules, all checked here on the server:

- the folder is the ``cwd`` the kernel manager was given (the Jupyter server computes it from a
  notebook's path), only if it lies inside the server's root directory (for a script: inside its
  current directory), and never ``/`` or a whole home directory. A client's
  ``KERNEL_WORKING_DIR`` names the client's machine and is never read;
- nothing outside it is read or written: symlinks, special files and names that would leave it
  are refused, and so is a write through a symlinked or special parent;
- hidden directories are left out; notebooks (``.ipynb``) and hidden files are read, never
  changed or deleted;
- ``max_mib`` and ``max_files`` cap what is read; what is left out is named.

The operator turns it off with ``NotebookFolder.enabled = False``; a user with a first line
``%folder off`` (``%folder on`` again) for the rest of the kernel's life.
"""

from __future__ import annotations

import os
import pwd
import stat
import tempfile

from traitlets import Bool, Integer
from traitlets.config import LoggingConfigurable

MAGIC = "%folder"


class NotebookFolder(LoggingConfigurable):
    """The operator's settings, read from the engine's configuration."""

    enabled = Bool(
        True,
        config=True,
        help="Cells of a kernel see its notebook's folder as their work directory, and what they "
        "write there is written back into it (inside the server's root directory only).",
    )
    max_mib = Integer(16, config=True, help="The most of a notebook's folder a cell gets, in MiB.")
    max_files = Integer(500, config=True, help="The most files of a notebook's folder a cell gets.")


def resolve(cwd: str | None, root: str) -> tuple[str | None, str | None]:
    """The kernel's folder for the kernel manager's ``cwd`` and the server's root directory, or
    (None, why not)."""
    if not cwd:
        return None, None
    folder, top = os.path.realpath(cwd), os.path.realpath(root)
    if folder != top and not folder.startswith(top.rstrip("/") + "/"):
        return None, f"{cwd} is outside the server's root directory {root}"
    if folder == "/" or folder in _homes():
        return None, f"{folder} is / or a whole home directory"
    if not os.path.isdir(folder):
        return None, f"{cwd} is not a directory"
    return folder, None


def _homes() -> set[str]:
    homes = {os.path.realpath(os.path.expanduser("~"))}
    try:
        homes.update(os.path.realpath(user.pw_dir) for user in pwd.getpwall() if user.pw_dir)
    except OSError:
        pass
    return homes


def split_magic(code: str) -> tuple[bool | None, str]:
    """A first line ``%folder on|off``: (True|False, the rest); else (None, the code)."""
    first, _, rest = code.partition("\n")
    words = first.split()
    if words[:1] == [MAGIC] and len(words) == 2 and words[1] in ("on", "off"):
        return words[1] == "on", rest
    return None, code


def read(folder: str, max_bytes: int, max_files: int, reserved=()) -> tuple[dict, list[str]]:
    """The folder's regular files, path → (bytes, mtime), within the caps; and what was left
    out (over a cap, ``reserved``: the cell's own source file, or refused: a symlink, a special
    file)."""
    files: dict[str, tuple[bytes, int]] = {}
    left: list[str] = []
    used = 0
    for root, dirs, names in os.walk(folder):  # never follows a symlinked directory
        relative = os.path.relpath(root, folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = name if relative == "." else f"{relative}/{name}"
            if path in reserved:
                left.append(f"{path} (the name of the cell's own source file)")
                continue
            data = _read_file(os.path.join(root, name))
            if data is None:
                left.append(f"{path} (not a regular file)")
            elif len(files) >= max_files or used + len(data[0]) > max_bytes:
                left.append(path)
            else:
                files[path] = data
                used += len(data[0])
    return files, left


def _read_file(path: str) -> tuple[bytes, int] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(), int(info.st_mtime)
    finally:
        os.close(fd)


def protected(path: str) -> bool:
    """Read by cells, never changed by them: notebooks and hidden entries."""
    return path.endswith(".ipynb") or any(part.startswith(".") for part in path.split("/"))


def write_back(folder: str, before: dict, after: dict, may_delete) -> list[str]:
    """Write into ``folder`` what a cell changed: the files of ``after`` (the state it left)
    that are new or differ from ``before`` (what it got), and delete those it removed (when
    ``may_delete(path)``: a file the state could not hold is not a deleted one). Returns what
    was refused."""
    refused = []
    for path, (data, _) in after.items():
        if path in before and before[path][0] == data:
            continue
        if protected(path) or not _write(folder, path, data):
            refused.append(path)
    for path in before:
        if path not in after and may_delete(path):
            if protected(path) or not _delete(folder, path):
                refused.append(path)
    return refused


def _parent(folder: str, path: str, make: bool) -> str | None:
    """The real directory that holds ``path`` in ``folder`` (made if ``make``); None when a part
    of the way is a symlink or not a directory."""
    here = folder
    for part in path.split("/")[:-1]:
        here = os.path.join(here, part)
        try:
            info = os.lstat(here)
        except FileNotFoundError:
            if not make:
                return None
            os.mkdir(here)
            continue
        if not stat.S_ISDIR(info.st_mode):
            return None
    return here


def _write(folder: str, path: str, data: bytes) -> bool:
    try:
        parent = _parent(folder, path, make=True)
        if parent is None:
            return False
        target = os.path.join(parent, path.rsplit("/", 1)[-1])
        try:
            if not stat.S_ISREG(os.lstat(target).st_mode):
                return False
        except FileNotFoundError:
            pass
        fd, temporary = tempfile.mkstemp(dir=parent, prefix=".braindrill-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)  # replaces the name itself, never through a link
        except OSError:
            os.unlink(temporary)
            raise
        return True
    except OSError:
        return False


def _delete(folder: str, path: str) -> bool:
    parent = _parent(folder, path, make=False)
    if parent is None:
        return True  # already gone
    target = os.path.join(parent, path.rsplit("/", 1)[-1])
    try:
        if stat.S_ISREG(os.lstat(target).st_mode):
            os.remove(target)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False
