# Braindrill's Python sandbox, part 4 of 6 (after python_output.py, python_state.py and
# python_files.py, before python_run.py): a notebook cell as ipykernel runs it. See
# python_output.py for how the parts make one program.
#
# - run_cell: the code through IPython's shell, with the kernel's earlier cells as its history
#   (HISTORY: %history, In), get_ipython().kernel for code written against ipykernel's
#   (session.send of display messages to its iopub socket), and input()/getpass() asking the
#   front end (BD_INPUT) or refusing as ipykernel does without stdin;
# - answer_tool: instead of running the code, a completion or help request about it (BD_TOOL),
#   answered by IPython's own completer and inspector from the restored variables, as one
#   REPLY_MIME display record;
# - run_plain_cell: a cell without IPython (the official python image).
#
# SIGINT (an interrupt) raises KeyboardInterrupt in the code, which IPython shows as a traceback.
import builtins
import os
import sys

HISTORY = ".braindrill/history"  # protocol.HISTORY: the earlier cells, JSON, by count
REPLY_MIME = "application/vnd.braindrill.reply+json"  # protocol.REPLY_MIME
NO_STDIN = "raw_input was called, but this frontend does not support input requests."
STREAM_CHUNK = 1 << 16  # characters of stderr per record
JEDI_S = 1.5  # jedi's share of a completion's deadline (the engine's is 2 s)


def run_cell(shell, path, count, answers, asks):
    with open(path, "rb") as f:
        code = f.read().decode("utf-8", "replace")
    import warnings

    shell.execution_count = count
    # "To exit: use 'exit', 'quit', or Ctrl-D." after sys.exit() in a cell: here it exits.
    warnings.filterwarnings("ignore", "To exit: use", UserWarning, "IPython")
    load_history(shell, count)
    shell.kernel = KernelShim()
    shell.parent_header = {}
    state["shell"] = shell
    if asks:
        ask_front_end(answers)
    install_comms()
    if records["token"]:
        sys.stderr = StderrRecords()
    restore_namespace(shell.user_ns)
    result = shell.run_cell(code, store_history=True)
    save_namespace(shell.user_ns, shell.user_ns_hidden)
    if shell.system_exit is not None:
        return shell.system_exit.code
    if isinstance(result.error_in_exec, KeyboardInterrupt):
        return 130
    return 0 if result.success and not shell.failed_display else 1


def load_history(shell, count):
    """The kernel's earlier cells as the shell's own history of this session, so that %history,
    In and _i<n> see them; this cell is stored as number ``count``."""
    try:
        with open(HISTORY, encoding="utf-8") as f:
            cells = __import__("json").load(f)
        os.remove(HISTORY)
    except (OSError, ValueError):
        cells = []
    cells = [cell if isinstance(cell, str) else "" for cell in cells[:count]]
    cells += [""] * (count - len(cells))
    manager = shell.history_manager
    for stored in (manager.input_hist_parsed, manager.input_hist_raw):
        stored[:] = cells  # in place: In and _ih are the same list
    for number, cell in enumerate(cells[1:], 1):
        shell.user_ns.setdefault(f"_i{number}", cell)


class StderrRecords:
    """A cell's sys.stderr: its text as stream records on stdout, so that it keeps its place
    among what the cell prints (two pipes do not keep their order); fd 2 stays the program's."""

    encoding, errors, name = "utf-8", "strict", "<stderr>"

    def write(self, text):
        text = str(text)
        for at in range(0, len(text), 1 << 16):
            write_record(
                {"output_type": "stream", "name": "stderr", "text": text[at : at + 1 << 16]}
            )
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def fileno(self):
        return 2

    def isatty(self):
        return False

    def writable(self):
        return True


class KernelShim:
    """``get_ipython().kernel`` for code written against ipykernel: ``session.send(iopub_socket,
    msg_type, content)`` of a display message becomes its output record."""

    iopub_socket = "iopub"

    class session:
        @staticmethod
        def send(stream, msg_or_type, content=None, parent=None, *args, **kwargs):
            if isinstance(msg_or_type, dict):
                msg_type = msg_or_type.get("header", {}).get("msg_type")
                content = msg_or_type.get("content", content)
            else:
                msg_type = msg_or_type
            if stream == "iopub" and isinstance(content, dict) and msg_type in DISPLAY_TYPES:
                write_record({"output_type": msg_type, **content})


def install_comms():
    """comm's create_comm for a cell (ipywidgets and other comm users call it): its comm_open,
    comm_msg and comm_close become comm records, which the kernel publishes on IOPub. A comm
    kept in a variable is carried to the next cell by reference (python_state.py)."""
    try:
        import comm
        from comm.base_comm import BaseComm
    except Exception:
        return

    class Comm(BaseComm):
        def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
            content = {"comm_id": self.comm_id, "data": data or {}}
            content.update({k: v for k, v in keys.items() if k in ("target_name", "target_module")})
            write_record({"output_type": "comm", "msg_type": msg_type, "content": content})

    comm.create_comm = Comm
    state["comm"] = Comm


