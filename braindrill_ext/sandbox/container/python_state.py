# Braindrill's Python sandbox, part 2 of 4: the state a kernel or REST session carries from one
# execution to the next (braindrill_ext/protocol.py, STATE_MARK; braindrill_ext/state.py). See
# python_output.py for how the parts make one program.
#
# Before the code: the state's files are unpacked into /work (untar, also the payload's reader)
# and the child loads the variables of earlier cells (NAMESPACE) into its namespace. After it: the
# child pickles the namespace with the cloudpickle carried in the payload (PYTHON_LIB), leaving out
# and naming what cannot be pickled, and the watchdog sends the work directory as a USTAR tar of
# exactly the announced size (send_state).
import os
import sys

WORKDIR = "/work"  # protocol.WORKDIR
JOB_DIR = ".braindrill"  # protocol.JOB_DIR
NAMESPACE = ".braindrill/namespace"  # protocol.NAMESPACE: the variables, in a state
PYTHON_LIB = ".braindrill/lib"  # protocol.PYTHON_LIB: cloudpickle, in a stateful payload
STATE_MARK = b"\036braindrill-state "  # protocol.STATE_MARK
STATE_SAME = b"same"  # protocol.STATE_SAME
STATE_ONLY = ".braindrill/only"  # protocol.STATE_ONLY: a state of these files only
# BD_STATE_MAX (0: no state kept or restored); STATE_ONLY's patterns; the IPython shell, whose
# objects are carried by reference and bound to the next cell's shell.
state = {"max": 0, "only": None, "shell": None}


def read_only():
    """The glob patterns of STATE_ONLY (a stateless payload's return_files: the state sent back
    holds the matching files only, and no variables); None without the file."""
    try:
        with open(os.path.join(WORKDIR, STATE_ONLY)) as f:
            return [line for line in f.read().split("\n") if line]
    except OSError:
        return None


# -- state (protocol.JOB_STATE_MAX) -----------------------------------------------------------
def cloudpickle():
    """The cloudpickle carried in the payload (every container of a kernel pickles alike)."""
    path = os.path.join(WORKDIR, PYTHON_LIB)
    sys.path.insert(0, path)
    try:
        import cloudpickle
    finally:
        sys.path.remove(path)
    return cloudpickle


def restore_namespace(namespace):
    """Load the variables an earlier cell left into ``namespace``, before the code runs. The file
    stays until ``save_namespace``: a program that ends without saving leaves them as they were.
    Functions and classes of earlier cells see ``namespace`` as their globals again."""
    path = os.path.join(WORKDIR, NAMESPACE)  # whatever the current directory
    if not state["max"] or not os.path.exists(path):
        return
    import pickle

    cloudpickle()  # its functions rebuild what it pickled by value

    class Loader(pickle.Unpickler):
        def persistent_load(self, pid):
            if pid == "namespace":
                return namespace
            if isinstance(pid, tuple) and pid[:1] == ("shell",) and len(pid) == 2:
                shell = state["shell"]
                return shell if not pid[1] else getattr(shell, pid[1], None)
            if isinstance(pid, tuple) and pid[:1] == ("closed",) and len(pid) == 4:
                return closed_file(*pid[1:])
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")

    try:
        with open(path, "rb") as f:
            namespace.update(Loader(f).load())
    except Exception as e:
        note(f"the variables of earlier cells could not be restored: {type(e).__name__}: {e}")


def save_namespace(namespace, hidden):
    """Pickle the user's variables (not IPython's, nor dunder names) into NAMESPACE, within the
    state cap. A name whose value cannot be pickled (an open file, a socket, a generator...) is
    left out, and so are the largest ones when they do not fit; both are named on stderr.
    Modules are kept by name and imported again."""
    if not state["max"]:
        return
    import re

    names = {
        name: value
        for name, value in namespace.items()
        if not (name.startswith("__") and name.endswith("__"))
        and not re.fullmatch(r"_+|_i+|_i?\d+", name)  # IPython's output and input caches
        and not (name in hidden and hidden[name] is value)
    }
    path = os.path.join(WORKDIR, NAMESPACE)
    remove_file(path)  # room for the new one (the work directory is small)
    if not names:
        return
    make = namespace_pickler(cloudpickle(), namespace)
    room = state["max"] - 2048  # the state's tar takes 1024 bytes of end, 512 of header, padding
    if dump_names(make, names, path) <= room:
        return
    sizes, unpicklable = {}, []
    for name in sorted(names):
        counter = Counter()
        try:
            make(counter).dump({name: names[name]})
            sizes[name] = counter.size
        except Exception as e:
            unpicklable.append(f"{name} ({type(names.pop(name)).__name__}: {e})")
    too_big, total = [], sum(sizes.values())
    for name in sorted(sizes, key=sizes.get, reverse=True):
        if total <= room:
            break
        total -= sizes[name]
        del names[name]
        too_big.append(f"{name} ({sizes[name]} bytes)")
    if names and dump_names(make, names, path) > room:  # shared objects counted once each
        too_big = ["the variables (they do not pickle together within the cap)"]
        remove_file(path)
    if unpicklable:
        note("not kept for the next cell (cannot be pickled): " + ", ".join(unpicklable))
    if too_big:
        note(
            f"not kept for the next cell (over the state cap of {state['max']} bytes): "
            + ", ".join(too_big)
        )


