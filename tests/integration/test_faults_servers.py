"""Faults of the servers themselves: the Kafka broker and the Redis server stopped and restarted
mid-stream. Each test runs its own private broker or Redis (own ports, own data directory) so
that stopping it cannot disturb the shared stack the other tests use."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import orjson
import pytest

from devstack.stack import LocalStack
from monitor.settings import load_settings
from monitor.store.buckets import RedisAggregateStore

from . import faults as F

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _store(cfg) -> RedisAggregateStore:
    s = load_settings(cfg)
    return RedisAggregateStore(s.redis.url.get_secret_value(), s.redis.prefix)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 90) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


@pytest.fixture
def private_stack(tmp_path, stack):  # noqa: ARG001 - `stack` makes sure the jars and redis-server exist
    st = LocalStack(
        dir=tmp_path / "stack",
        kafka_port=_free_port(),
        controller_port=_free_port(),
        redis_port=_free_port(),
        kafka_heap="384m",
    )
    yield st
    st.down()


def test_kafka_broker_stopped_and_restarted_mid_stream(tmp_path, private_stack, unique):
    st = private_stack
    st.up()
    cfg = F.config(tmp_path, st.kafka_bootstrap, st.redis_url, unique)
    posts = F.good_posts(1500, unique)
    F.produce(st.kafka_bootstrap, f"{unique}.raw", posts[:1000])
    store = _store(cfg)
    w = F.worker(cfg, tmp_path / "w.log")
    assert F.wait_counted(store, 150, 180)
    st.stop_kafka()  # the broker goes away with the worker mid-stream
    time.sleep(8)
    assert w.poll() is None, "the worker must wait for Kafka, not die"
    st.start_kafka()
    F.produce(st.kafka_bootstrap, f"{unique}.raw", posts[1000:])
    assert F.wait_counted(store, len(posts), 300), (tmp_path / "w.log").read_text()[-3000:]
    assert _stop(w) == 0
    f = F.figures(
        "Kafka broker stopped and restarted mid-stream", store, posts, st.kafka_bootstrap, f"{unique}.dlq"
    )
    assert f.ok, f


def test_redis_stopped_and_restarted_with_aof_mid_stream(tmp_path, private_stack, kafka_bootstrap, unique):
    st = private_stack
    st.start_redis(appendonly=True)
    cfg = F.config(tmp_path, kafka_bootstrap, st.redis_url, unique)
    posts = F.good_posts(1500, unique)
    F.produce(kafka_bootstrap, f"{unique}.raw", posts)
    store = _store(cfg)
    w = F.worker(cfg, tmp_path / "w.log")
    assert F.wait_counted(store, 150, 180)
    st.stop_redis()  # SIGTERM: Redis flushes its append-only file and exits
    time.sleep(5)
    assert w.poll() is None, "the worker must wait for Redis, not die"
    st.start_redis(appendonly=True)
    assert F.wait_counted(store, len(posts), 300), (tmp_path / "w.log").read_text()[-3000:]
    assert _stop(w) == 0
    assert "transient failure" in (tmp_path / "w.log").read_text()
    f = F.figures(
        "Redis stopped and restarted (AOF) mid-stream", store, posts, kafka_bootstrap, f"{unique}.dlq"
    )
    assert f.ok, f


def test_redis_killed_9_under_everysec_then_restarted_from_its_aof(
    tmp_path, private_stack, kafka_bootstrap, unique
):
    """SIGKILL: Redis can lose its last second of writes, whose offsets Kafka already committed.
    The worker notices (Redis's partition watermarks behind what it applied), reads those records
    again from what Redis holds, and nothing is lost or counted twice."""
    st = private_stack
    st.start_redis(appendonly=True)
    cfg = F.config(tmp_path, kafka_bootstrap, st.redis_url, unique)
    posts = F.good_posts(3000, unique)
    F.produce(kafka_bootstrap, f"{unique}.raw", posts)
    store = _store(cfg)
    w = F.worker(cfg, tmp_path / "w.log")
    assert F.wait_counted(store, 300, 180)
    st.kill_redis()  # mid-stream, no flush: under appendfsync everysec the last second may be gone
    time.sleep(3)
    assert w.poll() is None, "the worker must wait for Redis, not die"
    st.start_redis(appendonly=True)
    assert F.wait_counted(store, len(posts), 300), (tmp_path / "w.log").read_text()[-3000:]
    assert _stop(w) == 0
    log_text = (tmp_path / "w.log").read_text()
    rewound = log_text.count("Redis lost the writes")
    f = F.figures(
        "Redis killed -9 under appendfsync everysec, restarted from its AOF",
        store,
        posts,
        kafka_bootstrap,
        f"{unique}.dlq",
    )
    F.REPORT_NOTES.append(
        f"Redis kill -9: the worker found {rewound} partition(s) whose last writes Redis had lost "
        "and read them again (0 when the kill fell between two fsyncs with nothing pending)."
    )
    assert f.ok, f


def test_redis_restarted_from_an_aof_that_lost_its_last_writes(
    tmp_path, private_stack, kafka_bootstrap, unique
):
    """What a host crash does under appendfsync everysec, made certain: Redis comes back from an
    append-only file taken a few hundred posts earlier, while Kafka has committed those posts.
    The worker reads them again from Redis's partition watermarks: 0 lost, 0 doubled."""
    import shutil

    st = private_stack
    st.start_redis(appendonly=True)
    cfg = F.config(tmp_path, kafka_bootstrap, st.redis_url, unique, max_batch=32)
    posts = F.good_posts(3000, unique)
    store = _store(cfg)
    w = F.worker(cfg, tmp_path / "w.log")
    F.produce(kafka_bootstrap, f"{unique}.raw", posts[:1200])
    assert F.wait_counted(store, 1200, 180)
    time.sleep(1.5)  # past an fsync: the copy below holds every write so far
    data = st.dir / "redis-data"
    shutil.copytree(data, tmp_path / "aof-then")
    F.produce(kafka_bootstrap, f"{unique}.raw", posts[1200:2000])
    assert F.wait_counted(store, 2000, 180)
    st.kill_redis()
    shutil.rmtree(data)
    shutil.copytree(tmp_path / "aof-then", data)  # the last 800 posts' writes are gone
    st.start_redis(appendonly=True)
    assert sum(F.multiplicity(store).values()) < 2000
    F.produce(kafka_bootstrap, f"{unique}.raw", posts[2000:])
    assert F.wait_counted(store, len(posts), 300), (tmp_path / "w.log").read_text()[-3000:]
    assert _stop(w) == 0
    assert "Redis lost the writes" in (tmp_path / "w.log").read_text()
    f = F.figures(
        "Redis restarted from an AOF 800 posts old (their offsets committed)",
        store,
        posts,
        kafka_bootstrap,
        f"{unique}.dlq",
    )
    assert f.ok, f


def test_redis_lost_without_persistence_then_rebuild(tmp_path, private_stack, kafka_bootstrap, unique):
    st = private_stack
    st.start_redis(appendonly=False)
    cfg = F.config(tmp_path, kafka_bootstrap, st.redis_url, unique)
    posts = F.good_posts(1200, unique)
    F.produce(kafka_bootstrap, f"{unique}.raw", posts)
    store = _store(cfg)
    w = F.worker(cfg, tmp_path / "w.log", "--idle-timeout-s", "5")
    assert w.wait(timeout=300) == 0
    assert sum(F.multiplicity(store).values()) == len(posts)
    # Redis dies with no persistence: every figure is gone, Kafka still has the scored posts
    st.stop_redis()
    st.start_redis(appendonly=False)
    assert sum(F.multiplicity(store).values()) == 0
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "rebuild",
            "--config",
            str(cfg),
            "--since",
            "3h",
            "--from-beginning",
            "--quiet",
        ],
        cwd=F.REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    summary = orjson.loads(res.stdout.strip().splitlines()[-1])
    assert summary["posts"] == len(posts), summary
    f = F.figures(
        "Redis lost (no persistence), `rebuild` from posts.scored",
        store,
        posts,
        kafka_bootstrap,
        f"{unique}.dlq",
    )
    assert f.ok, f


