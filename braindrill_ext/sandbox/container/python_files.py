# Braindrill's Python sandbox, part 3 of 6: the state's files (braindrill_ext/protocol.py,
# STATE_MARK). Before the code the state's files are unpacked into /work (untar, also the
# payload's reader); after it the watchdog sends the work directory as a USTAR tar of exactly the
# announced size (send_state), or STATE_SAME when nothing changed. See python_output.py for how
# the parts make one program.
import errno
import os

JOB_DIR = ".braindrill"  # protocol.JOB_DIR
STATE_MARK = b"\036braindrill-state "  # protocol.STATE_MARK
STATE_SAME = b"same"  # protocol.STATE_SAME
STATE_ONLY = ".braindrill/only"  # protocol.STATE_ONLY: a state of these files only
CHUNK = 1 << 20  # what a read or write of a state moves at once (its pipes hold as much)
# stdin (a pipe) to a file by splice(2): Python 3.10+, until it turns out stdin cannot
splicing = [hasattr(os, "splice")]


def read_only():
    """The glob patterns of STATE_ONLY (a stateless payload's return_files: the state sent back
    holds the matching files only, and no variables); None without the file."""
    try:
        with open(os.path.join(WORKDIR, STATE_ONLY)) as f:
            return [line for line in f.read().split("\n") if line]
    except OSError:
        return None


def work_files(source):
    """(path, lstat) of the work directory's regular files but JOB_DIR's and the source file."""
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
                yield path, info


def state_snapshot(source):
    """What the state is now: the work directory's regular files (but JOB_DIR and the source
    file) with their size, time and mode, and the pickled variables' file's size, time and
    inode (save_namespace leaves it untouched when the variables pickle as they came). Taken
    when the state was restored, and again after the program, to send nothing when nothing
    changed. A restored file has the whole second of its tar header as its time; a write gives
    it the time of now, in nanoseconds."""
    files = {}
    for path, info in work_files(source):
        files[path] = (info.st_size, info.st_mtime_ns, info.st_mode)
    try:
        info = os.lstat(NAMESPACE)
        return files, (info.st_size, info.st_mtime_ns, info.st_ino)
    except OSError:
        return files, None


def send_unchanged(token):
    """The state record that says the state is as it came (protocol.STATE_SAME)."""
    write_all(1, STATE_MARK + b"%s %s\n" % (token.encode(), STATE_SAME))


def send_state(limit, token, source):
    """The state record (protocol.py): the work directory's regular files but JOB_DIR (save
    NAMESPACE, first) and the source file, smallest first, as many as fit in ``limit`` bytes of
    USTAR tar; the others are named on stderr. Exactly the announced size is written."""
    files = [(info.st_size, path, info) for path, info in work_files(source) if wanted(path)]
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
                    chunk = f.read(min(left, CHUNK))
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
        chunks, wanted = [], min(n, self.left)
        while wanted:  # a pipe gives what it holds: pieces, joined once (not added up)
            chunk = os.read(0, min(wanted, CHUNK))
            if not chunk:
                self.left = 0
                break
            self.left -= len(chunk)
            wanted -= len(chunk)
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def drain(self):
        while self.left and self.read(CHUNK):
            pass

    def copy_to(self, file, size):
        """Move the next ``size`` bytes into the open ``file``: spliced from the pipe into the
        file by the kernel where it can (tmpfs pages filled straight from the pipe's, nothing
        copied through this process), else read and written."""
        while size:
            moved = self._splice(file, min(size, self.left, CHUNK)) if self.left else 0
            if moved is None:  # not spliceable: read (what is left of stdin counted) and write
                chunk = self.read(min(size, CHUNK))
                file.write(chunk)
                moved = len(chunk)
            if not moved:
                self.left = 0
                raise ValueError("truncated archive")
            size -= moved

    def _splice(self, file, n):
        """Up to ``n`` bytes of stdin into ``file`` by splice(2): how many (0: stdin ended), or
        None where it cannot (stdin is no pipe, splice(2) is not allowed)."""
        if not splicing[0]:
            return None
        try:
            moved = os.splice(0, file.fileno(), n)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EPERM):
                raise  # the file system is full, or the file over its limit
            splicing[0] = False
            return None
        self.left -= moved
        return moved


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
        with open(path, "wb") as f:
            source.copy_to(f, size)
        if size % 512 and len(source.read(512 - size % 512)) < 512 - size % 512:  # the padding
            raise ValueError("truncated archive")
        os.chmod(path, mode | 0o600)
        os.utime(path, (mtime, mtime))
