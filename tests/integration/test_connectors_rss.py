"""RSS/Atom connector against a loopback server serving the recorded feeds with ETag and
Last-Modified (the recordings carry no headers, so the fake adds them), a 503, a body cut
mid-transfer and a document that is no feed; what reaches the real local Kafka."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from connectors.backoff import Backoff
from connectors.rss import FeedConnector
from monitor.kafka import KafkaPostProducer, ensure_topics, read_topic
from monitor.store.connectors import RedisConnectorState, read_statuses
from tests.recorded import path

from .fake_http import Answer, FakeHTTP, Request

pytestmark = pytest.mark.integration

RSS = path("rss/rss2_scriptingnews_2017-06-26.rss").read_bytes()
ATOM = path("rss/atom_reddit_r_homelab_new_2023-07-23.xml").read_bytes()
ATOM_OLDER = re.sub(rb"<entry>.*?</entry>", b"", ATOM, count=1, flags=re.DOTALL)  # before t3_157kyrd
LM1, LM2 = "Sun, 23 Jul 2023 17:00:00 GMT", "Sun, 23 Jul 2023 17:40:00 GMT"


class Script:
    def __init__(self) -> None:
        self.rss_faults = [
            Answer(503, {"Retry-After": "1"}),
            Answer(200, {"ETag": '"v1"'}, RSS, cut_after=20_000),
        ]
        self.atom_polls = 0

    def __call__(self, req: Request) -> Answer:
        if req.path == "/scripting.rss":
            if self.rss_faults:
                return self.rss_faults.pop(0)
            if req.headers.get("if-none-match") == '"v1"':
                return Answer(304, {"ETag": '"v1"'})
            return Answer(200, {"ETag": '"v1"', "Content-Type": "application/rss+xml"}, RSS)
        if req.path == "/homelab.atom":
            self.atom_polls += 1
            since = req.headers.get("if-modified-since")
            if since == LM2:
                return Answer(304)
            if since == LM1 and self.atom_polls >= 3:
                return Answer(200, {"Last-Modified": LM2}, ATOM)  # one new entry
            return Answer(200, {"Last-Modified": LM1}, ATOM_OLDER) if since is None else Answer(304)
        return Answer(200, {"Content-Type": "text/html"}, b"<html><body>moved</body></html>")


def test_conditional_get_dedup_and_faults(kafka_bootstrap, redis_url, unique):
    ensure_topics(kafka_bootstrap, {f"{unique}.raw": 2})
    script = Script()
    with FakeHTTP(script) as fake:
        state = RedisConnectorState(redis_url, "rss", prefix=f"t-{unique}:conn:")
        conn = FeedConnector(
            KafkaPostProducer(kafka_bootstrap, f"{unique}.raw"),
            state,
            feeds=[f"{fake.url}/scripting.rss", f"{fake.url}/homelab.atom", f"{fake.url}/gone.xml"],
            poll_interval_s=0.2,
            backoff=Backoff(0.05, 0.3),
        )
        conn.run(idle_timeout_s=3.0)
    keys = Counter(r.key.decode() for r in read_topic(kafka_bootstrap, f"{unique}.raw", timeout_s=10))
    # 48 distinct guids in Scripting News (the feed repeats two) + all 25 Reddit entries
    assert len(keys) == 73 and max(keys.values()) == 1
    assert "rss:t3_157kyrd" in keys
    rss_reqs = [r for r in fake.requests if r.path == "/scripting.rss"]
    assert rss_reqs[-1].headers.get("if-none-match") == '"v1"'
    atom_reqs = [r for r in fake.requests if r.path == "/homelab.atom"]
    assert atom_reqs[-1].headers.get("if-modified-since") == LM2
    assert conn.not_modified >= 2
    assert conn.stats.errors == 2  # the 503 and the cut body
    assert conn.stats.by_reason.get("not_a_feed", 0) >= 1
    st = read_statuses(redis_url, prefix=f"t-{unique}:conn:")["rss"]
    assert st["produced"] == "73" and int(st["not_modified"]) >= 2


def test_a_private_feed_url_is_neither_logged_nor_stored(kafka_bootstrap, redis_url, unique, caplog):
    """F16: a feed URL carrying user:password@ and ?token= works (conditional GET included),
    but neither secret reaches a log line (httpx's request line included) or Redis."""
    import logging

    import redis

    caplog.set_level(logging.INFO)
    ensure_topics(kafka_bootstrap, {f"{unique}.raw": 1})

    def route(req: Request) -> Answer:
        if req.headers.get("if-none-match") == '"p1"':
            return Answer(304, {"ETag": '"p1"'})
        return Answer(200, {"ETag": '"p1"'}, RSS)

    with FakeHTTP(route) as fake:
        url = fake.url.replace("://", "://reader:feedpass@") + "/private.rss?token=feedtoken&x=1"
        state = RedisConnectorState(redis_url, "rss", prefix=f"t-{unique}:conn:")
        conn = FeedConnector(
            KafkaPostProducer(kafka_bootstrap, f"{unique}.raw"),
            state,
            feeds=[url],
            poll_interval_s=0.2,
            backoff=Backoff(0.05, 0.3),
        )
        conn.run(idle_timeout_s=1.5)
    assert conn.stats.produced == 48 and conn.not_modified >= 1
    assert fake.requests[-1].headers.get("if-none-match") == '"p1"'
    r = redis.Redis.from_url(redis_url)
    stored = b""
    for key in r.scan_iter(match=f"t-{unique}:*".encode()):
        kind = r.type(key)
        if kind == b"hash":
            stored += b"".join(k + v for k, v in r.hgetall(key).items())
        elif kind == b"string":
            stored += r.get(key) or b""
        elif kind == b"zset":
            stored += b"".join(m for m, _ in r.zrange(key, 0, -1, withscores=True))
        elif kind == b"set":
            stored += b"".join(r.smembers(key))
        stored += key
    assert b"/private.rss" in stored  # the feed's state is there, redacted
    assert b"feedtoken" not in stored and b"feedpass" not in stored
    assert "HTTP Request" in caplog.text and "/private.rss" in caplog.text
    assert "feedtoken" not in caplog.text and "feedpass" not in caplog.text
