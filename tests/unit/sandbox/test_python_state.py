"""How the Python sandbox writes the pickled variables (``container/python_state.py``'s
``Rewrite``), run here on a temporary directory: the program's text is executed as the sandbox
executes it. Variables that pickle as they came leave the file untouched (its time and inode: the
watchdog's snapshot then sees nothing changed); any difference rewrites it from there, in place."""

from __future__ import annotations

import os
import pickle

import pytest

from braindrill_ext.sandbox import programs


@pytest.fixture
def rewrite():
    namespace: dict = {"__name__": "python_state"}
    exec(compile(programs.text("python_state.py"), "python_state.py", "exec"), namespace)
    return namespace["Rewrite"]


def write(rewrite, path, value) -> int:
    with rewrite(path, "wb") as f:
        pickle.Pickler(f, protocol=5).dump(value)
        return f.tell()


def stat(path):
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns, info.st_ino


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"xs": [1, 2, 3]}, {"xs": [9, 2, 3]}),  # the same size
        ({"xs": [1, 2, 3], "big": b"x" * (3 << 20)}, {"xs": [1, 2, 3], "big": b"y" * (3 << 20)}),
        # a large array differing only in its last, partial MiB
        ({"big": b"x" * (3 << 20) + b"a" * 5}, {"big": b"x" * (3 << 20) + b"b" * 5}),
        ({"xs": list(range(1000))}, {"xs": [1]}),  # smaller: cut where the new pickle ends
        ({"xs": [1]}, {"xs": list(range(1000))}),  # larger
    ],
)
def test_a_pickle_is_written_only_where_it_differs(rewrite, tmp_path, before, after):
    path = str(tmp_path / "namespace")
    assert write(rewrite, path, before) == os.path.getsize(path)
    os.utime(path, (1_700_000_000, 1_700_000_000))  # as the state's tar restores it
    untouched = stat(path)
    assert write(rewrite, path, before) == untouched[0]
    assert stat(path) == untouched  # as it came: not written
    size = write(rewrite, path, after)
    with open(path, "rb") as f:
        assert pickle.load(f) == after
    assert os.path.getsize(path) == size
    assert stat(path)[1] != untouched[1]  # written: now
    assert stat(path)[2] == untouched[2]  # in place: no room for a second copy needed


def test_a_new_file_is_written_whole(rewrite, tmp_path):
    path = str(tmp_path / "namespace")
    write(rewrite, path, {"x": 1})
    with open(path, "rb") as f:
        assert pickle.load(f) == {"x": 1}
