# Braindrill's Python sandbox, part 1 of 6: what a cell shows. The prestart runs the text of
# python_output.py, python_state.py, python_files.py, python_cell.py, python_run.py and
# prestart.py joined, as one program (the kernelspec's prestart "script" list;
# braindrill_ext/languages.py): later parts use what earlier ones define.
#
# Output records (braindrill_ext/protocol.py, OUTPUT_MARK): one Jupyter output as framed JSON on
# fd 1, in order with what the program printed; the files a program leaves in $BRAINDRILL_DISPLAY
# become display_data records; and the IPython shell (made before the payload, when IPython is
# installed) whose display publisher and displayhook write records instead of printing.
import _thread
import binascii
import os
import sys

DISPLAY_DIR = "/work/.braindrill/display"  # protocol.DISPLAY_DIR, $BRAINDRILL_DISPLAY
OUTPUT_MARK = b"\036braindrill-output "  # protocol.OUTPUT_MARK
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
    data = OUTPUT_MARK + b"%s %d\n%s" % (token.encode(), len(body), body)
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


# -- before the payload ----------------------------------------------------------------------
def start_shell():
    """The IPython shell the code runs in, with Braindrill's display publisher and displayhook;
    None without IPython."""
    import warnings

    if not before_ipython:  # a lazy script's were taken before the program ran
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
