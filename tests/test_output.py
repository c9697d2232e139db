"""OutputCollector's exit report: found whole or split across frames, never confused with output
that merely looks like one, and stripped from stderr (pure logic; the real containers write it in
every other test)."""

from __future__ import annotations

import pytest

from braindrill_ext.output import STDERR, STDOUT, OutputCollector, exit_mark

TOKEN = "0123456789abcdef"
REPORT = exit_mark(TOKEN) + b"3\n"


def collect(chunks, token=TOKEN):
    streamed = []
    collector = OutputCollector(
        1 << 20, on_output=lambda n, t: streamed.append((n, t)), exit_token=token
    )
    for stream, chunk in chunks:
        assert not collector.done, "nothing is fed after the report"
        collector.feed(stream, chunk)
    if not collector.done:
        collector.finish()
    return collector, "".join(t for n, t in streamed if n == "stderr")


def test_report_alone():
    collector, _ = collect([(STDOUT, b"out\n"), (STDERR, REPORT)])
    assert collector.done and collector.exit_code == 3
    assert collector.text(STDOUT) == "out\n" and collector.text(STDERR) == ""


@pytest.mark.parametrize("cut", range(1, len(REPORT)))
def test_report_split_across_frames_after_stderr(cut):
    data = b"warning: x\n" + REPORT
    split = len(b"warning: x\n") + cut
    collector, streamed = collect([(STDERR, data[:split]), (STDERR, data[split:])])
    assert collector.exit_code == 3
    assert collector.text(STDERR) == streamed == "warning: x\n"


def test_a_report_with_another_token_is_output():
    forged = exit_mark("f" * 16) + b"0\n"
    collector, streamed = collect([(STDERR, forged), (STDERR, b"more\n")])
    assert not collector.done and collector.exit_code is None
    assert collector.text(STDERR) == streamed == (forged + b"more\n").decode()


@pytest.mark.parametrize(
    "tail",
    [b"\x1ebraindrill-ex", exit_mark(TOKEN), exit_mark(TOKEN) + b"12", exit_mark(TOKEN) + b"x\n"],
)
def test_what_only_looks_like_the_start_of_a_report_is_kept(tail):
    collector, streamed = collect([(STDERR, b"e" + tail)])
    assert collector.exit_code is None
    assert collector.text(STDERR) == streamed == (b"e" + tail).decode()


def test_record_separators_in_output_pass_through():
    chunks = [(STDERR, b"a\x1eb"), (STDERR, b"\x1e"), (STDERR, b"c\n"), (STDERR, REPORT)]
    collector, streamed = collect(chunks)
    assert collector.exit_code == 3
    assert collector.text(STDERR) == streamed == "a\x1eb\x1ec\n"


def test_without_a_token_nothing_is_parsed():
    collector, _ = collect([(STDERR, REPORT)], token=None)
    assert collector.exit_code is None and collector.text(STDERR) == REPORT.decode()
