# Braindrill's Python sandbox, part 2 of 6: the variables a kernel or REST session carries from
# one execution to the next (braindrill_ext/protocol.py, NAMESPACE; braindrill_ext/engine/state.py).
# See python_output.py for how the parts make one program, python_files.py for the files.
#
# Before the code the child loads the variables of earlier cells (NAMESPACE) into its namespace;
# after it, it pickles the namespace with the cloudpickle carried in the payload (PYTHON_LIB),
# leaving out and naming what cannot be pickled. The shell and its objects, closed files and comms
# are carried by reference (persistent ids), bound again in the next cell.
import os
import sys

WORKDIR = "/work"  # protocol.WORKDIR
NAMESPACE = ".braindrill/namespace"  # protocol.NAMESPACE: the variables, in a state
PYTHON_LIB = ".braindrill/lib"  # protocol.PYTHON_LIB: cloudpickle, in a stateful payload
# BD_STATE_MAX (0: no state kept or restored); STATE_ONLY's patterns; the IPython shell, whose
# objects are carried by reference and bound to the next cell's shell.
state = {"max": 0, "only": None, "shell": None}


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
            if isinstance(pid, tuple) and pid[:1] == ("comm",) and len(pid) == 3:
                made = state.get("comm")  # opened by an earlier cell: not opened again
                if made is None or not pid[1]:
                    return made
                return made(comm_id=pid[1], target_name=pid[2], primary=False)
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
    if not names:
        remove_file(path)
        return
    make = namespace_pickler(cloudpickle(), namespace)
    room = state["max"] - 2048  # the state's tar takes 1024 bytes of end, 512 of header, padding
    if dump_names(make, names, path, Rewrite) <= room:
        return
    remove_file(path)  # room for what fits (the work directory is small)
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


def dump_names(make, names, path, opener=None):
    """Pickle ``names`` into ``path`` (opened by ``opener``, default: written anew); its size in
    bytes (more than any cap when it failed)."""
    try:
        with (opener or open)(path, "wb") as f:
            make(f).dump(names)
            return f.tell()
    except Exception:
        remove_file(path)
        return float("inf")


class Rewrite:
    """A file opened to be written whole, but written only from where it first differs (in
    place: no room is needed for a second copy): variables that pickle as they came leave the
    restored file untouched -- its time and inode -- and state_snapshot() sees it unchanged.
    Comparing costs a read at memory speed; a digest of the file before and after cost two.
    What was written is read into a bytearray, which compares with any buffer by memcmp (a
    memoryview compares item by item: 43 ms for 8 MiB here, against 3 ms), and a large array's
    bytes 1 MiB at a time into the same one (no fresh pages to fault in for each)."""

    CHUNK = 1 << 20

    def __init__(self, path, mode):
        self.buffer = None
        try:
            self.file, self.same = open(path, "r+b"), True
        except OSError:
            self.file, self.same = open(path, "wb"), False

    def write(self, data):
        if self.same:
            at, view = self.file.tell(), memoryview(data).cast("B")
            for start in range(0, len(view), self.CHUNK):
                piece = view[start : start + self.CHUNK]
                if len(piece) == self.CHUNK:
                    if self.buffer is None:
                        self.buffer = bytearray(self.CHUNK)
                    read = self.buffer
                else:
                    read = bytearray(len(piece))
                if self.file.readinto(read) != len(piece) or read != piece:
                    self.same = False
                    self.file.seek(at)
                    break
            else:
                return len(view)
        return self.file.write(data)

    def tell(self):
        return self.file.tell()

    def __enter__(self):
        return self

    def __exit__(self, *failed):
        try:
            if not (self.same and not self.file.read(1)):
                self.file.truncate()  # where the new pickle ends
        finally:
            self.file.close()


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

    made_comm = state.get("comm")  # python_cell.py's Comm, when comm is installed

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
            if made_comm is not None and obj is made_comm:  # comm.create_comm, imported by name
                return ("comm", "", "")
            if made_comm is not None and isinstance(obj, made_comm):
                return ("comm", obj.comm_id, obj.target_name)
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
