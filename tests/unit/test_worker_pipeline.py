"""The worker's two-stage pipeline on in-memory fakes: the next batch is polled and prepared
while the model runs, offsets are committed only after the writes, a revoked partition's
records are never written or committed by the old owner, and a stop finishes what is in hand.
Synchronisation is by events, never by sleeping or timing."""

from __future__ import annotations

import threading
import time
from collections import Counter

import orjson
import pytest

from monitor.batcher import BatchLimits
from monitor.errors import StoreUnavailable
from monitor.kafka import Record
from monitor.messages import SCHEMA_VERSION
from monitor.model.base import ModelOutput
from monitor.topics import TopicMatcher, TopicRule
from monitor.worker import Worker, WorkerConfig

WAIT_S = 20  # a safety net against a hang, never a measured time
# every behaviour holds with one batch in the model at a time and with the next one queued
# behind it (CPU lanes)
IN_MODEL = pytest.mark.parametrize("in_model", [1, 2])


def Rec(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> Record:  # noqa: N802
    return Record(topic, partition, offset, key, value, 0)


def rec(partition, offset, text="kw0 hello there", pid=None):
    now = int(time.time() * 1000)
    body = {
        "v": SCHEMA_VERSION,
        "kind": "post",
        "id": pid or f"p{partition}-{offset}",
        "source": "t",
        "text": text,
        "lang": "en",
        "created_ms": now,
        "ingested_ms": now,
    }
    return Rec("raw", partition, offset, b"k", orjson.dumps(body))


class FakeConsumer:
    def __init__(self, chunks, log):
        self.chunks = list(chunks)
        self.log = log
        self.committed: dict[tuple[str, int], int] = {}
        self.on_poll = None  # called with the number of polls that returned records
        self.served = 0
        self.closed = False

    def poll(self, timeout_ms, max_records=None):
        if not self.chunks:
            return []
        chunk = self.chunks.pop(0)
        self.served += 1
        self.log.append(("poll", [r.offset for r in chunk]))
        if self.on_poll:
            self.on_poll(self.served)
        return chunk

    def commit(self, records):
        self.log.append(("commit", sorted((r.partition, r.offset) for r in records)))
        for r in records:
            tp = (r.topic, r.partition)
            self.committed[tp] = max(self.committed.get(tp, 0), r.offset + 1)

    def seek(self, topic, partition, offset):
        self.log.append(("seek", (topic, partition, offset)))

    def close(self):
        self.closed = True


class FakeProducer:
    def __init__(self):
        self.sent = []

    def send(self, key, value, *, topic=None, headers=None):
        self.sent.append((topic, value))

    def flush(self, timeout_s=30.0):
        pass

    def close(self, timeout_s=10.0):
        pass


class FakeStore:
    def __init__(self, log):
        self.log = log
        self.wm: dict[tuple[str, str], int] = {}
        self.counts: Counter[str] = Counter()
        self.fail_applies = 0
        self.seen: dict[str, str] = {}
        self.pwm: dict[str, int] = {}

    def heartbeat(self, *a, **k):
        pass

    def incr_stats(self, *a, **k):
        pass

    def advance_seal(self, *a, **k):
        return 0

    def remember(self, posts):
        pass

    def forget_text(self, ids):
        return 0

    def claim_ids(self, items):
        out = []
        for pid, origin in items:
            prev = self.seen.setdefault(pid, origin)
            out.append(None if prev == origin else prev)
        return out

    def advance_partitions(self, last):
        for part, off in last.items():
            self.pwm[part] = max(self.pwm.get(part, -1), off)

    def partition_watermarks(self, parts):
        return {p: self.pwm[p] for p in parts if p in self.pwm}

    def watermarks(self, pairs):
        return {p: self.wm.get(p, -1) for p in pairs}

    def apply(self, writes):
        if self.fail_applies:
            self.fail_applies -= 1
            raise StoreUnavailable("redis down (test)")
        for topic, parts in writes.items():
            for pw in parts:
                self.wm[(topic, pw.partition)] = max(self.wm.get((topic, pw.partition), -1), pw.last_offset)
                for (kind, _start), delta in pw.deltas.items():
                    if kind == "m":
                        self.counts[topic] += int(delta.get("n", 0))
        self.log.append(("apply", sum(len(p) for p in writes.values())))
        return len(writes), 0


class GatedScorer:
    """Scores each call only when the test lets it (``gates``), recording the texts it got."""

    name = "gated"

    def __init__(self, gates=None):
        self.gates = list(gates or [])
        self.calls = []
        self.started = threading.Event()

    def score(self, texts, langs=None):
        self.calls.append(list(texts))
        self.started.set()
        if self.gates:
            assert self.gates.pop(0).wait(WAIT_S), "test gate never opened"
        return [ModelOutput((0.1, 0.2, 0.7), None)] * len(texts)


def labels(_out, _floor):
    return "positive", 0.5, 0.9, "joy", 0.8


def make(chunks, scorer, in_model=1, **limits):
    log = []
    consumer, store = FakeConsumer(chunks, log), FakeStore(log)
    cfg = WorkerConfig(lateness_ms=10**12, backoff_max_s=0.01, batches_in_model=in_model)
    w = Worker(
        cfg,
        consumer,
        FakeProducer(),
        scorer,
        labels,
        store,
        TopicMatcher([TopicRule("t0", ("kw0",), ())]),
        limits=BatchLimits(**{"max_posts": 4, "max_tokens": 10_000, "max_wait_ms": 1, **limits}),
    )
    return w, consumer, store, log


@IN_MODEL
def test_the_next_batch_is_polled_while_the_model_runs_and_commits_follow_writes(in_model):
    release = threading.Event()
    scorer = GatedScorer([release])
    chunks = [[rec(0, i) for i in range(4)], [rec(0, i) for i in range(4, 8)]]
    w, consumer, store, log = make(chunks, scorer, in_model)
    # the model is held inside the first batch until the second one has been polled
    consumer.on_poll = lambda n: release.set() if n == 2 else None
    assert w.run(idle_timeout_s=0.05) == 0
    kinds = [e[0] for e in log]
    assert kinds == ["poll", "poll", "apply", "commit", "apply", "commit"]
    assert len(scorer.calls) == 2 and all(len(c) == 4 for c in scorer.calls)
    assert consumer.committed == {("raw", 0): 8}
    assert store.counts["t0"] == 8


@IN_MODEL
def test_texts_reach_the_model_as_the_encoder_prepared_them(in_model):
    prepared = []

    def encode(texts):
        prepared.extend(texts)
        return [f"<{t}>" for t in texts], [7] * len(texts)

    scorer = GatedScorer()
    w, consumer, store, _ = make([[rec(0, 0), rec(0, 1, text=""), rec(0, 2)]], scorer, in_model)
    w.encode = encode
    w.run(idle_timeout_s=0.05)
    assert prepared == ["kw0 hello there", "kw0 hello there"]  # the bad record is not encoded
    assert scorer.calls == [["<kw0 hello there>", "<kw0 hello there>"]]
    assert store.counts["t0"] == 2 and consumer.committed == {("raw", 0): 3}


@IN_MODEL
def test_a_partition_revoked_while_its_batch_was_in_the_model_is_not_written_or_committed(in_model):
    release = threading.Event()
    scorer = GatedScorer([release])
    first = [rec(0, 0), rec(0, 1), rec(1, 0), rec(1, 1)]
    later = [rec(0, 2)]
    w, consumer, store, log = make([first, later], scorer, in_model)

    def on_poll(n):
        if n == 2:  # a rebalance happens inside the poll for the next batch: partition 1 goes
            w.on_revoked([("raw", 1)])
            w.on_assigned([])
            release.set()

    consumer.on_poll = on_poll
    w.run(idle_timeout_s=0.05)
    assert consumer.committed == {("raw", 0): 3}
    assert ("t0", "raw:1") not in store.wm
    assert store.counts["t0"] == 3  # p0:0, p0:1, p0:2; partition 1's two records are left to their new owner


@IN_MODEL
def test_records_polled_after_a_rebalance_are_kept(in_model):
    scorer = GatedScorer()
    w, consumer, store, _ = make([[rec(1, 5)]], scorer, in_model)

    def on_poll(n):
        if n == 1:  # the rebalance happens inside the poll that returns these records
            w.on_revoked([("raw", 1)])
            w.on_assigned([("raw", 1)])

    # the callbacks must run before the records are tagged: emulate the client's order
    orig = consumer.poll

    def poll(timeout_ms, max_records=None):
        if consumer.chunks:
            on_poll(1)
        return orig(timeout_ms, max_records)

    consumer.poll = poll
    w.run(idle_timeout_s=0.05)
    assert consumer.committed == {("raw", 1): 6}
    assert store.counts["t0"] == 1


@IN_MODEL
def test_stop_finishes_the_batch_in_the_model_and_the_one_gathered(in_model):
    release = threading.Event()
    scorer = GatedScorer([release])
    chunks = [[rec(0, i) for i in range(4)], [rec(0, 4), rec(0, 5)], [rec(0, 6)]]
    w, consumer, store, _ = make(chunks, scorer, in_model, max_wait_ms=10_000)

    def on_poll(n):
        if n == 2:  # SIGTERM arrives while batch 1 is in the model and batch 2 is being gathered
            w.stop()
            release.set()

    consumer.on_poll = on_poll
    assert w.run() == 0
    assert consumer.committed == {("raw", 0): 6}  # both batches written and committed
    assert store.counts["t0"] == 6
    assert [[r.offset for r in c] for c in consumer.chunks] == [[6]]  # nothing more was taken
    assert consumer.closed


@IN_MODEL
def test_a_store_outage_retries_the_same_scored_batch_and_commits_after_the_write(in_model):
    scorer = GatedScorer()
    w, consumer, store, log = make([[rec(0, 0), rec(0, 1)]], scorer, in_model)
    store.fail_applies = 2
    w.run(idle_timeout_s=0.05)
    assert len(scorer.calls) == 1  # scored once, written on the third try
    assert [e[0] for e in log if e[0] != "poll"] == ["apply", "commit"]
    assert consumer.committed == {("raw", 0): 2}
    assert store.counts["t0"] == 2


@IN_MODEL
def test_bad_records_and_duplicates_are_parked_and_committed_without_reaching_the_model(in_model):
    scorer = GatedScorer()
    chunk = [rec(0, 0, pid="same"), Rec("raw", 0, 1, b"k", b"{not json"), rec(0, 2, pid="same")]
    w, consumer, store, _ = make([chunk], scorer, in_model)
    w.run(idle_timeout_s=0.05)
    assert len(scorer.calls[0]) == 2  # the undecodable record never reaches the model
    assert store.counts["t0"] == 1
    dlq = [orjson.loads(v)["reason"] for t, v in w.producer.sent if t == "posts.dlq"]
    assert sorted(dlq) == ["decode:value", "duplicate_id"]
    assert consumer.committed == {("raw", 0): 3}


@IN_MODEL
def test_a_partition_revoked_and_given_back_keeps_its_records_in_hand(in_model):
    """kafka-python keeps the fetch position of a partition that stays assigned across a
    rebalance: the records already polled are never delivered again, so dropping them loses them."""
    release = threading.Event()
    scorer = GatedScorer([release])
    first = [rec(0, 0), rec(0, 1), rec(1, 0), rec(1, 1)]
    later = [rec(1, 2)]
    w, consumer, store, log = make([first, later], scorer, in_model)

    def on_poll(n):
        if n == 2:  # eager rebalance inside the next poll: everything revoked, then p0 and p1 back
            w.on_revoked([("raw", 0), ("raw", 1)])
            w.on_assigned([("raw", 0), ("raw", 1)])
            release.set()

    consumer.on_poll = on_poll
    w.run(idle_timeout_s=0.05)
    assert consumer.committed == {("raw", 0): 2, ("raw", 1): 3}
    assert store.counts["t0"] == 5


@pytest.mark.parametrize("in_model", [1, 2])
def test_the_next_batch_reaches_the_model_before_the_one_running_is_written_only_with_two(in_model):
    """With two batches in the model, CPU lanes that finish their part of one batch go on with
    the next instead of waiting for the whole batch to be written and committed."""
    second = threading.Event()
    order = []

    class Scorer(GatedScorer):
        def score(self, texts, langs=None):
            self.calls.append(list(texts))
            n = len(self.calls)
            order.append(("start", n))
            if n == 1 and in_model == 2:
                assert second.wait(WAIT_S), "the next batch never reached the model"
            second.set()
            order.append(("end", n))
            return [ModelOutput((0.1, 0.2, 0.7), None)] * len(texts)

    chunks = [[rec(0, i) for i in range(4)], [rec(0, i) for i in range(4, 8)]]
    w, consumer, store, log = make(chunks, Scorer(), in_model)
    assert w.run(idle_timeout_s=0.05) == 0
    if in_model == 2:
        assert order[:2] == [("start", 1), ("start", 2)]  # both in the model at once
    else:
        assert order == [("start", 1), ("end", 1), ("start", 2), ("end", 2)]
    # written and committed in order all the same
    assert [e[0] for e in log if e[0] != "poll"] == ["apply", "commit", "apply", "commit"]
    assert consumer.committed == {("raw", 0): 8} and store.counts["t0"] == 8
