# Braindrill prestart for Python: the command of a Python sandbox container, run as
# `timeout -s KILL <life> python3 -u -c "$(cat prestart.py)" <source file>` under the container's
# init. The interpreter starts with the container, before any code exists, so that the code runs
# as soon as it arrives instead of after the interpreter's start-up. It follows the bootstrap's
# contract (braindrill_ext/container/bootstrap.sh) exactly: one framed payload on stdin
# (`<size>\n` + tar), unpacked into /work; .braindrill/job gives BD_TIMEOUT and BD_EXIT_TOKEN,
# .braindrill/argv the run argv; the program's stdin is .braindrill/stdin; exit codes 120-122 for
# a broken payload. It then forks: the child runs the source file as `__main__`, as
# `python3 -u <source file> <args>` would; the parent is the in-container deadline (the role
# `timeout -s KILL` plays in the bootstrap), writes the exit report and exits with the child's
# status. Nothing here ever ran user code before the payload arrived.
# Only built-in modules are imported (tarfile and shlex would cost ~40 ms of start-up on a slow
# storage driver, paid again by every cold start); the tar is the engine's own plain USTAR.
import os
import signal
import sys


def read_payload():
    header = b""
    while not header.endswith(b"\n"):
        byte = os.read(0, 1)  # unbuffered: nothing past the payload is consumed
        if not byte:
            sys.exit(0)
        header += byte
    if not header[:-1].isdigit():
        print("braindrill: bad payload header", file=sys.stderr)
        sys.exit(121)
    size, chunks = int(header), []
    while size:
        chunk = os.read(0, min(size, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    try:
        untar(b"".join(chunks))
    except (ValueError, OSError):
        print("braindrill: cannot unpack the payload", file=sys.stderr)
        sys.exit(122)


def untar(data):
    """Write the regular files of a USTAR archive (what the engine's build_payload makes)."""
    at = 0
    while at + 512 <= len(data) and data[at : at + 512].strip(b"\0"):
        block = data[at : at + 512]
        name = block[:100].rstrip(b"\0").decode()
        prefix = block[345:500].rstrip(b"\0").decode()
        path = f"{prefix}/{name}" if prefix else name
        size = int(block[124:136].strip(b"\0 ") or b"0", 8)
        if block[156:157] not in (b"0", b"\0") or path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"unexpected member {path!r}")
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data[at + 512 : at + 512 + size])
        at += 512 + (size + 511) // 512 * 512
    if at + 512 > len(data):
        raise ValueError("truncated archive")


def read_job():
    """The job's variables (BD_TIMEOUT, BD_EXIT_TOKEN) and the run argv (.braindrill/argv, the
    words of the bootstrap's `set --` line, NUL-separated)."""
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


def run(source, argv):
    """In the child: become `python3 -u <source> <args>`."""
    fd = os.open(".braindrill/stdin", os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    path = os.path.abspath(source)
    main = type(sys)("__main__")
    main.__file__, main.__cached__ = path, None
    sys.modules["__main__"] = main
    sys.argv = argv[argv.index(source) :]
    sys.path[0] = os.path.dirname(path)
    with open(source, "rb") as f:
        text = f.read()
    try:
        exec(compile(text, path, "exec"), main.__dict__)
    except SystemExit:
        raise
    except BaseException as e:  # what the interpreter prints for an uncaught exception
        e.with_traceback(e.__traceback__.tb_next)  # without this frame
        sys.excepthook(type(e), e, e.__traceback__)
        sys.exit(130 if isinstance(e, KeyboardInterrupt) else 1)


def watch(child, job):
    """In the parent: wait for the child until the deadline; report and exit with its status."""
    signal.signal(signal.SIGALRM, lambda *_: os.kill(child, signal.SIGKILL))
    signal.setitimer(signal.ITIMER_REAL, float(job["BD_TIMEOUT"]))
    _, status = os.waitpid(child, 0)  # resumed after the handler runs (PEP 475)
    code = os.waitstatus_to_exitcode(status)
    code = code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as a shell says
    report = b"\036braindrill-exit %s %d\n" % (job["BD_EXIT_TOKEN"].encode(), code)
    for fd in (1, 2):
        try:
            os.write(fd, report)
        except OSError:
            pass  # the engine stopped reading: it learns the outcome from the engine instead
    os._exit(code)


os.chdir("/work")
read_payload()
job, argv = read_job()
child = os.fork()
if child == 0:
    job.clear()  # the program has no use for the exit token
    run(sys.argv[1], argv)
else:
    watch(child, job)
