"""The HTTP server of the project's inbound endpoints: an ASGI app under uvicorn, with limits.

`AsgiServer(app, limits)` binds ``limits.host:limits.port`` (127.0.0.1 by default) when it is
built, so the port is known (and a busy port is a `ConfigError`) before anything is served;
``serve()`` runs uvicorn until ``stop()`` (the connector's main loop), ``running()`` does the
same in a background thread (tests). Signals stay with the entry point: uvicorn installs none
here, the caller's handler calls ``stop()``, and uvicorn then drains: it stops accepting,
closes idle connections, lets requests in hand finish for up to ``graceful_stop_s``.

What one client can hold, and what it gets past a limit (`ServerLimits`):

    headers     the request line and headers must arrive within ``header_timeout_s`` of the
                connection opening (or of the previous answer): else ``408`` and the
                connection is closed (slowloris). uvicorn itself times out only idle
                keep-alive connections (``keep_alive_s``), not slow headers. At most
                ``max_header_bytes`` of them (h11: its own ``400``; httptools, which has no
                cap of its own: ``431``).
    body        a declared Content-Length over ``max_body_bytes`` is ``413`` before one byte of
                the body is read; a chunked body is counted as it streams and cut at the cap
                (``413``); the whole body must arrive within ``body_timeout_s`` (``408``).
                ``require_length``: Transfer-Encoding without Content-Length is ``411``.
    requests    at most ``max_in_flight`` requests are handled at once: more get ``503`` with
                ``Retry-After`` (without reading their body).
    connections at most ``max_connections`` open connections are served: a connection over it
                gets ``503`` + ``Retry-After`` for its first request and is closed; one over
                twice the limit is closed at once, unread.

Every refusal closes the connection (``Connection: close``: an unread body would otherwise be
read as the next request), is reported to ``on_refusal(status, reason)`` (a counter, a log line)
and answered ``{"error": reason}``. The app sees a refused request end as a client disconnect
(``http.disconnect``), as when a client goes away. An exception out of the app is one log line
naming its type (a 500 when nothing was answered yet), never a traceback: its text may quote
what a stranger sent. uvicorn's access log is off, and its error log says nothing about a
request's content; the server header is not sent.

The header deadline hooks uvicorn's HTTP protocol classes (h11 or httptools): it watches their
``cycle`` (the request in hand) and ``on_response_complete``, which both implementations have.
TLS: ``ssl_certfile``/``ssl_keyfile`` make uvicorn terminate it; the documented deployment puts
a reverse proxy in front instead (docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from monitor.errors import ConfigError

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
OnRefusal = Callable[[int, str], None]


@dataclass(frozen=True)
class ServerLimits:
    host: str = "127.0.0.1"
    port: int = 8088
    http: Literal["h11", "httptools"] = "h11"
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: int = 5
    max_connections: int = 256
    max_in_flight: int = 32
    max_body_bytes: int = 1 << 20
    max_header_bytes: int = 16 << 10
    require_length: bool = False
    retry_after_s: int = 1
    graceful_stop_s: int = 10
    backlog: int = 128
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_s", "max_connections"):
            if not getattr(self, name) > 0:
                raise ConfigError("http server", name, "must be positive")
        for name in ("max_in_flight", "max_body_bytes", "max_header_bytes", "retry_after_s", "backlog"):
            if not getattr(self, name) > 0:
                raise ConfigError("http server", name, "must be positive")
        if self.http not in ("h11", "httptools"):
            raise ConfigError("http server", "http", "must be h11 or httptools")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ConfigError("http server", "ssl_certfile/ssl_keyfile", "give both or neither")


def _raw_answer(status: int, reason: str, *, retry_after_s: int | None = None) -> bytes:
    """A whole HTTP/1.1 answer as bytes, for the protocol layer (before any app runs)."""
    body = orjson.dumps({"error": reason})
    phrase = {
        400: b"Bad Request",
        408: b"Request Timeout",
        431: b"Request Header Fields Too Large",
        503: b"Service Unavailable",
    }[status]
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
        status,
        phrase,
        len(body),
    )
    if retry_after_s is not None:
        head += b"retry-after: %d\r\n" % retry_after_s
    return head + b"connection: close\r\n\r\n" + body


class _Limited:
    """Mixed into uvicorn's H11Protocol / HttpToolsProtocol by `_protocol` (which sets the class
    attributes): a deadline on each request's headers, the connection cap, half-closed clients."""

    limits: ServerLimits
    on_refusal: OnRefusal
    slow: bytes
    short: bytes
    large: bytes
    busy: Any
    _header_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0
    _peer_done = False
    # set by the uvicorn protocol this is mixed into
    connections: set[Any]
    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    app: Any

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        open_now = len(self.connections)
        if open_now > 2 * self.limits.max_connections:
            self.on_refusal(503, "too many connections")
            transport.close()
            return
        if open_now > self.limits.max_connections:
            self.app = self.busy  # its request is read (under the deadline) and answered 503
        self._arm()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)  # type: ignore[misc]
        current: object = self.transport.get_protocol()
        if current is not self or (self.cycle is not before and self.cycle is not None):
            self._disarm()  # a request's headers were read (or the connection was upgraded)
        elif self._header_timer is not None:  # still waiting for the end of the headers
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes and not self.transport.is_closing():
                # h11 stops at its own cap (a 400); httptools has none
                self.on_refusal(431, "request headers too large")
                self.transport.write(self.large)
                self.transport.close()

    def _idle(self) -> bool:
        return self.cycle is None or bool(self.cycle.response_complete)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if self.transport.is_closing() or not self._idle():
            return  # closed, or a pipelined request is in hand already
        if self._peer_done:
            self.transport.close()  # the client sent EOF: this was its last answer
        else:
            self._arm()  # the next request's headers are due in time too

    def eof_received(self) -> bool | None:
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_started:
            # the client half-closed before its whole body came: tell it (uvicorn would close)
            self.on_refusal(400, "body shorter than Content-Length")
            self.transport.write(self.short)
            self.transport.close()
            return None
        if not self._idle():
            self._peer_done = True  # keep the socket open for the answer, then close it
            return True
        return super().eof_received()  # type: ignore[misc,no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        self._disarm()
        self._head_bytes = 0
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.on_refusal(408, "request headers too slow")
            self.transport.write(self.slow)
            self.transport.close()


