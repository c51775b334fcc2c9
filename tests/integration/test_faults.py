"""The fault suite (marker ``faults``, part of the default run): each test feeds a known stream,
injects a fault, and compares Redis with the ground truth post by post."""

from __future__ import annotations

import signal
import time

import pytest

from monitor.settings import load_settings
from monitor.store import PartitionWrite, RedisAggregateStore

from . import faults as F

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def _store(cfg) -> RedisAggregateStore:
    s = load_settings(cfg)
    return RedisAggregateStore(s.redis.url.get_secret_value(), s.redis.prefix)


def _stop_all(procs, timeout=60):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    return [p.wait(timeout=timeout) for p in procs]


def test_kill_9_mid_stream_then_restart(tmp_path, kafka_bootstrap, redis_url, unique):
    cfg = F.config(tmp_path, kafka_bootstrap, redis_url, unique)
    posts = F.good_posts(1200, unique)
    F.produce(kafka_bootstrap, f"{unique}.raw", posts)
    store = _store(cfg)
    w1 = F.worker(cfg, tmp_path / "w.log")
    assert F.wait_counted(store, 200, 120)
    w1.kill()  # SIGKILL: no chance to finish, write or commit
    w1.wait()
    w2 = F.worker(cfg, tmp_path / "w.log")
    assert F.wait_counted(store, len(posts), 240)
    assert _stop_all([w2]) == [0]
    f = F.figures("worker kill -9 mid-stream, restart", store, posts, kafka_bootstrap, f"{unique}.dlq")
    assert f.ok, f


@pytest.mark.parametrize("start_workers", [2, 3])
def test_group_members_killed_and_added_mid_stream(tmp_path, kafka_bootstrap, redis_url, unique, start_workers):
    cfg = F.config(tmp_path, kafka_bootstrap, redis_url, unique, partitions=6)
    posts = F.good_posts(1800, unique)
    store = _store(cfg)
    procs = [F.worker(cfg, tmp_path / f"w{i}.log") for i in range(start_workers)]
    F.produce(kafka_bootstrap, f"{unique}.raw", posts[:900])
    assert F.wait_counted(store, 250, 180)
    procs[0].kill()
    procs[0].wait()
    procs.append(F.worker(cfg, tmp_path / "w-new.log"))
    # the new member must really join mid-stream (not still be importing torch when it ends)
    assert F.wait_log(tmp_path / "w-new.log", "partitions assigned", 180)
    F.produce(kafka_bootstrap, f"{unique}.raw", posts[900:])
    assert F.wait_counted(store, len(posts), 300)
    assert _stop_all(procs[1:]) == [0] * (len(procs) - 1)
    f = F.figures(f"{start_workers} workers, one kill -9 and one added mid-stream", store, posts,
                  kafka_bootstrap, f"{unique}.dlq")
    assert f.ok, f


def test_same_batch_delivered_twice_counts_once(tmp_path, kafka_bootstrap, redis_url, unique):
    cfg = F.config(tmp_path, kafka_bootstrap, redis_url, unique)
    posts = F.good_posts(300, unique)
    F.produce(kafka_bootstrap, f"{unique}.raw", posts)
    store = _store(cfg)
    assert F.worker(cfg, tmp_path / "w.log", "--idle-timeout-s", "5").wait(timeout=240) == 0
    # a second consumer group re-reads and re-processes every record: the watermarks must hold
    import yaml

    again = yaml.safe_load(cfg.read_text())
    again["kafka"]["group_id"] = f"{unique}-replay"
    cfg2 = tmp_path / "again.yaml"
    cfg2.write_text(yaml.safe_dump(again))
    assert F.worker(cfg2, tmp_path / "w2.log", "--idle-timeout-s", "5").wait(timeout=240) == 0
    # and the store itself, handed one batch's writes twice
    probe = RedisAggregateStore(redis_url, f"probe-{unique}")
    w = PartitionWrite("x:0", 10, 20, {("m", 0): {"n": 3, "s:negative": 3}})
    assert probe.apply({"f0": [w]}) == (1, 0)
    assert probe.apply({"f0": [w]}) == (0, 1)
    now_min = int(time.time() * 1000) // 60_000 * 60_000
    w2 = PartitionWrite("x:0", 21, 25, {("m", now_min): {"n": 2}})
    assert probe.apply({"f0": [w, w2]}) == (1, 1)
    assert probe.read_minutes("f0", now_min, now_min + 60_000)[0].n == 2
    f = F.figures("same records delivered twice (second group)", store, posts, kafka_bootstrap, f"{unique}.dlq")
    assert f.ok, f


def test_fuzz_10000_hostile_records_mixed_with_good_ones(tmp_path, kafka_bootstrap, redis_url, unique):
    cfg = F.config(tmp_path, kafka_bootstrap, redis_url, unique, max_batch=128)
    posts = F.good_posts(2000, unique)
    bad = F.hostile_records(10_000, [p["id"] for p in posts])
    F.produce(kafka_bootstrap, f"{unique}.raw", posts)
    F.produce(kafka_bootstrap, f"{unique}.raw", [], bad)
    store = _store(cfg)
    w = F.worker(cfg, tmp_path / "w.log", "--idle-timeout-s", "8")
    assert w.wait(timeout=600) == 0, "the worker must survive every hostile record"
    f = F.figures("fuzz: 10,000 hostile records among 2,000 good", store, posts, kafka_bootstrap,
                  f"{unique}.dlq", dlq_expected=len(bad))
    assert f.ok, f
    reasons = store.stats("worker")
    assert sum(v for k, v in reasons.items() if k.startswith("dlq:")) == len(bad)
