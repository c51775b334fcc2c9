"""Mastodon connector against a loopback server: the recorded v2 instance answer (streaming URL
discovery), the documented SSE events replayed with heartbeats and a stream cut mid-way, REST
backfill with min_id from the recorded hashtag timeline; what reaches the real local Kafka."""

from __future__ import annotations

import json
from collections import Counter

import orjson
import pytest

from connectors.backoff import Backoff
from connectors.credentials import Secret
from connectors.mastodon import MastodonConnector, streaming_base
from monitor.kafka import KafkaPostProducer, ensure_topics, read_topic
from monitor.store.connectors import RedisConnectorState, read_statuses
from tests.recorded import jsonl_lines, path, vcr

from .fake_http import Answer, FakeHTTP, Request

pytestmark = pytest.mark.integration

EVENTS = [json.loads(ln) for ln in jsonl_lines("mastodon/docs_streaming_sse_events.jsonl")]
TIMELINE = next(
    it
    for it in vcr("mastodon/mastodonpy_test_hashtag_tl.yaml")
    if it["request"]["uri"].endswith("/api/v1/timelines/tag/hoot")
)["response"]["body"]["string"]
INSTANCE = next(
    it
    for it in vcr("mastodon/mastodonpy_test_stream_healthy.yaml")
    if it["request"]["uri"].endswith("/api/v2/instance/")
)["response"]["body"]["string"]


def _sse(events, *, cut_after=None, malformed_at=None):
    out = [b":)\n"]
    for i, e in enumerate(events):
        if cut_after is not None and i == cut_after:
            out.append(b"<cut>")
            return out
        if i == malformed_at:
            out.append(b'event: update\ndata: {"id": "1", broken\n\n')
        out.append(f"event: {e['event']}\ndata: {e['data']}\n\n".encode())
        if i % 5 == 0:
            out += [b":thump\n", None]
    return [*out, None, None]


class Script:
    def __init__(self, port_url: str) -> None:
        self.streams = 0
        self.min_ids: list[str] = []
        self.port_url = port_url

    def __call__(self, req: Request) -> Answer:
        if req.path == "/api/v2/instance":  # public: no token needed
            return Answer(
                200, {}, INSTANCE.replace("ws://localhost:4000", self.port_url.replace("http", "ws")).encode()
            )
        assert req.headers.get("authorization") == "Bearer s3cret-token"
        if req.path == "/api/v1/timelines/tag/test":
            self.min_ids.append(req.query["min_id"])
            newest = max(int(s["id"]) for s in json.loads(TIMELINE))
            return Answer(200, {}, TIMELINE.encode() if int(req.query["min_id"]) < newest else b"[]")
        if req.path == "/api/v1/streaming/hashtag" and req.query.get("tag") == "test":
            self.streams += 1
            chunks = _sse(EVENTS, cut_after=12, malformed_at=3) if self.streams == 1 else _sse(EVENTS)
            return Answer(200, {"Content-Type": "text/event-stream"}, chunks=chunks)
        return Answer(404, {}, b'{"error":"Unknown channel requested"}')


def test_stream_cut_backfill_and_dedup(kafka_bootstrap, redis_url, unique, caplog):
    ensure_topics(kafka_bootstrap, {f"{unique}.raw": 2})
    with FakeHTTP(Script("")) as fake:
        fake.route = script = Script(fake.url)
        state = RedisConnectorState(redis_url, "mastodon", prefix=f"t-{unique}:conn:")
        conn = MastodonConnector(
            KafkaPostProducer(kafka_bootstrap, f"{unique}.raw"),
            state,
            base_url=fake.url,
            stream="hashtag:test",
            token=Secret("s3cret-token"),
            backoff=Backoff(0.05, 0.3),
        )
        conn.run(idle_timeout_s=2.5)
    recs = read_topic(kafka_bootstrap, f"{unique}.raw", timeout_s=10)
    # a delete is keyed by the post it deletes: count (key, kind) pairs
    keys = Counter((r.key.decode(), orjson.loads(r.value)["kind"]) for r in recs)
    kinds = Counter(kind for _, kind in keys.elements())
    # 4 distinct statuses in the docs' update events + 1 from the backfill; 3 distinct deletes
    assert kinds == {"post": 5, "delete": 3} and max(keys.values()) == 1
    backfilled = json.loads(TIMELINE)[0]["id"]
    assert (f"mastodon:127.0.0.1:{fake.port}:{backfilled}", "post") in keys
    before_cut = max(int(json.loads(e["data"])["id"]) for e in EVENTS[:12] if e["event"] == "update")
    assert script.streams >= 2 and script.min_ids[0] == str(before_cut)  # newest id before the cut
    assert conn.stats.by_reason == {"bad_data": 1}
    assert conn.stats.skipped["edit"] >= 7
    st = read_statuses(redis_url, prefix=f"t-{unique}:conn:")["mastodon"]
    assert st["produced"] == "5" and st["deletions"] == "3" and int(st["errors"]) >= 1
    assert "s3cret-token" not in caplog.text


