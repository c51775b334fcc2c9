"""Server-Sent Events framing (``text/event-stream``). Pure.

`SSEParser.feed_line` takes one line (without its newline) and returns a finished `SSEEvent`
when the line is the blank line that ends one. Comment lines (``:)``, ``:thump``, a lone
``:``) are heartbeats and are ignored; ``data:`` lines are joined with ``\\n``; ``id:`` sets
the last event id; a field without a colon is a field with an empty value (the spec's rules).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str
    id: str | None = None


class SSEParser:
    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self.last_id: str | None = None

    def feed_line(self, line: str) -> SSEEvent | None:
        line = line.rstrip("\r")
        if not line:
            if not self._data and not self._event:
                return None
            ev = SSEEvent(self._event or "message", "\n".join(self._data), self.last_id)
            self._event, self._data = "", []
            return ev
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None

    def feed_text(self, text: str) -> list[SSEEvent]:
        out = []
        for line in text.split("\n"):
            ev = self.feed_line(line)
            if ev is not None:
                out.append(ev)
        return out
