"""What the worker keeps of a post past ``posts.raw`` (in-memory fakes of Kafka and Redis):
the author only as its keyed pseudonym, no text or url in ``posts.scored``, a redacted text in
the Redis sample, and DLQ records that say where and why, never what."""

from __future__ import annotations

import hashlib

import orjson

from monitor.batcher import BatchLimits
from monitor.kafka import Record
from monitor.messages import SCHEMA_VERSION
from monitor.model.base import ModelOutput
from monitor.privacy import author_pseudonym
from monitor.topics import TopicMatcher, TopicRule
from monitor.worker import Worker, WorkerConfig

from .test_worker_pipeline import FakeConsumer, FakeProducer, FakeStore, labels

KEY = b"s" * 32
NOW = 1_767_276_000_000
TEXT = (
    "kw0 refund please: jane.doe@example.com, card 4111 1111 1111 1111, +44 20 7946 0958 https://x.example/a"
)


class FixedScorer:
    name = "fixed"

    def score(self, texts, langs=None):
        return [ModelOutput((0.7, 0.2, 0.1), None)] * len(texts)


class SampleStore(FakeStore):
    def __init__(self, log):
        super().__init__(log)
        self.sampled = []

    def remember(self, posts):
        self.sampled += list(posts)


def _raw(offset: int, **over: object) -> Record:
    body = {
        "v": SCHEMA_VERSION,
        "kind": "post",
        "id": f"bluesky:at://did:plc:alice/app.bsky.feed.post/{offset}",
        "source": "bluesky",
        "text": TEXT,
        "lang": "en",
        "created_ms": NOW,
        "ingested_ms": NOW,
        "author_id": "did:plc:alice",
        "url": "https://bsky.app/profile/did:plc:alice/post/1",
        **over,
    }
    return Record("raw", 0, offset, b"k", orjson.dumps(body), 0)


def _run(records: list[Record], key: bytes = KEY) -> tuple[Worker, SampleStore]:
    log: list[object] = []
    store = SampleStore(log)
    w = Worker(
        WorkerConfig(lateness_ms=10**13, backoff_max_s=0.01, author_key=key),
        FakeConsumer([records], log),
        FakeProducer(),
        FixedScorer(),
        labels,
        store,
        TopicMatcher([TopicRule("t0", ("kw0",), ())]),
        clock_ms=lambda: NOW,
        limits=BatchLimits(max_posts=16, max_tokens=100_000, max_wait_ms=1),
    )
    w.run(idle_timeout_s=0.05)
    return w, store


def _sent(w: Worker, topic: str) -> list[bytes]:
    return [v for t, v in w.producer.sent if t == topic]  # type: ignore[attr-defined]


def test_posts_scored_carries_the_pseudonym_and_neither_text_nor_url():
    w, _ = _run([_raw(0)])
    (rec,) = _sent(w, "posts.scored")
    post = orjson.loads(rec)["post"]
    assert post["author_id"] == author_pseudonym(KEY, "did:plc:alice")
    assert post["text"] == "" and post["url"] == ""
    assert b"alice" not in rec.replace(b"did:plc:alice/app.bsky.feed.post", b"")  # only the post id names it
    assert b"jane" not in rec and b"4111" not in rec


def test_without_a_key_no_author_id_is_kept_at_all():
    w, _ = _run([_raw(0)], key=b"")
    (rec,) = _sent(w, "posts.scored")
    assert orjson.loads(rec)["post"]["author_id"] == ""


def test_the_redis_sample_keeps_a_redacted_text():
    _, store = _run([_raw(0)])
    (p,) = store.sampled
    assert p.text.startswith("kw0 refund please: [email], card [card], [phone]")
    for gone in ("jane", "example.com", "4111", "7946"):
        assert gone not in p.text
    assert p.url.startswith("https://bsky.app/")  # the permalink the alert links (bsky.app only)


def test_dlq_records_say_where_and_why_never_what():
    bad = Record(
        "raw", 0, 1, b"k", b'{"v": 1, "kind": "post", "id": "x", "text": "jane.doe@example.com 4111', 0
    )
    dup = _raw(2, id="same")
    w, _ = _run([_raw(0, id="same"), bad, dup])
    values = [orjson.loads(v) for v in _sent(w, "posts.dlq")]
    by_reason = {v["reason"]: v for v in values}
    assert set(by_reason) == {"decode:value", "duplicate_id"}
    d = by_reason["decode:value"]
    assert d["field"] == "value" and (d["topic"], d["partition"], d["offset"]) == ("raw", 0, 1)
    assert d["origin"] == "raw:0:1" and d["size"] == len(bad.value or b"")
    assert d["sha256"] == hashlib.sha256(bad.value or b"").hexdigest()
    for v in _sent(w, "posts.dlq"):
        assert b"jane" not in v and b"4111" not in v and b"alice" not in v and b"refund" not in v
        assert b"value_head" not in v
