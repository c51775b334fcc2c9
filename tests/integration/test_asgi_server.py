"""`monitor.asgi.AsgiServer`: the real uvicorn server on a real loopback socket, with both HTTP
parsers, against clients that trickle, flood, oversize and stall (no Kafka or Redis needed)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import orjson
import pytest

from monitor.asgi import AsgiServer, ServerLimits
from monitor.errors import ConfigError

pytestmark = pytest.mark.integration

PARSERS = ["h11", "httptools"]


class Echo:
    """Reads the whole body and answers how much it read; ``hold`` keeps requests in hand."""

    def __init__(self) -> None:
        self.calls = 0
        self.hold: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.boom = False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        self.calls += 1
        self.loop = asyncio.get_running_loop()
        n = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            n += len(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        if self.boom:
            raise ValueError("secret-looking text from the body")
        if self.hold is not None:
            await self.hold.wait()
        body = orjson.dumps({"read": n})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def release(self) -> None:
        assert self.loop is not None and self.hold is not None
        self.loop.call_soon_threadsafe(self.hold.set)


@contextmanager
def serve(app, **kw) -> Iterator[tuple[AsgiServer, list[tuple[int, str]]]]:
    refusals: list[tuple[int, str]] = []
    srv = AsgiServer(app, ServerLimits(port=0, **kw), on_refusal=lambda s, r: refusals.append((s, r)))
    with srv.running():
        yield srv, refusals


def _read_all(s: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else -1


@pytest.mark.parametrize("parser", PARSERS)
def test_slowloris_headers_get_408_and_others_are_served_meanwhile(parser):
    app = Echo()
    with serve(app, http=parser, header_timeout_s=1.0) as (srv, refusals):
        slow = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        slow.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\n")
        sent, cut = 0, False
        with httpx.Client(timeout=5) as c:
            # a header byte every 50 ms would take 20 s to finish: the server cuts it first
            for _ in range(400):
                try:
                    slow.sendall(b"X-Slow: " if sent % 20 == 0 else b"a")
                except (BrokenPipeError, ConnectionResetError):
                    cut = True
                    break
                sent += 1
                if sent % 10 == 0:  # meanwhile a normal client is served
                    assert c.post(f"http://127.0.0.1:{srv.port}/ok", content=b"abc").json() == {"read": 3}
                time.sleep(0.05)
                slow.settimeout(0)
                try:
                    if slow.recv(1, socket.MSG_PEEK):
                        break
                except BlockingIOError:
                    pass
                finally:
                    slow.settimeout(15)
        answer = b"" if cut else _read_all(slow)
        slow.close()
    assert cut or _status(answer) == 408, answer[:80]
    assert sent < 400  # closed long before the headers could end
    assert (408, "request headers too slow") in refusals
    assert app.calls >= 1  # only the normal client's requests reached the app


@pytest.mark.parametrize("parser", PARSERS)
def test_a_silent_connection_is_closed(parser):
    with serve(Echo(), http=parser, header_timeout_s=0.5) as (srv, refusals):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        answer = _read_all(s)  # returns only when the server closes
        s.close()
    assert _status(answer) == 408 and refusals == [(408, "request headers too slow")]


@pytest.mark.parametrize("parser", PARSERS)
def test_headers_over_the_cap_are_refused(parser):
    with serve(Echo(), http=parser, max_header_bytes=4096) as (srv, refusals):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            for _ in range(64):  # 64 KiB of headers, fast, never ending them
                s.sendall(b"X-Pad: " + b"a" * 1014 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _read_all(s)
        s.close()
    # h11 enforces the cap itself (400), httptools has none: the guard's 431
    assert _status(answer) == (400 if parser == "h11" else 431) or answer == b""
    if parser == "httptools":
        assert refusals == [(431, "request headers too large")]


@pytest.mark.parametrize("parser", PARSERS)
def test_a_stalled_body_gets_408(parser):
    app = Echo()
    with serve(app, http=parser, body_timeout_s=0.5) as (srv, refusals):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        s.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"a" * 10)
        answer = _read_all(s)
        s.close()
    assert _status(answer) == 408 and b"connection: close" in answer.lower()
    assert refusals == [(408, "request body too slow")]


@pytest.mark.parametrize("parser", PARSERS)
def test_a_declared_length_over_the_cap_is_413_before_reading(parser):
    app = Echo()
    with serve(app, http=parser, max_body_bytes=1000, body_timeout_s=30) as (srv, refusals):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=15) as s:
            # no body follows: an answer that waited for it would never come
            s.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
            answer = _read_all(s)
        with httpx.Client(timeout=5) as c:
            assert c.post(f"http://127.0.0.1:{srv.port}/x", content=b"a" * 1000).json() == {"read": 1000}
    assert _status(answer) == 413 and b"connection: close" in answer.lower()
    assert app.calls == 1 and refusals == [(413, "body over 1000 bytes")]


@pytest.mark.parametrize("parser", PARSERS)
def test_a_chunked_body_is_counted_as_it_streams(parser):
    app = Echo()
    with serve(app, http=parser, max_body_bytes=1000) as (srv, refusals):
        url = f"http://127.0.0.1:{srv.port}/x"
        with httpx.Client(timeout=5) as c:
            small = c.post(url, content=iter([b"a" * 400, b"b" * 400]))
            big = c.post(url, content=iter([b"a" * 600] * 10))
    assert small.json() == {"read": 800}
    assert big.status_code == 413 and big.headers["connection"] == "close"
    assert refusals == [(413, "body over 1000 bytes")]


@pytest.mark.parametrize("parser", PARSERS)
def test_a_client_that_half_closes_still_gets_its_answer(parser):
    """EOF after a whole request: answered, then closed; EOF mid-body: 400, not silence."""
    app = Echo()
    app.hold = asyncio.Event()  # the answer comes after the client's EOF
    with serve(app, http=parser) as (srv, refusals):
        answers = []
        for req in (b"Content-Length: 3\r\n\r\nabc", b"Content-Length: 30\r\n\r\nabc"):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
            s.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\n" + req)
            s.shutdown(socket.SHUT_WR)
            if not answers:
                while app.calls < 1:
                    time.sleep(0.01)
                time.sleep(0.1)
                app.release()
            answers.append(_read_all(s))
            s.close()
    assert _status(answers[0]) == 200 and b'{"read":3}' in answers[0]
    assert _status(answers[1]) == 400 and refusals == [(400, "body shorter than Content-Length")]


def test_require_length_refuses_chunked_with_411():
    with serve(Echo(), require_length=True) as (srv, refusals), httpx.Client(timeout=5) as c:
        r = c.post(f"http://127.0.0.1:{srv.port}/x", content=iter([b"abc"]))
    assert r.status_code == 411 and refusals[0][0] == 411


@pytest.mark.parametrize("parser", PARSERS)
def test_requests_over_the_in_flight_limit_get_503_with_retry_after(parser):
    app = Echo()
    app.hold = asyncio.Event()
    with serve(app, http=parser, max_in_flight=2) as (srv, refusals):
        url = f"http://127.0.0.1:{srv.port}/x"
        answers: list[int] = []

        def held() -> None:
            with httpx.Client(timeout=15) as c:
                answers.append(c.post(url, content=b"x").status_code)

        threads = [threading.Thread(target=held) for _ in range(2)]
        for t in threads:
            t.start()
        while app.calls < 2:
            time.sleep(0.01)
        with httpx.Client(timeout=5) as c:
            over = c.post(url, content=b"x")
        app.release()
        for t in threads:
            t.join(10)
        with httpx.Client(timeout=5) as c:
            after = c.post(url, content=b"x")
    assert answers == [200, 200] and after.status_code == 200
    assert over.status_code == 503 and over.headers["retry-after"] == "1"
    assert refusals == [(503, "too many requests in flight")]


@pytest.mark.parametrize("parser", PARSERS)
def test_connections_over_the_limit_are_refused_and_the_server_goes_on(parser):
    app = Echo()
    with serve(app, http=parser, max_connections=4, header_timeout_s=30) as (srv, refusals):
        idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=15) for _ in range(4)]
        time.sleep(0.2)  # let the server take them
        with httpx.Client(timeout=5) as c:
            over = c.post(f"http://127.0.0.1:{srv.port}/x", content=b"x")
        flood = [socket.create_connection(("127.0.0.1", srv.port), timeout=15) for _ in range(20)]
        cut = 0
        for s in flood:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _read_all(s)
            cut += answer == b""
            assert answer == b"" or _status(answer) == 503
        for s in idle + flood:
            s.close()
        time.sleep(0.2)
        with httpx.Client(timeout=5) as c:
            after = c.post(f"http://127.0.0.1:{srv.port}/x", content=b"abc")
    assert over.status_code == 503 and over.headers["retry-after"] == "1"
    assert cut > 0  # past twice the limit, closed unread
    assert after.status_code == 200 and after.json() == {"read": 3}


def test_stop_lets_a_request_in_hand_finish():
    app = Echo()
    app.hold = asyncio.Event()
    answers: list[int] = []
    srv = AsgiServer(app, ServerLimits(port=0, graceful_stop_s=10))
    with srv.running():

        def held() -> None:
            with httpx.Client(timeout=15) as c:
                answers.append(c.post(f"http://127.0.0.1:{srv.port}/x", content=b"x").status_code)

        t = threading.Thread(target=held)
        t.start()
        while app.calls < 1:
            time.sleep(0.01)
        srv.stop()  # drain: the request in hand is answered before the server returns
        time.sleep(0.3)
        app.release()
        t.join(10)
    assert answers == [200]
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"http://127.0.0.1:{srv.port}/x", content=b"x", timeout=2)


def test_an_app_exception_is_a_500_and_one_line(caplog, capfd):
    app = Echo()
    app.boom = True
    with serve(app) as (srv, _), httpx.Client(timeout=5) as c:
        r = c.post(f"http://127.0.0.1:{srv.port}/x", content=b"x")
    assert r.status_code == 500 and r.json() == {"error": "internal error"}
    assert "ValueError" in caplog.text and "secret-looking" not in caplog.text
    assert "Traceback" not in caplog.text and "Traceback" not in capfd.readouterr().err


def test_a_busy_port_is_a_config_error_naming_it():
    first = AsgiServer(Echo(), ServerLimits(port=0))
    try:
        with pytest.raises(ConfigError, match=f"127.0.0.1:{first.port}"):
            AsgiServer(Echo(), ServerLimits(port=first.port))
    finally:
        first.close()


def test_limits_are_checked():
    with pytest.raises(ConfigError, match="header_timeout_s"):
        ServerLimits(header_timeout_s=0)
    with pytest.raises(ConfigError, match="ssl_certfile"):
        ServerLimits(ssl_certfile="/x.pem")