DISPLAY_TYPES = ("display_data", "update_display_data", "execute_result", "clear_output")


def ask_front_end(answers):
    """input() and getpass() as in ipykernel: an input_request the front end answers (the
    answer comes framed on ``answers``, the sandbox's stdin), or, with None, ipykernel's error
    for a front end without stdin."""
    import getpass

    def ask(prompt="", password=False):
        if answers is None:
            from IPython.core.error import StdinNotImplementedError

            raise StdinNotImplementedError(NO_STDIN)
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getppid(), signal.SIGUSR1)  # the watchdog's deadline waits with the person
        try:
            asked = {"output_type": "input_request", "prompt": str(prompt), "password": password}
            write_record(asked)
            header = b""
            while not header.endswith(b"\n"):
                byte = os.read(answers, 1)
                if not byte:
                    raise EOFError("the front end went away")
                header += byte
            size, data = int(header), b""
            while len(data) < size:
                chunk = os.read(answers, size - len(data))
                if not chunk:
                    raise EOFError("the front end went away")
                data += chunk
        finally:
            os.kill(os.getppid(), signal.SIGUSR2)
        return data.decode("utf-8", "replace")

    builtins.input = lambda prompt="": ask(prompt)
    getpass.getpass = lambda prompt="Password: ", stream=None: ask(prompt, password=True)


# -- tools: completion and help, from the state, never kept ------------------------------------
def answer_tool(shell, tool, path):
    import json

    with open(path, "rb") as f:
        request = json.loads(f.read())
    code, pos = request.get("code", ""), request.get("cursor_pos", 0)
    reply = {"status": "ok"}
    if shell is None:
        reply.update(empty_reply(tool, pos))
    else:
        state["shell"] = shell
        restore_namespace(shell.user_ns)
        reply.update(complete(shell, code, pos) if tool == "complete" else inspect(shell, request))
    write_record({"output_type": "display_data", "data": {REPLY_MIME: reply}, "metadata": {}})
    return 0


def empty_reply(tool, pos):
    if tool == "complete":
        return {"matches": [], "cursor_start": pos, "cursor_end": pos, "metadata": {}}
    return {"found": False, "data": {}, "metadata": {}}


def complete(shell, code, pos):
    """ipykernel's experimental completion: IPython's completer, with each match's type. It
    looks at the live objects (milliseconds), then again after the imports of the code being
    typed (``import os; os.pa``); only when that finds nothing does jedi read the code, within
    JEDI_S: its first inference in a fresh process loads the standard library's stubs (~1 s)."""
    from IPython.core.completer import provisionalcompleter, rectify_completions

    def completions():
        return list(rectify_completions(code, shell.Completer.completions(code, pos)))

    with provisionalcompleter():
        found = completions()
        if not found and import_names(shell, code[:pos]):  # os.pa, after this cell's import os
            found = completions()
        if not found and use_jedi(shell):
            signal.signal(signal.SIGALRM, out_of_time)
            signal.setitimer(signal.ITIMER_REAL, JEDI_S)
            try:
                found = completions()
            except TimeoutError:
                found = []
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    if not found:
        return empty_reply("complete", pos)
    types = [
        {"start": c.start, "end": c.end, "text": c.text, "type": c.type, "signature": c.signature}
        for c in found
    ]
    return {
        "matches": [c.text for c in found],
        "cursor_start": found[0].start,
        "cursor_end": found[0].end,
        "metadata": {"_jupyter_types_experimental": types},
    }


def import_names(shell, code):
    """Run the import statements of ``code`` (each line, or ;-separated part, that parses) in
    the namespace: this sandbox's only, never kept. True when one ran."""
    import ast

    ran = False
    for part in code.replace(";", "\n").splitlines():
        try:
            tree = ast.parse(part.strip())
        except SyntaxError:
            continue
        imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        if imports:
            try:
                exec(compile(ast.Module(imports, []), "<completion>", "exec"), shell.user_ns)
                ran = True
            except Exception:
                pass
    return ran


def use_jedi(shell):
    """Turn on IPython's jedi completion (the shell was made without jedi: start_shell)."""
    try:
        import jedi
        import jedi.api.classes
        import jedi.api.helpers
    except Exception:
        return False
    import IPython.core.completer as completer

    jedi.settings.case_insensitive_completion = False
    completer.jedi, completer.JEDI_INSTALLED = jedi, True
    shell.Completer.use_jedi = True
    return True


def out_of_time(*_):
    raise TimeoutError


def inspect(shell, request):
    """ipykernel's inspection: IPython's inspector on the name at the cursor."""
    from IPython.utils.tokenutil import token_at_cursor

    name = token_at_cursor(request.get("code", ""), request.get("cursor_pos", 0))
    try:
        data = shell.object_inspect_mime(name, detail_level=request.get("detail_level", 0))
    except Exception:  # KeyError: not found; anything else an object's own failure
        return empty_reply("inspect", 0)
    if not shell.enable_html_pager:
        data.pop("text/html", None)
    return {"found": True, "data": data, "metadata": {}}


# -- without IPython -----------------------------------------------------------------------------
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
