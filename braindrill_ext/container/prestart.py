# Braindrill prestart for Python: the command of a Python sandbox container, run as
# `timeout -s KILL <life> python3 -u -c "$(cat prestart.py)" <source file> [preload module...]`
# under the container's init. The interpreter starts with the container, before any code exists,
# so that the code runs as soon as it arrives instead of after the interpreter's start-up.
#
# Before the payload (nothing here runs user code before it arrives): if IPython is installed, an
# IPython InteractiveShell is made whose display publisher and displayhook write output records
# (braindrill_ext/protocol.py) instead of printing, matplotlib gets matplotlib-inline's backend
# (MPLBACKEND, unless set; MPLCONFIGDIR under /tmp: the root is read-only and HOME=/work), and the
# modules named after the source file are imported (a data kernel preloads numpy, pandas...).
#
# Then it follows the bootstrap's contract (braindrill_ext/container/bootstrap.sh): one framed
# payload on stdin (`<size>\n` + tar), unpacked into /work; .braindrill/job gives BD_TIMEOUT,
# BD_EXIT_TOKEN and, optionally, BD_OUTPUT_TOKEN, BD_OUTPUT_MAX, BD_INTERACTIVE and
# BD_EXECUTION_COUNT; .braindrill/argv the run argv; the program's stdin is .braindrill/stdin;
# exit codes 120-122 for a broken payload. It then forks. The child runs the code:
# - BD_INTERACTIVE != "1" (a script, REST's default): as `python3 -u <source file> <args>` would
#   (__main__, sys.argv, sys.path, a traceback on stderr and exit 1, atexit, threads...); only
#   display(), IPython.display objects and matplotlib figures (plt.show(), and the figures still
#   open at the end) become output records. IPython's additions to builtins and sys (display,
#   __IPYTHON__, sys.ps1...) are taken away again.
# - BD_INTERACTIVE == "1" (a notebook cell): `shell.run_cell(code)` with execution_count
#   BD_EXECUTION_COUNT: the last expression's value is an execute_result record (a trailing `;`
#   hides it), an uncaught exception (SyntaxError included) one error record with IPython's
#   traceback and exit 1 (nothing on stderr), sys.exit(n) exit n. Without IPython (the official
#   python:3.12-slim image) a small stdlib fallback, silently: the last expression's repr as
#   text/plain execute_result, an exception as an error record with the standard traceback.
# The parent is the in-container deadline (the role `timeout -s KILL` plays in the bootstrap);
# when the child has exited it turns the files left in $BRAINDRILL_DISPLAY into display_data
# records (as the bootstrap does), writes the exit report on both streams and exits with the
# child's status. The child never keeps BD_EXIT_TOKEN; it knows BD_OUTPUT_TOKEN (its records).
# Without BD_OUTPUT_TOKEN (an engine that does not read records) nothing is framed: display()
# prints text/plain as IPython does in a terminal, and display files are left alone.
# Only built-in modules are imported by the prestart itself (tarfile and shlex would cost ~40 ms
# of start-up on a slow storage driver, paid again by every cold start); the tar is the engine's
# own plain USTAR. json, ast and traceback are imported when needed (IPython imports them anyway).
import _thread
import atexit
import binascii
import builtins
import gc
import os
import signal
import sys

DISPLAY_DIR = "/work/.braindrill/display"  # protocol.DISPLAY_DIR, $BRAINDRILL_DISPLAY
JOB_DIR = ".braindrill"  # protocol.JOB_DIR
NAMESPACE = ".braindrill/namespace"  # protocol.NAMESPACE: the variables, in a state
PYTHON_LIB = ".braindrill/lib"  # protocol.PYTHON_LIB: cloudpickle, in a stateful payload
IPYTHON_DIR = "/tmp/.braindrill-ipython"  # removed again once the shell exists
INLINE = "module://matplotlib_inline.backend_inline"
DISPLAY_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".html": "text/html",
    ".md": "text/markdown",
    ".json": "application/json",
    ".txt": "text/plain",
}
records = {"token": "", "max": 1 << 20}  # BD_OUTPUT_TOKEN, BD_OUTPUT_MAX
state = {"max": 0}  # BD_STATE_MAX: 0, no state kept or restored
before_ipython = {}  # what a script gets back: IPython's import changes them
write_lock = _thread.allocate_lock()


