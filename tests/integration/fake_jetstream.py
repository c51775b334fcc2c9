"""A loopback Jetstream v1 server replaying recorded events with the platform's framing: one JSON
text frame per event, ``wantedCollections`` and ``cursor`` (events with ``time_us >= cursor``, in
recorded order) honoured. Scripted faults: answer the first handshakes with 503 + Retry-After,
cut a connection without a close frame after N frames, slip malformed frames in."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Response
from websockets.sync.server import ServerConnection, serve

from devstack.serving import BackgroundServer


@dataclass
class JetstreamScript:
    events: list[str]
    reject_first: int = 0  # answer this many handshakes with 503 + Retry-After
    retry_after: str = "1"
    drop_after: list[int] = field(default_factory=list)  # per connection: cut after N frames
    bad_frames: dict[int, str | bytes] = field(default_factory=dict)  # before the Nth frame (1st conn)


class FakeJetstream(BackgroundServer):
    def __init__(self, script: JetstreamScript) -> None:
        self.script = script
        self.handshakes = 0
        self.cursors: list[int | None] = []
        self.sent = 0
        self._serve_in_background(
            serve(self._handler, "127.0.0.1", 0, process_request=self._process_request, compression=None)
        )
        self.port = self._server.socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/subscribe"

    def _process_request(self, conn: ServerConnection, request) -> Response | None:
        self.handshakes += 1
        if self.handshakes <= self.script.reject_first:
            body = b"over capacity"
            return Response(
                503,
                "Service Unavailable",
                Headers([("Retry-After", self.script.retry_after), ("Content-Length", str(len(body)))]),
                body,
            )
        return None

    def _handler(self, conn: ServerConnection) -> None:
        q = parse_qs(urlsplit(conn.request.path).query)
        wanted = set(q.get("wantedCollections", []))
        cursor = int(q["cursor"][0]) if "cursor" in q else None
        n_conn = len(self.cursors)
        self.cursors.append(cursor)
        drop = self.script.drop_after[n_conn] if n_conn < len(self.script.drop_after) else None
        frames = 0
        for line in self.script.events:
            ev = orjson.loads(line)
            if cursor is not None and ev["time_us"] < cursor:
                continue
            if ev["kind"] == "commit" and wanted and ev["commit"]["collection"] not in wanted:
                continue
            if n_conn == 0 and frames in self.script.bad_frames:
                conn.send(self.script.bad_frames[frames])
            if drop is not None and frames >= drop:
                conn.socket.close()  # no close frame: a dropped TCP connection
                return
            conn.send(line)
            frames += 1
            self.sent += 1
        conn.wait_closed()  # live stream: nothing more for now, stay open
