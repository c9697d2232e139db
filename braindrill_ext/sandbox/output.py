"""Reading a sandbox's output: capped while it streams, decoded incrementally, with the compile
report, the output records, the state and the exit report split off (the formats:
``protocol.py``)."""

from __future__ import annotations

import codecs
from collections.abc import Callable

from . import records
from .attach import STDERR, STDOUT
from .payload import state_cap
from .protocol import COMPILE_MARK, MAX_HEADER, STATE_SAME, exit_mark, output_mark, state_mark

NAMES = {STDOUT: "stdout", STDERR: "stderr"}


class OutputCollector:
    """Collects the frames of one execution; pure logic, fed by the reader thread.

    ``feed`` returns False once the output went past a cap (a stream's ``output_bytes``, or
    ``display_bytes`` of rich outputs): the caller then kills the sandbox. ``on_output(kind,
    value)`` is called as the output arrives: ``("stdout"|"stderr", text)`` for each decoded
    chunk, ``("output", output)`` for each rich output but an ``error`` (kept in ``error``), and
    ``("input", {prompt, password})`` when a cell asks for a line (``Sandbox.reply`` answers),
    and ``("comm", {msg_type, content})`` for a cell's comm messages.
    With ``state_bytes`` (a stateful execution) the state the watchdog sends is kept in ``state``
    (None when it did not come, or was over ``state_bytes``: then ``state_message`` says so).
    """

    def __init__(
        self,
        output_bytes: int,
        compile_output_bytes: int | None = None,
        on_output: Callable[[str, object], None] | None = None,
        exit_token: str | None = None,
        output_token: str | None = None,
        display_bytes: int = 0,
        output_record_bytes: int = 0,
        state_bytes: int | None = None,
    ):
        self.cap = output_bytes
        self.on_output = on_output
        self.data = {STDOUT: bytearray(), STDERR: bytearray()}
        self.truncated = {STDOUT: False, STDERR: False}
        self._decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in NAMES}
        self.overflow = False
        # The compile report: None when the language has no compile step.
        self.compile_cap = compile_output_bytes
        self._header = bytearray() if compile_output_bytes is not None else None
        self._compile_left = 0
        self.compile_exit: int | None = None
        self.compile_done = False  # the whole report arrived: the run step may be started
        self.compile_output = bytearray()
        self.compile_truncated = False
        # Reports and records: output that may be the start of one is held back until known.
        self._marks = {STDOUT: [], STDERR: []}
        if exit_token:
            for stream in NAMES:
                self._marks[stream].append(exit_mark(exit_token))
        self._output_mark = output_mark(output_token) if output_token else None
        if self._output_mark:
            self._marks[STDOUT].append(self._output_mark)
        self._state_mark = state_mark(exit_token) if exit_token and state_bytes else None
        if self._state_mark:
            self._marks[STDOUT].append(self._state_mark)
        self.state_cap = state_bytes or 0
        self.state: bytes | None = None
        self.state_unchanged = False  # the sandbox left the state as it came (STATE_SAME)
        self.state_message: str | None = None
        self._held = {STDOUT: b"", STDERR: b""}
        # Stream → the exit code its report gave; what a stream carries after it (a leftover
        # process's output) is dropped.
        self._reported: dict[int, int] = {}
        # Rich outputs: the budget of all of them, the cap of one, the one being read.
        self.display_cap = display_bytes
        self.record_cap = output_record_bytes
        self.display_used = 0
        # The body of the record (or state) being read: its pieces, joined once at its end.
        self._record: list[bytes] | None = None
        self._record_left = 0
        self._record_kept = True
        self._record_is_state = False
        self.outputs: list[dict] = []
        self.error: dict | None = None
        self.dropped: list[str] = []  # why rich outputs were left out

    @property
    def done(self) -> bool:
        """Both streams carried their exit report: all the program's output is in."""
        return len(self._reported) == 2

    @property
    def exit_code(self) -> int | None:
        """The program's exit code from the exit report, once complete."""
        return self._reported[STDERR] if self.done else None

    @classmethod
    def for_execution(cls, execution, tokens, on_output=None) -> OutputCollector:
        """The collector of one execution, with its limits and its tokens (``payload.Tokens``).
        The payload's language decides the compile protocol, not the one the container was
        prepared for (a warm container may have been prepared for a variant of it)."""
        lim = execution.limits
        compiled = execution.language.compile is not None
        return cls(
            lim.output_bytes,
            lim.compile_output_bytes if compiled else None,
            on_output,
            exit_token=tokens.exit,
            output_token=tokens.output,
            display_bytes=lim.display_bytes,
            output_record_bytes=lim.output_record_bytes,
            state_bytes=state_cap(execution, lim),
        )

    def feed(self, stream: int, chunk: bytes) -> bool:
        if stream == STDERR and self._header is not None:
            chunk = self._take_compile_report(chunk)
        while chunk and stream in self._held and stream not in self._reported:
            if self.overflow:
                break
            if stream == STDOUT and self._record is not None:
                chunk = self._take_record_body(chunk)
                continue
            text, chunk = self._split_reports(stream, chunk)
            self._keep(stream, text)
        return not self.overflow

    def _keep(self, stream: int, chunk: bytes) -> None:
        if not chunk:
            return
        buf = self.data[stream]
        room = self.cap - len(buf)
        if len(chunk) > room:
            chunk = chunk[: max(room, 0)]
            self.truncated[stream] = True
            self.overflow = True
        buf += chunk
        if self.on_output and chunk:
            text = self._decoders[stream].decode(chunk)
            if text:
                self.on_output(NAMES[stream], text)

    def _split_reports(self, stream: int, chunk: bytes) -> tuple[bytes, bytes]:
        """Split ``chunk`` (after what was held) into plain output and the rest, which starts
        after a report or record header (or is empty). Holds back a tail that may be the start of
        one split across frames."""
        data = self._held[stream] + chunk
        self._held[stream] = b""
        at = data.find(b"\x1e")
        while at >= 0:
            rest = data[at:]
            for mark in self._marks[stream]:
                if not rest.startswith(mark[: len(rest)]):
                    continue
                end = rest.find(b"\n")
                if len(rest) <= len(mark) or (end < 0 and len(rest) < len(mark) + MAX_HEADER):
                    self._held[stream] = rest  # not whole yet
                    return data[:at], b""
                field = rest[len(mark) : end] if end >= 0 else b""
                if mark is self._state_mark and field == STATE_SAME:
                    self.state_unchanged = True
                    return data[:at], rest[end + 1 :]
                if not field.isdigit():
                    break  # looks like a mark, is not: plain output
                if mark is self._output_mark:
                    self._start_record(int(field))
                elif mark is self._state_mark:
                    self._start_state(int(field))
                else:
                    self._reported[stream] = int(field)
                    return data[:at], b""  # what follows the exit report is dropped
                return data[:at], rest[end + 1 :]
            at = data.find(b"\x1e", at + 1)
        return data, b""

    def _start_state(self, size: int) -> None:
        self._record, self._record_left, self._record_is_state = [], size, True
        self._record_kept = size <= self.state_cap
        if not self._record_kept:
            self.state_message = (
                f"the state of {size} bytes is over the cap of {self.state_cap} bytes"
            )
        if not size:
            self._end_record()

    def _start_record(self, size: int) -> None:
        self._record, self._record_left, self._record_is_state = [], size, False
        self._record_kept = not self.record_cap or size <= self.record_cap
        if not self._record_kept:
            self.dropped.append(
                f"an output of {size} bytes is over the cap of {self.record_cap} bytes per output"
            )
        elif self.display_cap and self.display_used + size > self.display_cap:
            self.overflow = True  # a display flood: output_limit, what came before is kept
        self.display_used += size
        if not size:
            self._end_record()

    def _take_record_body(self, chunk: bytes) -> bytes:
        part, rest = chunk[: self._record_left], chunk[self._record_left :]
        if self._record_kept:
            self._record.append(part)
        self._record_left -= len(part)
        if not self._record_left:
            self._end_record()
        return rest

    def _end_record(self) -> None:
        raw, self._record = b"".join(self._record), None  # one piece: itself, no copy
        if not self._record_kept:
            return
        if self._record_is_state:
            self.state = raw  # opaque: never opened here
            return
        try:
            output = records.parse(raw)
        except records.BadRecord as e:
            self.dropped.append(str(e))
            return
        if output["output_type"] == "error":
            self.error = output
            return
        if output["output_type"] == records.STREAM:  # text in its place among the other stream's
            self._keep(STDERR if output["name"] == "stderr" else STDOUT, output["text"].encode())
            return
        if output["output_type"] == records.INPUT_REQUEST:  # not an output: asked of the caller
            if self.on_output:
                self.on_output("input", output)
            return
        if output["output_type"] == records.COMM:  # not an output: for a kernel's front end
            if self.on_output:
                self.on_output("comm", output)
            return
        self.outputs.append(output)
        if self.on_output:
            self.on_output("output", output)

    def _take_compile_report(self, chunk: bytes) -> bytes:
        if self._compile_left:
            part, chunk = chunk[: self._compile_left], chunk[self._compile_left :]
            self.compile_output += part
            self._compile_left -= len(part)
            if not self._compile_left:
                self._header = None
                self.compile_done = True
            return chunk
        self._header += chunk
        if not self._header.startswith(COMPILE_MARK[: len(self._header)]):
            # No compile report (the bootstrap failed before compiling): it is plain stderr.
            rest, self._header = bytes(self._header), None
            return rest
        end = self._header.find(b"\n")
        if end < 0:
            if len(self._header) > MAX_HEADER:
                rest, self._header = bytes(self._header), None
                return rest
            return b""
        fields = self._header[len(COMPILE_MARK) : end].split()
        rest = bytes(self._header[end + 1 :])
        self.compile_exit, total = int(fields[0]), int(fields[1])
        self.compile_truncated = total > self.compile_cap
        self._compile_left = min(total, self.compile_cap)
        self._header = bytearray()
        if not self._compile_left:
            self._header = None
            self.compile_done = True
            return rest
        return self._take_compile_report(rest)

    def finish(self) -> None:
        """End of stream: output held back as a possible report was plain output."""
        self._marks = {STDOUT: [], STDERR: []}
        self._record = None
        for stream, held in self._held.items():
            if held:
                self._held[stream] = b""
                self._keep(stream, held)

    def text(self, stream: int) -> str:
        text = bytes(self.data[stream]).decode("utf-8", "replace")
        if stream == STDERR and self.dropped:
            text += "".join(f"braindrill: output dropped: {why}\n" for why in self.dropped)
        return text

    @property
    def compile_text(self) -> str | None:
        if self.compile_exit is None:
            return None
        return bytes(self.compile_output).decode("utf-8", "replace")
