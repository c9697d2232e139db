"""OutputCollector's output records (``protocol.output_mark`` + size + JSON on stdout): split off
the output whole or across frames, in order with the text, capped one by one and all together,
never confused with output that merely looks like one (pure logic; test_output.py has the exit
report, test_records.py the checks of one record)."""

from __future__ import annotations

import json

import pytest

from braindrill_ext.sandbox.output import STDERR, STDOUT, OutputCollector
from braindrill_ext.sandbox.protocol import exit_mark, output_mark

EXIT_TOKEN = "0123456789abcdef"
OUTPUT_TOKEN = "fedcba9876543210"
REPORT = exit_mark(EXIT_TOKEN) + b"0\n"
DISPLAY = {"output_type": "display_data", "data": {"text/plain": "shown"}, "metadata": {}}
RESULT = {
    "output_type": "execute_result",
    "data": {"text/plain": "42"},
    "metadata": {},
    "execution_count": 1,
}


def framed(body: bytes, token: str = OUTPUT_TOKEN) -> bytes:
    return output_mark(token) + str(len(body)).encode() + b"\n" + body


def rec(output: dict) -> bytes:
    return framed(json.dumps(output).encode())


def collect(chunks, *, display_bytes=0, output_record_bytes=0, output_token=OUTPUT_TOKEN):
    """Feed ``chunks`` [(stream, bytes)] then both exit reports; returns the collector, what
    on_output saw [(kind, value)] and what each feed returned."""
    seen, accepted = [], []
    collector = OutputCollector(
        1 << 20,
        on_output=lambda kind, value: seen.append((kind, value)),
        exit_token=EXIT_TOKEN,
        output_token=output_token,
        display_bytes=display_bytes,
        output_record_bytes=output_record_bytes,
    )
    for stream, chunk in [*chunks, (STDOUT, REPORT), (STDERR, REPORT)]:
        if collector.done or collector.overflow:
            break
        accepted.append(collector.feed(stream, chunk))
    return collector, seen, accepted


def merged(seen):
    """on_output's calls with consecutive text of one stream joined (chunking is free)."""
    out = []
    for kind, value in seen:
        if out and kind != "output" and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + value)
        else:
            out.append((kind, value))
    return out


def test_records_come_out_in_order_with_the_text():
    stdout = b"before\n" + rec(DISPLAY) + b"between\n" + rec(RESULT) + b"after\n"
    collector, seen, accepted = collect([(STDOUT, stdout)])
    assert collector.done and collector.exit_code == 0 and all(accepted)
    assert collector.outputs == [DISPLAY, RESULT]
    assert collector.text(STDOUT) == "before\nbetween\nafter\n"
    assert collector.text(STDERR) == "" and collector.dropped == []
    assert merged(seen) == [
        ("stdout", "before\n"),
        ("output", DISPLAY),
        ("stdout", "between\n"),
        ("output", RESULT),
        ("stdout", "after\n"),
    ]


def test_records_back_to_back():
    collector, seen, _ = collect([(STDOUT, rec(DISPLAY) + rec(RESULT) + rec(DISPLAY))])
    assert collector.outputs == [DISPLAY, RESULT, DISPLAY]
    assert collector.text(STDOUT) == ""
    assert [kind for kind, _ in seen] == ["output"] * 3


STREAM = b"text\n" + rec(DISPLAY) + b"more\n"


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_a_record_split_across_frames(cut):
    collector, seen, _ = collect([(STDOUT, STREAM[:cut]), (STDOUT, STREAM[cut:])])
    assert collector.outputs == [DISPLAY]
    assert collector.text(STDOUT) == "text\nmore\n"
    assert merged(seen) == [("stdout", "text\n"), ("output", DISPLAY), ("stdout", "more\n")]


def test_a_record_fed_byte_by_byte():
    chunks = [(STDOUT, bytes([b])) for b in STREAM]
    collector, seen, _ = collect(chunks)
    assert collector.outputs == [DISPLAY] and collector.text(STDOUT) == "text\nmore\n"
    assert merged(seen) == [("stdout", "text\n"), ("output", DISPLAY), ("stdout", "more\n")]


def test_interleaved_stderr_does_not_disturb_a_record():
    data = rec(DISPLAY)
    half = len(data) // 2
    chunks = [(STDOUT, data[:half]), (STDERR, b"err\n"), (STDOUT, data[half:])]
    collector, _, _ = collect(chunks)
    assert collector.outputs == [DISPLAY]
    assert collector.text(STDERR) == "err\n" and collector.text(STDOUT) == ""


def test_an_error_record_is_the_error_not_an_output():
    error = {"output_type": "error", "ename": "ValueError", "evalue": "x", "traceback": ["tb"]}
    collector, seen, _ = collect([(STDOUT, rec(error) + rec(DISPLAY))])
    assert collector.error == error
    assert collector.outputs == [DISPLAY]
    assert seen == [("output", DISPLAY)]


def test_a_bad_record_is_dropped_with_a_note_in_stderr():
    collector, seen, accepted = collect(
        [(STDOUT, framed(b"{not json") + b"after\n"), (STDERR, b"own stderr\n")]
    )
    assert all(accepted) and collector.outputs == []
    assert merged(seen) == [("stdout", "after\n"), ("stderr", "own stderr\n")]
    assert collector.text(STDOUT) == "after\n"
    assert collector.text(STDERR).startswith("own stderr\nbraindrill: output dropped: ")
    assert "an output record is not JSON" in collector.text(STDERR)


