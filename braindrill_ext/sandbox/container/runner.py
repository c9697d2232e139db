# Braindrill slot runner, part 3 of 3 (after runner_sandbox.py, which makes the sandboxes, and
# runner_checks.py; one program, Python 3.9+, standard library only): the command of a runner
# container on a worker host whose sandbox kind is "nested" (braindrill_ext/sandbox/runner.py),
#   timeout --foreground -s KILL <life> python3 -u -c "<the parts>" <work MiB> <channel>
#     exec <argv...>
#   ... python3 -u -c "<the parts>" <work MiB> <channel> template <prestart script>
#     <cloudpickle's source as JSON: path → text> <source> <preload...>
# under the container's init, as user 65534 with no capability, under seccomp-nested.json.
#
# Three roles, three processes; what the wire carries is in braindrill_ext/protocol.py:
# - The relay (this process, the container's main program) owns the attach stream. <channel>,
#   unless "-", is the path of the engine's socket (braindrill_ext/sandbox/channel.py): once the
#   token came, the relay connects, sends the token and a newline, says "channel" (the runner
#   mark and token) on the attach stream and uses the socket instead (stdout and stderr in the
#   attach stream's 8-byte-header frames); when it cannot, it says "nochannel <reason>" and
#   keeps the stream. It reads the engine's frames ("<kind> <sandbox number> <size>\n" + body:
#   token, data, stop) and hands each sandbox only the data frames with its own number, through
#   a pipe of that sandbox alone; it copies the sandbox's stdout and stderr, from pipes of that
#   sandbox alone, to its own. A sandbox never holds an fd, a path or a pid of the relay or of
#   another sandbox.
# - The template, forked by the relay before anything is read (so it never holds a payload nor
#   the runner token), imports what every sandbox of the language needs -- for a prestart
#   language the prestart's template (IPython's shell, the preloads) -- and then only forks: one
#   fresh sandbox per request of the relay, whose pipes come with the request (SCM_RIGHTS).
# - A sandbox: the template's child enters new user, mount, pid, network, IPC and UTS namespaces;
#   its child, pid 1 there, gets a fresh /proc (Docker's masks again), /work, /tmp, /dev/shm and
#   hostname, forbids new user namespaces, drops every capability for good (bounding set,
#   ambient, no new privileges) and serves one execution: the prestart's (the template's
#   memory, copy-on-write: no interpreter start) or the exec'd argv (the bootstrap).
# One sandbox at a time. It ends when its pid 1 has ended (the kernel has then killed and reaped
# every process of its pid namespace) and its output pipes have reached end-of-file; the relay
# then checks the runner is clean (as many processes as before the first sandbox, no more tmpfs
# pages) and reports, on both streams, with the token the sandboxes never see:
#   "\036braindrill-runner <token> <number> <status> <OOM kills> <clean: 1|0> <stopped: 1|0>"
# A "stop" frame kills the sandbox of that number (SIGKILL to its pid 1). Frames of another
# number are dropped: bytes meant for one execution never reach another. Not clean, a sandbox
# that ended before any data came, or the template gone: the relay exits after its report (the
# engine replaces the runner). Stdin at its end: it kills the sandbox and exits.
# Before the first execution it says "ready <template RSS KiB> <cgroup charge KiB>" (the same mark
# and token) once the first sandbox waits for its payload, or "unable <reason>" when this host or
# image cannot make nested sandboxes.
import fcntl
import select
import struct
import time

MARK = b"\036braindrill-runner "  # protocol.RUNNER_MARK
FRAME_TOKEN = b"token"  # protocol.FRAME_TOKEN
FRAME_DATA = b"data"  # protocol.FRAME_DATA
FRAME_STOP = b"stop"  # protocol.FRAME_STOP
FRAME_INTERRUPT = b"interrupt"  # protocol.FRAME_INTERRUPT
HOLD_BYTES = 1 << 20  # data for the sandbox the relay holds before it stops reading its stdin
# A sandbox's pipe that a payload or output fills grows to PIPE_BYTES (1 MiB moves at once, not
# 64 KiB), only then: pipes count against a per-user budget (fs.pipe-user-pages-soft), and every
# container's user 65534 is the same user to the kernel.
PIPE_DEFAULT, PIPE_BYTES = 1 << 16, 1 << 20
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ from Python 3.10
END_WAIT_S = 2.0  # after its pid 1 ended, a sandbox's pipes reach end-of-file within this
CLEAN_WAIT_S = 1.0  # a pid namespace's last processes and tmpfs pages go a moment after it


