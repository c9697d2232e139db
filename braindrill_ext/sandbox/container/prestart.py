# Braindrill's Python sandbox, part 6 of 6 (after python_output.py, python_state.py,
# python_files.py, python_cell.py and python_run.py, joined into one program): the prestart, the
# command of a Python sandbox container, run as
# `timeout -s KILL <life> python3 -u -c "<the six parts>" <cloudpickle JSON or ""> <source file>
# [preload module...]`
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
# payload on stdin (`<size>\n` + tar, or `<size> <state size>\n` + state + tar), unpacked into
# /work; .braindrill/job gives BD_TIMEOUT, BD_EXIT_TOKEN and, optionally, BD_OUTPUT_TOKEN,
# BD_OUTPUT_MAX, BD_INTERACTIVE, BD_EXECUTION_COUNT and BD_STATE_MAX (python_state.py: the child
# restores and saves the variables around the code, the parent sends the state);
# .braindrill/argv the run argv; the program's stdin is .braindrill/stdin;
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
import _signal as signal  # signal.py imports enum, functools...: ~5 ms of every start
import gc
import os
import sys

EXIT_MARK = b"\036braindrill-exit "  # protocol.EXIT_MARK
NO_PAYLOAD = 123  # protocol.NO_PAYLOAD: stdin closed, no code came
CELL_MODULES = ("comm", "comm.base_comm", "getpass")  # what a cell's set-up imports
exiting = {"notice": None, "pid": 0}  # set in the program's process: its pid, its notice pipe


def prepare_environment(preloads):
    os.environ.setdefault("MPLCONFIGDIR", "/tmp/matplotlib")
    # BLAS/OpenMP start a thread per CPU of the host, in this process and again in the child:
    # as many as the container's CPU quota instead, under its pids limit.
    if preloads and (threads := cpu_quota()):
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
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
    if not names:
        return
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


def warm_up():
    """What a data cell's first use of the preloads imports or fills in -- pandas' HTML and text
    formatters, CSV writer and reader and group-by; matplotlib's fonts, Agg and PNG writer -- done
    once here rather than in every fork: a four-row frame is described, grouped, shown and
    written to and read from CSV in memory, a histogram drawn to PNG on a Figure of its own (not
    pyplot's: no figure number is used, nothing is left for the inline backend to show). No
    file, option or figure is left behind; ~10 ms less for each of such cells."""
    import io

    pandas = sys.modules.get("pandas")
    try:
        if pandas is not None:
            frame = pandas.DataFrame({"a": [0.5, 1.5, 2.5, 3.5], "b": [0, 1, 0, 1]})
            for shown in (frame.describe(), frame.groupby("b")["a"].agg(["mean", "count"])):
                shown._repr_html_(), repr(shown)
            frame[frame["b"] > 0].head().to_dict()
            text = io.StringIO()
            frame.to_csv(text, index=False)
            pandas.read_csv(io.StringIO(text.getvalue()))
        if "matplotlib.pyplot" in sys.modules:
            from matplotlib.figure import Figure

            figure = Figure()
            figure.subplots().hist([0.5, 1.5, 2.5], bins=3)
            figure.savefig(io.BytesIO(), format="png", bbox_inches="tight")
    except Exception:
        pass
    gc.collect()  # its garbage, before the template's objects are frozen


def read_payload(source):
    """Unpack the state, if any, then the payload (header ``<size>[ <state size>]``). Returns
    the state's snapshot as restored (``state_snapshot``; None: no state)."""
    header = b""
    while not header.endswith(b"\n"):
        byte = os.read(0, 1)  # unbuffered: nothing past the payload is consumed
        if not byte:
            sys.exit(NO_PAYLOAD)
        header += byte
    fields = header.split()
    if not 1 <= len(fields) <= 2 or not all(field.isdigit() for field in fields):
        print("braindrill: bad payload header", file=sys.stderr)
        sys.exit(121)
    snapshot = None
    if len(fields) == 2:
        if int(fields[1]):
            restored = Input(int(fields[1]))
            try:
                untar(restored)
            except (ValueError, OSError, UnicodeError):
                note("the state was not restored whole")
            restored.drain()
        snapshot = state_snapshot(source)
    payload = Input(int(fields[0]))
    try:
        untar(payload)
    except (ValueError, OSError, UnicodeError):
        print("braindrill: cannot unpack the payload", file=sys.stderr)
        sys.exit(122)
    payload.drain()  # the archive's padding
    return snapshot


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