def test_memory_is_bounded_by_the_ttls(tmp_path, private_stack):
    """A month of minute buckets for 100 topics, written as the worker writes them (the Lua
    script, EXPIREAT start + TTL): what is left is the documented budget, not the month."""
    st = private_stack
    st.start_redis(appendonly=False)
    ttl_min_s, ttl_hour_s = 48 * 3600, 35 * 24 * 3600
    store = RedisAggregateStore(st.redis_url, "mem", minute_ttl_s=ttl_min_s, hour_ttl_s=ttl_hour_s)
    from monitor.store.buckets import PartitionWrite

    now = int(time.time() * 1000) // 60_000 * 60_000
    month_min = 30 * 24 * 60
    topics = [f"topic{i:03d}" for i in range(100)]
    fields = {
        "n": 4,
        "s:negative": 1,
        "s:neutral": 2,
        "s:positive": 1,
        "score_sum": 0.25,
        "e:joy": 2,
        "e:anger": 1,
        "e:neutral": 1,
        "l:en": 4,
        "src:bluesky": 3,
        "src:rss": 1,
    }
    base_mem = int(store.client.info("memory")["used_memory"])
    offset = 0
    for day in range(30):  # one day per batch, per topic: 1,440 minute and 24 hour buckets
        first = now - (month_min - day * 1440) * 60_000
        for t in topics:
            deltas = {("m", first + k * 60_000): fields for k in range(1440)}
            deltas.update({("h", first + h * 3_600_000): {**fields, "n": 240} for h in range(24)})
            store.apply({t: [PartitionWrite("x:0", offset, offset + 1, deltas)]})
        offset += 2
    keys = int(store.client.dbsize())
    mem_mb = (int(store.client.info("memory")["used_memory"]) - base_mem) / 2**20
    budget_keys = len(topics) * (ttl_min_s // 60 + 30 * 24 + 2)  # minutes within 48 h + the month's hours
    print(
        f"\nMEMORY 100 topics x 30 days: {keys} keys (budget {budget_keys}), {mem_mb:.1f} MiB "
        f"({mem_mb * 1024 / len(topics):.0f} KiB per topic)"
    )
    F.REPORT_NOTES.append(
        f"Memory: a month of buckets for 100 topics leaves {keys:,} keys "
        f"(budget {budget_keys:,}) and {mem_mb:.0f} MiB "
        f"({mem_mb * 1024 / len(topics):.0f} KiB per topic, default TTLs)."
    )
    assert keys <= budget_keys
    assert keys >= len(topics) * (ttl_min_s // 60 - 10)  # the last 48 h are all still there
    assert mem_mb < 2.5 * len(topics)  # the documented budget: < 2.5 MiB per topic at these TTLs


def test_memory_per_post_is_bounded_by_topics_and_time(tmp_path, private_stack):
    """Posts leave a bounded sample of texts (topics x minutes x texts_per_minute) and a compact
    id digest each in the duplicate-id guard, nothing per post beyond that: the README's formula."""
    from monitor.store.buckets import RecentPost

    st = private_stack
    st.start_redis(appendonly=False)
    per_minute, topics, minutes, posts = 8, 20, 120, 120_000
    store = RedisAggregateStore(st.redis_url, "mem2", texts_per_minute=per_minute)
    base = int(store.client.info("memory")["used_memory"])
    now = int(time.time() * 1000) // 60_000 * 60_000
    text = "a representative post of about a hundred and forty characters, " * 2
    for start in range(0, posts, 2_000):
        batch = [
            RecentPost(
                f"t{i % topics}",
                f"bluesky:at://did:plc:{i:012d}/app.bsky.feed.post/{i}",
                now - ((i // topics) % minutes) * 60_000 - 1,
                text[:140],
                f"https://bsky.app/p/{i}",
                "neutral",
            )
            for i in range(start, start + 2_000)
        ]
        assert (
            store.claim_ids([(p.post_id, f"raw:0:{n}") for n, p in enumerate(batch, start)]) == [None] * 2000
        )
        store.remember(batch)
    # a redelivery is recognised, a re-sent id is a duplicate
    again = "bluesky:at://did:plc:000000000007/app.bsky.feed.post/7"
    assert store.claim_ids([(again, "raw:0:7"), (again, "raw:3:99")]) == [None, "raw:0:7"]
    kept = sum(store.client.hlen(k) for k in store.client.scan_iter("mem2:{t:*}:x:*", count=1000))
    assert kept == topics * minutes * per_minute  # the sample, whatever the traffic
    dedup = sum(int(store.client.memory_usage(k, samples=0)) for k in store.client.scan_iter("mem2:{seen}:*"))
    total = int(store.client.info("memory")["used_memory"]) - base
    texts = total - dedup
    per_id, per_text = dedup / posts, texts / kept
    print(
        f"\nMEMORY {posts} posts: dedup {per_id:.0f} B/post, texts {per_text:.0f} B/kept post, total {total / 2**20:.1f} MiB"
    )
    F.REPORT_NOTES.append(
        f"Memory per post: the duplicate-id guard keeps {per_id:.0f} B a post for one to two "
        f"`dedup_slice_s`; the text sample {per_text:.0f} B a kept post ({per_minute} per topic and minute), "
        f"nothing else per post ({posts:,} posts, {topics} topics, {minutes} minutes: {total / 2**20:.1f} MiB)."
    )
    assert per_id <= 80  # the README's budget for the guard
    assert per_text <= 600  # a 140-character text, its url and the index entry
    assert int(store.client.dbsize()) <= topics * (minutes + 1) + 2  # no key per post
