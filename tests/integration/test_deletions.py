"""A source deletes a post: the worker drops its stored text (used for alert examples); the
figures stay counts. Real Kafka, real Redis, a real worker process."""

from __future__ import annotations

import time

import pytest

from monitor.kafka import read_topic
from monitor.messages import Deletion, encode_deletion
from monitor.settings import load_settings
from monitor.store.buckets import RedisAggregateStore

from . import faults as F

pytestmark = pytest.mark.integration


def test_deleted_posts_lose_their_text_but_stay_counted(tmp_path, kafka_bootstrap, redis_url, unique):
    import yaml

    cfg = F.config(tmp_path, kafka_bootstrap, redis_url, unique)
    raw = yaml.safe_load(cfg.read_text())
    raw["redis"]["texts_per_minute"] = 50  # every post of the minute joins the sample
    cfg.write_text(yaml.safe_dump(raw))
    s = load_settings(cfg)
    store = RedisAggregateStore(redis_url, s.redis.prefix)
    posts = F.good_posts(40, unique)
    gone = [p["id"] for p in posts[:10]]
    now = int(time.time() * 1000)
    deletions = [
        (pid.encode(), encode_deletion(Deletion(id=pid, source="fault", deleted_ms=now))) for pid in gone
    ]
    F.produce(kafka_bootstrap, f"{unique}.raw", posts, deletions)
    assert F.worker(cfg, tmp_path / "w.log", "--idle-timeout-s", "4").wait(timeout=240) == 0

    assert sum(F.multiplicity(store).values()) == len(posts)  # counts are kept
    kept = {
        r["id"] for t in store.topics() for r in store.recent_posts(t, now - 3_600_000, now + 3_600_000, 100)
    }
    assert kept == {p["id"] for p in posts[10:]}, "deleted posts must not be offered as examples"
    samples = list(store.client.scan_iter(f"{s.redis.prefix}:{{t:*}}:x:*"))
    in_sample = {pid for k in samples for pid in store.client.hkeys(k)}
    assert in_sample == {p["id"] for p in posts[10:]}  # the deleted texts are gone from Redis
    # and Kafka's posts.scored (kept for rebuilds) never carried the texts in the first place
    scored = read_topic(kafka_bootstrap, f"{unique}.scored", timeout_s=10)
    assert len(scored) == len(posts)
    assert not any(b"and nothing else" in r.value for r in scored)
