# Braindrill slot runner, part 1 of 3: how a fresh nested sandbox is made -- namespaces, mounts,
# privileges -- and the template that forks one per execution. Joined with runner_checks.py and
# runner.py (part 3, the relay, which says what the runner is) into one program:
# braindrill_ext/sandbox/programs.py.
import ctypes
import gc
import json
import os
import signal
import socket
import sys

NEW_NAMESPACES = 0x10000000 | 0x00020000 | 0x20000000 | 0x40000000 | 0x08000000 | 0x04000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 16384, 1 << 18,
)  # fmt: skip
PR_SET_CHILD_SUBREAPER, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 36, 24, 38, 47
# Docker's default masks on /proc (the runner container has none: the kernel mounts a fresh /proc
# only where the container's is fully visible) and its read-only paths, applied in each sandbox.
MASKED = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
)  # fmt: skip
READ_ONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
libc = ctypes.CDLL(None, use_errno=True)
pythonapi = ctypes.pythonapi
sys_clone = ctypes.PyDLL(None, use_errno=True).syscall  # with the GIL held, as fork needs
sys_clone.restype = ctypes.c_long
SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(os.uname().machine, 56)
CLONE_PARENT, SIGCHLD = 0x00008000, 17


def call(function, *args):
    if function(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


# -- the sandbox (a fork of the template) ------------------------------------------------------
def nest(number, fds, work, serve, argv):
    """Start sandbox ``number``: one clone of the template into new user, mount, pid, network,
    IPC and UTS namespaces, whose parent is the relay (CLONE_PARENT: it reaps it), pid 1 there.
    The template writes its uid and gid maps, then lets it go on; tells the relay (status pipe)
    its pid, or why it could not."""
    status = fds[3]
    go, going = os.pipe()
    try:
        pid = clone(NEW_NAMESPACES | CLONE_PARENT | SIGCHLD)
    except OSError as e:
        os.write(status, f"unable {e}\n".encode())
        for fd in (go, going):
            os.close(fd)
        return
    if pid == 0:  # the sandbox: wait for its maps (until then it cannot own a file)
        os.close(going)
        os.read(go, 1)
        os.close(go)
        sandbox(number, fds, work, serve, argv)
    os.close(go)
    uid, gid = os.geteuid(), os.getegid()
    try:  # the template owns the namespace: it may map its own ids into it
        write_file(f"/proc/{pid}/setgroups", "deny")
        write_file(f"/proc/{pid}/uid_map", f"{uid} {uid} 1")
        write_file(f"/proc/{pid}/gid_map", f"{gid} {gid} 1")
        os.write(status, b"%d\n" % pid)
    except OSError as e:
        os.write(status, f"unable {e}\n".encode())
        os.kill(pid, signal.SIGKILL)
    os.write(going, b"g")
    os.close(going)


def clone(flags):
    """``fork()`` with ``clone(2)``'s flags (the C library's fork has none), with the
    interpreter's own before and after hooks, as ``os.fork`` runs them. Single-threaded callers
    only. (The child's C-library thread id is its parent's: nothing here asks for it.)"""
    pythonapi.PyOS_BeforeFork()
    pid = sys_clone(SYS_CLONE, ctypes.c_ulong(flags), None, None, None, None)
    if pid == 0:
        pythonapi.PyOS_AfterFork_Child()
        return 0
    errno = ctypes.get_errno()
    pythonapi.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(errno, os.strerror(errno))
    return pid


def sandbox(number, fds, work, serve, argv):
    """pid 1 of a fresh sandbox: set it up, drop every privilege, serve one execution."""
    stdin, stdout, stderr, status = fds
    try:
        call(libc.mount, None, b"/", None, MS_REC | MS_PRIVATE, None)
        mount(b"proc", "/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        write_file("/proc/sys/user/max_user_namespaces", "0")  # no way back to capabilities
        with open("/proc/sys/kernel/hostname") as f:
            name = f"{f.read().strip()}-{number}".encode()
        call(libc.sethostname, name, len(name))
        for path in MASKED:
            if os.path.isdir(path):
                mount(b"braindrill-mask", path, b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV)
            elif os.path.exists(path):
                mount(b"/dev/null", path, None, MS_BIND)
        for path in READ_ONLY:
            if os.path.exists(path):
                mount(path.encode(), path, None, MS_BIND | MS_REC)
                flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
                mount(None, path, None, flags)
        size = f"size={work}m".encode()
        mount(b"braindrill-work", "/work", b"tmpfs", MS_NOSUID | MS_NODEV, size + b",mode=0700")
        for path in ("/tmp", "/dev/shm"):
            if os.path.isdir(path):
                options = size + b",mode=1777"
                mount(b"braindrill-tmp", path, b"tmpfs", MS_NOSUID | MS_NODEV, options)
        if os.path.isdir("/dev/mqueue"):  # the new IPC namespace's queues
            mount(b"mqueue", "/dev/mqueue", b"mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        os.chdir("/work")
        write_file("/proc/self/oom_score_adj", "1000")  # the OOM killer's first choice
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
        close_inherited(keep={0, 1, 2, status})
        drop_privileges()
        reset_signals(python=serve is not None)
        os.write(status, b"ready\n")
        os.close(status)
    except OSError as e:
        os.write(status, f"unable {e}\n".encode())
        os._exit(124)
    if serve is not None:
        serve()  # the prestart: read the payload, run it (in a child), report
        sys.exit(0)  # a script's end, in the child: the interpreter's exit, atexit included
    try:
        os.execv(argv[0], argv)
    except OSError as e:
        os.write(2, f"braindrill: cannot start the sandbox's program: {e}\n".encode())
    os._exit(127)


def reset_signals(python):
    """Signals as a new process has them: as the kernel leaves them for an exec'd program, or as
    a Python interpreter sets them up (SIGINT raises KeyboardInterrupt; SIGPIPE and SIGXFSZ are
    ignored, a write fails instead)."""
    for sig in range(1, signal.NSIG):
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    if python:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def mount(source, target, fstype, flags, data=None):
    call(libc.mount, source, target.encode(), fstype, flags, data)


def close_inherited(keep):
    """Close what the sandbox must not hold: every fd but ``keep``, /dev/null and files of the
    image opened read-only (the template's modules may use those; they are the same for every
    sandbox)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in keep:
            continue
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            with open(f"/proc/self/fdinfo/{fd}") as f:
                flags = next(int(line.split()[1], 8) for line in f if line.startswith("flags:"))
        except (OSError, StopIteration, ValueError):
            continue  # the directory being listed
        read_only = flags & os.O_ACCMODE == os.O_RDONLY
        shared = target.startswith(("/tmp/", "/work/", "/dev/shm/", "/proc/"))
        if target == "/dev/null" or (target.startswith("/") and read_only and not shared):
            continue
        os.close(fd)


def drop_privileges():
    call(libc.prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        call(libc.prctl, PR_CAPBSET_DROP, cap, 0, 0, 0)
    call(libc.prctl, PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable (x2): none
    call(libc.capset, header, data)


# -- the template ------------------------------------------------------------------------------
def template(channel, work, mode, program):
    """Prepare what every sandbox starts from, then fork one per request; never returns."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the attach stream is the relay's alone
        os.dup2(null, fd)
    os.close(null)
    serve, argv = None, program
    if os.access("/sbin/docker-init", os.X_OK):  # pid 1 reaps orphans, as in a container
        argv = ["/sbin/docker-init", "--", *program]
    if mode == "template":
        script, lib, source, *preloads = program
        namespace = {"__name__": "braindrill_template"}
        exec(compile(script, "<braindrill prestart>", "exec"), namespace)
        serve = namespace["template"](source, preloads, json.loads(lib))
    gc.freeze()  # the template's objects: never traversed (copied) by a sandbox's collections
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(channel, 64, 4)
        except OSError:
            os._exit(0)
        if not message:
            os._exit(0)  # the relay is gone
        nest(int(message), fds, work, serve, argv)  # returns in the template only
        for fd in fds:
            os.close(fd)


# -- the relay ---------------------------------------------------------------------------------
