"""A state's files read and written by the server (``engine/statefiles.py``), without Docker:
the paths it refuses, the tar it writes (restored by the sandbox's own reader, ``untar`` of
``container/python_files.py``, and by tar, the bootstrap's), the variables' pickle carried
byte for byte, the caps, and the files ``return_files`` brings back."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import tarfile

import pytest

from braindrill_ext.engine import statefiles as sf
from braindrill_ext.errors import (
    BadFilePath,
    BadState,
    InvalidRequest,
    PayloadTooLarge,
    StateTooLarge,
    UnknownFile,
)
from braindrill_ext.execution import Execution, Limits, Result, Status
from braindrill_ext.languages import LanguageRegistry
from braindrill_ext.sandbox import programs
from braindrill_ext.sandbox.protocol import NAMESPACE

CAP = 1 << 20
PICKLE = b"\x80\x05opaque variables \x00\xff" * 40  # never opened: carried as it came


def sandbox_state(files: dict[str, bytes], namespace: bytes | None = PICKLE) -> bytes:
    """A state as the Python sandbox sends it (``send_state``: its own USTAR headers, the
    variables first, then zero padding up to the announced size)."""
    program = {}
    exec(programs.text("python_files.py"), program)
    out = io.BytesIO()
    entries = ([(NAMESPACE, namespace)] if namespace is not None else []) + list(files.items())
    for path, data in entries:
        info = os.stat_result((0o100640, 0, 0, 1, 0, 0, len(data), 0, 1_700_000_000, 0))
        out.write(program["ustar_header"](path, len(data), info))
        out.write(data + bytes(-len(data) % 512))
    return out.getvalue() + bytes(1024) + bytes(4096)  # the end, then the record's padding


def sandbox_restore(blob: bytes, into) -> dict[str, bytes]:
    """What the Python sandbox's restore (``untar`` of python_files.py) makes of ``blob``."""
    program = {}
    exec(programs.text("python_files.py"), program)

    class Source:
        def __init__(self):
            self.data = io.BytesIO(blob)

        def read(self, n):
            return self.data.read(n)

        def copy_to(self, file, size):  # Input's (stdin) in the sandbox: test_python_files.py
            data = self.read(size)
            if len(data) < size:
                raise ValueError("truncated archive")
            file.write(data)

    into.mkdir()
    old = os.getcwd()
    os.chdir(into)
    try:
        program["untar"](Source())
    finally:
        os.chdir(old)
    return {
        str(p.relative_to(into)): p.read_bytes() for p in sorted(into.rglob("*")) if p.is_file()
    }


# -- paths ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/./b", "a/", ".braindrill/namespace",
     ".braindrill/x", "a\nb", "a\0b", "x" * 256],
)  # fmt: skip
def test_paths_leaving_the_work_directory_or_naming_braindrill_are_refused(path):
    with pytest.raises(BadFilePath) as e:
        sf.check_path(path)
    assert isinstance(e.value, InvalidRequest)  # 400


def test_plain_relative_paths_pass_and_the_source_file_is_reserved():
    for path in ("data.csv", "out/report.xlsx", "a b/ü.txt", ".hidden", "x..y"):
        assert sf.check_path(path) == path
    with pytest.raises(BadFilePath, match="every execution writes its code there"):
        sf.check_path("main.py", reserved=("main.py",))


# -- reading a sandbox's state ----------------------------------------------------------------
def test_a_sandbox_state_lists_its_files_not_the_variables():
    blob = sandbox_state({"b.txt": b"bb", "dir/a.bin": b"\x00\xff" * 300})
    assert sf.list_files(blob) == [
        {"path": "b.txt", "size": 2, "mtime": 1_700_000_000},
        {"path": "dir/a.bin", "size": 600, "mtime": 1_700_000_000},
    ]
    assert sf.read_file(blob, "dir/a.bin") == b"\x00\xff" * 300
    with pytest.raises(UnknownFile):
        sf.read_file(blob, "nope.txt")
    with pytest.raises(BadFilePath):
        sf.read_file(blob, NAMESPACE)


def test_an_empty_state_has_no_files():
    assert sf.list_files(b"") == []
    with pytest.raises(UnknownFile):
        sf.read_file(b"", "a")
    with pytest.raises(UnknownFile):
        sf.delete_file(b"", "a")


