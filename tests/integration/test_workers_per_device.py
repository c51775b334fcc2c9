"""Several worker processes on one device (issue 17 item 3), on the real broker and Redis: N
processes with the same configuration share the raw topic's partitions (the unit of
parallelism), each with its own share of the CPU threads (``MOOD_MODEL__THREADS``; on a GPU host
``MOOD_MODEL__DEVICE=cuda:<i>`` per process), and every post is counted once."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from devstack.synthetic import demo_topics_config, stream
from monitor.settings import load_settings
from monitor.store.buckets import RedisAggregateStore
from monitor.worker import holds_partitions

from .pipeline_helpers import cli, popen, wait_for, write_config, write_jsonl

pytestmark = pytest.mark.integration


def test_two_workers_on_one_device_split_the_partitions_and_count_each_post_once(
    tmp_path, kafka_bootstrap, redis_url, unique
):
    cfg = write_config(
        tmp_path, kafka_bootstrap, redis_url, unique, topics=demo_topics_config(), partitions=4
    )
    s = load_settings(cfg)
    store = RedisAggregateStore(s.redis.url.get_secret_value(), s.redis.prefix)
    env = {"MOOD_MODEL__THREADS": "1"}  # 2 processes on a 2-core machine: one thread each
    workers = [popen("worker", "--config", str(cfg), env=env, log=tmp_path / f"w{i}.log") for i in range(2)]
    try:
        # both joined and hold two partitions each before the posts come
        assert wait_for(lambda: sum(holds_partitions(h) for h in store.health().values()) == 2, 120)
        held = sorted(len(h["partitions"]) for h in store.health().values())
        assert held == [2, 2]
        posts = list(stream(400, id_prefix=unique))
        truth = Counter(p["topic"] for p in posts)
        for p in posts:
            p.pop("intended"), p.pop("topic")
        cli("replay", str(write_jsonl(tmp_path / "in.jsonl", posts)), "--config", str(cfg))
        now = int(time.time() * 1000)

        def counts() -> dict[str, int]:
            return {t: store.read_window(t, now - 3_600_000, now + 120_000).n for t in truth}

        assert wait_for(lambda: counts() == dict(truth), 120), counts()
        # each process did part of it (records per worker from their own counters)
        per_worker = [int(h.get("records", 0)) for h in store.health().values()]
        assert all(n > 0 for n in per_worker) and sum(per_worker) >= 400
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(timeout=60) for w in workers]
    assert codes == [0, 0]
    assert counts() == dict(truth)
