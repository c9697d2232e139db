# Braindrill's Python sandbox, part 5 of 6 (after python_cell.py, before prestart.py): the
# program's process, forked by the prestart before the payload, once it has its job -- it becomes
# `python3 -u <source> <args>` (a script: IPython only if it uses it) or runs the source as a
# notebook cell (python_cell.py), then exits as the interpreter would, without tearing its
# modules down. See prestart.py for the contract, python_output.py for how the parts join.
import atexit
import builtins
import os
import sys


def run(source, argv, shell, job):
    """Become `python3 -u <source> <args>`, or run the source as a notebook cell (or answer a
    tool's request about it)."""
    cell = job.get("BD_INTERACTIVE") == "1"
    count = int(job["BD_EXECUTION_COUNT"]) if job.get("BD_EXECUTION_COUNT", "").isdigit() else 1
    # A cell's input() is answered on the sandbox's stdin; the program's own is the request's.
    answers = os.dup(0) if cell and job.get("BD_INPUT") == "1" else None
    fd = os.open(".braindrill/stdin", os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    path = os.path.abspath(source)
    sys.argv = argv[argv.index(source) :]
    sys.path[0] = os.path.dirname(path)
    add_site()
    if cell:
        if lazy:
            shell = make_shell()
        if shell is not None:
            atexit.unregister(shell.atexit_operations)
        if job.get("BD_TOOL"):
            sys.exit(answer_tool(shell, job["BD_TOOL"], path))
        asks = job.get("BD_INPUT") in ("0", "1")  # a kernel's cell: input() is the front end's
        if shell is None:
            sys.exit(run_plain_cell(path, count))
        sys.exit(run_cell(shell, path, count, answers, asks))
    if lazy:
        import warnings

        before_ipython.update(recursion_limit=sys.getrecursionlimit(), filters=warnings.filters[:])
        sys.meta_path.insert(0, ShellOnImport())
    elif shell is not None:
        as_script(shell)
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


def add_site():
    """The packages the kernel or session installed, unpacked by the engine into SITE_DIR: on
    sys.path before the image's site-packages (so that they win over its copies), after the
    standard library. A module the template imported already (a preload) stays as it is."""
    site = os.path.abspath(".braindrill/site")  # protocol.SITE_DIR
    if not os.path.isdir(site):
        return
    at = next(
        (i for i, p in enumerate(sys.path) if p.endswith(("site-packages", "dist-packages"))),
        len(sys.path),
    )
    sys.path.insert(at, site)
    import importlib

    importlib.invalidate_caches()


def make_shell():
    """start_shell(), and matplotlib's inline backend when it is there."""
    shell = start_shell()
    if shell is not None:
        try:
            import importlib.util

            if importlib.util.find_spec("matplotlib_inline"):
                os.environ.setdefault("MPLBACKEND", INLINE)
        except Exception:
            pass
    return shell


def as_script(shell):
    """A script keeps no trace of the shell but what displays."""
    import warnings

    # it would end a session of a disposable process: ~0.1 s at exit
    atexit.unregister(shell.atexit_operations)
    for name in ("display", "__IPYTHON__"):
        builtins.__dict__.pop(name, None)
    for name in ("ps1", "ps2", "ps3"):
        sys.__dict__.pop(name, None)
    sys.setrecursionlimit(before_ipython["recursion_limit"])
    warnings.filters[:] = before_ipython["filters"]
    warnings._filters_mutated()
    # Figures still open at the end are shown, as the inline backend does after a cell: after
    # the program's own atexit functions and threads.
    atexit.register(shell.events.trigger, "post_execute")


class ShellOnImport:
    """A lazy sandbox's script (BD_PRESTART=lazy) gets IPython's shell only if it uses it: when it
    first imports IPython (after IPython has loaded) or matplotlib (before it loads: its backend).
    A script that imports neither costs no IPython start (~0.4 s of CPU)."""

    def find_spec(self, name, path=None, target=None):
        if name not in ("IPython", "matplotlib"):
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return None
        load = spec.loader.exec_module

        def exec_module(module):
            if name == "matplotlib":
                make_script_shell()
            load(module)
            if name == "IPython":
                make_script_shell()

        spec.loader.exec_module = exec_module
        return spec


def make_script_shell():
    shell = make_shell()
    if shell is not None:
        as_script(shell)


def exit_status(code):
    """What the interpreter makes of ``sys.exit(code)``: None is 0, a number itself, anything
    else is printed on stderr and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except Exception:
        pass
    return 1


def exit_now(code):
    """End the program as the interpreter does -- wait for its threads, run its atexit functions
    (weakref finalizers included), flush its streams -- but without tearing every module down:
    a fork of a template holding IPython (and pandas...) would touch, and so copy, most of its
    pages for that, tens of milliseconds of nothing. Then tell the watchdog the status (its
    notice pipe): it reports while the kernel tears this process's address space down (a fork of
    a python-data template: ~5 ms), instead of after."""
    try:
        import threading

        threading._shutdown()  # the non-daemon threads, as Py_FinalizeEx waits for them
    except BaseException:
        pass
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    if exiting["notice"] is not None and exiting["pid"] == os.getpid():  # not a fork of it
        try:
            os.write(exiting["notice"], b"%d\n" % code)
        except OSError:
            pass
    os._exit(code)
