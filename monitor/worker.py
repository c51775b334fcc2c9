"""The inference worker: poll -> decode (poison -> DLQ) -> dedup ids -> score -> aggregate ->
write (one Lua call per topic, watermark-guarded) -> produce scored + DLQ -> commit.

Offsets are committed only after Redis and Kafka writes succeed. A transient failure (Redis or
Kafka down) retries the same batch with backoff and never commits; a redelivered batch changes
nothing because each (topic, partition) watermark in Redis records what was applied.
Records of partitions revoked while a batch was being gathered are dropped unwritten and
uncommitted: their next owner reads them again.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any, Protocol

import orjson

from monitor.aggregates import add_into, event_time, hour_start, minute_start, post_delta
from monitor.errors import DecodeError, TransientError
from monitor.language import post_language
from monitor.messages import Deletion, Post, ScoredPost, decode, encode_scored
from monitor.store import PartitionWrite, RecentPost
from monitor.taxonomy import UNSUPPORTED
from monitor.topics import TopicMatcher

log = logging.getLogger(__name__)


class _Record(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def origin(self) -> str: ...


class _Consumer(Protocol):
    def poll_batch(self, idle_timeout_ms: int = 1000) -> list[Any]: ...
    def commit(self, records: Sequence[Any]) -> None: ...
    def assignment(self) -> list[tuple[str, int]]: ...
    def close(self) -> None: ...


class _Producer(Protocol):
    def send(self, key: bytes | None, value: bytes, *, topic: str | None = None,
             headers: Sequence[tuple[str, bytes]] | None = None) -> None: ...
    def flush(self, timeout_s: float = 30.0) -> None: ...
    def close(self, timeout_s: float = 10.0) -> None: ...


class _Scorer(Protocol):
    name: str

    def score(self, texts: Sequence[str], langs: Sequence[str] | None = None) -> list[Any]: ...


LabelFn = Callable[[Any, float], tuple[str, float, float, str, float]]


@dataclass
class BatchResult:
    records: int = 0
    scored: int = 0
    aggregated: int = 0
    dlq: Counter[str] = field(default_factory=Counter)
    too_late: int = 0
    deletions: int = 0
    unmatched: int = 0
    replayed: int = 0


@dataclass(frozen=True)
class WorkerConfig:
    dlq_topic: str = "posts.dlq"
    scored_topic: str = "posts.scored"
    max_text_chars: int = 20_000
    lateness_ms: int = 120_000
    future_skew_ms: int = 300_000
    uncertain_below: float = 0.0
    backoff_max_s: float = 30.0
    health_ttl_s: int = 30
    keep_texts: bool = True
    process_name: str = "worker"


class Worker:
    def __init__(
        self,
        config: WorkerConfig,
        consumer: _Consumer,
        producer: _Producer,
        scorer: _Scorer,
        to_labels: LabelFn,
        store: Any,
        matcher: TopicMatcher,
        *,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.cfg = config
        self.consumer = consumer
        self.producer = producer
        self.scorer = scorer
        self.to_labels = to_labels
        self.store = store
        self.matcher = matcher
        self.clock_ms = clock_ms
        self.running = True
        self.revoked: set[tuple[str, int]] = set()
        self.totals = BatchResult()
        self._signals = 0

    # ---- lifecycle ----------------------------------------------------------------------
    def on_revoked(self, parts: list[tuple[str, int]]) -> None:
        self.revoked.update(parts)
        log.info("partitions revoked: %s", ",".join(f"{t}:{p}" for t, p in parts) or "-")

    def on_assigned(self, parts: list[tuple[str, int]]) -> None:
        self.revoked.difference_update(parts)
        log.info("partitions assigned: %s", ",".join(f"{t}:{p}" for t, p in parts) or "-")

    def stop(self) -> None:
        self.running = False

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("signal %s: finishing the batch in hand, then leaving the group", signum)
        self.running = False

    def run(self, *, max_batches: int | None = None, idle_timeout_s: float | None = None,
            install_signals: bool = False) -> int:
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        batches = 0
        idle_since = time.monotonic()
        log.info("worker %s starting model=%s", self.cfg.process_name, self.scorer.name)
        self._heartbeat()
        try:
            while self.running and (max_batches is None or batches < max_batches):
                records = self.consumer.poll_batch(idle_timeout_ms=500)
                if self.revoked:
                    records = [r for r in records if (r.topic, r.partition) not in self.revoked]
                if not records:
                    self._idle()
                    if idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                        log.info("idle for %.1fs: stopping (bounded mode)", idle_timeout_s)
                        break
                    continue
                idle_since = time.monotonic()
                if not self._process_with_retry(records):
                    break  # asked to stop while the outside world was down: nothing committed
                batches += 1
        finally:
            self.consumer.close()
            try:
                self.producer.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the real exit
                log.warning("producer close: %s", exc)
        log.info("worker stopped: batches=%d records=%d scored=%d aggregated=%d dlq=%d",
                 batches, self.totals.records, self.totals.scored, self.totals.aggregated,
                 sum(self.totals.dlq.values()))
        return 0

    def _idle(self) -> None:
        try:
            self.store.advance_seal(self.clock_ms() - self.cfg.lateness_ms)
            self._heartbeat()
        except TransientError as exc:
            log.warning("idle housekeeping failed: %s", exc)

    def _heartbeat(self) -> None:
        try:
            self.store.heartbeat(self.cfg.process_name, self.cfg.health_ttl_s,
                                 {"records": self.totals.records, "model": self.scorer.name})
        except TransientError as exc:
            log.warning("heartbeat failed: %s", exc)

    def _process_with_retry(self, records: Sequence[_Record]) -> bool:
        delay = 0.2
        while True:
            try:
                t0 = time.monotonic()
                res = self.process(records)
                self.consumer.commit(records)
                self._account(res)
                log.info(
                    "batch records=%d scored=%d aggregated=%d dlq=%d too_late=%d replayed=%d "
                    "ms=%.0f", res.records, res.scored, res.aggregated, sum(res.dlq.values()),
                    res.too_late, res.replayed, (time.monotonic() - t0) * 1000)
                self._heartbeat()
                return True
            except TransientError as exc:
                if not self.running:
                    log.warning("stopping with an unwritten batch (%s); it will be redelivered", exc)
                    return False
                log.warning("transient failure, retrying the same batch in %.1fs: %s", delay, exc)
                time.sleep(delay)
                delay = min(delay * 2, self.cfg.backoff_max_s)

    def _account(self, res: BatchResult) -> None:
        t = self.totals
        t.records += res.records
        t.scored += res.scored
        t.aggregated += res.aggregated
        t.dlq.update(res.dlq)
        t.too_late += res.too_late
        t.deletions += res.deletions
        t.unmatched += res.unmatched
        t.replayed += res.replayed
        stats = {"records": res.records, "scored": res.scored, "aggregated": res.aggregated,
                 "too_late": res.too_late, "deletions": res.deletions, "unmatched": res.unmatched}
        stats.update({f"dlq:{k}": v for k, v in res.dlq.items()})
        try:
            self.store.incr_stats("worker", {k: v for k, v in stats.items() if v})
        except TransientError as exc:  # counters are best effort; figures are not
            log.warning("stats update failed: %s", exc)

    # ---- one batch --------------------------------------------------------------------------
    def process(self, records: Sequence[_Record]) -> BatchResult:
        res = BatchResult(records=len(records))
        now = self.clock_ms()
        dlq: list[tuple[_Record, str, str]] = []
        posts: list[tuple[_Record, Post]] = []
        deletions: list[Deletion] = []
        for r in records:
            try:
                msg = decode(r.value if r.value is not None else b"",
                             max_text_chars=self.cfg.max_text_chars)
            except DecodeError as exc:
                dlq.append((r, f"decode:{exc.field}", str(exc)))
                continue
            if isinstance(msg, Deletion):
                deletions.append(msg)
            else:
                posts.append((r, msg))

        # duplicate post ids (a source re-sent a post): the first record wins
        if posts:
            claims = self.store.claim_ids([(p.id, r.origin) for r, p in posts])
            kept = []
            for (r, p), first in zip(posts, claims, strict=True):
                if first is None:
                    kept.append((r, p))
                else:
                    dlq.append((r, "duplicate_id", f"post id already counted from {first}"))
            posts = kept

        # which records were already applied, per (topic, partition)
        scored = self._score(posts, now)
        res.scored = len(scored)
        writes, counted, late, recent = self._plan_writes(scored, now)
        res.too_late = late
        res.unmatched = sum(1 for _, sp, _ in scored if not sp.topics)
        applied, skipped = self.store.apply(writes)
        if skipped:
            # another consumer wrote some of these partitions since we read the watermarks
            # (a rebalance race): plan again against the fresh watermarks
            writes, counted, late, recent = self._plan_writes(scored, now)
            self.store.apply(writes)
        res.aggregated = counted
        res.replayed = sum(1 for _ in scored) - counted - late - res.unmatched

        for r, sp, _ in scored:
            self.producer.send(r.key, encode_scored(sp), topic=self.cfg.scored_topic)
        for r, reason, detail in dlq:
            res.dlq[reason.split(":")[0]] += 1
            self.producer.send(r.key, _dlq_value(r, reason, detail, now), topic=self.cfg.dlq_topic,
                               headers=[("reason", reason.encode())])
        self.producer.flush()
        if self.cfg.keep_texts and recent:
            self.store.remember(recent)
        if deletions:
            self.store.forget_text([d.id for d in deletions])
            res.deletions = len(deletions)
        return res

    def _score(self, posts: list[tuple[_Record, Post]], now: int) -> list[tuple[_Record, ScoredPost, int]]:
        if not posts:
            return []
        # the source's language tag when it gave one, else detected: stored, counted and used
        # to route the post to a per-language model (or to count it as unsupported)
        posts = [(r, p if p.lang == (lang := post_language(p.lang, p.text)) else replace(p, lang=lang))
                 for r, p in posts]
        outs = self.scorer.score([p.text for _, p in posts], [p.lang for _, p in posts])
        scored = []
        for (r, p), out in zip(posts, outs, strict=True):
            if out is None:
                sent, score, conf, emo, econf = UNSUPPORTED, 0.0, 0.0, UNSUPPORTED, 0.0
            else:
                sent, score, conf, emo, econf = self.to_labels(out, self.cfg.uncertain_below)
            ts = event_time(p.created_ms, p.ingested_ms, self.cfg.future_skew_ms)
            sp = ScoredPost(post=p, sentiment=sent, sentiment_score=score, confidence=conf,
                            emotion=emo, emotion_confidence=econf, topics=self.matcher.match(p),
                            model=self.scorer.name, scored_ms=now, origin=r.origin)
            scored.append((r, sp, ts))
        return scored

    def _plan_writes(
        self, scored: list[tuple[_Record, ScoredPost, int]], now: int
    ) -> tuple[dict[str, list[PartitionWrite]], int, int, list[RecentPost]]:
        pairs = {(t, f"{r.topic}:{r.partition}") for r, sp, _ in scored for t in sp.topics}
        wms = self.store.watermarks(sorted(pairs)) if pairs else {}
        per: dict[tuple[str, str], PartitionWrite] = {}
        counted_posts: set[str] = set()
        late = 0
        recent: list[RecentPost] = []
        last_by_part: dict[str, int] = defaultdict(lambda: -1)
        for r, _sp, _ts in scored:
            part = f"{r.topic}:{r.partition}"
            last_by_part[part] = max(last_by_part[part], r.offset)
        for r, sp, ts in scored:
            if not sp.topics:
                continue
            if ts < now - self.cfg.lateness_ms:
                late += 1
                continue
            part = f"{r.topic}:{r.partition}"
            fresh = False
            delta = post_delta(sp)
            for topic in sp.topics:
                if r.offset <= wms.get((topic, part), -1):
                    continue  # applied before this redelivery
                fresh = True
                pw = per.get((topic, part))
                if pw is None:
                    pw = per[(topic, part)] = PartitionWrite(part, r.offset, last_by_part[part])
                pw.first_offset = min(pw.first_offset, r.offset)
                for key in (("m", minute_start(ts)), ("h", hour_start(ts))):
                    add_into(pw.deltas.setdefault(key, {}), delta)
                recent.append(RecentPost(topic, sp.post.id, ts, sp.post.text, sp.post.url,
                                         sp.sentiment))
            if fresh:
                counted_posts.add(r.origin)
        writes: dict[str, list[PartitionWrite]] = defaultdict(list)
        for (topic, _part), pw in per.items():
            writes[topic].append(pw)
        return dict(writes), len(counted_posts), late, recent


def _dlq_value(r: _Record, reason: str, detail: str, now_ms: int) -> bytes:
    raw = r.value or b""
    return orjson.dumps({
        "reason": reason,
        "detail": detail[:1000],
        "origin": r.origin,
        "dlq_ms": now_ms,
        "size": len(raw),
        # keep the start of the bad record for inspection, never the whole of a huge one
        "value_head": raw[:2048].decode("utf-8", errors="replace"),
    })
