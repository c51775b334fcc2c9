"""The fault harness: a known stream whose every post can be traced in Redis, the ground truth,
and the figures each fault test reports (sent, counted, lost, duplicated, DLQ).

Every good post gets a unique source ``fault-<i>``; the worker counts sources per bucket, so
the Redis figures show each post's multiplicity exactly: a lost post has count 0, a
double-counted one 2, whatever else happened to the totals.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from monitor.kafka import KafkaPostProducer, ensure_topics, read_topic
from monitor.messages import SCHEMA_VERSION
from monitor.store.buckets import RedisAggregateStore

REPO = Path(__file__).resolve().parents[2]
TOPICS = [{"name": f"f{i}", "keywords": [f"kw{i}"]} for i in range(4)]
REPORT: list[dict[str, Any]] = []
REPORT_NOTES: list[str] = []


@dataclass
class Figures:
    fault: str
    sent: int
    counted: int
    lost: int
    duplicated: int
    dlq: int
    dlq_expected: int

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.counted == self.sent
            and self.dlq == self.dlq_expected
        )


def good_posts(n: int, tag: str, start: int = 0) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    # each post's source is its marker (buckets count posts per source): a post counted twice or
    # lost cannot hide behind another one
    return [
        {
            "v": SCHEMA_VERSION,
            "kind": "post",
            "id": f"{tag}-{i}",
            "source": f"fault-{i}",
            "text": f"post {i} about kw{i % 4} and nothing else",
            "lang": "en",
            "created_ms": now,
            "ingested_ms": now,
        }
        for i in range(start, start + n)
    ]


def produce(
    bootstrap: str, topic: str, posts: list[dict[str, Any]], raw: list[tuple[bytes, bytes]] = ()
) -> None:
    p = KafkaPostProducer(bootstrap, topic)
    for d in posts:
        p.send(d["id"].encode(), orjson.dumps(d))
    for k, v in raw:
        p.send(k, v)
    p.flush(60)
    p.close()


FAULT_TOPICS = tuple(t["name"] for t in TOPICS)


def multiplicity(store: RedisAggregateStore, topics: tuple[str, ...] = FAULT_TOPICS) -> Counter[str]:
    """marker (source) -> times counted, over every minute bucket of ``topics`` (the suite's
    tracked ones; not a sampled baseline series) in the last 2 hours."""
    now = int(time.time() * 1000)
    c: Counter[str] = Counter()
    for t in (t for t in store.topics() if t in topics):
        for b in store.read_minutes(t, now - 7_200_000, now + 120_000):
            c.update(b.sources)
    return c


def evidence_mismatches(store: RedisAggregateStore) -> list[str]:
    """Minute buckets (last 2 hours) whose share fields (issue 18: t:, p:, hn:, hp:, c:, cn:, cp:) disagree with
    one another or with the counts. They are written in the same watermark-guarded Lua call as
    the counts, so a redelivery or a crash that doubled or lost a part of a write shows here."""
    now = int(time.time() * 1000)
    bad: list[str] = []
    for t in store.topics():
        for b in store.read_minutes(t, now - 7_200_000, now + 120_000):
            ev = b.evidence
            with_probs = ev.n
            ok = (
                sum(ev.hist_neg) == sum(ev.hist_pos) == sum(ev.cells) == with_probs
                and b.scored <= with_probs <= b.n
                and abs(sum(ev.post) - with_probs) <= 3e-4 * with_probs + 1e-9  # 1e-4 rounding a class
            )
            if not ok:
                bad.append(f"{t}@{b.start_ms}: n={b.n} scored={b.scored} top={ev.top} post={ev.post}")
    return bad


def figures(
    fault: str,
    store: RedisAggregateStore,
    sent: list[dict[str, Any]],
    bootstrap: str,
    dlq_topic: str,
    dlq_expected: int = 0,
) -> Figures:
    m = multiplicity(store)
    mismatched = evidence_mismatches(store)
    assert not mismatched, f"{fault}: share fields out of step with the counts: {mismatched[:3]}"
    markers = [p["source"] for p in sent]
    lost = sum(1 for mk in markers if m.get(mk, 0) == 0)
    dup = sum(m[mk] - 1 for mk in markers if m.get(mk, 0) > 1)
    dlq = len({orjson.loads(r.value)["origin"] for r in read_topic(bootstrap, dlq_topic, timeout_s=10)})
    f = Figures(fault, len(sent), sum(m.values()), lost, dup, dlq, dlq_expected)
    REPORT.append(asdict(f))
    print(
        f"\nFAULT {fault}: sent={f.sent} counted={f.counted} lost={f.lost} duplicated={f.duplicated} "
        f"dlq={f.dlq} (expected {f.dlq_expected})"
    )
    return f


def wait_log(path: Path, needle: str, timeout_s: float) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if path.exists() and needle in path.read_text(errors="replace"):
            return True
        time.sleep(0.5)
    return False


def wait_counted(store: RedisAggregateStore, n: int, timeout_s: float) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if sum(multiplicity(store).values()) >= n:
            return True
        time.sleep(1.0)
    return False


def config(
    tmp: Path, bootstrap: str, redis_url: str, unique: str, partitions: int = 4, **worker: Any
) -> Path:
    import yaml

    cfg = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "raw_topic": f"{unique}.raw",
            "scored_topic": f"{unique}.scored",
            "dlq_topic": f"{unique}.dlq",
            "partitions": partitions,
            "group_id": f"{unique}-g",
        },
        "redis": {"url": redis_url, "prefix": f"f-{unique}"},
        "worker": {"max_batch": 16, "max_wait_ms": 50, "lateness_s": 3600, "backoff_max_s": 2, **worker},
        "model": {"sentiment": "builtin:tiny-untrained", "emotion": None},
        "topics": TOPICS,
    }
    path = tmp / f"{unique}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    ensure_topics(
        bootstrap, {f"{unique}.raw": partitions, f"{unique}.scored": partitions, f"{unique}.dlq": 1}
    )
    return path


STARTED: list[subprocess.Popen[bytes]] = []  # killed after each test (conftest), even a failed one


def worker(cfg: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "worker", "--config", str(cfg), *extra],
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    STARTED.append(proc)
    return proc


def kill_started() -> None:
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def hostile_records(n: int, good_ids: list[str], seed: int = 3) -> list[tuple[bytes, bytes]]:
    """``n`` malformed or hostile records of many kinds, none of which may be counted."""
    rng = random.Random(seed)
    now = int(time.time() * 1000)

    def post(**over: Any) -> dict[str, Any]:
        d: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "kind": "post",
            "id": f"h{rng.random()}",
            "source": "fuzz",
            "text": "kw1 hostile",
            "created_ms": now,
            "ingested_ms": now,
        }
        d.update(over)
        return d

    makers: list[Any] = [
        lambda: b"{" + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))),  # broken JSON
        lambda: bytes(rng.randrange(128, 256) for _ in range(rng.randrange(1, 60))),  # not UTF-8
        lambda: orjson.dumps(post(text=rng.choice([5, None, [], {"a": 1}, True]))),  # wrong types
        lambda: orjson.dumps(post(created_ms=rng.choice(["now", -1, 1.5, None, 2**60]))),
        lambda: orjson.dumps(post(v=rng.choice([0, 2, 99, "1", None]))),  # unknown schema
        lambda: orjson.dumps(post(text="kw2 " + "\x00\x01\x1b" * rng.randrange(1, 5))),  # control chars
        "dup",  # duplicate id
        lambda: orjson.dumps(rng.choice([[1, 2], "str", 42, None, True])),  # not an object
        lambda: orjson.dumps(post(kind=rng.choice(["edit", "", 7]))),
        lambda: orjson.dumps(post(text="   ")),
        lambda: orjson.dumps(post(topic_hints="f1")),
        lambda: b"",
    ]
    out = []
    for i in range(n - 10):
        m = rng.choice(makers)
        if m == "dup":  # same key as the original, so it follows it in the same partition
            gid = rng.choice(good_ids)
            out.append((gid.encode(), orjson.dumps(post(id=gid, text="kw0 the same id again"))))
        else:
            out.append((f"hostile-{i}".encode(), m()))
    # a few huge ones (1 MB of text): must be parked, not crash anything
    out += [(f"huge-{i}".encode(), orjson.dumps(post(text="kw3 " + "y" * 1_000_000))) for i in range(10)]
    rng.shuffle(out)
    return out


def hostile_corpus_records(per_class: int = 2, seed: int = 7) -> list[tuple[str, bytes, bytes]]:
    """(class, key, value) of `bench.hostile.hostile_corpus`: every hostile class of the host-path
    benchmark, each record keyed ``hostile-<class>-<i>`` so that its origin can be found again."""
    from bench.hostile import hostile_corpus

    seen: Counter[str] = Counter()
    out = []
    for cls, value in hostile_corpus(seed, per_class):
        out.append((cls, f"hostile-{cls}-{seen[cls]}".encode(), value))
        seen[cls] += 1
    return out


@dataclass
class Consumed:
    key: bytes | None
    value: bytes
    origin: str
    headers: dict[str, bytes]


def read_with_headers(bootstrap: str, topic: str, timeout_s: float = 20.0) -> list[Consumed]:
    """A whole topic with each record's headers (`read_topic` drops them)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Consumed] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=200).values():
                out += [
                    Consumed(r.key, r.value, f"{r.topic}:{r.partition}:{r.offset}", dict(r.headers or ()))
                    for r in recs
                ]
        return out
    finally:
        consumer.close()


