"""How the Python sandbox unpacks a payload or a state (``container/python_files.py``'s ``untar``
reading its stdin), run here in a subprocess on a temporary directory: the program's text is
executed as the sandbox executes it. Its stdin is a pipe in a sandbox (the files are spliced into
place); a regular file here stands for any stdin splice(2) refuses (they are read and written)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile

import pytest

from braindrill_ext.sandbox import programs

UNPACK = """
import sys
exec(compile(sys.argv[1], "python_files.py", "exec"))
source = Input(int(sys.argv[2]))
try:
    untar(source)
    source.drain()  # the archive's end, as the prestart reads it
except ValueError as e:
    print("refused:", e)
print("spliced" if splicing[0] else "copied", source.left)
"""
FILES = {  # sizes around the 512-byte blocks and the 1 MiB pieces
    "empty": b"",
    "one block": b"a" * 512,
    "odd": os.urandom(1000),
    "sub/dir/large": os.urandom((3 << 20) + 7),
}


def archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in FILES.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o640, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def unpack(data: bytes, size: int, cwd, from_pipe: bool) -> str:
    argv = [sys.executable, "-c", UNPACK, programs.text("python_files.py"), str(size)]
    if from_pipe:
        done = subprocess.run(argv, input=data, cwd=cwd, capture_output=True, timeout=60)
    else:
        stdin = cwd / "stdin"
        stdin.write_bytes(data)
        with open(stdin, "rb") as f:
            done = subprocess.run(argv, stdin=f, cwd=cwd, capture_output=True, timeout=60)
        stdin.unlink()
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


@pytest.mark.parametrize("from_pipe", [True, False], ids=["pipe: spliced", "file: copied"])
def test_the_files_come_out_whole_with_their_mode_and_time(tmp_path, from_pipe):
    data = archive()
    said = unpack(data, len(data), tmp_path, from_pipe)
    assert said == f"{'spliced' if from_pipe else 'copied'} 0\n"
    for name, content in FILES.items():
        path = tmp_path / name
        assert path.read_bytes() == content, name
        info = path.stat()
        assert (info.st_mode & 0o777, info.st_mtime) == (0o640, 1_700_000_000)


@pytest.mark.parametrize("from_pipe", [True, False], ids=["pipe: spliced", "file: copied"])
def test_a_truncated_archive_is_refused(tmp_path, from_pipe):
    data = archive()
    cut = len(data) - 2048 - (1 << 20)  # in the middle of the large file
    said = unpack(data[:cut], cut, tmp_path, from_pipe)
    assert said.startswith("refused: truncated archive\n")
    assert said.endswith(" 0\n")  # nothing more was read than there was