# -- output records (protocol.OUTPUT_MARK) ---------------------------------------------------
def write_record(output):
    """Write one Jupyter output as a record on fd 1 (False: no output token, nothing written)."""
    token = records["token"]
    if not token:
        return False
    import json

    data = output.get("data")
    for mime in ("image/png", "image/jpeg"):  # IPython's base64 text ends with a newline
        if isinstance(data, dict) and isinstance(data.get(mime), str):
            output = {**output, "data": {**data, mime: "".join(data[mime].split())}}
            data = output["data"]

    try:
        text = json.dumps(output, default=jsonable, ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or infinity in JSON data: null, as JSON has neither
        text = json.dumps(finite(output), default=jsonable, ensure_ascii=False)
    body = text.encode("utf-8", "backslashreplace")  # a lone surrogate becomes a \\udcXX escape
    if len(body) > records["max"]:
        note(
            f"an output of {len(body)} bytes was dropped (over the per-output cap of "
            f"{records['max']} bytes)"
        )
        return True
    for stream in (sys.stdout, sys.stderr):  # in order with what the program printed
        try:
            stream.flush()
        except Exception:
            pass
    data = b"\036braindrill-output %s %d\n%s" % (token.encode(), len(body), body)
    with write_lock:
        write_all(1, data)
    return True


def write_all(fd, data):
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        pass  # the engine stopped reading


def note(text):
    write_all(2, f"braindrill: {text}\n".encode())


def jsonable(obj):
    """What jupyter_client's JSON encoder does with values JSON has no type for."""
    import numbers
    from collections.abc import Iterable

    if isinstance(obj, (bytes, bytearray, memoryview)):  # image/png, image/jpeg: base64 text
        return binascii.b2a_base64(bytes(obj), newline=False).decode("ascii")
    if hasattr(obj, "isoformat"):  # datetime, date, time
        return obj.isoformat()
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, Iterable) and not isinstance(obj, str):
        return list(obj)
    raise TypeError(f"{obj!r} is not JSON serializable")


def finite(obj):
    if isinstance(obj, float):
        return obj if obj - obj == 0 else None
    if isinstance(obj, dict):
        return {key: finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(value) for value in obj]
    return obj


