"""Reading a sandbox's output: capped while it streams, decoded incrementally, with the compile
step's report and the exit report split off (see bootstrap.sh for what the sandbox writes)."""

from __future__ import annotations

import codecs
from collections.abc import Callable

STDOUT, STDERR = 1, 2
NAMES = {STDOUT: "stdout", STDERR: "stderr"}
COMPILE_MARK = b"\x1ebraindrill-compile "
EXIT_MARK = b"\x1ebraindrill-exit "
MAX_HEADER = 64


def exit_mark(token: str) -> bytes:
    """The start of the exit report: once the program has exited, the sandbox writes
    ``<mark><exit code>\\n`` on stdout and on stderr, so that its result is known before the
    container has finished stopping. On both, because the engine forwards the two streams
    independently: each report marks the end of its own stream's output. The token, random per
    execution, keeps output that merely looks like a report from ending the read early."""
    return EXIT_MARK + token.encode() + b" "


class OutputCollector:
    """Collects the frames of one execution; pure logic, fed by the reader thread.

    ``feed`` returns False once a stream went past its cap: the caller then kills the sandbox.
    ``on_output(name, text)`` is called with each decoded chunk of stdout/stderr as it arrives.
    """

    def __init__(
        self,
        output_bytes: int,
        compile_output_bytes: int | None = None,
        on_output: Callable[[str, str], None] | None = None,
        exit_token: str | None = None,
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
        # The exit report, per stream: output that may be its start is held back until known.
        self._exit_mark = exit_mark(exit_token) if exit_token else None
        self._held = {STDOUT: b"", STDERR: b""}
        self._reported: dict[int, int] = {}  # stream → the exit code its report gave

    @property
    def done(self) -> bool:
        """Both streams carried their exit report: all the program's output is in."""
        return len(self._reported) == 2

    @property
    def exit_code(self) -> int | None:
        """The program's exit code from the exit report, once complete."""
        return self._reported[STDERR] if self.done else None

    def feed(self, stream: int, chunk: bytes) -> bool:
        if stream == STDERR and self._header is not None:
            chunk = self._take_compile_report(chunk)
        if self._exit_mark is not None and stream in self._held and chunk:
            chunk = self._take_exit_report(stream, chunk)
        if stream not in self.data or not chunk:
            return not self.overflow
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
        return not self.overflow

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

    def _take_exit_report(self, stream: int, chunk: bytes) -> bytes:
        if stream in self._reported:  # after the report: a leftover process's output, dropped
            return b""
        data, mark = self._held[stream] + chunk, self._exit_mark
        self._held[stream] = b""
        start = data.find(mark)
        if start >= 0:
            end = data.find(b"\n", start)
            if end < 0 and len(data) - start < len(mark) + 8:
                self._held[stream] = data[start:]
            elif end >= 0 and data[start + len(mark) : end].isdigit():
                self._reported[stream] = int(data[start + len(mark) : end])
            else:  # not a report after all
                return data
            return data[:start]
        # Hold back a tail that could be the start of a report split across frames.
        tail = data.rfind(b"\x1e", max(len(data) - len(mark), 0))
        if tail >= 0 and mark.startswith(data[tail:]):
            self._held[stream] = data[tail:]
            return data[:tail]
        return data

    def finish(self) -> None:
        """End of stream: output held back as a possible exit report was plain output."""
        self._exit_mark = None
        for stream, held in self._held.items():
            if held:
                self._held[stream] = b""
                self.feed(stream, held)

    def text(self, stream: int) -> str:
        return bytes(self.data[stream]).decode("utf-8", "replace")

    @property
    def compile_text(self) -> str | None:
        if self.compile_exit is None:
            return None
        return bytes(self.compile_output).decode("utf-8", "replace")
