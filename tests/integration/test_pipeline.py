"""End to end on the real local Kafka broker and Redis server: replay -> Kafka -> worker ->
Redis, bad records -> DLQ, and a graceful SIGTERM in the middle of a stream."""

from __future__ import annotations

import signal
import time
from collections import Counter

import orjson
import pytest

from devstack.synthetic import demo_topics_config, stream
from monitor.settings import load_settings
from monitor.store.buckets import RedisAggregateStore

from .pipeline_helpers import cli, dlq_records, popen, wait_for, write_config, write_jsonl

pytestmark = pytest.mark.integration


def _figures(cfg_path):
    s = load_settings(cfg_path)
    store = RedisAggregateStore(s.redis.url.get_secret_value(), s.redis.prefix)
    now = int(time.time() * 1000)
    return store, {t: store.read_window(t, now - 3_600_000, now + 120_000) for t in store.topics()}


CLIENTS = pytest.mark.parametrize("client", ["kafka-python", "librdkafka"])


@CLIENTS
def test_replay_to_redis_with_bad_records_in_the_dlq(tmp_path, kafka_bootstrap, redis_url, unique, client):
    cfg = write_config(
        tmp_path, kafka_bootstrap, redis_url, unique, topics=demo_topics_config(), kafka={"client": client}
    )
    posts = list(stream(120, id_prefix=unique))
    truth = Counter(p["topic"] for p in posts)
    for p in posts:
        p.pop("intended"), p.pop("topic")
    bad = [
        b'{"id": "m1", "text": ',  # malformed JSON
        b'{"v": 9, "id": "m2", "text": "schema from the future"}',  # wrong schema version
        b'{"id": "m3", "source": "x"}',  # missing text
        b"\xff\xfe\xfd not utf-8",  # non-UTF-8 bytes
        orjson.dumps({"id": "m5", "text": "PhoneX " + "x" * 1_000_000}),  # a 1 MB post
        orjson.dumps({"id": posts[0]["id"], "text": "PhoneX again, same id"}),  # duplicate id
    ]
    src = write_jsonl(tmp_path / "in.jsonl", posts, bad)
    out = cli("replay", str(src), "--config", str(cfg))
    assert orjson.loads(out.stdout.strip().splitlines()[-1])["produced"] == len(posts) + len(bad)
    cli("worker", "--config", str(cfg), "--idle-timeout-s", "6")

    store, figures = _figures(cfg)
    assert {t: b.n for t, b in figures.items()} == dict(truth)
    for b in figures.values():  # every counted post has a sentiment and an emotion
        assert sum(b.sentiments.values()) == b.n == sum(b.emotions.values())
    s = load_settings(cfg)
    dlq = dlq_records(kafka_bootstrap, s.kafka.dlq_topic)
    reasons = sorted(d["reason"] for d in dlq.values())
    assert reasons == sorted(
        ["decode:value", "decode:v", "decode:text", "decode:value", "decode:text", "duplicate_id"]
    )
    stats = store.stats("worker")
    assert stats["records"] == len(posts) + len(bad)
    assert stats["aggregated"] == len(posts)


@CLIENTS
def test_sigterm_mid_stream_finishes_batch_and_restart_loses_nothing(
    tmp_path, kafka_bootstrap, redis_url, unique, client
):
    cfg = write_config(
        tmp_path,
        kafka_bootstrap,
        redis_url,
        unique,
        topics=demo_topics_config(),
        worker={"max_batch": 8, "max_wait_ms": 50},
        kafka={"client": client},
    )
    posts = list(stream(600, id_prefix=unique))
    truth = Counter(p["topic"] for p in posts)
    src = write_jsonl(tmp_path / "in.jsonl", posts)
    cli("replay", str(src), "--config", str(cfg))
    s = load_settings(cfg)
    store = RedisAggregateStore(s.redis.url.get_secret_value(), s.redis.prefix)
    log1 = tmp_path / "worker1.log"
    w1 = popen("worker", "--config", str(cfg), log=log1)
    assert wait_for(lambda: store.stats("worker").get("records", 0) >= 40, timeout_s=120)
    w1.send_signal(signal.SIGTERM)
    assert w1.wait(timeout=60) == 0
    first = store.stats("worker").get("records", 0)
    assert 40 <= first < len(posts), "the stream must have been stopped in the middle"
    text = log1.read_text()
    assert "finishing the batch in hand" in text and "worker stopped" in text
    cli("worker", "--config", str(cfg), "--idle-timeout-s", "6")
    _, figures = _figures(cfg)
    assert {t: b.n for t, b in figures.items()} == dict(truth)
    assert store.stats("worker")["aggregated"] == len(posts)


@pytest.mark.integration
def test_dlq_of_a_topic_that_does_not_exist_yet_is_empty_not_a_traceback(
    tmp_path, kafka_bootstrap, redis_url, unique
):
    # a fresh install asks `mood-monitor dlq` before any worker created posts.dlq
    cfg = write_config(tmp_path, kafka_bootstrap, redis_url, unique, topics=[])
    proc = cli("dlq", "--config", str(cfg), check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert orjson.loads(proc.stdout) == {"total": 0, "by_reason": {}}