def show_display_files(directory):
    """Each file left in $BRAINDRILL_DISPLAY becomes a display_data record, sorted by name."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for name in names:
        mime = DISPLAY_TYPES.get(os.path.splitext(name)[1].lower())
        path = os.path.join(directory, name)
        if mime is None or name.startswith(".") or not os.path.isfile(path):
            continue
        try:
            if os.path.getsize(path) > records["max"]:  # its record can only be larger
                note(
                    f"the display file {name} of {os.path.getsize(path)} bytes was dropped "
                    f"(over the per-output cap of {records['max']} bytes)"
                )
                continue
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        if mime.startswith("image/") and mime != "image/svg+xml":
            value = data  # base64 when written
        else:
            value = data.decode("utf-8", "replace")
            if mime == "application/json":
                import json

                try:
                    value = json.loads(value)
                except ValueError:
                    mime = "text/plain"
        write_record({"output_type": "display_data", "data": {mime: value}, "metadata": {}})


# -- state (protocol.JOB_STATE_MAX) -----------------------------------------------------------
def cloudpickle():
    """The cloudpickle carried in the payload (every container of a kernel pickles alike)."""
    path = os.path.abspath(PYTHON_LIB)
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
    if not state["max"] or not os.path.exists(NAMESPACE):
        return
    import pickle

    cloudpickle()  # its functions rebuild what it pickled by value

    class Loader(pickle.Unpickler):
        def persistent_load(self, pid):
            if pid != "namespace":
                raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
            return namespace

    try:
        with open(NAMESPACE, "rb") as f:
            namespace.update(Loader(f).load())
    except Exception as e:
        note(f"the variables of earlier cells could not be restored: {type(e).__name__}: {e}")


def save_namespace(namespace, hidden):
    """Pickle the user's variables (not IPython's, nor dunder names) into NAMESPACE. A name whose
    value cannot be pickled (an open file, a socket, a generator...) is left out and named on
    stderr; modules are kept by name and imported again."""
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
    try:
        os.remove(NAMESPACE)  # room for the new one (the work directory is small)
    except OSError:
        pass
    if not names:
        return
    pickler = namespace_pickler(cloudpickle(), namespace)

    class Sink:
        def write(self, data):
            return len(data)

    try:
        with open(NAMESPACE, "wb") as f:
            pickler(f).dump(names)
        return
    except Exception:
        pass
    left_out = []
    for name in sorted(names):
        try:
            pickler(Sink()).dump({name: names[name]})
        except Exception as e:
            left_out.append(f"{name} ({type(names.pop(name)).__name__}: {e})")
    try:
        with open(NAMESPACE, "wb") as f:
            pickler(f).dump(names)
    except Exception as e:
        left_out = [f"every variable ({type(e).__name__}: {e})"]
        os.remove(NAMESPACE)
    if left_out:
        note("not kept for the next cell (cannot be pickled): " + ", ".join(left_out))


def namespace_pickler(cloudpickle, namespace):
    """A cloudpickle Pickler class whose functions (and classes' methods) of ``namespace`` are
    unpickled with the live namespace of the next cell as their globals (persistent id
    "namespace"), not with a copy of the globals they used."""

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
            return None

    return make


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
            if path != source and (info.st_mode & 0o170000) == 0o100000:
                files.append((info.st_size, path, info))
    files.sort()
    try:
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
    out.write(b"\036braindrill-state %s %d\n" % (token.encode(), total), framing=True)
    for size, path, header in kept:
        out.write(header)
        try:
            with open(path, "rb") as f:
                left = size
                while left:
                    chunk = f.read(min(left, 1 << 16))
                    if not chunk:
                        break
                    out.write(chunk)
                    left -= len(chunk)
        except OSError:
            left = size
        out.write(bytes(left + (-size % 512)))  # what could not be read, then the padding
    out.close()


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


# -- before the payload ----------------------------------------------------------------------
def start_shell():
    """The IPython shell the code runs in, with Braindrill's display publisher and displayhook;
    None without IPython."""
    import warnings

    before_ipython.update(recursion_limit=sys.getrecursionlimit(), filters=warnings.filters[:])
    # jedi serves only completion, which no sandbox does: not importing it saves ~65 ms (and
    # its raising of the recursion limit); a program can still import it.
    sys.modules.setdefault("jedi", None)
    try:
        from IPython.core.displayhook import DisplayHook
        from IPython.core.displaypub import DisplayPublisher
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets import Type
        from traitlets.config import Config
    except Exception:
        return None
    finally:
        if sys.modules.get("jedi", 0) is None:
            del sys.modules["jedi"]

    class Publisher(DisplayPublisher):
        """display(), update_display(), clear_output(): records (ipykernel's ZMQDisplayPublisher
        sends the same contents as messages)."""

        def publish(self, data, metadata=None, *args, transient=None, update=False, **kwargs):
            if not records["token"]:
                return super().publish(
                    data, metadata, *args, transient=transient, update=update, **kwargs
                )
            self._validate_data(data, metadata)
            output = {
                "output_type": "update_display_data" if update else "display_data",
                "data": data,
                "metadata": metadata or {},
            }
            if transient:
                output["transient"] = transient
            write_record(output)

        def clear_output(self, wait=False):
            if not write_record({"output_type": "clear_output", "wait": bool(wait)}):
                super().clear_output(wait)

    class Hook(DisplayHook):
        """The last expression's value: an execute_result record (ipykernel's
        ZMQShellDisplayHook). IPython decides whether to show it and formats it."""

        msg = None

        def start_displayhook(self):
            if not records["token"]:
                return super().start_displayhook()
            self.msg = {"output_type": "execute_result", "execution_count": self.prompt_count}
            self.msg.update(data={}, metadata={})

        def write_output_prompt(self):
            if self.msg is None:
                return super().write_output_prompt()
            self.msg["execution_count"] = self.prompt_count

        def write_format_data(self, format_dict, md_dict=None):
            if self.msg is None:
                return super().write_format_data(format_dict, md_dict)
            self.msg["data"], self.msg["metadata"] = format_dict, md_dict or {}

        def finish_displayhook(self):
            msg, self.msg = self.msg, None
            if msg is None:
                return super().finish_displayhook()
            if msg["data"]:
                write_record(msg)

    class Shell(InteractiveShell):
        display_pub_class = Type(Publisher)
        displayhook_class = Type(Hook)
        system_exit = None  # sys.exit() in a cell: its exit code, not an error
        failed_display = False  # an error while formatting the result fails the cell too

        def _showtraceback(self, etype, evalue, stb):  # ipykernel's: an error output
            if issubclass(etype, SystemExit):
                self.system_exit = evalue
                return
            if getattr(self.displayhook, "msg", None) is not None:
                self.failed_display = True
            try:
                text = str(evalue)
            except Exception:
                text = "<exception str() failed>"
            error = {"output_type": "error", "ename": etype.__name__, "evalue": text}
            if not write_record({**error, "traceback": stb}):
                print(self.InteractiveTB.stb2text(stb), file=sys.stderr)

    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # no database file, no saving thread
    try:
        shell = Shell.instance(config=config, ipython_dir=IPYTHON_DIR)
    except Exception:
        return None
    remove_tree(IPYTHON_DIR)  # the profile it made: nothing of it is used
    return shell


def remove_tree(path):
    try:
        for root, dirs, names in os.walk(path, topdown=False):
            for name in names:
                os.remove(os.path.join(root, name))
            for name in dirs:
                os.rmdir(os.path.join(root, name))
        os.rmdir(path)
    except OSError:
        pass


def prepare_environment(preloads):
    os.environ.setdefault("MPLCONFIGDIR", "/tmp/matplotlib")
    if preloads:
        # BLAS/OpenMP start a thread per CPU of the host, in this process and again in the
        # child: as many as the container's CPU quota instead, under its pids limit.
        threads = cpu_quota()
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            if threads:
                os.environ.setdefault(name, str(threads))


def cpu_quota():
    """The container's CPU quota rounded up (cgroup v2, else v1); None when unlimited."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()
    except (OSError, ValueError):
        try:
            with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
                quota = f.read().strip()
            with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
                period = f.read().strip()
        except OSError:
            return None
    try:
        return max(1, -(-int(quota) // int(period))) if int(quota) > 0 else None
    except ValueError:  # "max": no quota
        return None


def preload(names, shell):
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    if shell is not None and "matplotlib.pyplot" in sys.modules:
        try:  # load the backend now: plt.plot() in the code costs nothing more
            sys.modules["matplotlib.pyplot"].switch_backend(os.environ["MPLBACKEND"])
        except Exception:
            pass


def read_payload():
    """Unpack the state, if any, then the payload (header ``<size>[ <state size>]``)."""
    header = b""
    while not header.endswith(b"\n"):
        byte = os.read(0, 1)  # unbuffered: nothing past the payload is consumed
        if not byte:
            sys.exit(0)
        header += byte
    fields = header.split()
    if not 1 <= len(fields) <= 2 or not all(field.isdigit() for field in fields):
        print("braindrill: bad payload header", file=sys.stderr)
        sys.exit(121)
    if len(fields) == 2 and int(fields[1]):
        state = Input(int(fields[1]))
        try:
            untar(state)
        except (ValueError, OSError, UnicodeError):
            note("the state was not restored whole")
        state.drain()
    payload = Input(int(fields[0]))
    try:
        untar(payload)
    except (ValueError, OSError, UnicodeError):
        print("braindrill: cannot unpack the payload", file=sys.stderr)
        sys.exit(122)
    payload.drain()  # the archive's padding


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


def read_job():
    """The job's variables (BD_TIMEOUT, BD_EXIT_TOKEN, BD_OUTPUT_TOKEN...) and the run argv
    (.braindrill/argv, the words of the bootstrap's `set --` line, NUL-separated)."""
    job = {}
    with open(".braindrill/job") as f:
        for line in f:
            name, eq, value = line.strip().partition("=")
            if eq and name.startswith("BD_") and "'" not in value:
                job[name] = value
    with open(".braindrill/argv", "rb") as f:
        argv = [os.fsdecode(word) for word in f.read().split(b"\0")]
    os.remove(".braindrill/job")
    os.remove(".braindrill/argv")
    return job, argv


# -- in the child ----------------------------------------------------------------------------
def run(source, argv, shell, cell, count):
    """Become `python3 -u <source> <args>`, or run the source as a notebook cell."""
    fd = os.open(".braindrill/stdin", os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    path = os.path.abspath(source)
    sys.argv = argv[argv.index(source) :]
    sys.path[0] = os.path.dirname(path)
    if shell is not None:  # it would end a session of a disposable process: ~0.1 s at exit
        atexit.unregister(shell.atexit_operations)
    if cell:
        sys.exit(run_cell(shell, path, count) if shell else run_plain_cell(path, count))
    if shell is not None:  # a script: no trace of the shell but what displays
        import warnings

        for name in ("display", "__IPYTHON__"):
            builtins.__dict__.pop(name, None)
        for name in ("ps1", "ps2", "ps3"):
            sys.__dict__.pop(name, None)
        sys.setrecursionlimit(before_ipython["recursion_limit"])
        warnings.filters[:] = before_ipython["filters"]
        warnings._filters_mutated()
        # Figures still open at the end are shown, as the inline backend does after a cell:
        # after the program's own atexit functions and threads.
        atexit.register(shell.events.trigger, "post_execute")
    main = type(sys)("__main__")
    main.__file__, main.__cached__, main.__builtins__ = path, None, builtins
    sys.modules["__main__"] = main
    with open(source, "rb") as f:
        text = f.read()
    restore_namespace(main.__dict__)
    try:
        exec(compile(text, path, "exec"), main.__dict__)
    except SystemExit:
        raise
    except BaseException as e:  # what the interpreter prints for an uncaught exception
        e.with_traceback(e.__traceback__.tb_next)  # without this frame
        sys.excepthook(type(e), e, e.__traceback__)
        sys.exit(130 if isinstance(e, KeyboardInterrupt) else 1)
    finally:
        save_namespace(main.__dict__, {})


def run_cell(shell, path, count):
    with open(path, "rb") as f:
        code = f.read().decode("utf-8", "replace")
    import warnings

    shell.execution_count = count
    # "To exit: use 'exit', 'quit', or Ctrl-D." after sys.exit() in a cell: here it exits.
    warnings.filterwarnings("ignore", "To exit: use", UserWarning, "IPython")
    restore_namespace(shell.user_ns)
    result = shell.run_cell(code, store_history=True)
    save_namespace(shell.user_ns, shell.user_ns_hidden)
    if shell.system_exit is not None:
        return shell.system_exit.code
    if isinstance(result.error_in_exec, KeyboardInterrupt):
        return 130
    return 0 if result.success and not shell.failed_display else 1


def run_plain_cell(path, count):
    """A cell without IPython: the last expression's repr as execute_result, an exception as an
    error record with the standard traceback. Returns the exit code."""
    import ast
    import traceback

    main = type(sys)("__main__")
    sys.modules["__main__"] = main
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    try:
        tree = ast.parse(text, path)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = tree.body.pop()
            lines = text.encode().split(b"\n")[last.end_lineno - 1 :]
            lines[0] = lines[0][last.end_col_offset :]  # offsets count UTF-8 bytes
            shown = not b"\n".join(lines).lstrip().startswith(b";")
            last = compile(ast.Expression(last.value), path, "eval") if shown else None
        body = compile(tree, path, "exec")
    except SyntaxError as e:
        error, frames = e, None
    else:
        restore_namespace(main.__dict__)
        try:
            exec(body, main.__dict__)
            value = None if last is None else eval(last, main.__dict__)
            if value is not None:
                builtins._ = value
                result = {"output_type": "execute_result", "execution_count": count}
                result.update(data={"text/plain": repr(value)}, metadata={})
                write_record(result) or print(repr(value))
            return 0
        except SystemExit:
            raise
        except BaseException as e:
            error, frames = e, e.__traceback__.tb_next
        finally:
            save_namespace(main.__dict__, {})
    lines = traceback.format_exception(type(error), error, frames)
    output = {"output_type": "error", "ename": type(error).__name__, "evalue": str(error)}
    output["traceback"] = "".join(lines).rstrip("\n").split("\n")
    if not write_record(output):
        sys.stderr.write("".join(lines))
    return 130 if isinstance(error, KeyboardInterrupt) else 1


# -- in the parent ---------------------------------------------------------------------------
def watch(child, job, display, source):
    """Wait for the child until the deadline; show the display files, send the state, report,
    exit with its status."""
    signal.signal(signal.SIGALRM, lambda *_: os.kill(child, signal.SIGKILL))
    signal.setitimer(signal.ITIMER_REAL, float(job["BD_TIMEOUT"]))
    _, status = os.waitpid(child, 0)  # resumed after the handler runs (PEP 475)
    signal.setitimer(signal.ITIMER_REAL, 0)
    code = os.waitstatus_to_exitcode(status)
    code = code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as a shell says
    show_display_files(display)
    if state["max"]:
        send_state(state["max"], job["BD_EXIT_TOKEN"], source)
    report = b"\036braindrill-exit %s %d\n" % (job["BD_EXIT_TOKEN"].encode(), code)
    for fd in (1, 2):
        try:
            os.write(fd, report)
        except OSError:
            pass  # the engine stopped reading: it learns the outcome from the engine instead
    os._exit(code)


os.chdir("/work")
preloads = sys.argv[2:]
prepare_environment(preloads)
shell = start_shell()
if shell is not None:
    try:
        import importlib.util

        if importlib.util.find_spec("matplotlib_inline"):
            os.environ.setdefault("MPLBACKEND", INLINE)
    except Exception:
        pass
preload(preloads, shell)
read_payload()
job, argv = read_job()
records["token"] = job.get("BD_OUTPUT_TOKEN", "")
if job.get("BD_OUTPUT_MAX", "").isdigit():
    records["max"] = int(job["BD_OUTPUT_MAX"])
cell = job.get("BD_INTERACTIVE") == "1"
count = int(job["BD_EXECUTION_COUNT"]) if job.get("BD_EXECUTION_COUNT", "").isdigit() else 1
state["max"] = int(job["BD_STATE_MAX"]) if job.get("BD_STATE_MAX", "").isdigit() else 0
display = os.environ.setdefault("BRAINDRILL_DISPLAY", DISPLAY_DIR)
os.makedirs(display, exist_ok=True)
# What exists now (IPython's objects, the preloaded modules') is never traversed by the child's
# garbage collections, which would copy every page of it: ~0.1 s more at the child's exit.
gc.freeze()
child = os.fork()
if child == 0:
    job.clear()  # the program has no use for the exit token
    run(sys.argv[1], argv, shell, cell, count)
else:
    watch(child, job, display, sys.argv[1])