def dump_names(make, names, path):
    """Pickle ``names`` into ``path``; its size in bytes (more than any cap when it failed)."""
    try:
        with open(path, "wb") as f:
            make(f).dump(names)
            return f.tell()
    except Exception:
        remove_file(path)
        return float("inf")


def remove_file(path):
    try:
        os.remove(path)
    except OSError:
        pass


class Counter:
    """A file that only counts what is written to it."""

    size = 0

    def write(self, data):
        self.size += len(data)
        return len(data)


def namespace_pickler(cloudpickle, namespace):
    """A cloudpickle Pickler class whose functions (and classes' methods) of ``namespace`` are
    unpickled with the live namespace of the next cell as their globals (persistent id
    "namespace"), not with a copy of the globals they used."""

    import io

    shell = state["shell"]
    refs = {}  # id → attribute name: the shell and its own objects, carried by reference
    if shell is not None:
        refs = {id(v): k for k, v in vars(shell).items() if type(v).__module__[:8] == "IPython."}
        refs.update({id(shell): "", id(shell.kernel): "kernel"} if hasattr(shell, "kernel") else {})

    def make(file):
        pickler = Pickler(file, protocol=5)
        if hasattr(pickler, "globals_ref"):  # cloudpickle's map: globals → their stand-in
            pickler.globals_ref[id(namespace)] = pickler.marker = {}
        return pickler

    class Pickler(cloudpickle.Pickler):
        marker = None

        def persistent_id(self, obj):
            if obj is namespace or (obj is self.marker and obj is not None):
                return "namespace"
            name = refs.get(id(obj))
            if name is not None and (getattr(shell, name) if name else shell) is obj:
                return ("shell", name)
            if isinstance(obj, io.IOBase) and obj.closed:
                name = getattr(obj, "name", None)
                if isinstance(name, str):
                    mode, encoding = getattr(obj, "mode", "rb"), getattr(obj, "encoding", None)
                    return ("closed", name, mode, encoding)
            return None

    return make


def closed_file(name, mode, encoding):
    """A closed file of an earlier cell, as it was: closed, with its name and mode."""
    binary = "b" in mode
    opened = "wb" if binary else "w"
    f = open(os.devnull, opened) if binary else open(os.devnull, opened, encoding=encoding)
    f.close()
    if binary:
        f.raw.name = name
    else:
        f.buffer.raw.name, f.mode = name, mode
    return f


def state_snapshot(source):
    """What the state is now: the work directory's regular files (but JOB_DIR and the source
    file) with their size, time and mode, and the pickled variables' size and digest. Taken
    when the state was restored, and again after the program, to send nothing when nothing
    changed."""
    files = {}
    for root, dirs, names in os.walk("."):
        if root == ".":
            dirs[:] = [name for name in dirs if name != JOB_DIR]
        for name in names:
            path = os.path.join(root, name)[2:]
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if path != source and (info.st_mode & 0o170000) == 0o100000:
                files[path] = (info.st_size, info.st_mtime_ns, info.st_mode)
    return files, namespace_digest()


def namespace_digest():
    """The pickled variables' size and digest (SHA-1, at memory speed on today's CPUs)."""
    try:
        with open(NAMESPACE, "rb") as f:
            import hashlib

            digest = hashlib.sha1()
            size = 0
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
            return size, digest.digest()
    except OSError:
        return None


def send_unchanged(token):
    """The state record that says the state is as it came (protocol.STATE_SAME)."""
    write_all(1, STATE_MARK + b"%s %s\n" % (token.encode(), STATE_SAME))


