"""A loopback HTTP/1.1 server for connector tests: a ``route`` function answers each request with
``Answer`` (status, headers, body, optionally streamed in chunks with pauses, or cut mid-body),
and every request is logged for assertions."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from devstack.serving import BackgroundServer


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: Iterable[bytes] | None = None  # streamed (chunked); a None chunk = pause 50 ms
    cut_after: int | None = None  # close the socket after this many body bytes (a dropped link)


class FakeHTTP(BackgroundServer):
    def __init__(self, route: Callable[[Request], Answer]) -> None:
        self.route = route
        self.requests: list[Request] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _serve(self) -> None:
                u = urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                req = Request(
                    self.command,
                    u.path,
                    {k: v[-1] for k, v in parse_qs(u.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(n) if n else b"",
                )
                fake.requests.append(req)
                a = fake.route(req)
                self.send_response(a.status)
                for k, v in a.headers.items():
                    self.send_header(k, v)
                if a.chunks is not None:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for c in a.chunks:
                        if c is None:
                            time.sleep(0.05)
                            continue
                        if c == b"<cut>":
                            self.wfile.flush()
                            self.close_connection = True
                            self.connection.shutdown(2)
                            return
                        self.wfile.write(f"{len(c):x}\r\n".encode() + c + b"\r\n")
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(a.body)))
                self.end_headers()
                if a.cut_after is not None:
                    self.wfile.write(a.body[: a.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(a.body)

            do_GET = do_POST = _serve

        self._serve_in_background(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