def test_members_that_are_not_regular_files_or_leave_the_work_directory_are_ignored():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind in (
            ("ok.txt", tarfile.REGTYPE),
            ("d", tarfile.DIRTYPE),
            ("link", tarfile.SYMTYPE),
            ("../evil", tarfile.REGTYPE),
            ("/abs", tarfile.REGTYPE),
            ("long/" + "n" * 150, tarfile.REGTYPE),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.size = kind, 2 if kind == tarfile.REGTYPE else 0
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            tar.addfile(info, io.BytesIO(b"hi") if kind == tarfile.REGTYPE else None)
    names = [f["path"] for f in sf.list_files(out.getvalue())]
    assert names == ["long/" + "n" * 150, "ok.txt"]  # busybox's GNU long names read too


def test_a_state_cut_short_is_a_bad_state():
    blob = sandbox_state({"a.bin": bytes(5000)})
    with pytest.raises(BadState):
        sf.list_files(blob[:1500])


# -- writing what the sandbox restores -------------------------------------------------------
def test_written_files_restore_in_the_sandbox_with_the_variables_unchanged(tmp_path):
    blob = sandbox_state({"old.txt": b"old"})
    blob = sf.write_file(blob, "data/in.csv", b"a;b\n\xe9\xff;2\n", CAP)
    blob = sf.write_file(blob, "old.txt", b"new", CAP)
    blob = sf.delete_file(sf.write_file(blob, "gone.txt", b"x", CAP), "gone.txt")
    restored = sandbox_restore(blob, tmp_path / "py")
    assert restored == {
        NAMESPACE: PICKLE,
        "data/in.csv": b"a;b\n\xe9\xff;2\n",
        "old.txt": b"new",
    }
    assert blob[: len(".braindrill/namespace")] == NAMESPACE.encode()  # first, as sandboxes do
    assert len(blob) % 512 == 0 and blob.endswith(bytes(1024))
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:  # plain USTAR, regular files only
        assert all(m.isreg() for m in tar) and tar.getmembers()[0].name == NAMESPACE
    assert sf.list_files(blob)[1]["path"] == "old.txt"
    (tmp_path / "tar").mkdir()  # the bootstrap's restore: tar -x
    subprocess.run(["tar", "-x", "-f", "-"], input=blob, cwd=tmp_path / "tar", check=True)
    assert (tmp_path / "tar" / "data" / "in.csv").read_bytes() == b"a;b\n\xe9\xff;2\n"
    assert (tmp_path / "tar" / NAMESPACE).read_bytes() == PICKLE


def test_a_replaced_file_keeps_its_mode_and_a_new_one_is_readable():
    blob = sf.write_file(sandbox_state({"run.sh": b"echo"}), "run.sh", b"echo hi", CAP)
    blob = sf.write_file(blob, "new.txt", b"x", CAP)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        modes = {m.name: m.mode for m in tar}
        assert modes == {NAMESPACE: 0o640, "run.sh": 0o640, "new.txt": 0o644}
        assert {m.uid for m in tar} == {65534}


def test_the_last_file_deleted_without_variables_is_an_empty_state():
    blob = sf.write_file(b"", "a.txt", b"x", CAP)
    assert sf.delete_file(blob, "a.txt") == b""
    assert sf.delete_file(sandbox_state({"a.txt": b"x"}), "a.txt") != b""  # the variables stay


def test_over_the_state_cap_is_413_and_the_state_is_untouched():
    blob = sandbox_state({})
    with pytest.raises(StateTooLarge, match="over its cap of 4096 bytes") as e:
        sf.write_file(blob, "big.bin", bytes(4000), 4096)
    assert isinstance(e.value, PayloadTooLarge)
    assert len(sf.write_file(b"", "ok.bin", bytes(2048), 4096)) == 512 + 2048 + 1024


def test_a_file_cannot_be_a_folder_nor_under_a_file_nor_too_long_for_ustar():
    blob = sf.write_file(b"", "a/b.txt", b"x", CAP)
    with pytest.raises(BadFilePath, match="it is a folder"):
        sf.write_file(blob, "a", b"x", CAP)
    with pytest.raises(BadFilePath, match="is a file"):
        sf.write_file(blob, "a/b.txt/c", b"x", CAP)
    with pytest.raises(BadFilePath, match="too long"):
        sf.write_file(b"", "d" * 200 + "/" + "n" * 50, b"x", CAP)
    assert sf.read_file(sf.write_file(b"", "d" * 150 + "/n.txt", b"y", CAP), "d" * 150 + "/n.txt")


# -- return_files ------------------------------------------------------------------------------
def test_patterns_are_checked():
    assert sf.check_patterns(["*.png", "out/report.xlsx"]) == ["*.png", "out/report.xlsx"]
    for bad in ("*.png", ["/etc/*"], ["../x"], [""], ["a\nb"], [1], ["x"] * 33):
        with pytest.raises(BadFilePath):
            sf.check_patterns(bad)


def test_matching_files_come_back_within_the_cap_and_the_rest_is_named():
    blob = sandbox_state(
        {"a.png": b"\x89PNG1", "out/b.png": b"\x89PNG22", "big.png": bytes(100), "x.txt": b"t"}
    )
    files, note = sf.pick_files(blob, ["*.png", "missing.xlsx"], 50)
    assert files == [
        {"path": "a.png", "size": 5, "base64": base64.b64encode(b"\x89PNG1").decode()},
        {"path": "out/b.png", "size": 6, "base64": base64.b64encode(b"\x89PNG22").decode()},
    ]
    assert note == (
        "not returned (over return_files_bytes, 50 bytes in all): big.png (100 bytes); "
        "no file matches 'missing.xlsx'"
    )
    assert sf.pick_files(blob, ["x.txt"], 50) == (
        [{"path": "x.txt", "size": 1, "base64": "dA=="}],
        None,
    )


def result_for(status=Status.OK, state=None, unchanged=False):
    return Result("python", status, state=state, state_unchanged=unchanged)


def test_return_files_fills_the_result_from_the_state_that_came_back():
    language = LanguageRegistry.from_kernelspecs().get("python")
    execution = Execution(language, "", Limits(), return_files=["*.txt"])
    result = result_for(state=sandbox_state({"a.txt": b"A"}))
    sf.return_files(execution, result, kept=b"")
    assert [f["path"] for f in result.files] == ["a.txt"] and result.files_message is None
    unchanged = result_for(unchanged=True)  # the session's kept state is the work directory
    sf.return_files(execution, unchanged, kept=sandbox_state({"k.txt": b"K"}))
    assert [f["path"] for f in unchanged.files] == ["k.txt"]
    lost = result_for(status=Status.TIMEOUT)
    sf.return_files(execution, lost, kept=b"")
    assert lost.files == []
    assert lost.files_message == (
        "no files returned: the work directory did not come back (status timeout)"
    )
