"""A session's files over REST on real containers (``/braindrill/sessions/<id>/files``): what is
uploaded, the next execution reads; what an execution writes, the client downloads; binary
``files`` in a request and ``return_files`` with and without a session. A real server with two
users. (The tar operations and path checks themselves: tests/unit/engine/test_statefiles.py.)"""

from __future__ import annotations

import base64
import json

import pytest

from tests.openapi import check_answer, fetch_error
from tests.rest import TwoUsers, as_user, create_session, refused, run_as

CONFIG = {
    "ServerApp": {"identity_provider_class": TwoUsers},
    "WarmPools": {"enabled": False},
    "LimitsPolicy": {"language_limits": {"python": {"state_mib": 1}}},  # a small cap for the 413
}
FILE = "/braindrill/sessions/{session}/files/{path}"
CSV = "city;température\nParis;21\nSão Paulo;27\nOslo;-3\n".encode("latin-1")  # not UTF-8
PANDAS = """import pandas as pd
import matplotlib
matplotlib.use("Agg")
frame = pd.read_csv("in/data.csv", sep=";", encoding="latin-1")
ax = frame.plot.bar(x="city", y="température")
ax.figure.savefig("out/chart.png")
print(len(frame), frame["température"].sum())
"""


@pytest.fixture
def braindrill_config():
    return CONFIG


def file_url(sid: str, path: str) -> tuple[str, ...]:
    return ("braindrill", "sessions", sid, "files", *path.split("/"))


async def put(jp_fetch, user, sid, path, body: bytes):
    return await jp_fetch(*file_url(sid, path), method="PUT", body=body, headers=as_user(user))


async def test_upload_a_non_utf8_csv_run_pandas_download_the_png(jp_fetch):
    sid = (await create_session(jp_fetch, "alice", "python-data"))["id"]
    response = await put(jp_fetch, "alice", sid, "in/data.csv", CSV)
    written = check_answer(FILE, "put", response.code, response.headers, response.body)
    assert written["path"] == "in/data.csv" and written["size"] == len(CSV)
    await put(jp_fetch, "alice", sid, "out/.keep", b"")  # the folder the code writes into
    result = await run_as(jp_fetch, "alice", "python-data", PANDAS, session=sid)
    assert result["status"] == "ok", result
    assert result["stdout"] == "3 45\n"
    listing = await jp_fetch("braindrill", "sessions", sid, "files", headers=as_user("alice"))
    files = json.loads(listing.body)["files"]
    assert [f["path"] for f in files] == ["in/data.csv", "out/.keep", "out/chart.png"]
    png = await jp_fetch(*file_url(sid, "out/chart.png"), headers=as_user("alice"))
    assert png.body.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png.body) == next(f["size"] for f in files if f["path"] == "out/chart.png")
    assert png.headers["Content-Type"] == "image/png"
    assert png.headers["Content-Disposition"] == "attachment; filename*=utf-8''chart.png"
    assert png.headers["X-Content-Type-Options"] == "nosniff"
    csv = await jp_fetch(*file_url(sid, "in/data.csv"), headers=as_user("alice"))
    assert csv.body == CSV  # unchanged bytes, through the sandbox and back


async def test_files_and_variables_carry_over_together(jp_fetch):
    sid = (await create_session(jp_fetch, "alice", "python"))["id"]
    first = await run_as(jp_fetch, "alice", "python", "x = 41", session=sid)
    assert first["status"] == "ok", first
    await put(jp_fetch, "alice", sid, "blob.bin", bytes(range(256)))
    code = "print(x + 1, open('blob.bin', 'rb').read() == bytes(range(256)))"
    second = await run_as(jp_fetch, "alice", "python", code, session=sid)
    assert second["stdout"] == "42 True\n", second
    response = await jp_fetch(*file_url(sid, "blob.bin"), method="DELETE", headers=as_user("alice"))
    assert response.code == 204
    code = "import os\nprint(x, os.path.exists('blob.bin'))"
    third = await run_as(jp_fetch, "alice", "python", code, session=sid)
    assert third["stdout"] == "41 False\n", third  # the variables kept through both writes


async def test_refusals(jp_fetch):
    sid = (await create_session(jp_fetch, "alice", "python"))["id"]
    await put(jp_fetch, "alice", sid, "a.txt", b"a")
    for path in ("../x", ".braindrill/namespace", "a/./b", "main.py"):
        code, message = await refused(put(jp_fetch, "alice", sid, path, b"x"))
        assert code == 400, (path, message)
    code, headers, body = await fetch_error(put(jp_fetch, "alice", sid, "big", bytes(2 << 20)))
    assert code == 413 and "over its cap of 1048576 bytes" in json.loads(body)["message"]
    check_answer(FILE, "put", code, headers, body)
    code, _ = await refused(jp_fetch(*file_url(sid, "nope.txt"), headers=as_user("alice")))
    assert code == 404
    for request in (
        jp_fetch(*file_url(sid, "a.txt"), headers=as_user("bob")),
        put(jp_fetch, "bob", sid, "b.txt", b"b"),
        jp_fetch("braindrill", "sessions", sid, "files", headers=as_user("bob")),
    ):
        code, message = await refused(request)
        assert code == 404 and "not yours" in message
    listing = await jp_fetch("braindrill", "sessions", sid, "files", headers=as_user("alice"))
    assert [f["path"] for f in json.loads(listing.body)["files"]] == ["a.txt"]


@pytest.mark.parametrize("language", ["python", "bash"])
async def test_binary_files_in_and_return_files_out_without_a_session(jp_fetch, language):
    blob = bytes(range(256)) * 4
    code = {
        "python": "import shutil, os\nos.makedirs('out')\nshutil.copy('in.bin', 'out/copy.bin')\n"
        "open('note.txt', 'w').write('n')\nopen('big.log', 'w').write('x' * 5000)",
        "bash": "mkdir out && cp in.bin out/copy.bin && printf n > note.txt "
        "&& head -c 5000 /dev/zero > big.log",
    }[language]
    result = await run_as(
        jp_fetch,
        "alice",
        language,
        code,
        files={"in.bin": {"base64": base64.b64encode(blob).decode()}},
        return_files=["out/*", "*.txt", "*.log", "*.xlsx"],
        limits={"return_files_bytes": 2000},
    )
    assert result["status"] == "ok", result
    assert result["stderr"] == ""  # no note of the sandbox's (no variables pickled, none left)
    assert [(f["path"], f["size"]) for f in result["files"]] == [
        ("note.txt", 1),
        ("out/copy.bin", 1024),
    ]
    assert base64.b64decode(result["files"][1]["base64"]) == blob
    assert result["files_message"] == (
        "not returned (over return_files_bytes, 2000 bytes in all): big.log (5000 bytes); "
        "no file matches '*.xlsx'"
    )


async def test_return_files_with_a_session_come_from_its_state(jp_fetch):
    sid = (await create_session(jp_fetch, "alice", "python"))["id"]
    await put(jp_fetch, "alice", sid, "kept.txt", b"kept")
    result = await run_as(
        jp_fetch, "alice", "python", "open('new.txt', 'w').write('new')", session=sid,
        return_files=["*.txt"],
    )  # fmt: skip
    assert [f["path"] for f in result["files"]] == ["kept.txt", "new.txt"], result
    again = await run_as(jp_fetch, "alice", "python", "pass", session=sid, return_files=["*"])
    assert [f["path"] for f in again["files"]] == ["kept.txt", "new.txt"], again  # unchanged
