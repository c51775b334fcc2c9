"""The signed push endpoint over real HTTP on 127.0.0.1, producing to the real local Kafka, with
webhook-id dedup in the real local Redis."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import socket
import threading
import time
from collections import Counter

import httpx
import orjson
import pytest

from connectors.credentials import Secret
from connectors.push import PushConnector
from monitor.kafka import KafkaPostProducer, ensure_topics, read_topic
from monitor.store.connectors import RedisConnectorState, read_statuses

pytestmark = pytest.mark.integration

RAW = b"a" * 24
SECRET = "whsec_" + base64.b64encode(RAW).decode()


def _headers(msg_id: str, body: bytes, ts: int | None = None, key: bytes = RAW):
    ts = int(time.time()) if ts is None else ts
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": f"v1,{sig}",
        "content-type": "application/json",
    }


def test_push_endpoint(kafka_bootstrap, redis_url, unique, caplog):
    ensure_topics(kafka_bootstrap, {f"{unique}.raw": 1})
    state = RedisConnectorState(redis_url, "push", prefix=f"t-{unique}:conn:")
    conn = PushConnector(
        KafkaPostProducer(kafka_bootstrap, f"{unique}.raw"),
        state,
        secret=Secret(SECRET),
        port=0,
        max_body_bytes=10_000,
    )
    t = threading.Thread(target=conn.run, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{conn.port}/ingest"
    batch = orjson.dumps(
        [
            {"id": "a", "text": "love it"},
            {"id": "b", "text": ""},
            {"id": "c", "text": "hate it", "lang": "en"},
            {"kind": "delete", "id": "a"},
        ]
    )
    try:
        with httpx.Client(timeout=10) as c:
            r = c.post(url, content=batch, headers=_headers("msg_1", batch))
            assert r.status_code == 202 and r.json()["accepted"] == 3
            assert [x["index"] for x in r.json()["rejected"]] == [1]
            # the sender retries the same message: accepted once only
            r = c.post(url, content=batch, headers=_headers("msg_1", batch))
            assert r.status_code == 200 and r.json()["duplicate"] is True
            # bad signature, stale timestamp, missing headers, not JSON, too big, wrong path
            assert (
                c.post(url, content=batch, headers=_headers("msg_2", batch, key=b"wrong")).status_code == 401
            )
            assert (
                c.post(
                    url, content=batch, headers=_headers("msg_3", batch, ts=int(time.time()) - 301)
                ).status_code
                == 401
            )
            assert c.post(url, content=batch, headers={"webhook-id": "msg_4"}).status_code == 400
            assert c.post(url, content=b"{x", headers=_headers("msg_5", b"{x")).status_code == 400
            big = orjson.dumps({"id": "z", "text": "x" * 20_000})
            r = c.post(url, content=big, headers=_headers("msg_6", big))
            # an answer sent before the body was read closes the socket, and says so: a client
            # that reused it would lose its next request
            assert r.status_code == 413 and r.headers["connection"] == "close"
            one = orjson.dumps({"id": "d", "text": "fine"})
            r = c.post(url.replace("/ingest", "/other"), content=one, headers=_headers("msg_7", one))
            assert r.status_code == 404 and r.headers["connection"] == "close"
            # a rejected message may be sent again correctly and is then taken
            assert c.post(url, content=one, headers=_headers("msg_2", one)).status_code == 202
    finally:
        conn.stop()
        t.join(10)
    recs = read_topic(kafka_bootstrap, f"{unique}.raw", timeout_s=10)
    got = Counter((r.key.decode(), orjson.loads(r.value)["kind"]) for r in recs)
    assert got == {
        ("push:a", "post"): 1,
        ("push:c", "post"): 1,
        ("push:a", "delete"): 1,
        ("push:d", "post"): 1,
    }
    st = read_statuses(redis_url, prefix=f"t-{unique}:conn:")["push"]
    assert st["produced"] == "3" and st["bad"] == "1" and st["duplicates"] == "1"
    assert st["rejected_requests"] == "5"  # 401, 401, 400, 400 and the 413 (the 404 is not one)
    assert base64.b64encode(RAW).decode() not in caplog.text


def _raw(port: int, request: bytes) -> bytes:
    """One request over a raw socket (headers httpx would refuse to send); -> the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_hostile_requests_get_an_answer_and_the_server_keeps_serving(redis_url, unique, caplog, capfd):
    """Every hostile request is answered with a 4xx and one log line (no traceback, no echo of
    what was sent), and a good request afterwards is still taken."""
    sent: list[bytes] = []

    class Sink:
        def send(self, key, value, *, topic=None, headers=None):
            sent.append(key)

        def flush(self, timeout_s=30.0):
            pass

        def close(self, timeout_s=10.0):
            pass

    state = RedisConnectorState(redis_url, "push", prefix=f"t-{unique}:conn:")
    conn = PushConnector(Sink(), state, secret=Secret(SECRET), port=0, max_items=3)
    t = threading.Thread(target=conn.run, daemon=True)
    t.start()
    body = b'{"id":"1","text":"fine"}'
    now = str(int(time.time())).encode()
    try:
        # webhook-timestamp "\xb2" arrives as '\u00b2' (isdigit() is true, int() refuses it)
        for ts in (b"\xb2", b"1" * 5000, now + b"\xb2"):
            ans = _raw(
                conn.port,
                b"POST /ingest HTTP/1.1\r\nHost: x\r\nwebhook-id: m1\r\n"
                b"webhook-timestamp: " + ts + b"\r\nwebhook-signature: v1,x\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body,
            )
            assert ans.startswith(b"HTTP/1.1 401 "), ans[:80]
        chunked = _raw(
            conn.port,
            b"POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        assert chunked.startswith(b"HTTP/1.1 411 ") and chunked.count(b"HTTP/1.1") == 1
        both = _raw(
            conn.port,
            b"POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 5\r\n\r\nhello",
        )
        assert both.startswith(b"HTTP/1.1 400 ")
        for cl in (b"-1", b"\xb2", b"1" * 5000, b"0x10"):
            ans = _raw(conn.port, b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: " + cl + b"\r\n\r\n")
            assert ans.startswith(b"HTTP/1.1 400 "), (cl[:8], ans[:80])
        with httpx.Client(timeout=10) as c:
            url = f"http://127.0.0.1:{conn.port}/ingest"
            many = orjson.dumps([{"id": str(i), "text": "x"} for i in range(4)])
            assert c.post(url, content=many, headers=_headers("msg_many", many)).status_code == 413
            # 1,000-deep nesting and junk items: rejected by index, the request still answered
            deep = b'[{"id":"d","text":"ok"}, ' + b"[" * 1000 + b"]" * 1000 + b', {"id":"e","text":5}]'
            r = c.post(url, content=deep, headers=_headers("msg_deep", deep))
            assert r.status_code == 202 and r.json()["accepted"] == 1
            assert [x["index"] for x in r.json()["rejected"]] == [1, 2]
            assert c.post(url, content=body, headers=_headers("msg_ok", body)).status_code == 202
    finally:
        conn.stop()
        t.join(10)
    assert sent == [b"push:d", b"push:1"]
    assert "Traceback" not in caplog.text and "\u00b2" not in caplog.text and "1111111111" not in caplog.text
    assert "Traceback" not in capfd.readouterr().err


def test_slow_and_flooding_clients_do_not_stop_signed_posts(redis_url, unique):
    """F5 on the push server itself: a client trickling its headers is cut (408), connections
    past the cap are refused (503 + Retry-After, or closed unread), and signed posts from the
    real sender are taken throughout and after."""
    from monitor.asgi import ServerLimits

    sent: list[bytes] = []

    class Sink:
        def send(self, key, value, *, topic=None, headers=None):
            sent.append(key)

        def flush(self, timeout_s=30.0):
            pass

        def close(self, timeout_s=10.0):
            pass

    state = RedisConnectorState(redis_url, "push", prefix=f"t-{unique}:conn:")
    limits = ServerLimits(header_timeout_s=1.0, max_connections=6)
    conn = PushConnector(Sink(), state, secret=Secret(SECRET), port=0, limits=limits)
    t = threading.Thread(target=conn.run, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{conn.port}/ingest"

    def post(i: int) -> httpx.Response:
        body = orjson.dumps({"id": f"p{i}", "text": "fine"})
        return httpx.post(url, content=body, headers=_headers(f"msg_p{i}", body), timeout=10)

    try:
        slow = socket.create_connection(("127.0.0.1", conn.port), timeout=15)
        slow.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nwebhook-id: ")
        assert post(0).status_code == 202  # served while the slow one trickles
        for _ in range(200):  # 10 s of trickling if it were never cut
            try:
                slow.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.05)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := slow.recv(65536):
                answer += chunk
        slow.close()
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")
        flood = [socket.create_connection(("127.0.0.1", conn.port), timeout=15) for _ in range(8)]
        time.sleep(0.2)
        over = post(1)  # the 9th connection, past the cap of 6: answered 503
        assert over.status_code == 503 and over.headers["retry-after"] == "1"
        flood += [socket.create_connection(("127.0.0.1", conn.port), timeout=15) for _ in range(8)]
        time.sleep(0.2)
        with pytest.raises(httpx.TransportError):
            post(1)  # past twice the cap: closed unread
        for s in flood:
            s.close()
        time.sleep(0.2)
        assert post(2).status_code == 202
    finally:
        conn.stop()
        t.join(10)
    assert sent == [b"push:p0", b"push:p2"]
    assert conn.rejected >= 2  # the 408 and the 503 at least, each counted