def send_state(limit, token, source):
    """The state record (protocol.py): the work directory's regular files but JOB_DIR (save
    NAMESPACE, first) and the source file, smallest first, as many as fit in ``limit`` bytes of
    USTAR tar; the others are named on stderr. Exactly the announced size is written."""
    files = []
    for root, dirs, names in os.walk("."):
        if root == ".":
            dirs[:] = [name for name in dirs if name != JOB_DIR]
        for name in names:
            path = os.path.join(root, name)[2:]
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if path != source and (info.st_mode & 0o170000) == 0o100000 and wanted(path):
                files.append((info.st_size, path, info))
    files.sort()
    try:
        if state["only"] is None:
            files.insert(0, (os.path.getsize(NAMESPACE), NAMESPACE, os.lstat(NAMESPACE)))
    except OSError:
        pass
    total, kept, dropped = 1024, [], []
    for size, path, info in files:
        cost = 512 + (size + 511) // 512 * 512
        header = ustar_header(path, size, info)
        if header is None or total + cost > limit:
            name = "the variables" if path == NAMESPACE else path
            dropped.append(f"{name} ({size} bytes)")
            continue
        total += cost
        kept.append((size, path, header))
    if dropped:
        note(
            f"not kept for the next execution (over the state cap of {limit} bytes, or a name "
            f"too long): {', '.join(dropped)}"
        )
    out = Output(total)
    out.write(STATE_MARK + b"%s %d\n" % (token.encode(), total), framing=True)
    for size, path, header in kept:
        out.write(header)
        left = size
        try:
            with open(path, "rb") as f:
                while left:
                    chunk = f.read(min(left, 1 << 16))
                    if not chunk:
                        break
                    out.write(chunk)
                    left -= len(chunk)
        except OSError:
            pass  # gone or unreadable since it was listed: zeros instead
        out.write(bytes(left + (-size % 512)))  # what could not be read, then the padding
    out.close()


def wanted(path):
    """Whether a file goes in the state: any, or one matching a pattern of STATE_ONLY."""
    if state["only"] is None:
        return True
    import fnmatch

    return any(fnmatch.fnmatchcase(path, pattern) for pattern in state["only"])


class Output:
    """Exactly ``size`` bytes on fd 1 after a framing header: cut, or padded with zeros."""

    def __init__(self, size):
        self.left = size

    def write(self, data, framing=False):
        if not framing:
            data = data[: self.left]
            self.left -= len(data)
        write_all(1, data)

    def close(self):
        while self.left:
            self.write(bytes(min(self.left, 1 << 16)))


def ustar_header(path, size, info):
    """A USTAR header block for a regular file; None when the name does not fit."""
    name = os.fsencode(path)
    prefix = b""
    if len(name) > 100:
        cut = name.rfind(b"/", 0, 156)  # the longest prefix that fits: the shortest name
        if cut <= 0 or len(name) - cut - 1 > 100:
            return None
        prefix, name = name[:cut], name[cut + 1 :]

    def octal(value, width):
        return b"%0*o\0" % (width - 1, value)

    block = bytearray(512)
    block[0 : len(name)] = name
    block[100:108] = octal(info.st_mode & 0o777, 8)
    block[108:116] = octal(65534, 8)
    block[116:124] = octal(65534, 8)
    block[124:136] = octal(size, 12)
    block[136:148] = octal(int(info.st_mtime), 12)
    block[148:156] = b" " * 8
    block[156:157] = b"0"
    block[257:265] = b"ustar\x0000"
    block[345 : 345 + len(prefix)] = prefix
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


class Input:
    """The next ``size`` bytes of stdin."""

    def __init__(self, size):
        self.left = size

    def read(self, n):
        data = b""
        while len(data) < n and self.left:
            chunk = os.read(0, min(n - len(data), self.left, 1 << 16))
            if not chunk:
                self.left = 0
                break
            self.left -= len(chunk)
            data += chunk
        return data

    def drain(self):
        while self.left and self.read(1 << 16):
            pass


def untar(source):
    """Write the regular files of a USTAR archive read from ``source`` (the engine's payload, or
    a state written by ``send_state``), with their mode and time."""
    while True:
        block = source.read(512)
        if not block.strip(b"\0"):
            if len(block) < 512:
                raise ValueError("truncated archive")
            return  # the end
        name = block[:100].rstrip(b"\0").decode()
        prefix = block[345:500].rstrip(b"\0").decode()
        path = f"{prefix}/{name}" if prefix else name
        size = int(block[124:136].strip(b"\0 ") or b"0", 8)
        mode = int(block[100:108].strip(b"\0 ") or b"644", 8) & 0o777
        mtime = int(block[136:148].strip(b"\0 ") or b"0", 8)
        if block[156:157] not in (b"0", b"\0") or path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"unexpected member {path!r}")
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        left = (size + 511) // 512 * 512
        with open(path, "wb") as f:
            while left:
                chunk = source.read(min(left, 1 << 16))
                if not chunk:
                    raise ValueError("truncated archive")
                f.write(chunk[: max(0, size)])
                size -= len(chunk)
                left -= len(chunk)
        os.chmod(path, mode | 0o600)
        os.utime(path, (mtime, mtime))
