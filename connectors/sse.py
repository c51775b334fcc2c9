"""Server-Sent Events framing (``text/event-stream``). Pure.

`SSEParser.feed_line` takes one line (without its newline) and returns a finished `SSEEvent`
when the line is the blank line that ends one. Comment lines (``:)``, ``:thump``, a lone
``:``) are heartbeats and are ignored; ``data:`` lines are joined with ``\\n``; ``id:`` sets
the last event id; a field without a colon is a field with an empty value (the spec's rules).

Sizes are bounded: `split_lines` turns a stream of text chunks into lines (``\\r\\n``, ``\\n``
or ``\\r``, as the spec says) holding at most ``max_line_chars + 1`` characters of any line (the
rest of an over-long line is dropped as it arrives, so memory stays bounded whatever the server
sends). The parser drops an event with a line over ``max_line_chars``, or with more than
``max_event_chars`` of data in all, and hands it over as ``SSEEvent(too_long=True)`` with its
size, so the caller can count it: nothing vanishes silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MAX_LINE_CHARS = 1 << 20  # a Mastodon status is a few KiB; 1 Mi characters is far above any
MAX_EVENT_CHARS = 1 << 20


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str
    id: str | None = None
    too_long: bool = False  # dropped for its size; ``data`` is then empty
    size: int = 0  # characters of data received for the event


def split_lines(chunks: Iterable[str], max_line_chars: int = MAX_LINE_CHARS) -> Iterator[str]:
    """Lines of a chunked text stream, each cut at ``max_line_chars + 1`` characters."""
    part: list[str] = []  # the line being read, at most max_line_chars + 1 characters
    held = 0
    carry_cr = False
    for chunk in chunks:
        if not chunk:
            continue
        if carry_cr:
            chunk = "\r" + chunk
        carry_cr = chunk.endswith("\r")  # maybe the first half of a \r\n
        if carry_cr:
            chunk = chunk[:-1]
        pieces = chunk.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        for i, piece in enumerate(pieces):
            if held <= max_line_chars and piece:
                take = piece[: max_line_chars + 1 - held]
                part.append(take)
                held += len(take)
            if i < len(pieces) - 1:  # a line ended after this piece
                yield "".join(part)
                part, held = [], 0
    if carry_cr:
        yield "".join(part)
        part, held = [], 0
    if part:
        yield "".join(part)


class SSEParser:
    def __init__(
        self, *, max_line_chars: int = MAX_LINE_CHARS, max_event_chars: int = MAX_EVENT_CHARS
    ) -> None:
        self.max_line_chars = max_line_chars
        self.max_event_chars = max_event_chars
        self._event = ""
        self._data: list[str] = []
        self._size = 0
        self._too_long = False
        self.last_id: str | None = None

    def feed_line(self, line: str) -> SSEEvent | None:
        line = line.rstrip("\r")
        if not line:
            if not self._data and not self._event and not self._too_long:
                return None
            if self._too_long:
                ev = SSEEvent(self._event[:64] or "message", "", self.last_id, True, self._size)
            else:
                ev = SSEEvent(self._event or "message", "\n".join(self._data), self.last_id, size=self._size)
            self._event, self._data, self._size, self._too_long = "", [], 0, False
            return ev
        if line.startswith(":"):
            return None
        if len(line) > self.max_line_chars:
            self._too_long = True
            self._size += len(line)
            self._data = []
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._size += len(value)
            if self._size > self.max_event_chars:
                self._too_long = True
                self._data = []
            elif not self._too_long:
                self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None

    def feed_text(self, text: str) -> list[SSEEvent]:
        out = []
        for line in split_lines([text], self.max_line_chars):
            ev = self.feed_line(line)
            if ev is not None:
                out.append(ev)
        return out
