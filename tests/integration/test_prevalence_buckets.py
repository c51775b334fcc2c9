"""The buckets' quantification fields (issue 18) on the real Kafka + Redis: the worker writes
them with the counts in the same watermark-guarded Lua call, a replayed write changes none of
them, `rebuild` from posts.scored reproduces them, and `mood-monitor mood --json` shows the
corrected shares with their interval next to the raw ones."""

from __future__ import annotations

import time

import orjson
import pytest

from devstack.synthetic import demo_topics_config, stream
from monitor.model.settings import ModelSettings
from monitor.prevalence import BINS, is_evidence_field, is_float_field
from monitor.settings import load_settings
from monitor.store import keys
from monitor.store.buckets import PartitionWrite, RedisAggregateStore
from tests.buckets import bucketed

from .faults import evidence_mismatches
from .pipeline_helpers import cli, write_config, write_jsonl

DEFAULT_METHOD = ModelSettings().share_method

pytestmark = pytest.mark.integration


def _hashes(store: RedisAggregateStore) -> dict[str, dict[str, str]]:
    """Every non-empty minute and hour bucket of the last 3 hours (and the next minutes)."""
    now = int(time.time() * 1000)
    names = []
    for t in store.topics():
        for m in range(now - now % 60_000 - 3 * 3_600_000, now + 300_000, 60_000):
            names.append(keys.minute(store.prefix, t, m))
        for h in range(now - now % 3_600_000 - 3 * 3_600_000, now + 3_600_000, 3_600_000):
            names.append(keys.hour(store.prefix, t, h))
    pipe = store.client.pipeline(transaction=False)
    for k in names:
        pipe.hgetall(k)
    return {k: h for k, h in zip(names, pipe.execute(), strict=True) if h}


def test_worker_writes_evidence_rebuild_reproduces_it_and_mood_shows_corrected_shares(
    tmp_path, kafka_bootstrap, redis_url, unique
):
    cfg = write_config(
        tmp_path,
        kafka_bootstrap,
        redis_url,
        unique,
        topics=demo_topics_config(),
        model={"sentiment": "default", "emotion": None},
    )
    posts = list(stream(150, id_prefix=unique))
    for p in posts:
        p.pop("intended"), p.pop("topic")
    cli("replay", str(write_jsonl(tmp_path / "in.jsonl", posts, [])), "--config", str(cfg))
    cli("worker", "--config", str(cfg), "--idle-timeout-s", "6")

    s = load_settings(cfg)
    store = RedisAggregateStore(s.redis.url.get_secret_value(), s.redis.prefix)
    now = int(time.time() * 1000)
    windows = {t: store.read_window(t, now - 3_600_000, now + 120_000) for t in store.topics()}
    assert windows and sum(b.n for b in windows.values()) >= len(posts)
    for b in windows.values():
        ev = b.evidence
        assert ev.n == b.n == b.scored  # every post counted carries its probabilities
        assert sum(ev.hist_neg) == sum(ev.hist_pos) == b.n and len(ev.hist_neg) == BINS
        assert sum(ev.post) == pytest.approx(b.n, abs=3e-4 * b.n)  # summed in units of 1e-4
        assert sum(ev.top) == b.n

    assert evidence_mismatches(store) == []  # the fault suite's check, on a clean run
    # a write Kafka redelivers (first offset at or below the watermark) changes no field
    topic = sorted(windows)[0]
    wm = store.watermarks([(topic, f"{s.kafka.raw_topic}:0"), (topic, f"{s.kafka.raw_topic}:1")])
    part, last = max(wm.items(), key=lambda kv: kv[1])
    assert last >= 0
    before = _hashes(store)
    replay = PartitionWrite(part[1], 0, last, bucketed([(now, {"n": 1, "p:negative": 0.5})]))
    assert store.apply({topic: [replay]}) == (0, 1)
    assert _hashes(store) == before

    # rebuild from posts.scored (workers stopped) reproduces every bucket, the new fields too
    cli("rebuild", "--config", str(cfg), "--since", "3h", "--quiet", "--timeout-s", "10")
    after = _hashes(store)
    assert after.keys() == before.keys()
    for k, h in before.items():
        assert after[k].keys() == h.keys(), k
        for f, v in h.items():
            if is_float_field(f):
                assert float(after[k][f]) == pytest.approx(float(v), abs=1e-9), (k, f)
            else:
                assert after[k][f] == v, (k, f)
    assert any(is_evidence_field(f) for h in after.values() for f in h)
    assert evidence_mismatches(store) == []
    # and the check sees a bucket whose share fields went out of step with its counts
    k = next(k for k in after if ":m:" in k)  # a minute bucket
    store.client.hincrby(k, "hn:0", 1)
    assert len(evidence_mismatches(store)) == 1

    rows = orjson.loads(cli("mood", "--config", str(cfg), "--json", "--window", "1h").stdout)
    for row in rows:
        c = row["corrected"]
        assert c["method"] == DEFAULT_METHOD and c["n"] == row["posts"]
        for lab in ("negative", "neutral", "positive"):
            assert 0 <= c[lab]["low"] <= c[lab]["share"] <= c[lab]["high"] <= 1
        assert "negative" in row  # the raw counted share stays
    table = cli("mood", "--config", str(cfg), "--window", "1h").stdout
    assert DEFAULT_METHOD in table and "corrected" in table