class Relay:
    def __init__(self, work, channel, mode, program):
        call(libc.prctl, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # a sandbox's pid 1 is ours
        self.channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.template = os.fork()
        if self.template == 0:
            self.channel.close()
            template(theirs, work, mode, program)
        theirs.close()
        self.wake, wake = os.pipe()
        os.set_blocking(self.wake, False)
        os.set_blocking(wake, False)
        signal.set_wakeup_fd(wake)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.exited = {}  # pid -> wait status, of children reaped and not yet claimed
        self.input = bytearray()  # what was read of stdin and not yet taken
        self.body = None  # (kind, number, bytes left) of the frame whose body is being read
        self.token = b""
        self.closed = False  # stdin ended
        self.channel_path = None if channel == "-" else channel
        self.source = 0  # the engine's frames: stdin, or the channel
        self.base_shmem = 0  # the cgroup's tmpfs pages once the template is ready

    # stdin: the engine's frames
    def frames(self):
        """Parse what was read: yields (kind, number, bytes) of whole frames, and data frames
        in pieces."""
        while True:
            if self.body is not None:
                kind, n, left = self.body
                piece = self.input[:left]  # a copy (bytearray), the one it needs
                del self.input[: len(piece)]
                left -= len(piece)
                self.body = (kind, n, left) if left else None
                if piece or not left:
                    yield kind, n, piece
                if left:
                    return
                continue
            end = self.input.find(b"\n")
            if end < 0:
                if len(self.input) > 128:
                    fail("a malformed frame from the engine")
                return
            fields = bytes(self.input[:end]).split()
            del self.input[: end + 1]
            if len(fields) != 3 or not fields[1].isdigit() or not fields[2].isdigit():
                fail("a malformed frame from the engine")
            self.body = (fields[0], int(fields[1]), int(fields[2]))

    def read_stdin(self) -> bool:
        try:
            chunk = os.read(self.source, PIPE_BYTES)
        except BlockingIOError:
            return True
        if not chunk:
            self.closed = True
            return False
        self.input += chunk
        return True

    def read_token(self):
        """The engine's first frame: the runner token (after the template was forked)."""
        while True:
            select.select([0], [], [])
            if not self.read_stdin():
                os._exit(0)
            for kind, _, piece in self.frames():
                if kind != FRAME_TOKEN:
                    fail("the engine's first frame is not the token")
                self.token += piece
                if self.body is None:
                    return

    def connect(self):
        """Move to the engine's channel, if it gave one and it can be reached."""
        if self.channel_path is None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.channel_path)
            sock.sendall(self.token + b"\n")
        except OSError as e:
            sock.close()
            reason = (e.strerror or type(e).__name__).replace("\n", " ").encode()
            write_all(1, MARK + self.token + b" nochannel " + reason + b"\n")
            return
        write_all(1, MARK + self.token + b" channel\n")
        self.source = sock.detach()  # not inherited: the template was forked before
        OUT[:] = [self.source]

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exited[pid] = status

    def report(self, *fields):
        line = MARK + self.token + b" " + b" ".join(b"%d" % f for f in fields) + b"\n"
        for stream in (1, 2):
            emit(stream, line)

    # one sandbox
    def run(self, number, first):
        """Start sandbox ``number``, serve its execution, wait for its end. Returns (exit
        status, stopped, whether data came, whether its pipes ended)."""
        pipes = [os.pipe() for _ in range(4)]  # stdin, stdout, stderr, status
        theirs = [pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1]]
        socket.send_fds(self.channel, [b"%d" % number], theirs)
        for fd in theirs:
            os.close(fd)
        to_sandbox, out, err, status = pipes[0][1], pipes[1][0], pipes[2][0], pipes[3][0]
        os.set_blocking(to_sandbox, False)
        readers = {out: 1, err: 2}
        pending = bytearray()
        pid = None
        stopped = got_data = False
        grown = set()  # pipes made larger: a large payload or output goes through
        exit_status = None
        ended_at = None
        while True:
            if pid is not None and exit_status is None and pid in self.exited:
                exit_status = code_of(self.exited.pop(pid))
                ended_at = time.monotonic()
                if to_sandbox is not None:
                    os.close(to_sandbox)
                    to_sandbox = None
            if exit_status is not None and not readers:
                break
            if self.template in self.exited:
                if pid is None:
                    fail("the template ended")
            if ended_at is not None and time.monotonic() - ended_at > END_WAIT_S:
                break  # a pipe held open past its sandbox's end: not clean
            watch = [self.wake, *readers]
            if status is not None:
                watch.append(status)
            if not self.closed and len(pending) < HOLD_BYTES:
                watch.append(self.source)
            writing = [to_sandbox] if pending and to_sandbox is not None else []
            timeout = 0.05 if ended_at is not None else None
            readable, writable, _ = select.select(watch, writing, [], timeout)
            if self.wake in readable:
                drain(self.wake)
                self.reap()
            if status is not None and status in readable:
                line = os.read(status, 4096)
                if not line:
                    os.close(status)
                    status = None
                for word in line.split(b"\n"):
                    if word.isdigit():
                        pid = int(word)
                        if stopped:
                            kill(pid)
                    elif word == b"ready":
                        if first:  # the template is ready: what the runner keeps in tmpfs
                            self.base_shmem = shmem()
                            sizes = (rss_kib(self.template), charged() >> 10)
                            emit(1, MARK + self.token + b" ready %d %d\n" % sizes)
                    elif word.startswith(b"unable"):
                        emit(1, MARK + self.token + b" " + word + b"\n")
                        os._exit(126)
            for fd in [fd for fd in readers if fd in readable]:
                chunk = os.read(fd, PIPE_BYTES)
                if len(chunk) >= PIPE_DEFAULT:
                    grow(fd, grown)
                if chunk:
                    emit(readers[fd], chunk)
                else:
                    os.close(fd)
                    del readers[fd]
            if self.source in readable:
                if not self.read_stdin():
                    if pid is not None:
                        kill(pid)
                    os._exit(0)
                for kind, n, piece in self.frames():
                    if n != number:
                        continue  # another execution's: nobody's now
                    if kind == FRAME_DATA and exit_status is None:
                        got_data = True
                        if to_sandbox is not None:
                            pending += piece
                    elif kind == FRAME_STOP and not stopped:
                        stopped = True
                        if pid is not None:
                            kill(pid)
                    elif kind == FRAME_INTERRUPT and pid is not None and exit_status is None:
                        kill(pid, signal.SIGINT)  # its watchdog hands it to the program
            if writing and writing[0] in writable:
                if len(pending) > PIPE_DEFAULT:
                    grow(to_sandbox, grown)
                try:
                    del pending[: os.write(to_sandbox, pending)]  # in place: no copy
                except BlockingIOError:
                    pass
                except OSError:  # it stopped reading (closed, or ended)
                    pending = bytearray()
                    os.close(to_sandbox)
                    to_sandbox = None
        ended = exit_status is not None and not readers
        for fd in [*readers, status, to_sandbox]:
            if fd is not None:
                os.close(fd)
        return exit_status, stopped, got_data, ended

    def serve(self):
        self.read_token()
        self.connect()
        number = 0
        # What runs between two sandboxes: the container's init, `timeout`, relay and template.
        alone = {"1", str(os.getppid()), str(os.getpid()), str(self.template)}
        while True:
            number += 1
            oom_before = oom_kills()
            exit_status, stopped, got_data, ended = self.run(number, number == 1)
            clean = ended and self.template not in self.exited
            deadline = time.monotonic() + CLEAN_WAIT_S
            while clean and (processes() != alone or shmem() > self.base_shmem):
                if time.monotonic() > deadline:
                    clean = False
                    break
                time.sleep(0.001)
                self.reap()
            oom = oom_kills() - oom_before
            self.report(number, exit_status, oom, int(clean), int(stopped))
            if not clean or not got_data:
                os._exit(125)


def grow(fd, grown):
    if fd not in grown:
        grown.add(fd)
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # over the user's budget: it stays as it is


def code_of(status):
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as a shell says


def kill(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def drain(fd):
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


OUT = []  # the channel's fd, once connected: stdout and stderr go there, framed


def emit(stream, data):
    """Write ``data`` to the engine on ``stream`` (1 stdout, 2 stderr)."""
    if OUT:
        write_all(OUT[0], struct.pack(">BxxxL", stream, len(data)))
        write_all(OUT[0], data)
    else:
        write_all(stream, data)


def write_all(fd, data):
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        pass  # the engine stopped reading


def fail(reason):
    emit(2, f"braindrill: the runner stops: {reason}\n".encode())
    os._exit(125)


if __name__ == "__main__":
    work, channel, mode, *program = sys.argv[1:]
    Relay(work, channel, mode, program).serve()
