"""Match before the model (issue 20) on the real Kafka broker and Redis server: a post no topic
wants leaves no Redis key and no posts.scored record, and is counted in the stream volume; a
topic added later is backfilled from posts.raw, each post once, beside the live counts."""

from __future__ import annotations

import time

import orjson
import pytest
import redis

from monitor.kafka import read_topic
from monitor.settings import load_settings
from monitor.store.buckets import RedisAggregateStore
from monitor.store.volume import RedisVolumeStore

from .pipeline_helpers import cli, write_config, write_jsonl

pytestmark = pytest.mark.integration

PHONEX = {"name": "phonex", "keywords": ["phonex"]}
COFFEE = {"name": "coffee", "hashtags": ["coffee"]}


def _posts(prefix: str, n: int, text: str) -> list[dict[str, object]]:
    now = int(time.time() * 1000)
    return [
        {"id": f"{prefix}-{i}", "source": "synthetic", "text": f"{text} {i}", "lang": "en", "created_ms": now}
        for i in range(n)
    ]


def _replay(tmp_path, cfg, name, posts):
    cli("replay", str(write_jsonl(tmp_path / f"{name}.jsonl", posts)), "--config", str(cfg))


def _count(cfg, topic: str) -> int:
    s = load_settings(cfg)
    store = RedisAggregateStore(s.redis.url.get_secret_value(), s.redis.prefix)
    now = int(time.time() * 1000)
    return store.read_window(topic, now - 3_600_000, now + 120_000).n


def test_unmatched_posts_leave_no_key_and_are_counted_in_the_volume(
    tmp_path, kafka_bootstrap, redis_url, unique
):
    cfg = write_config(tmp_path, kafka_bootstrap, redis_url, unique, topics=[PHONEX])
    _replay(tmp_path, cfg, "a", _posts("on", 12, "PhoneX is great") + _posts("off", 48, "lunch was fine"))
    cli("worker", "--config", str(cfg), "--idle-timeout-s", "6")
    s = load_settings(cfg)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    prefix = s.redis.prefix

    assert _count(cfg, "phonex") == 12
    store = RedisAggregateStore(s.redis.url.get_secret_value(), prefix)
    now = int(time.time() * 1000)
    vol = RedisVolumeStore(store).read_volume(now - 3_600_000, now + 120_000)
    assert sum(m.posts for m in vol) == 60 and sum(m.matched for m in vol) == 12
    assert {k for m in vol for k in m.by_source} == {"synthetic|en"}
    # the dashboard's status shows the whole stream and the matched share
    from monitor.alerts.settings import AlertSettings
    from monitor.web.readmodel import RedisReadModel

    stream = RedisReadModel(store, AlertSettings()).status(int(time.time() * 1000))["stream"]
    assert stream["posts"] == 60 and stream["matched"] == 12 and stream["matched_share"] == 0.2
    assert stream["by_source_lang"] == {"synthetic|en": {"posts": 60, "matched": 12}}
    # only the matched posts were claimed against duplicates and written to posts.scored
    assert sum(r.hlen(k) for k in r.scan_iter(f"{prefix}:{{seen}}:*")) == 12
    scored = read_topic(kafka_bootstrap, s.kafka.scored_topic, timeout_s=5)
    assert sorted(orjson.loads(x.value)["post"]["id"] for x in scored) == sorted(f"on-{i}" for i in range(12))

    # 300 more posts that match nothing: no new key (the volume hash of the minute may be new;
    # the second worker process has a heartbeat of its own)
    keys_before = set(r.scan_iter(f"{prefix}:*"))
    _replay(tmp_path, cfg, "b", _posts("more", 300, "the garden is green"))
    cli("worker", "--config", str(cfg), "--idle-timeout-s", "6")
    new = {k for k in set(r.scan_iter(f"{prefix}:*")) - keys_before if ":health:" not in k}
    assert all(":{vol}:m:" in k for k in new), new
    assert len(new) <= 2
    vol = RedisVolumeStore(store).read_volume(now - 3_600_000, now + 120_000)
    assert sum(m.posts for m in vol) == 360 and sum(m.matched for m in vol) == 12


def test_backfill_counts_a_topic_added_later_once(tmp_path, kafka_bootstrap, redis_url, unique):
    cfg = write_config(tmp_path, kafka_bootstrap, redis_url, unique, topics=[PHONEX])
    _replay(
        tmp_path,
        cfg,
        "a",
        _posts("p", 10, "PhoneX update")
        + _posts("c", 10, "#coffee first thing")
        + _posts("x", 10, "nothing"),
    )
    cli("worker", "--config", str(cfg), "--idle-timeout-s", "6")
    assert _count(cfg, "phonex") == 10 and _count(cfg, "coffee") == 0

    # the topic is added (here in the file) and the workers track it from now on
    cfg = write_config(tmp_path, kafka_bootstrap, redis_url, unique, topics=[PHONEX, COFFEE])
    out = cli("backfill", "--config", str(cfg), "--topic", "coffee", "--from-beginning")
    res = orjson.loads(out.stdout.strip().splitlines()[-1])
    assert res["matched"] == 10 and res["counted"] == 10
    assert _count(cfg, "coffee") == 10
    # a second run counts nothing again
    again = orjson.loads(
        cli("backfill", "--config", str(cfg), "--topic", "coffee", "--from-beginning").stdout
    )
    assert again["counted"] == 0 and _count(cfg, "coffee") == 10

    # live workers count the new posts; a backfill after them still counts nothing twice
    _replay(tmp_path, cfg, "b", _posts("c2", 5, "#coffee again"))
    cli("worker", "--config", str(cfg), "--idle-timeout-s", "6")
    assert _count(cfg, "coffee") == 15
    last = orjson.loads(cli("backfill", "--config", str(cfg), "--topic", "coffee", "--from-beginning").stdout)
    assert last["counted"] == 0 and last["live"] == 5
    assert _count(cfg, "coffee") == 15 and _count(cfg, "phonex") == 10

    # an untracked topic is refused with a clear error
    bad = cli("backfill", "--config", str(cfg), "--topic", "nope", "--from-beginning", check=False)
    assert bad.returncode != 0 and "'nope' is not a tracked topic" in bad.stderr


def test_only_matching_drops_unmatched_posts_at_the_source(tmp_path, kafka_bootstrap, redis_url, unique):
    from tests.recorded import jsonl_lines

    from .fake_jetstream import FakeJetstream, JetstreamScript

    cfg = write_config(
        tmp_path, kafka_bootstrap, redis_url, unique, topics=[{"name": "bands", "keywords": ["band"]}]
    )
    with FakeJetstream(JetstreamScript(jsonl_lines("jetstream/expected_v1.jsonl"))) as fake:
        out = cli(
            "connectors", "run", "bluesky", "--config", str(cfg), "--url", fake.url,
            "--only-matching", "--idle-timeout-s", "3",
        )  # fmt: skip
    stats = orjson.loads(out.stdout.strip().splitlines()[-1])
    values = [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, f"{unique}.raw", timeout_s=10)]
    posts = [v for v in values if v["kind"] == "post"]
    # the two posts about a band are produced, the 14 others counted as skipped; deletions pass
    assert len(posts) == 2 and all("band" in p["text"] for p in posts)
    assert stats["skipped"]["unmatched"] == 14 and stats["deletions"] == 1
    assert sum(v["kind"] == "delete" for v in values) == 1
