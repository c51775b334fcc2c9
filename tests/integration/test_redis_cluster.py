"""The store, the alert state, the topic registry and the connectors' state on a real Redis
Cluster (three masters, one replica each: the session fixture ``redis_cluster``), and the
pipeline end to end on it with two workers while one master fails over.

A command that spans two slots fails on a cluster (CROSSSLOT), so each call here is a check
that its keys share a hash tag; the keys are spread over every master, so SCAN must visit all."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.aggregates import minute_start
from monitor.errors import StoreUnavailable
from monitor.kafka import ensure_topics
from monitor.store import keys
from monitor.store.alerts import RedisAlertLedger, RedisAlertLog
from monitor.store.buckets import PartitionWrite, RecentPost, RedisAggregateStore
from monitor.store.connectors import RedisConnectorState, read_statuses
from monitor.store.topics import RedisTopicRegistry
from monitor.transport import RedisSettings
from tests.buckets import bucketed

from . import faults as F
from .pipeline_helpers import wait_for

pytestmark = pytest.mark.integration


def _settings(st: Any, prefix: str) -> RedisSettings:
    return RedisSettings(url=st.url, cluster=True, prefix=prefix)


def _store(st: Any, prefix: str) -> RedisAggregateStore:
    return RedisAggregateStore(_settings(st, prefix), prefix)


def _masters_of(st: Any, ks: list[str]) -> set[int]:
    return {st.master_of(k) for k in ks}


def test_store_on_a_cluster(redis_cluster, unique):
    store = _store(redis_cluster, unique)
    assert store.cluster and store.ping()
    topics = [f"c{i}" for i in range(6)]
    # the topics' keys (and the guard, the counters, the heartbeats) live on every master
    assert len(_masters_of(redis_cluster, [keys.watermark(unique, t) for t in topics])) == 3

    now = int(time.time() * 1000)
    m = minute_start(now)
    ids = [(f"id-{i}", f"raw:0:{i}") for i in range(200)]
    assert store.claim_ids(ids) == [None] * 200
    again = [("id-7", "raw:0:7"), ("id-9", "raw:1:70"), ("new", "raw:1:71")]
    assert store.claim_ids(again) == [None, "raw:0:9", None]  # a redelivery, a duplicate, a new id
    # the guard is sharded over every master, not one hash on one of them
    assert store.dedup_shards == 16
    guard = list(store.client.scan_iter(match=f"{unique}:{{seen*", count=1000))
    assert len(guard) == 16 and len(_masters_of(redis_cluster, guard)) == 3

    def writes(first: int, last: int) -> dict[str, list[PartitionWrite]]:
        return {
            t: [PartitionWrite("raw:0", first, last, bucketed([(m, {"n": i + 1})]))]
            for i, t in enumerate(topics)
        }

    assert store.apply(writes(0, 9)) == (len(topics), 0)
    assert store.apply(writes(0, 9)) == (0, len(topics))  # a redelivery changes nothing
    assert store.topics() == topics
    for i, t in enumerate(topics):
        assert store.read_window(t, m, m + 60_000).n == i + 1
        assert store.watermarks([(t, "raw:0")]) == {(t, "raw:0"): 9}

    store.remember([RecentPost(t, f"id-{t}", now, f"text {t}", "", "positive") for t in topics])
    assert [p["id"] for p in store.recent_posts("c3", now - 1000, now + 1000)] == ["id-c3"]
    assert store.forget_text(["id-c3", "id-1"]) == 1
    assert store.recent_posts("c3", now - 1000, now + 1000) == []
    assert store.claim_ids([("id-1", "raw:5:5"), ("id-2", "raw:5:6")]) == [None, "raw:0:2"]  # id-1 forgotten

    store.advance_partitions({"raw:0": 9, "raw:1": 4})
    store.advance_partitions({"raw:0": 3})  # only forward
    assert store.partition_watermarks(["raw:0", "raw:1", "raw:2"]) == {"raw:0": 9, "raw:1": 4}
    store.incr_stats("dlq", {"bad_json": 2})
    assert store.stats("dlq") == {"bad_json": 2}
    assert store.advance_seal(now) == m and store.sealed_until_ms() == m

    names = sorted(f"w{i}" for i in range(30))
    assert len(_masters_of(redis_cluster, [keys.health(unique, n) for n in names])) == 3
    for n in names:
        store.heartbeat(n, 60, {"n": n})
    assert sorted(store.health()) == names  # SCAN on every master

    store.replace_buckets("c0", "m", [m], {m: {"n": 42}})
    assert store.read_window("c0", m, m + 60_000).n == 42

    reg = RedisTopicRegistry(store)
    v = reg.put("new", {"keywords": ["x"]})
    assert reg.remove("c1") == v + 1 and reg.forget("new") == v + 2
    version, entries = reg.snapshot()
    assert version == v + 2 and set(entries) == {"c1"} and entries["c1"]["removed"]
    store.close()


def test_a_sharded_guard_on_one_redis(redis_url, unique):
    store = RedisAggregateStore(redis_url, unique, dedup_shards=4)
    ids = [(f"id-{i}", f"raw:0:{i}") for i in range(100)]
    assert store.claim_ids(ids) == [None] * 100
    assert store.claim_ids([(f"id-{i}", f"raw:1:{i}") for i in range(100)]) == [o for _, o in ids]
    assert len(list(store.client.scan_iter(match=f"{unique}:{{seen:*", count=1000))) == 4
    store.forget_text(["id-5"])
    assert store.claim_ids([("id-5", "raw:2:5"), ("id-6", "raw:2:6")]) == [None, "raw:0:6"]
    store.close()


def test_wait_replicas_on_one_redis_without_a_replica(redis_url, unique):
    store = RedisAggregateStore(redis_url, unique, wait_replicas=1, wait_timeout_ms=100)
    m = minute_start(int(time.time() * 1000))
    batch = {"c0": [PartitionWrite("raw:0", 0, 4, bucketed([(m, {"n": 5})]))]}
    with pytest.raises(StoreUnavailable, match=r"0 of the 1 replicas"):
        store.apply(batch)  # no replica will ever hold it: the batch is not committed
    store.wait_replicas = 0
    assert store.apply(batch) == (0, 1)  # written once all the same, never twice
    assert store.read_window("c0", m, m + 60_000).n == 5
    store.close()


def test_alert_state_on_a_cluster(redis_cluster, unique):
    store = _store(redis_cluster, unique)
    ledger = RedisAlertLedger(store)
    assert ledger.hold_lease("me", 30) and not ledger.hold_lease("other", 30)
    entry = {"dest": "slack", "body": {"text": "hi"}, "topic": "c0", "quotes": ["q1"], "bare": {"t": 1}}
    log = ["topic", "c0", "rule", "r", "kind", "open"]
    assert ledger.commit("me", "c0", "r", {"open": True}, "fp1", [entry], log) == 1
    assert ledger.commit("me", "c0", "r", {"open": True}, "fp1", [entry], log) == 0  # claimed once
    assert ledger.commit("other", "c0", "r", {"open": False}) == -1  # not the lease holder
    assert ledger.episodes("c0", ["r", "s"]) == {"r": {"open": True}}
    [queued] = ledger.outbox()
    [bare] = ledger.drop_gone_quotes([queued])  # q1 is in no sample: sent without its quote
    assert "quotes" not in bare and ledger.outbox() == [bare]
    ledger.replace(bare, None)
    assert ledger.outbox() == []
    ledger.mark_delivered("fp1", "slack")
    assert ledger.was_delivered("fp1", "slack")
    ledger.disable("hook", "410 gone")
    assert ledger.disabled() == {"hook": "410 gone"}
    [logged] = RedisAlertLog(store).last(5)
    assert logged["topic"] == "c0" and logged["kind"] == "open"
    ledger.release_lease("me")
    assert ledger.hold_lease("other", 30)
    store.close()


def test_connector_state_on_a_cluster(redis_cluster, unique):
    prefix = f"{unique}:conn:"
    names = ["bluesky", "rss-news", "reddit", "push"]
    settings = _settings(redis_cluster, unique)
    for name in names:
        st = RedisConnectorState(settings, name, prefix=prefix, seen_max=3)
        assert st.unseen(["a", "b"]) == {"a", "b"}
        st.commit(["a", "b"], cursor="42", meta={"etag": "x"})
        assert st.unseen(["a", "b", "c"]) == {"c"} and st.cursor() == "42" and st.meta("etag") == "x"
        assert st.claim("hook-1", 60) and not st.claim("hook-1", 60)
        st.release("hook-1")
        assert st.claim("hook-1", 60)
        st.report({"produced": 2, "connected": 1})
        st.close()
    assert len(_masters_of(redis_cluster, [f"{prefix}{{{n}}}:cursor" for n in names])) >= 2
    statuses = read_statuses(settings, prefix=prefix)
    assert sorted(statuses) == sorted(names) and statuses["rss-news"]["produced"] == "2"


def test_a_batch_counts_only_once_a_replica_holds_it(redis_cluster, unique):
    settings = RedisSettings(url=redis_cluster.url, cluster=True, wait_replicas=1, wait_timeout_ms=300)
    store = RedisAggregateStore(settings, unique)
    m = minute_start(int(time.time() * 1000))
    batch = {"c0": [PartitionWrite("raw:0", 0, 4, bucketed([(m, {"n": 5})]))]}
    [replica] = redis_cluster.masters()[redis_cluster.master_of(keys.watermark(unique, "c0"))]
    redis_cluster.pause(replica)  # the replica takes nothing in
    try:
        with pytest.raises(StoreUnavailable, match=r"redis\.wait_replicas"):
            store.apply(batch)  # so the worker would not commit the batch's offsets
    finally:
        redis_cluster.pause(replica, False)
    assert store.apply(batch) == (0, 1)  # the retry: written before, and now the replica has it
    assert store.read_window("c0", m, m + 60_000).n == 5
    redis_cluster.wait_healthy()
    store.close()


# ---- the pipeline end to end, two workers, a failover ------------------------------------------


def _config(tmp: Path, st: Any, bootstrap: str, unique: str, partitions: int = 4) -> Path:
    cfg = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "raw_topic": f"{unique}.raw",
            "scored_topic": f"{unique}.scored",
            "dlq_topic": f"{unique}.dlq",
            "partitions": partitions,
            "group_id": f"{unique}-g",
        },
        # a batch counts once the replica of each master written to holds it
        "redis": {"url": st.url, "cluster": True, "prefix": f"f-{unique}", "wait_replicas": 1},
        "worker": {"max_batch": 16, "max_wait_ms": 50, "lateness_s": 3600, "backoff_max_s": 1},
        "model": {"sentiment": "builtin:tiny-untrained", "emotion": None},
        "topics": F.TOPICS,
    }
    path = tmp / f"{unique}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    ensure_topics(
        bootstrap, {f"{unique}.raw": partitions, f"{unique}.scored": partitions, f"{unique}.dlq": 1}
    )
    return path


def _stop(procs: list[Any], timeout: float = 60) -> list[int]:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    return [p.wait(timeout=timeout) for p in procs]


def _owns_partitions(log: Path) -> bool:
    """Whether the worker's last assignment (its log) holds a partition."""
    found = re.findall(r"partitions assigned: (\S+)", log.read_text(errors="replace")) if log.exists() else []
    return bool(found) and found[-1] != "-"