def test_a_record_over_the_cap_of_one_output_is_dropped_with_a_note():
    big = {**DISPLAY, "data": {"text/plain": "x" * 1000}}
    size = len(json.dumps(big).encode())
    stdout = rec(big) + b"next\n" + rec(DISPLAY)
    collector, seen, accepted = collect([(STDOUT, stdout)], output_record_bytes=500)
    assert all(accepted) and not collector.overflow  # not an output limit: only that one goes
    assert collector.outputs == [DISPLAY]
    assert collector.text(STDOUT) == "next\n"  # its body is not output either
    note = f"an output of {size} bytes is over the cap of 500 bytes per output"
    assert collector.dropped == [note]
    assert collector.text(STDERR) == f"braindrill: output dropped: {note}\n"
    assert merged(seen) == [("stdout", "next\n"), ("output", DISPLAY)]


def test_a_record_at_the_cap_is_kept():
    size = len(json.dumps(DISPLAY).encode())
    collector, _, _ = collect([(STDOUT, rec(DISPLAY))], output_record_bytes=size)
    assert collector.outputs == [DISPLAY] and collector.dropped == []


def test_display_bytes_exceeded_is_an_overflow():
    size = len(json.dumps(DISPLAY).encode())
    stdout = b"a\n" + rec(DISPLAY) + rec(DISPLAY) + rec(DISPLAY) + b"never\n"
    collector, _, accepted = collect([(STDOUT, stdout)], display_bytes=2 * size + 1)
    assert accepted == [False]  # the caller kills the sandbox: output_limit
    assert collector.overflow
    assert collector.outputs == [DISPLAY, DISPLAY]  # what came before is kept
    assert collector.text(STDOUT) == "a\n"
    assert not collector.done


def test_display_bytes_count_over_every_record():
    size = len(json.dumps(DISPLAY).encode())
    collector, _, accepted = collect(
        [(STDOUT, rec(DISPLAY)), (STDOUT, rec(DISPLAY))], display_bytes=2 * size
    )
    assert all(accepted) and not collector.overflow and collector.outputs == [DISPLAY, DISPLAY]
    assert collector.display_used == 2 * size


def test_the_size_frames_the_body():
    """A body is taken by its size: an exit report inside it ends nothing (it is no JSON, so the
    record is dropped) and what follows the body is output again."""
    collector, _, _ = collect([(STDOUT, framed(REPORT) + b"after\n")])
    assert collector.done and collector.exit_code == 0
    assert collector.text(STDOUT) == "after\n"
    assert len(collector.dropped) == 1 and "not JSON" in collector.dropped[0]


def test_an_empty_record_is_dropped():
    collector, _, _ = collect([(STDOUT, framed(b"") + b"after\n")])
    assert collector.text(STDOUT) == "after\n" and collector.outputs == []
    assert "not JSON" in collector.dropped[0]


@pytest.mark.parametrize(
    "looks_like",
    [
        b"a\x1eb\x1e\n\x1e",
        framed(json.dumps(DISPLAY).encode(), token="f" * 16),  # another token
        output_mark(OUTPUT_TOKEN) + b"12x\n{}",  # a size that is no number
        output_mark(OUTPUT_TOKEN) + b"\n",
        output_mark(OUTPUT_TOKEN)[:-1] + b"\n",  # the mark without its space
        b"\x1ebraindrill-output",
        output_mark(OUTPUT_TOKEN) + b"9" * 70,  # no end of the header in sight
    ],
)
def test_ordinary_output_with_record_separators_is_output(looks_like):
    collector, seen, _ = collect([(STDOUT, b"x" + looks_like), (STDOUT, b"y\n")])
    assert collector.outputs == [] and collector.dropped == []
    assert collector.text(STDOUT) == (b"x" + looks_like + b"y\n").decode()
    assert "".join(text for kind, text in seen if kind == "stdout") == collector.text(STDOUT)


def test_records_are_read_on_stdout_only():
    collector, _, _ = collect([(STDERR, rec(DISPLAY))])
    assert collector.outputs == []
    assert collector.text(STDERR) == rec(DISPLAY).decode()


def test_without_an_output_token_records_are_output():
    collector, _, _ = collect([(STDOUT, rec(DISPLAY))], output_token=None)
    assert collector.outputs == [] and collector.text(STDOUT) == rec(DISPLAY).decode()


def test_a_record_cut_off_by_the_end_of_the_stream_is_lost_quietly():
    collector = OutputCollector(1 << 20, exit_token=EXIT_TOKEN, output_token=OUTPUT_TOKEN)
    data = b"a\n" + rec(DISPLAY)
    assert collector.feed(STDOUT, data[:-5])
    collector.finish()
    assert collector.outputs == [] and collector.text(STDOUT) == "a\n"


def test_a_header_held_at_the_end_of_the_stream_is_output():
    collector = OutputCollector(1 << 20, exit_token=EXIT_TOKEN, output_token=OUTPUT_TOKEN)
    assert collector.feed(STDOUT, b"a\n" + output_mark(OUTPUT_TOKEN) + b"12")
    collector.finish()
    assert collector.text(STDOUT) == "a\n" + output_mark(OUTPUT_TOKEN).decode() + "12"


def test_a_record_that_breaks_the_base64_check_is_dropped():
    bad = {**DISPLAY, "data": {"image/png": "\u00e9t\u00e9"}}
    collector, _, accepted = collect([(STDOUT, rec(bad) + b"after\n")])
    assert all(accepted) and collector.text(STDOUT) == "after\n"
    assert "image/png" in collector.text(STDERR)
