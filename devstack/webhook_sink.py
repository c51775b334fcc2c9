"""A local HTTP endpoint that stands in for Slack: it records every request and answers with
scripted statuses (429 with Retry-After, 500, 404 ...) the way Slack does. Used by the demo,
the tests and ``mood-monitor sink``. Loopback only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from devstack.serving import BackgroundServer

SLACK_BODIES = {
    200: b"ok",
    400: b"invalid_payload",
    403: b"action_prohibited",
    404: b"no_service",
    410: b"channel_is_archived",
    429: b"rate_limited",
    500: b"rollup_error",
}


@dataclass
class Received:
    path: str
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class WebhookSink(BackgroundServer):
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    # per path: statuses to answer in order; when exhausted, 200
    script: dict[str, list[int]] = field(default_factory=dict)
    retry_after_s: int = 1
    attempts: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with sink._lock:
                    queue = sink.script.get(self.path, [])
                    status = queue.pop(0) if queue else 200
                    sink.attempts.append((self.path, status))
                    if status == 200:
                        sink.received.append(Received(self.path, body, dict(self.headers.items())))
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", str(sink.retry_after_s))
                reply = SLACK_BODIES.get(status, b"error")
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._lock = threading.Lock()
        self._serve_in_background(ThreadingHTTPServer((self.host, self.port), Handler))
        self.port = self._server.server_address[1]

    def url(self, path: str = "/slack") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> WebhookSink:
        return self.__enter__()

    def stop(self) -> None:
        self.__exit__()