def _lost_and_doubled(m: Counter[str], sent: list[dict[str, Any]]) -> tuple[int, int]:
    markers = [p["source"] for p in sent]
    return sum(1 for mk in markers if m.get(mk, 0) == 0), sum(m[mk] - 1 for mk in markers if m[mk] > 1)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["CLUSTER FAILOVER", "kill -9"])
def test_two_workers_on_a_cluster_through_a_failover(tmp_path, redis_cluster, kafka_bootstrap, unique, how):
    cfg = _config(tmp_path, redis_cluster, kafka_bootstrap, unique)
    prefix = f"f-{unique}"
    store = _store(redis_cluster, prefix)
    # the four topics' buckets, the guard and the partition watermarks: every master holds some
    tagged = [keys.watermark(prefix, t["name"]) for t in F.TOPICS]
    tagged += [keys.partition_watermarks(prefix)]
    assert len(_masters_of(redis_cluster, tagged)) == 3

    workers = [F.worker(cfg, tmp_path / f"w{i}.log") for i in (1, 2)]
    assert wait_for(lambda: all(_owns_partitions(tmp_path / f"w{i}.log") for i in (1, 2)), 180)

    posts = F.good_posts(2000, unique)
    sent = 0

    def stream() -> None:  # the stream goes on before, during and after the failover
        nonlocal sent
        for i in range(0, len(posts), 50):
            F.produce(kafka_bootstrap, f"{unique}.raw", posts[i : i + 50])
            sent = i + 50
            time.sleep(0.2)

    producer = threading.Thread(target=stream, daemon=True)
    producer.start()
    assert F.wait_counted(store, 300, 120)
    # mid-stream, the master of f0's slot (and of the stream volume and the topic registry)
    # hands over to its replica, or is killed outright and its replica elected in its place
    victim = redis_cluster.master_of(keys.watermark(prefix, "f0"))
    [replica] = redis_cluster.masters()[victim]
    if how == "kill -9":
        redis_cluster.kill(victim)
        redis_cluster.wait_promoted(replica)
        sent_at_failover = sent
        redis_cluster.start_node(victim)  # it comes back as the new master's replica
    else:
        redis_cluster.failover(replica)
        sent_at_failover = sent
    assert redis_cluster.master_of(keys.watermark(prefix, "f0")) == replica
    producer.join(120)
    assert sent_at_failover < len(posts) == sent  # posts came in after the failover too

    assert F.wait_counted(store, len(posts), 240), F.multiplicity(store).total()
    assert _stop(workers) == [0, 0]
    # both workers did part of it
    for i in (1, 2):
        [summary] = re.findall(r"worker stopped: batches=(\d+)", (tmp_path / f"w{i}.log").read_text())
        assert int(summary) > 0, i
    m = F.multiplicity(store)
    lost, doubled = _lost_and_doubled(m, posts)
    print(f"\nCLUSTER {how}: sent={len(posts)} counted={m.total()} lost={lost} doubled={doubled}")
    assert (lost, doubled, m.total()) == (0, 0, len(posts))
    redis_cluster.wait_healthy()
    store.close()