# -- in the parent ---------------------------------------------------------------------------
def arm(child, job):
    """The deadline, and its pause while the program waits for its user (SIGUSR1, SIGUSR2 from
    python_cell.ask_front_end): set before the program has its job, which may ask at once."""
    signal.signal(signal.SIGALRM, lambda *_: os.kill(child, signal.SIGKILL))
    set_deadline(float(job["BD_TIMEOUT"]))
    if job.get("BD_INPUT") == "1":
        left = []  # while paused: the time the deadline had left
        signal.signal(signal.SIGUSR1, lambda *_: left or left.append(set_deadline(0)))
        signal.signal(signal.SIGUSR2, lambda *_: left and set_deadline(max(left.pop(), 0.001)))


def set_deadline(seconds):
    """Arms the deadline (0: stops it); returns the time it had left."""
    return signal.setitimer(signal.ITIMER_REAL, seconds)[0]


def watch(child, notice, job, display, source, snapshot):
    """Wait for the child until the deadline (armed); show the display files, send the state,
    report, exit with its status."""
    code = wait_for(child, notice)
    set_deadline(0)
    show_display_files(display)
    if state["max"] and snapshot is not None and snapshot == state_snapshot(source):
        send_unchanged(job["BD_EXIT_TOKEN"])
    elif state["max"]:
        send_state(state["max"], job["BD_EXIT_TOKEN"], source)
    report = EXIT_MARK + b"%s %d\n" % (job["BD_EXIT_TOKEN"].encode(), code)
    for fd in (1, 2):
        try:
            os.write(fd, report)
        except OSError:
            pass  # the engine stopped reading: it learns the outcome from the engine instead
    os._exit(code)


