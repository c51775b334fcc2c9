"""Redis CPU per post of the worker's writes: how many posts a second one Redis (one core: Redis
runs commands on one thread) and a three-master Redis Cluster take.

    .venv/bin/python bench/redis_store.py [--posts 100000] [--batch 256] [--topics 20]

It starts its own servers on free ports in a temporary directory (never the shared stack): one
redis-server as the local stack runs it (append-only file, fsync every second), then a cluster
of three masters and one replica each (devstack.stack.cluster), once with redis.wait_replicas 0
and once with 1. Against each it drives `RedisAggregateStore` with the calls a worker makes per
batch, in the worker's order: partition watermarks (the rewind check), id claims, topic
watermarks, the bucket write (one script a topic), the text sample, the partition watermarks'
advance, the counters. Posts are new ids, each matching one of ``--topics`` topics, the
minutes moving on as in a live stream.

The figure is the servers' own CPU (INFO cpu, user + sys, summed over the masters; the
replicas' apart) per post, and posts/s per master core = 1 / that. The client's rate is printed
too but on a small machine it is the client, not Redis, that runs out first. Last line: JSON.
"""

from __future__ import annotations

import argparse
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack.stack import ensure_redis, redis_ping  # noqa: E402
from devstack.stack.cluster import RedisClusterStack, free_cluster_ports  # noqa: E402
from monitor.aggregates import MINUTE_MS, hour_start, minute_start  # noqa: E402
from monitor.store.buckets import PartitionWrite, RecentPost, RedisAggregateStore  # noqa: E402
from monitor.transport import RedisSettings  # noqa: E402

LABELS = ("negative", "neutral", "positive")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu(port: int) -> float:
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "cpu"], capture_output=True, text=True).stdout
    f = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return float(f["used_cpu_user"]) + float(f["used_cpu_sys"])


def _delta(rng: random.Random, n: int) -> dict[str, float]:
    """A bucket delta of ``n`` posts with the fields a worker writes (counts, sums, bins)."""
    d: dict[str, float] = {"n": n, "score_sum": rng.uniform(-n, n), "l:en": n, "src:bench": n}
    for _ in range(n):
        lab = rng.choice(LABELS)
        for k in (f"s:{lab}", f"t:{lab}", f"hn:{rng.randrange(10)}", f"hp:{rng.randrange(10)}"):
            d[k] = d.get(k, 0) + 1
    for lab in LABELS:
        d[f"p:{lab}"] = rng.uniform(0, n)
    return d


def drive(store: RedisAggregateStore, posts: int, batch: int, topics: int, seed: int = 1) -> float:
    """The worker's calls for ``posts`` posts in batches; returns the wall seconds."""
    rng = random.Random(seed)
    names = [f"topic{i}" for i in range(topics)]
    parts = [f"bench.raw:{p}" for p in range(4)]
    offsets = dict.fromkeys(parts, 0)
    now = int(time.time() * 1000)
    t0 = time.perf_counter()
    for b in range(posts // batch):
        ts = now + b * 200  # 200 ms of stream a batch: the minute moves on every 300 batches
        m, h = minute_start(ts), hour_start(ts)
        part = parts[b % len(parts)]
        first = offsets[part]
        offsets[part] += batch
        ids = [(f"p{b}-{i}", f"{part}:{first + i}") for i in range(batch)]
        store.partition_watermarks([part])
        store.claim_ids(ids)
        per_topic: dict[str, int] = {}
        for _ in range(batch):
            t = rng.choice(names)
            per_topic[t] = per_topic.get(t, 0) + 1
        store.watermarks([(t, part) for t in per_topic])
        writes = {
            t: [
                PartitionWrite(
                    part, first, first + batch - 1, {("m", m): _delta(rng, n), ("h", h): _delta(rng, n)}
                )
            ]
            for t, n in per_topic.items()
        }
        store.apply(writes)
        store.remember(
            [
                RecentPost(rng.choice(names), pid, ts, "a text of some length " * 5, "", "neutral")
                for pid, _ in ids
            ]
        )
        store.advance_partitions({part: first + batch - 1})
        store.incr_stats("worker", {"records": batch, "scored": batch, "aggregated": batch})
    return time.perf_counter() - t0


def measure(
    name: str, store: RedisAggregateStore, masters: list[int], replicas: list[int], a: Any
) -> dict[str, Any]:
    drive(store, a.batch * 20, a.batch, a.topics, seed=0)  # warm: scripts loaded, keys made
    c0 = {p: _cpu(p) for p in masters + replicas}
    wall = drive(store, a.posts, a.batch, a.topics)
    c1 = {p: _cpu(p) for p in masters + replicas}
    mcpu = sum(c1[p] - c0[p] for p in masters)
    rcpu = sum(c1[p] - c0[p] for p in replicas)
    per_master_max = max(c1[p] - c0[p] for p in masters)
    n = a.posts // a.batch * a.batch
    row = {
        "setup": name,
        "posts": n,
        "client_posts_s": round(n / wall),
        "master_cpu_us_per_post": round(mcpu / n * 1e6, 2),
        "replica_cpu_us_per_post": round(rcpu / n * 1e6, 2),
        "busiest_master_share": round(per_master_max / mcpu, 2) if mcpu else None,
        # posts/s at which the busiest master's one core is full
        "posts_s_at_full_core": round(n / per_master_max) if per_master_max else None,
    }
    print(
        f"{name:28} client {row['client_posts_s']:>7} posts/s"
        f"   masters {row['master_cpu_us_per_post']:>6} us/post"
        f"   replicas {row['replica_cpu_us_per_post']:>6} us/post"
        f"   busiest master {row['busiest_master_share']}"
        f"   -> {row['posts_s_at_full_core']} posts/s at one full core",
        flush=True,
    )
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--posts", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--topics", type=int, default=20)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mm-redis-bench-") as tmp:
        port = _free_port()
        proc = subprocess.Popen(
            [ensure_redis(), "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp, "--save", "",
             "--appendonly", "yes", "--appendfsync", "everysec", "--logfile", str(Path(tmp) / "r.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            while not redis_ping(port):
                time.sleep(0.1)
            store = RedisAggregateStore(f"redis://127.0.0.1:{port}/0", "b")
            rows.append(measure("one redis-server (AOF)", store, [port], [], a))
            store.close()
        finally:
            proc.terminate()
            proc.wait()
        st = RedisClusterStack(dir=Path(tmp) / "cluster", ports=free_cluster_ports(6))
        try:
            st.up()
            masters = list(st.masters())
            replicas = [r for rs in st.masters().values() for r in rs]
            for wait in (0, 1):
                s = RedisSettings(url=st.url, cluster=True, wait_replicas=wait)
                store = RedisAggregateStore(s, f"c{wait}")
                rows.append(measure(f"cluster 3 masters, wait {wait}", store, masters, replicas, a))
                store.close()
        finally:
            st.down()
    print(orjson.dumps({"batch": a.batch, "topics": a.topics, "minute_ms": MINUTE_MS, "rows": rows}).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