def _protocol(limits: ServerLimits, on_refusal: OnRefusal) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol of ``limits.http`` with `_Limited` mixed in."""
    base: type[asyncio.Protocol] = H11Protocol if limits.http == "h11" else HttpToolsProtocol
    attrs = {
        "limits": limits,
        "on_refusal": staticmethod(on_refusal),
        "slow": _raw_answer(408, "request headers too slow"),
        "short": _raw_answer(400, "body shorter than Content-Length"),
        "large": _raw_answer(431, "request headers too large"),
        "busy": _Refusal(503, "too many connections", limits.retry_after_s),
    }
    return type(f"Limited{base.__name__}", (_Limited, base), attrs)


class _Refusal:
    """An ASGI app that answers ``status`` with ``{"error": reason}`` and closes the connection."""

    def __init__(self, status: int, reason: str, retry_after_s: int | None = None) -> None:
        self.status = status
        self.body = orjson.dumps({"error": reason})
        self.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
            (b"connection", b"close"),
        ]
        if retry_after_s is not None:
            self.headers.append((b"retry-after", str(retry_after_s).encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


class _BodyRefused(Exception):  # noqa: N818 - a refusal, raised inside receive()
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _declared_length(headers: list[tuple[bytes, bytes]], limits: ServerLimits) -> tuple[int, str] | None:
    """A refusal (status, reason) for the framing a request declares, or None when it may be read."""
    lengths = [v for k, v in headers if k == b"content-length"]
    chunked = any(k == b"transfer-encoding" for k, _ in headers)
    if chunked and lengths:
        return 400, "conflicting Content-Length / Transfer-Encoding"
    if chunked and limits.require_length:
        return 411, "Content-Length required (no Transfer-Encoding)"
    if len(set(lengths)) > 1:
        return 400, "conflicting Content-Length / Transfer-Encoding"
    if lengths:
        raw = lengths[0].strip()
        if not (raw.isdigit() and len(raw) <= 12):
            return 400, "Content-Length is not a number"
        if int(raw) > limits.max_body_bytes:
            return 413, f"body over {limits.max_body_bytes} bytes"
    return None


class Guard:
    """ASGI middleware: request framing, body size and time, and requests in flight (see above)."""

    def __init__(self, app: ASGIApp, limits: ServerLimits, on_refusal: OnRefusal) -> None:
        self.app = app
        self.limits = limits
        self.on_refusal = on_refusal
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limits.max_in_flight:
            await self._refuse(send, 503, "too many requests in flight", self.limits.retry_after_s)
            return
        refused = _declared_length(scope.get("headers", []), self.limits)
        if refused is not None:
            await self._refuse(send, *refused)
            return
        self.in_flight += 1
        try:
            await self._guarded(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _refuse(self, send: Send, status: int, reason: str, retry_after_s: int | None = None) -> None:
        self.on_refusal(status, reason)
        await _Refusal(status, reason, retry_after_s)({}, _never, send)  # the scope is not read by _Refusal

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        ex = _Exchange(self, receive, send)
        try:
            await self.app(scope, ex.receive, ex.send)
        except Exception as exc:
            if ex.refused:
                return  # the app saw the disconnect the guard made
            log.warning("http: request failed: %s", type(exc).__name__)
            if not ex.started:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"error":"internal error"}'})


class _Exchange:
    """One request seen by the app through the guard: its body counted and timed."""

    def __init__(self, guard: Guard, receive: Receive, send: Send) -> None:
        self.guard = guard
        self._receive = receive
        self._send = send
        self.deadline = asyncio.get_running_loop().time() + guard.limits.body_timeout_s
        self.read = 0
        self.body_done = False
        self.started = False
        self.refused = False

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        if self.body_done:
            return await self._receive()  # e.g. a long response waiting for the client to go
        try:
            async with asyncio.timeout_at(self.deadline):
                msg = await self._receive()
        except TimeoutError:
            return await self.refuse(408, "request body too slow")
        if msg["type"] == "http.request":
            self.read += len(msg.get("body", b""))
            cap = self.guard.limits.max_body_bytes
            if self.read > cap:
                return await self.refuse(413, f"body over {cap} bytes")
            self.body_done = not msg.get("more_body", False)
        return msg

    async def refuse(self, status: int, reason: str) -> Message:
        self.refused = True
        if not self.started:
            self.started = True
            await self.guard._refuse(self._send, status, reason)
        return {"type": "http.disconnect"}

    async def send(self, msg: Message) -> None:
        if self.refused:
            return  # the guard answered; the app's answer has nowhere to go
        if msg["type"] == "http.response.start":
            self.started = True
        await self._send(msg)


async def _never() -> Message:
    return {"type": "http.disconnect"}


def _log_refusal(status: int, reason: str) -> None:
    log.debug("http: refused a request: status=%d reason=%s", status, reason)


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # signals belong to the entry point, which calls AsgiServer.stop()


def _bind(limits: ServerLimits) -> socket.socket:
    family = socket.AF_INET6 if ":" in limits.host else socket.AF_INET
    try:
        sock = socket.create_server((limits.host, limits.port), family=family, backlog=limits.backlog)
    except OSError as exc:
        raise ConfigError(
            "http server", f"{limits.host}:{limits.port}", f"cannot listen: {exc.strerror or exc}"
        ) from exc
    sock.setblocking(False)
    return sock


class AsgiServer:
    def __init__(self, app: ASGIApp, limits: ServerLimits, *, on_refusal: OnRefusal | None = None) -> None:
        self.limits = limits
        refused = on_refusal or _log_refusal
        self.guard = Guard(app, limits, refused)
        self._sock = _bind(limits)
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn.Config(
            self.guard,
            host=limits.host,
            port=self.port,
            http=_protocol(limits, refused),
            ws="none",
            lifespan="auto",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=limits.keep_alive_s,
            timeout_graceful_shutdown=limits.graceful_stop_s,
            h11_max_incomplete_event_size=limits.max_header_bytes,
            ssl_certfile=limits.ssl_certfile,
            ssl_keyfile=limits.ssl_keyfile,
        )
        self._server = _Uvicorn(config)

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    def serve(self) -> None:
        """Serve until `stop` (blocks; the socket is closed on return)."""
        try:
            self._server.run(sockets=[self._sock])
        finally:
            self._sock.close()

    def stop(self) -> None:
        """Ask a serving server to drain and return (any thread, a signal handler included)."""
        self._server.should_exit = True

    def close(self) -> None:
        """Release the socket of a server that was never served."""
        self._sock.close()

    @contextlib.contextmanager
    def running(self, start_timeout_s: float = 10.0) -> Iterator[AsgiServer]:
        """Serve in a background thread for the block's duration (tests, embedding)."""
        t = threading.Thread(target=self.serve, name=f"http:{self.port}", daemon=True)
        t.start()
        deadline = time.monotonic() + start_timeout_s
        while not self.started and t.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.started:
            self.stop()
            raise RuntimeError("the HTTP server did not start")
        try:
            yield self
        finally:
            self.stop()
            t.join(self.limits.graceful_stop_s + 5)