def group_lag(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """end offset - committed offset of ``group`` on each partition of ``topic``."""
    from monitor.kafka import GroupProgress

    progress = GroupProgress(bootstrap, group, topic)
    try:
        done, ends = progress.offsets()
    finally:
        progress.close()
    return {p: end - done.get(p, 0) for p, end in ends.items()}


def write_report(path: Path) -> None:
    lines = [
        "# Reliability: the fault suite's figures",
        "",
        "Written by `make reliability` (runs `pytest -m faults` with `MOOD_RELIABILITY_REPORT=docs/reliability.md`)",
        "against the real local Kafka broker and Redis server. Each row feeds a known stream, injects",
        "the fault, and compares the Redis figures with the ground truth post by post (every post",
        "carries a unique marker that the worker counts, so a loss and a double count cannot cancel out).",
        "",
        "| fault | sent | counted | lost | duplicated | DLQ (expected) | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in REPORT:
        ok = (
            r["lost"] == 0
            and r["duplicated"] == 0
            and r["counted"] == r["sent"]
            and r["dlq"] == r["dlq_expected"]
        )
        lines.append(
            f"| {r['fault']} | {r['sent']} | {r['counted']} | {r['lost']} | {r['duplicated']} | "
            f"{r['dlq']} ({r['dlq_expected']}) | {'ok' if ok else 'FAIL'} |"
        )
    lines += ["", *REPORT_NOTES] if REPORT_NOTES else []
    lines += [
        "",
        "## How to regenerate",
        "",
        "```sh",
        "make reliability      # = MOOD_RELIABILITY_REPORT=docs/reliability.md pytest -m faults tests -s",
        "```",
        "",
        "The same tests run in every `make test` (marker `faults`); only the report file is extra.",
        "",
        "## Known limits",
        "",
        "- A Redis that comes back from its append-only file without its last writes (a crash under",
        "  `appendfsync everysec`) is given those records again: each worker checks, before every write,",
        "  that Redis's per-partition watermark (`<p>:wm`) still holds what it applied, and reads again",
        "  from there. A Redis that lost everything (no persistence) is `rebuild`'s work.",
        "- `rebuild` restores the buckets, not the offset watermarks: run it with the workers stopped",
        "  and only for the range that was lost.",
        "- Duplicate post ids are recognised for one to two `redis.dedup_slice_s` (1 h); a source re-sending a post later",
        "  than that is counted again.",
    ]
    lines += ["", f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", ""]
    path.write_text("\n".join(lines))