def wait_for(child, notice):
    """The child's status: the one it says on its notice pipe as it exits (python_run.exit_now),
    so that the report does not wait for the teardown of its address space, or the one waitpid
    gives when it ended without saying one (killed, crashed, os._exit). Orphans are reaped
    meanwhile, as a sandbox's pid 1 must. What the program writes there itself can only end its
    run sooner, with a status of its choice, as sys.exit would."""
    woken, wake = os.pipe()
    for fd in (woken, wake):
        os.set_blocking(fd, False)
    # A SIGCHLD wakes the select (which resumes after a handler); no note on stderr, ever.
    signal.set_wakeup_fd(wake, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    try:
        return wait_loop(child, notice, woken)
    finally:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def wait_loop(child, notice, woken):
    import select

    said, watching = b"", [notice, woken]
    while True:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if not pid:
                break
            if pid == child:
                code = os.waitstatus_to_exitcode(status)
                return code if code >= 0 else 128 - code  # killed by signal N: 128 + N
        readable = select.select(watching, [], [])[0]
        if woken in readable:
            os.read(woken, 4096)
        if notice in readable:
            data = os.read(notice, 16)
            said += data
            if said.endswith(b"\n") and said[:-1].isdigit() and len(said) < 8:
                return int(said) & 0xFF
            if not data or len(said) >= 8:  # closed, or not a status: waitpid tells
                watching.remove(notice)


# -- the program -------------------------------------------------------------------------------
def template(source, preloads, lib=None):
    """What runs before the payload: the shell and the preloads. Called here, or once per runner
    life by a slot runner's template (container/runner.py), whose every sandbox is a fork of it:
    ``lib`` (path → source) is then the server's cloudpickle, imported once here instead of
    carried in every stateful payload. Returns the function that serves one execution (it never
    returns)."""
    os.chdir("/work")
    if lazy:
        preloads = []
    prepare_environment(preloads)
    shell = None if lazy else make_shell()
    preload(preloads, shell)
    if preloads:
        warm_up()
    if shell is not None:  # IPython's first cell loads and builds what later ones reuse
        shell.run_cell("pass", store_history=False)
        preload(CELL_MODULES, None)  # imported once here, not by every cell (python_cell.py)
    if lib:
        import_lib(lib)
    return lambda: serve(shell, source)


def import_lib(lib):
    """Import the modules of ``lib`` (``PYTHON_LIB/<path>`` → source) from a directory of /tmp,
    removed again: they live on in sys.modules."""
    root = "/tmp/.braindrill-lib"
    for path, text in lib.items():
        name = os.path.join(root, os.path.relpath(path, PYTHON_LIB))
        os.makedirs(os.path.dirname(name), exist_ok=True)
        with open(name, "w") as f:
            f.write(text)
    sys.path.insert(0, root)
    try:
        import cloudpickle  # noqa: F401  (a failure ends the template: the runner is not made)
    finally:
        sys.path.remove(root)
        remove_tree(root)


def serve(shell, source):
    """Fork the program's process, then read the payload and hand the program its job (not the
    exit token: it was forked before the job was read), watch it; exits with its status. The
    fork happens while nothing waits for it (before the payload), off a cell's path."""
    os.chdir("/work")
    # What exists now (IPython's objects, the preloaded modules') is never traversed by the
    # child's garbage collections, which would copy every page of it: ~0.1 s more at its exit.
    gc.freeze()
    go, given = os.pipe()
    notice, told = os.pipe()
    child = os.fork()
    if child == 0:
        # A process group of its own: the container's `timeout` sends an interrupt to its whole
        # group, and the program must get it once, from here (twice, the second would break
        # into IPython's handling of the first).
        os.setpgid(0, 0)
        os.close(given)
        os.close(notice)
        exiting.update(notice=told, pid=os.getpid())
        execute(source, shell, go)
    os.close(told)
    try:
        os.setpgid(child, child)  # whichever of the two runs first
    except OSError:
        pass
    os.close(go)
    # An interrupt is the program's (KeyboardInterrupt), whenever it comes.
    signal.signal(signal.SIGINT, lambda *_: os.kill(child, signal.SIGINT))
    snapshot = read_payload(source)
    job, argv = read_job()
    state["max"] = int(job["BD_STATE_MAX"]) if job.get("BD_STATE_MAX", "").isdigit() else 0
    state["only"] = read_only()
    display = os.environ.setdefault("BRAINDRILL_DISPLAY", DISPLAY_DIR)
    os.makedirs(display, exist_ok=True)
    records["token"] = job.get("BD_OUTPUT_TOKEN", "")  # its own display files, at the end
    if job.get("BD_OUTPUT_MAX", "").isdigit():
        records["max"] = int(job["BD_OUTPUT_MAX"])
    program = {name: value for name, value in job.items() if name != "BD_EXIT_TOKEN"}
    import json

    arm(child, job)
    write_all(given, json.dumps({"job": program, "argv": argv}).encode())
    os.close(given)
    watch(child, notice, job, display, source, snapshot)


def execute(source, shell, go):
    """The program's process: wait for its job (end of file: the payload never came), run it,
    exit with its status."""
    rehearse(shell)
    data = b""
    while True:
        chunk = os.read(go, 65536)
        if not chunk:
            break
        data += chunk
    os.close(go)
    if not data:
        os._exit(0)
    import json

    given = json.loads(data)
    job, argv = given["job"], given["argv"]
    records["token"] = job.get("BD_OUTPUT_TOKEN", "")
    if job.get("BD_OUTPUT_MAX", "").isdigit():
        records["max"] = int(job["BD_OUTPUT_MAX"])
    state["max"] = int(job["BD_STATE_MAX"]) if job.get("BD_STATE_MAX", "").isdigit() else 0
    if read_only() is not None:  # files asked back, not a state: no variables pickled
        state["max"] = 0
    os.environ.setdefault("BRAINDRILL_DISPLAY", DISPLAY_DIR)
    try:
        run(source, argv, shell, job)
        code = 0
    except SystemExit as e:
        code = exit_status(e.code)
    exit_now(code)


def rehearse(shell):
    """While the job has not come: what any cell goes through (the shell's run_cell, its
    formatters), once, silently, as the template did. A fork shares the template's pages until
    it writes them, and a first write copies a page: those of a cell's path are copied now,
    not while the cell runs (~8 ms of a trivial cell)."""
    if shell is None:
        return
    shell.run_cell("pass", store_history=False, silent=True)
    shell.display_formatter.format(0)


# A sandbox for a script (a container started for one: Sandbox.script) starts nothing before its
# code: IPython's shell and the preloads cost ~0.4 s of CPU, and a script needs them only if it
# uses them (ShellOnImport). Else (a warm container, a runner's template) it starts them ahead.
lazy = os.environ.pop("BD_PRESTART", "") == "lazy"
if __name__ == "__main__":  # a container's program; a runner's template runs template() itself
    # argv: the source file's name, cloudpickle's source as JSON (or nothing), the preloads
    if sys.argv[1]:
        import json

        template(sys.argv[2], sys.argv[3:], json.loads(sys.argv[1]))()
    else:
        template(sys.argv[2], sys.argv[3:])()