def test_streaming_url_discovery_from_recorded_instance_answers():
    assert streaming_base(json.loads(INSTANCE)) == "http://localhost:4000"
    v1 = next(
        it
        for it in vcr("mastodon/mastodonpy_test_stream_healthy.yaml")
        if it["request"]["uri"].endswith("/api/v1/instance/")
    )["response"]["body"]["string"]
    assert streaming_base(json.loads(v1)) == "http://localhost:4000"
    assert streaming_base({"urls": {}}) is None and streaming_base([]) is None


def test_hostile_statuses_on_the_stream_are_counted_and_the_stream_goes_on(
    kafka_bootstrap, redis_url, unique, caplog
):
    """F3/F16: statuses that crashed the connector (an int ``tags``, ``<![`` in the content, an id
    int() cannot read) and an event over the line limit are counted or taken; the good status
    after them still arrives, and nothing of their text is logged."""
    ensure_topics(kafka_bootstrap, {f"{unique}.raw": 1})
    base = json.loads(path("mastodon/docs_status_entity.json").read_text())
    statuses = [
        {**base, "id": "9000000000000000001", "tags": 5, "content": "<p>secret one <![foo</p>"},
        {**base, "id": "\u00b2", "content": "secret two"},
        {**base, "id": "9" * 5000, "content": "secret three"},
        {**base, "id": "9000000000000000004", "content": "<p>fine</p>", "account": {"url": [[["x"]]]}},
    ]
    big = "x" * 2_000_000  # over SSEParser's 1 Mi-character line limit
    body = [b":)\n"] + [f"event: update\ndata: {json.dumps(s)}\n\n".encode() for s in statuses[:3]]
    body += [
        b"event: update\ndata: " + big.encode() + b"\n\n",
        f"event: update\ndata: {json.dumps(statuses[3])}\n\n".encode(),
        None,
        None,
    ]

    def route(req: Request) -> Answer:
        if req.path == "/api/v1/streaming/public":
            return Answer(200, {"Content-Type": "text/event-stream"}, chunks=body)
        return Answer(404, {}, b"{}")

    with FakeHTTP(route) as fake:
        state = RedisConnectorState(redis_url, "mastodon", prefix=f"t-{unique}:conn:")
        conn = MastodonConnector(
            KafkaPostProducer(kafka_bootstrap, f"{unique}.raw"),
            state,
            base_url=fake.url,
            stream="public",
            streaming_url=fake.url,
            backoff=Backoff(5.0, 5.0),
        )
        conn.run(max_items=2, idle_timeout_s=5)
    recs = read_topic(kafka_bootstrap, f"{unique}.raw", timeout_s=10)
    texts = [orjson.loads(r.value)["text"] for r in recs]
    assert texts == ["secret one", "fine"]
    assert conn.stats.by_reason == {"bad_status.id": 2, "sse_event_too_long": 1}
    assert state.cursor() == "9000000000000000004"
    assert "secret" not in caplog.text and "xxxxxxxx" not in caplog.text


def test_the_token_does_not_follow_a_streaming_server_on_another_host(
    kafka_bootstrap, redis_url, unique, caplog
):
    """F16: the instance answer names a streaming server elsewhere (here wss://, on another
    host): the token is not sent there; the instance's own host streams, with the token."""
    ensure_topics(kafka_bootstrap, {f"{unique}.raw": 1})
    elsewhere = INSTANCE.replace("ws://localhost:4000", "wss://streaming.attacker.example")
    seen: list[tuple[str, str | None]] = []

    def route(req: Request) -> Answer:
        seen.append((req.path, req.headers.get("authorization")))
        if req.path == "/api/v2/instance":
            return Answer(200, {}, elsewhere.encode())
        if req.path == "/api/v1/streaming/public":
            return Answer(200, {"Content-Type": "text/event-stream"}, chunks=_sse(EVENTS[:6]))
        return Answer(404, {}, b"{}")

    with FakeHTTP(route) as fake:
        conn = MastodonConnector(
            KafkaPostProducer(kafka_bootstrap, f"{unique}.raw"),
            RedisConnectorState(redis_url, "mastodon", prefix=f"t-{unique}:conn:"),
            base_url=fake.url,
            stream="public",
            token=Secret("s3cret-token"),
            backoff=Backoff(0.05, 0.3),
        )
        conn.run(idle_timeout_s=1.5)
    assert conn.streaming_url == fake.url
    assert ("/api/v1/streaming/public", "Bearer s3cret-token") in seen
    assert conn.stats.produced >= 1
    assert "streaming.attacker.example" in caplog.text and "not sent there" in caplog.text
    assert "s3cret-token" not in caplog.text
