"""The fault suite (marker ``faults``, part of the default run): each test feeds a known stream,
injects a fault, and compares Redis with the ground truth post by post."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from monitor.settings import load_settings
from monitor.store.buckets import PartitionWrite, RedisAggregateStore
from tests.buckets import bucketed

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
    F.produce(kafka_bootstrap, f"{unique}.raw", posts[:600])
    store = _store(cfg)
    w1 = F.worker(cfg, tmp_path / "w1.log")
    assert F.wait_counted(store, 200, 120)
    w1.kill()  # SIGKILL: no chance to finish, write or commit
    w1.wait()
    # the stream goes on while no worker runs (a fast worker may have finished the first half)
    F.produce(kafka_bootstrap, f"{unique}.raw", posts[600:])
    w2 = F.worker(cfg, tmp_path / "w2.log")
    assert F.wait_counted(store, len(posts), 240)
    assert F.wait_log(tmp_path / "w2.log", "partitions assigned", 60)
    assert _stop_all([w2]) == [0]
    f = F.figures("worker kill -9 mid-stream, restart", store, posts, kafka_bootstrap, f"{unique}.dlq")
    assert f.ok, f


@pytest.mark.parametrize("start_workers", [2, 3])
def test_group_members_killed_and_added_mid_stream(
    tmp_path, kafka_bootstrap, redis_url, unique, start_workers
):
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
    f = F.figures(
        f"{start_workers} workers, one kill -9 and one added mid-stream",
        store,
        posts,
        kafka_bootstrap,
        f"{unique}.dlq",
    )
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
    w = PartitionWrite("x:0", 10, 20, bucketed([(0, {"n": 3, "s:negative": 3})]))
    assert probe.apply({"f0": [w]}) == (1, 0)
    assert probe.apply({"f0": [w]}) == (0, 1)
    now_min = int(time.time() * 1000) // 60_000 * 60_000
    w2 = PartitionWrite("x:0", 21, 25, bucketed([(now_min, {"n": 2})]))
    assert probe.apply({"f0": [w, w2]}) == (1, 1)
    assert probe.read_minutes("f0", now_min, now_min + 60_000)[0].n == 2
    f = F.figures(
        "same records delivered twice (second group)", store, posts, kafka_bootstrap, f"{unique}.dlq"
    )
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
    f = F.figures(
        "fuzz: 10,000 hostile records among 2,000 good",
        store,
        posts,
        kafka_bootstrap,
        f"{unique}.dlq",
        dlq_expected=len(bad),
    )
    assert f.ok, f
    reasons = store.stats("worker")
    assert sum(v for k, v in reasons.items() if k.startswith("dlq:")) == len(bad)


def test_hostile_corpus_mixed_with_good_posts(tmp_path, kafka_bootstrap, redis_url, unique):
    """bench/hostile.py's corpus (every class: regex bombs, NFKC bombs, deep and wide JSON, bad
    UTF-8, control characters in every field, ...) through a real worker on the real broker: each
    hostile record is scored or parked in the DLQ with its reason, the good posts are counted
    once, the worker stays up and the group's lag goes back to zero."""
    import orjson

    # the worker matches topics before the model: no hostile post names a topic, so the sampled
    # baseline takes every post (rate 1) and each goes through language, tokenizer and model
    cfg = F.config(tmp_path, kafka_bootstrap, redis_url, unique, max_batch=64, baseline_rate=1.0)
    raw, scored_topic, dlq_topic = f"{unique}.raw", f"{unique}.scored", f"{unique}.dlq"
    posts = F.good_posts(600, unique)
    hostile = F.hostile_corpus_records(per_class=4)
    classes = {cls for cls, _, _ in hostile}
    F.produce(kafka_bootstrap, raw, posts[:300])
    F.produce(kafka_bootstrap, raw, [], [(k, v) for _, k, v in hostile])
    F.produce(kafka_bootstrap, raw, posts[300:])
    store = _store(cfg)
    log = tmp_path / "w.log"
    w = F.worker(cfg, log)
    deadline = time.monotonic() + 75
    lag = F.group_lag(kafka_bootstrap, f"{unique}-g", raw)
    while (sum(lag.values()) or not lag) and time.monotonic() < deadline:
        assert w.poll() is None, (
            f"the worker exited ({w.returncode}) on the hostile corpus:\n"
            + log.read_text(errors="replace")[-3000:]
        )
        time.sleep(1.0)
        lag = F.group_lag(kafka_bootstrap, f"{unique}-g", raw)
    assert lag and sum(lag.values()) == 0, f"the group's lag did not return to zero: {lag}"
    assert w.poll() is None, "the worker must still be running"
    assert _stop_all([w]) == [0]
    assert "Traceback" not in log.read_text(errors="replace")

    # where each record went: the raw topic gives its origin, posts.scored and the DLQ its outcome
    origin = {r.key: r.origin for r in F.read_with_headers(kafka_bootstrap, raw)}
    scored = [orjson.loads(r.value) for r in F.read_with_headers(kafka_bootstrap, scored_topic)]
    dlq = F.read_with_headers(kafka_bootstrap, dlq_topic)
    scored_origins = Counter(s["origin"] for s in scored)
    dlq_values = [orjson.loads(r.value) for r in dlq]
    dlq_origins = Counter(v["origin"] for v in dlq_values)
    for r, v in zip(dlq, dlq_values, strict=True):
        assert r.headers.get("reason"), f"a DLQ record without a reason header: {v['origin']}"
        assert r.headers["reason"].decode() == v["reason"]
    reasons: dict[str, Counter[str]] = {}
    for cls, key, _ in hostile:
        o = origin[key]
        n_scored, n_dlq = scored_origins[o], dlq_origins[o]
        # a valid deletion is applied (the text forgotten): neither scored nor parked
        allowed = ((1, 0), (0, 1), (0, 0)) if cls == "deletions" else ((1, 0), (0, 1))
        assert (n_scored, n_dlq) in allowed, f"{cls} {key!r} at {o}: scored {n_scored}, dlq {n_dlq}"
        got = (
            "scored"
            if n_scored
            else "deletion"
            if not n_dlq
            else next(v["reason"] for v in dlq_values if v["origin"] == o)
        )
        reasons.setdefault(cls, Counter())[got] += 1
    for p in posts:
        o = origin[p["id"].encode()]
        assert scored_origins[o] == 1 and dlq_origins[o] == 0, f"good post {p['id']}: {o}"
    hostile_origins = {origin[k] for _, k, _ in hostile}
    assert not [s for s in scored if s["origin"] in hostile_origins and set(s["topics"]) - {"all-posts"}], (
        "a hostile post matched a fault-suite topic: the corpus must not name kw0..kw3"
    )
    stats = store.stats("worker")
    parked = sum(dlq_origins.values())
    assert stats.get("records") == len(posts) + len(hostile), stats
    assert sum(v for k, v in stats.items() if k.startswith("dlq:")) == parked, stats
    assert stats.get("deletions", 0) == sum(c["deletion"] for c in reasons.values()), stats

    name = f"hostile corpus ({len(hostile)} records, {len(classes)} classes) among {len(posts)} good"
    f = F.figures(
        name,
        store,
        posts,
        kafka_bootstrap,
        dlq_topic,
        dlq_expected=sum(dlq_origins[origin[k]] for _, k, _ in hostile),
    )
    # the baseline series counts every good post exactly once as well
    baseline = F.multiplicity(store, topics=("all-posts",))
    assert all(baseline[p["source"]] == 1 for p in posts), "the baseline lost or doubled a good post"
    kinds = Counter(r.split(":")[0] for c in reasons.values() for r in c.elements())  # scored, decode, ...
    internal = sorted({r for c in reasons.values() for r in c if r.startswith("internal_error")})
    F.REPORT_NOTES.append(
        f"- {name}: "
        + ", ".join(f"{k} {v}" for k, v in kinds.most_common())
        + (f"; contained internal errors: {', '.join(internal)}" if internal else "; no internal_error")
    )
    print("\nhostile outcomes per class:", {c: dict(v) for c, v in sorted(reasons.items())})
    assert f.ok, f
