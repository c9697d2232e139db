"""A slot runner's stream (``sandbox/runner.py``): the execution's output ends at the runner's
report for its own sandbox, on both streams, wherever the frames split it; nothing else ends it
(pure logic: the frames are given); and the runner's seccomp profile. One real runner stopping
sandbox after sandbox: tests/docker/sandbox/test_runner.py."""

from __future__ import annotations

import json

import pytest

from braindrill_ext.sandbox.attach import STDERR, STDOUT
from braindrill_ext.sandbox.programs import SECCOMP
from braindrill_ext.sandbox.protocol import RUNNER_MARK
from braindrill_ext.sandbox.runner import Runner, _partial

TOKEN = "0123456789abcdef"


def report(status=0, oom=0, clean=1, stopped=0, token=TOKEN, number=1) -> bytes:
    return RUNNER_MARK + f"{token} {number} {status} {oom} {clean} {stopped}\n".encode()


def read(frames):
    """What the collector gets, per stream, and the report the runner parsed (for sandbox 1)."""
    runner = Runner.__new__(Runner)
    runner.token, runner._report, runner._number = TOKEN, None, 1
    runner._frames = lambda: iter(frames)
    got = {STDOUT: b"", STDERR: b""}
    for stream, chunk in runner._chunks(collector=None):
        got[stream] += chunk
    return got, runner._report


def split(data: bytes, size: int):
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 7, 64, 4096])
def test_output_ends_at_the_report_wherever_the_frames_split(size):
    out = b"hello\n\x1ebraindrill-exit x 0\n" + b"\x1e" * 3
    err = b"warning\n"
    frames = [(STDOUT, c) for c in split(out + report(status=3, oom=1), size)]
    frames += [(STDERR, c) for c in split(err + report(status=3, oom=1), size)]
    frames.append((STDOUT, b"never read"))
    got, parsed = read(frames)
    assert got == {STDOUT: out, STDERR: err}
    assert parsed == (3, 1, True, False)


def test_a_report_with_another_token_is_output():
    forged = report(token="f" * 16)
    got, parsed = read([(STDOUT, forged), (STDOUT, report()), (STDERR, report())])
    assert got[STDOUT] == forged
    assert parsed == (0, 0, True, False)


def test_a_report_for_another_sandbox_is_no_report():
    """A report that names another sandbox than the execution's: the runner is not reused."""
    got, parsed = read([(STDOUT, report(number=2)), (STDERR, report(number=2))])
    assert parsed is None
    assert got == {STDOUT: b"", STDERR: b""}


def test_a_stream_that_ends_before_the_report_leaves_none():
    got, parsed = read([(STDOUT, b"out"), (STDOUT, report()[:10])])
    assert parsed is None
    assert got[STDOUT] == b"out"


def test_a_malformed_report_is_no_report():
    bad = RUNNER_MARK + TOKEN.encode() + b" x y\n"
    got, parsed = read([(STDOUT, bad), (STDERR, report())])
    assert parsed is None  # the engine then asks Docker (and removes the runner)
    assert got == {STDOUT: b"", STDERR: b""}


def test_partial_counts_a_possible_start_of_the_mark():
    mark = b"\x1eabc "
    assert _partial(b"xyz\x1eab", mark) == 3
    assert _partial(b"xyz\x1eaX", mark) == 0
    assert _partial(b"xyz", mark) == 0
    assert _partial(b"\x1e", mark) == 1


def test_the_seccomp_profile_is_dockers_default_plus_four_syscalls():
    """What the runner may do beyond a sandbox container: one rule, named, unconditional --
    clone and unshare with namespace flags, mount, sethostname."""
    profile = json.loads(SECCOMP)
    ours = [
        rule for rule in profile["syscalls"] if rule.get("comment", "").startswith("braindrill")
    ]
    assert [sorted(rule["names"]) for rule in ours] == [
        ["clone", "mount", "sethostname", "unshare"]
    ]
    assert ours[0]["action"] == "SCMP_ACT_ALLOW" and not ours[0]["args"]
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    # Docker's own rule for these needs CAP_SYS_ADMIN, which the runner does not have.
    admin = [
        r for r in profile["syscalls"] if r.get("includes", {}).get("caps") == ["CAP_SYS_ADMIN"]
    ]
    assert any("unshare" in rule["names"] for rule in admin)
