"""The push endpoint's ASGI app in memory (Starlette's TestClient, no socket served), the F10
secret check, and the signature scheme against the Standard Webhooks reference library."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
from standardwebhooks.webhooks import Webhook
from starlette.testclient import TestClient

from connectors import push
from connectors.credentials import Secret
from monitor.errors import ConfigError

from .hostile import ListSink, MemoryState

RAW = b"s" * 32
SECRET = "whsec_" + base64.b64encode(RAW).decode()


def _headers(msg_id: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": "v1," + push.sign(RAW, msg_id, str(ts), body),
        "content-type": "application/json",
    }


@pytest.fixture
def client():
    sink = ListSink()
    conn = push.PushConnector(sink, MemoryState(), secret=Secret(SECRET), port=0)  # type: ignore[arg-type]
    try:
        with TestClient(conn.app) as c:
            yield c, conn, sink
    finally:
        conn.server.close()


def test_accepts_counts_and_deduplicates(client):
    c, conn, sink = client
    body = orjson.dumps([{"id": "a", "text": "love it"}, {"id": "b", "text": ""}])
    r = c.post("/ingest", content=body, headers=_headers("m1", body))
    assert r.status_code == 202 and r.json() == {
        "accepted": 1,
        "rejected": [{"index": 1, "reason": "text: missing or empty"}],
    }
    again = c.post("/ingest", content=body, headers=_headers("m1", body))
    assert again.status_code == 200 and again.json() == {"duplicate": True, "webhook-id": "m1"}
    assert [k for k, _ in sink.sent] == [b"push:a"] and conn.duplicates == 1


@pytest.mark.parametrize(
    "method, path, status",
    [("POST", "/other", 404), ("POST", "/ingest/", 404), ("GET", "/ingest", 405), ("PUT", "/ingest", 405)],
)
def test_other_paths_and_methods(client, method, path, status):
    c, conn, _ = client
    r = c.request(method, path, content=b"{}")
    assert r.status_code == status and r.json() == {"error": "POST /ingest"}
    assert r.headers["connection"] == "close" and conn.rejected == 0


def test_unsigned_stale_and_non_utf8_are_refused(client):
    c, conn, sink = client
    body = b'{"id":"1","text":"x"}'
    assert c.post("/ingest", content=body).status_code == 400
    stale = _headers("m2", body, ts=int(time.time()) - 301)
    assert c.post("/ingest", content=body, headers=stale).status_code == 401
    bad = b'{"id":"1","text":"\xff"}'
    h = _headers("m3", body) | {"webhook-signature": "v1,AAAA"}
    r = c.post("/ingest", content=bad, headers=h)
    assert r.status_code == 400 and r.json() == {"error": "body is not UTF-8"}
    assert sink.sent == [] and conn.rejected == 3


@pytest.mark.parametrize("secret", ["whsec_", "whsec_AA==", "whsec_" + base64.b64encode(b"k" * 23).decode()])
def test_a_weak_secret_is_refused_naming_the_setting_not_the_value(secret):
    with pytest.raises(ConfigError) as ei:
        push.PushConnector(ListSink(), MemoryState(), secret=Secret(secret), port=0)  # type: ignore[arg-type]
    msg = str(ei.value)
    assert "PUSH_WEBHOOK_SECRET" in msg and "under 24" in msg
    assert secret.removeprefix("whsec_") not in msg or secret == "whsec_"


def test_a_24_byte_key_is_enough():
    assert push.secret_key("whsec_" + base64.b64encode(b"k" * 24).decode()) == b"k" * 24


def test_our_signatures_are_the_reference_librarys():
    """Both ways: the library's own verify() accepts what `sign` makes, and `verify` accepts
    what the library signs (the library reads the clock itself, so real time here)."""
    body = orjson.dumps({"id": "1", "text": "caf\u00e9 \U0001f600"})
    ts = int(time.time())
    h = _headers("msg_x", body, ts)
    Webhook(SECRET).verify(body, h, json_parse=False)  # raises on mismatch
    theirs = Webhook(SECRET).sign("msg_y", push.datetime.fromtimestamp(ts, tz=push.UTC), body.decode())
    ours = {"webhook-id": "msg_y", "webhook-timestamp": str(ts), "webhook-signature": theirs}
    assert push.verify(RAW, ours, body, now_s=ts) == "msg_y"


@pytest.mark.parametrize("sig", ["v1", "v1,not base64!", "v1,a,b", ",", "v1," + "A" * 43])
def test_signature_entries_the_library_would_raise_on_are_401(sig):
    """standardwebhooks' verify() raises ValueError / binascii.Error on these: ours answers."""
    body = b"{}"
    h = _headers("m", body) | {"webhook-signature": sig}
    with pytest.raises(push.SignatureError) as ei:
        push.verify(RAW, h, body, now_s=time.time())
    assert ei.value.status == 401


def test_signature_entries_are_capped():
    body = b"{}"
    good = _headers("m", body)
    many = " ".join(["v1,AAAA"] * push.MAX_SIGNATURES + [good["webhook-signature"]])
    with pytest.raises(push.SignatureError):
        push.verify(RAW, good | {"webhook-signature": many}, body, now_s=time.time())
    few = " ".join(["v1,AAAA"] * 2 + [good["webhook-signature"]])
    assert push.verify(RAW, good | {"webhook-signature": few}, body, now_s=time.time()) == "m"


def test_a_flood_of_refusals_is_counted_but_not_a_log_line_each(client, caplog):
    c, conn, _ = client
    caplog.set_level("INFO", logger="connectors.push")
    for _ in range(50):
        assert c.post("/ingest", content=b"{}").status_code == 400
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert conn.rejected == 50 and 1 <= len(warnings) < 50
