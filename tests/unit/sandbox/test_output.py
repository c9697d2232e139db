"""OutputCollector's exit report: one on each stream, found whole or split across frames, never
confused with output that merely looks like one, and stripped from the output (pure logic; the
real containers write it in every other test)."""

from __future__ import annotations

import pytest

from braindrill_ext.sandbox.output import STDERR, STDOUT, OutputCollector
from braindrill_ext.sandbox.protocol import exit_mark

TOKEN = "0123456789abcdef"
REPORT = exit_mark(TOKEN) + b"3\n"


def collect(chunks, token=TOKEN):
    streamed = {"stdout": [], "stderr": []}
    collector = OutputCollector(
        1 << 20, on_output=lambda n, t: streamed[n].append(t), exit_token=token
    )
    for stream, chunk in chunks:
        assert not collector.done, "nothing is fed after both reports"
        collector.feed(stream, chunk)
    if not collector.done:
        collector.finish()
    return collector, {n: "".join(t) for n, t in streamed.items()}


def test_done_only_when_both_streams_reported():
    # The engine forwards stdout and stderr independently: stderr's report may come first.
    collector, _ = collect([(STDERR, REPORT), (STDOUT, b"late out\n")])
    assert not collector.done and collector.exit_code is None
    collector, streamed = collect([(STDERR, REPORT), (STDOUT, b"late out\n" + REPORT)])
    assert collector.done and collector.exit_code == 3
    assert collector.text(STDOUT) == streamed["stdout"] == "late out\n"
    assert collector.text(STDERR) == ""


@pytest.mark.parametrize("stream", [STDOUT, STDERR])
@pytest.mark.parametrize("cut", range(1, len(REPORT)))
def test_report_split_across_frames(stream, cut):
    data = b"text\n" + REPORT
    split = len(b"text\n") + cut
    other = STDERR if stream == STDOUT else STDOUT
    collector, streamed = collect([(other, REPORT), (stream, data[:split]), (stream, data[split:])])
    assert collector.exit_code == 3
    name = "stdout" if stream == STDOUT else "stderr"
    assert collector.text(stream) == streamed[name] == "text\n"


def test_a_report_with_another_token_is_output():
    forged = exit_mark("f" * 16) + b"0\n"
    collector, streamed = collect([(STDERR, forged), (STDOUT, forged), (STDERR, b"more\n")])
    assert not collector.done and collector.exit_code is None
    assert collector.text(STDERR) == streamed["stderr"] == (forged + b"more\n").decode()
    assert collector.text(STDOUT) == forged.decode()


@pytest.mark.parametrize(
    "tail",
    [b"\x1ebraindrill-ex", exit_mark(TOKEN), exit_mark(TOKEN) + b"12", exit_mark(TOKEN) + b"x\n"],
)
def test_what_only_looks_like_the_start_of_a_report_is_kept(tail):
    collector, streamed = collect([(STDOUT, b"o" + tail), (STDERR, b"e" + tail)])
    assert collector.exit_code is None
    assert collector.text(STDOUT) == streamed["stdout"] == (b"o" + tail).decode()
    assert collector.text(STDERR) == streamed["stderr"] == (b"e" + tail).decode()


def test_record_separators_in_output_pass_through():
    chunks = [(STDERR, b"a\x1eb"), (STDERR, b"\x1e"), (STDERR, b"c\n"), (STDERR, REPORT)]
    collector, streamed = collect([*chunks, (STDOUT, REPORT)])
    assert collector.exit_code == 3
    assert collector.text(STDERR) == streamed["stderr"] == "a\x1eb\x1ec\n"


def test_without_a_token_nothing_is_parsed():
    collector, _ = collect([(STDERR, REPORT), (STDOUT, REPORT)], token=None)
    assert collector.exit_code is None and collector.text(STDERR) == REPORT.decode()
