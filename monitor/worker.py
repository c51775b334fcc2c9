"""The inference worker: gather (poll -> decode, poison -> DLQ -> match topics -> language ->
tokenize) -> score -> dedup ids -> aggregate -> write (one Lua call per topic, watermark-guarded;
the stream's volume) -> produce scored + DLQ -> commit.

Topics are matched first, right after decoding, once per post for all topics: only a post that
matches a topic (or falls in the sampled baseline, ``baseline_rate``, off by default) has its
language detected, is tokenized, scored, claimed against duplicates, written to
``posts.scored`` and remembered. A post no topic wants costs its decoding and its match, and is
counted in the per-minute volume hashes (`monitor.store.volume`: per source and language, one
hash a minute written once a batch, no Redis key of its own), so the whole stream's volume and
the matched share stay visible. A topic added later can be backfilled from ``posts.raw``
(`monitor.backfill`). The baseline is a deterministic sample (a hash of the post id: a
redelivered post makes the same choice) of all posts, scored into the series
``baseline_topic``, to compare a topic's mood with the general one.

It is a two-stage pipeline. The model runs in its own thread (torch releases the GIL); meanwhile
the main thread gathers, decodes and tokenizes the next batch (`monitor.batcher`) and writes and
commits the previous one. At most one batch is in the model and one is being gathered: that is
the bounded queue. With parallel CPU lanes (``batches_in_model`` 2) the gathered batch is handed
to the model at once, queued behind the one running, so that for a moment two are in the model:
a lane that finishes its share of one batch goes on with the next instead of idling until the
whole batch is done (measured: the machine's idle CPU during a saturated run fell from 8 % to
4 %). Batches are still written and committed one at a time, in order. Every consumer call (poll,
commit, close) stays on the main thread, because kafka-python's consumer is not thread-safe.

Offsets are committed only after Redis and Kafka writes succeed. A transient failure (Redis or
Kafka down) retries the same batch's writes with backoff and never commits; a redelivered batch
changes nothing because each (topic, partition) watermark in Redis records what was applied.
Rebalance callbacks run inside ``poll`` (on the client's IO thread, which cannot commit): the
records of a revoked partition that were polled before the revocation, in the batch being
gathered or in the one in the model, are dropped unwritten and uncommitted: their next owner
reads them again. A partition revoked and given straight back keeps its fetch position in the
client, so its records in hand are kept (dropping them would lose them).
On SIGTERM the worker stops gathering, finishes the batch in the model and the
one it had gathered, writes and commits them, then leaves the group.

One record can never stop the worker. Whatever goes wrong while handling one record, in any
stage (decode, language, topic matching, tokenizing, labelling, aggregation), bugs included, is
contained to that record: it goes to ``posts.dlq`` with the reason
``internal_error:stage=<stage>:<exception type>`` (a bad field is ``decode:<field>``), the
``dlq:<kind>`` counter goes up, one log line names the record's origin and the reason (never its
text), and the batch goes on to be committed, so a restart cannot loop on it. Only failures of
the outside world (`TransientError`: Redis, Kafka) retry or stop a batch.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol

import orjson

from monitor import metrics
from monitor.aggregates import add_hours, add_into, event_time, minute_start, post_delta
from monitor.batcher import Batch, BatchLimits, ModelState, gather
from monitor.catalog import TopicSource
from monitor.errors import DecodeError, TransientError
from monitor.kafka import RecordProducer
from monitor.messages import Deletion, Post, ScoredPost, decode, encode_scored, lang_tag
from monitor.model.base import EncodeFn, LabelFn, Scorer, estimate_tokens, scored_post
from monitor.model.language import UNDETERMINED, post_language
from monitor.model.memory import trim
from monitor.privacy import author_pseudonym, sample_text
from monitor.store.buckets import AggregateStore, PartitionWrite, RecentPost
from monitor.store.volume import MATCHED, POSTS, VolumeStore, volume_field
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
    def poll(self, timeout_ms: int, max_records: int | None = None) -> list[Any]: ...
    def commit(self, records: Sequence[Any]) -> None: ...
    def seek(self, topic: str, partition: int, offset: int) -> None: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class _Item:
    """One polled record on its way through the pipeline."""

    record: Any
    gen: int  # the rebalance generation it was polled in
    msg: Post | Deletion | None = None
    text: str = ""  # what the scorer gets (pre-tokenized when the tokenizer is known)
    dlq: tuple[str, str] | None = None  # (reason, detail) when it cannot be used
    topics: tuple[str, ...] = ()  # the topics the post matches (the baseline's included)
    matched: bool = False  # it matched a topic (not only the baseline)
    declared_lang: str = UNDETERMINED  # the language the source gave, for the volume counts

    @property
    def to_score(self) -> bool:
        """A post that goes on to the model: it matched a topic or the baseline sample."""
        return bool(self.topics) and isinstance(self.msg, Post)

    def park(self, stage: str, exc: Exception) -> None:
        """Send this record to the DLQ for an unexpected failure in ``stage``."""
        self.msg = None
        self.dlq = internal_error(stage, exc)
        log.warning("record %s parked in the DLQ: %s", _origin(self.record), self.dlq[0])


def internal_error(stage: str, exc: BaseException) -> tuple[str, str]:
    """(DLQ reason, detail) of an unexpected exception: its type only, since its message may
    quote the record."""
    name = type(exc).__name__
    return f"internal_error:stage={stage}:{name}", f"{name} while handling the record ({stage})"


def _origin(record: Any) -> str:
    try:
        return str(record.origin)
    except Exception:  # noqa: BLE001 - a log line must not fail
        return "?"


@dataclass
class _InFlight:
    """A batch handed to the model thread."""

    items: list[_Item]
    scores: Future[list[Any]] | None  # None when the batch has no post to score
    tokens: int = 0
    reason: str = ""
    model_ms: float = 0.0  # time the forward pass took in the model thread
    idle_ms: float = 0.0  # how long the model sat idle before this batch reached it
    # labels, deltas and posts.scored records of the scored posts, made on the model thread
    scored: list[_Scored] | None = None
    to_score: list[_Item] = field(default_factory=list)  # the items the model got, in order

    def state(self) -> ModelState:
        return "done" if self.scores is None or self.scores.done() else "busy"

    def result(self) -> list[Any]:
        return self.scores.result() if self.scores is not None else []


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
    # the secret key of author pseudonyms (`monitor.privacy.author_pseudonym`); empty: author
    # ids are dropped. Never in a repr (a config may be logged)
    author_key: bytes = field(default=b"", repr=False)
    process_name: str = "worker"
    # 2: the next batch is handed to the model as soon as it is gathered, queued behind the one
    # running, so that parallel CPU lanes never wait for a batch to be written and committed
    # (see `run`); 1: one batch at a time (a GPU, or a single lane)
    batches_in_model: int = 1
    # the share of all posts (matched or not, chosen by a hash of the post id) also scored into
    # the series ``baseline_topic``: the general mood to compare a topic with; 0: off
    baseline_rate: float = 0.0
    baseline_topic: str = "all-posts"
    # the store keeps at most this many sampled texts a topic a minute (the first ones): a
    # batch redacts and sends no more candidates than that (`RedisAggregateStore.remember`)
    texts_per_minute: int = 8


class Worker:
    def __init__(
        self,
        config: WorkerConfig,
        consumer: _Consumer,
        producer: RecordProducer,
        scorer: Scorer,
        to_labels: LabelFn,
        store: AggregateStore,
        matcher: TopicMatcher,
        *,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        encode: EncodeFn = estimate_tokens,
        limits: BatchLimits | None = None,
        topics: TopicSource | None = None,
        volume: VolumeStore | None = None,
    ) -> None:
        self.cfg = config
        # per-minute counts of all posts, matched or not (None: not kept, e.g. in unit tests)
        self.volume = volume
        self._baseline_below = int(config.baseline_rate * 2**64)
        self.consumer = consumer
        self.producer = producer
        self.scorer = scorer
        self.to_labels = to_labels
        self.store = store
        self.matcher = matcher
        self.clock_ms = clock_ms
        self.encode = encode
        self.limits = limits or BatchLimits()
        # topics added or removed at run time (`monitor.catalog`), polled between batches
        self.topics = topics
        self.running = True
        self.totals = BatchResult()
        self._signals = 0
        # rebalance generations: bumped by every revocation (on the client's IO thread, while the
        # main thread is inside poll); a record polled in an older generation than its
        # partition's revocation is stale
        self._model_free = 0.0  # when the model thread last finished a batch (monotonic)
        self._gen = 0
        self._revocations: list[tuple[int, frozenset[tuple[str, int]]]] = []
        self._owned: frozenset[tuple[str, int]] = frozenset()
        self._holding: frozenset[tuple[str, int]] = frozenset()  # what the heartbeat reports
        # partition -> the last offset this worker applied to Redis (while it owns the partition)
        self._applied: dict[tuple[str, int], int] = {}

    # ---- lifecycle ----------------------------------------------------------------------
    def on_revoked(self, parts: list[tuple[str, int]]) -> None:
        if parts:
            self._revocations.append((self._gen + 1, frozenset(parts)))
            self._gen += 1
        self._holding = self._holding - frozenset(parts)
        for part in parts:
            self._applied.pop(part, None)
        log.info("partitions revoked: %s", ",".join(f"{t}:{p}" for t, p in parts) or "-")

    def on_assigned(self, parts: list[tuple[str, int]]) -> None:
        # the whole new assignment (eager rebalancing): a partition revoked and given straight
        # back keeps its fetch position in the client, so the records of it in hand are not
        # read again by anyone: they must be kept, not dropped as stale
        fresh = sorted(frozenset(parts) - self._owned)
        self._owned = self._holding = frozenset(parts)
        self._resume_from_store(fresh)
        log.info("partitions assigned: %s", ",".join(f"{t}:{p}" for t, p in parts) or "-")

    def _resume_from_store(self, parts: Sequence[tuple[str, int]]) -> None:
        """Start each newly assigned partition after the last batch Redis holds, not after the
        last commit: a Redis that lost its last second of writes (appendfsync everysec, then a
        crash) gets exactly those records again; ahead of the commit (a worker died between its
        writes and its commit) nothing is read twice. A partition Redis knows nothing of starts
        at the committed offset."""
        if not parts:
            return
        try:
            wms = self.store.partition_watermarks([f"{t}:{p}" for t, p in parts])
        except TransientError as exc:
            log.warning("partition watermarks unreadable (%s): starting from the committed offsets", exc)
            return
        for t, p in parts:
            wm = wms.get(f"{t}:{p}")
            if wm is not None:
                self.consumer.seek(t, p, wm + 1)
                self._applied[(t, p)] = wm
                log.info("partition %s:%d resumes at offset %d (Redis)", t, p, wm + 1)

    def stop(self) -> None:
        self.running = False

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("signal %s: finishing the batch in hand, then leaving the group", signum)
        self.running = False

    def run(
        self,
        *,
        max_batches: int | None = None,
        idle_timeout_s: float | None = None,
        install_signals: bool = False,
    ) -> int:
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
            if self.topics is not None:
                signal.signal(signal.SIGHUP, self._on_hup)
        submitted = done = 0
        idle_since = time.monotonic()
        log.info(
            "worker %s starting model=%s max_posts=%d max_tokens=%d max_wait_ms=%d",
            self.cfg.process_name,
            self.scorer.name,
            self.limits.max_posts,
            self.limits.max_tokens,
            self.limits.max_wait_ms,
        )
        self._heartbeat()
        ahead = self.cfg.batches_in_model > 1
        model = ThreadPoolExecutor(max_workers=2 if ahead else 1, thread_name_prefix="model")
        pending: _InFlight | None = None
        try:
            while True:
                taking = self.running and (max_batches is None or submitted < max_batches)
                if taking:
                    self._refresh_topics()  # a batch boundary: a batch is matched against one topic set
                batch = self._gather(pending) if taking else Batch[_Item]()
                nxt = self._submit(model, batch) if ahead and batch.items else None
                outs = pending.result() if pending is not None else []  # waits for the model
                if not ahead and batch.items:
                    nxt = self._submit(model, batch)
                submitted += nxt is not None
                if pending is not None:
                    if not self._complete_with_retry(pending, outs):
                        break  # asked to stop while the outside world was down: nothing committed
                    done += 1
                pending = nxt
                if pending is not None:
                    idle_since = time.monotonic()
                    continue
                if not taking:
                    break
                self._idle()
                if idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                    log.info("idle for %.1fs: stopping (bounded mode)", idle_timeout_s)
                    break
        finally:
            model.shutdown(wait=True, cancel_futures=True)
            self.consumer.close()
            try:
                self.producer.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the real exit
                log.warning("producer close: %s", exc)
        log.info(
            "worker stopped: batches=%d records=%d scored=%d aggregated=%d dlq=%d",
            done,
            self.totals.records,
            self.totals.scored,
            self.totals.aggregated,
            sum(self.totals.dlq.values()),
        )
        return 0

    # ---- the pipeline's stages ------------------------------------------------------------
    def _gather(self, pending: _InFlight | None) -> Batch[_Item]:
        """Poll, decode and tokenize the next batch while ``pending`` runs through the model."""

        def poll(timeout_ms: int, max_records: int) -> list[tuple[Any, int]]:
            records = self.consumer.poll(timeout_ms, max_records)
            gen = self._gen  # read after the poll: rebalance callbacks run inside it
            return [(r, gen) for r in records]

        return gather(
            poll,
            self._prepare,
            self.limits,
            clock_ms=lambda: int(time.monotonic() * 1000),
            model=lambda: pending.state() if pending is not None else "idle",
            stopping=lambda: not self.running,
        )

    def _prepare(self, polled: Sequence[tuple[Any, int]]) -> list[tuple[_Item, int]]:
        """Decode a chunk of records (poison -> DLQ later), match each post to the topics, and
        for the posts that matched: settle the language (the source's tag, else detected:
        stored, counted and used to route the post to a per-language model) and tokenize the
        texts. A post no topic wants stops after its match."""
        items = [self._read(r, gen) for r, gen in polled]
        posts = [it for it in items if it.to_score]
        counts = self._tokenize(posts)
        return [(it, counts.get(id(it), 0)) for it in items]

    def _read(self, record: Any, gen: int) -> _Item:
        """One record, decoded, matched and (matched) with its language; parked on any failure."""
        item = _Item(record, gen)
        stage = "decode"
        try:
            msg = decode(
                record.value if record.value is not None else b"", max_text_chars=self.cfg.max_text_chars
            )
            if isinstance(msg, Post):
                item.declared_lang = lang_tag(msg.lang) or UNDETERMINED
                stage = "language"
                if self.matcher.uses_language and not lang_tag(msg.lang):
                    msg = msg.with_lang(post_language(msg.lang, msg.text))  # a lang: query looks
                stage = "match"
                topics = self.matcher.match(msg)
                item.matched = bool(topics)
                if self._baseline_below and self._in_baseline(msg.id):
                    topics = (*topics, self.cfg.baseline_topic)
                item.topics = topics
                if topics:
                    stage = "language"
                    lang = post_language(msg.lang, msg.text)
                    if msg.lang != lang or msg.author_id:
                        # past posts.raw an author is only ever its keyed pseudonym
                        msg = msg.with_lang(lang, author_pseudonym(self.cfg.author_key, msg.author_id))
            item.msg = msg
        except DecodeError as exc:
            item.dlq = (f"decode:{exc.field}", str(exc))
        except Exception as exc:  # noqa: BLE001 - one record's failure stays with that record
            item.park(stage, exc)
        return item

    def _in_baseline(self, post_id: str) -> bool:
        digest = hashlib.blake2b(post_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "big") < self._baseline_below

    def _tokenize(self, posts: list[_Item]) -> dict[int, int]:
        """Tokenize the batch's texts at once; if that fails, one by one, parking the ones
        that fail."""
        try:
            texts, tokens = self.encode([it.msg.text for it in posts if isinstance(it.msg, Post)])
            pairs = list(zip(posts, texts, tokens, strict=True))
        except Exception:  # noqa: BLE001 - find the record that failed
            pairs = []
            for it in posts:
                try:
                    (text,), (n,) = self.encode([it.msg.text if isinstance(it.msg, Post) else ""])
                except Exception as exc:  # noqa: BLE001 - one record's failure stays with it
                    it.park("tokenize", exc)
                else:
                    pairs.append((it, text, n))
        counts: dict[int, int] = {}
        for it, text, n in pairs:
            it.text = text
            counts[id(it)] = n
        return counts

    def _submit(self, model: ThreadPoolExecutor, batch: Batch[_Item]) -> _InFlight:
        to_score = [it for it in batch.items if it.to_score]
        posts = [it.msg for it in to_score if isinstance(it.msg, Post)]
        scores = None
        if posts:
            texts = [it.text for it in to_score]
            flight = _InFlight(batch.items, None, batch.tokens, batch.reason, to_score=to_score)

            def score() -> list[Any]:
                t0 = time.monotonic()
                try:
                    outs = list(self.scorer.score(texts, [p.lang for p in posts]))
                finally:
                    trim()  # activations differ in shape every batch: give their pages back
                    # queued behind the batch before it, this one had the model from when that
                    # one finished: the time it took is counted from then
                    free, end = self._model_free, time.monotonic()
                    flight.idle_ms = max(0.0, t0 - free) * 1000 if free else 0.0
                    flight.model_ms = (end - max(t0, free)) * 1000
                    self._model_free = max(free, end)
                # labels, deltas and records here, on the model thread: meanwhile the main
                # thread waits on Redis and Kafka for the batch before, with the GIL free
                flight.scored = self._score(to_score, outs, self.clock_ms())
                return outs

            flight.scores = model.submit(score)
            return flight
        return _InFlight(batch.items, scores, batch.tokens, batch.reason)

    def _stale(self, item: _Item) -> bool:
        part = (item.record.topic, item.record.partition)
        if part in self._owned:  # revoked and given back: nobody else reads these records again
            return False
        return any(gen > item.gen and part in parts for gen, parts in self._revocations)

    def _complete_with_retry(self, batch: _InFlight, outs: list[Any]) -> bool:
        """Write a scored batch and commit it; retry transient failures with backoff."""
        scores = dict(zip(map(id, batch.to_score), outs, strict=True))
        items = [it for it in batch.items if not self._stale(it)]
        if len(items) < len(batch.items):
            log.info(
                "dropped %d records of revoked partitions: their next owner reads them again",
                len(batch.items) - len(items),
            )
        oldest = min((it.gen for it in items), default=self._gen)
        self._revocations = [(g, p) for g, p in self._revocations if g > oldest]
        if not items:
            return True
        delay = 0.2
        while True:
            try:
                t0 = time.monotonic()
                if self._rewind_if_redis_lost(items):
                    items = [it for it in items if not self._stale(it)]
                    if not items:
                        return True
                res = self._finish(items, [scores.get(id(it)) for it in items], self.clock_ms(), batch.scored)
                self.consumer.commit([it.record for it in items])
                self._note_applied(items)
                self._account(res)
                self._observe(batch, res, items, time.monotonic() - t0)
                log.info(
                    "batch records=%d tokens=%d why=%s scored=%d aggregated=%d dlq=%d too_late=%d "
                    "replayed=%d model_ms=%.0f model_idle_ms=%.0f write_ms=%.0f",
                    res.records,
                    batch.tokens,
                    batch.reason,
                    res.scored,
                    res.aggregated,
                    sum(res.dlq.values()),
                    res.too_late,
                    res.replayed,
                    batch.model_ms,
                    batch.idle_ms,
                    (time.monotonic() - t0) * 1000,
                )
                self._heartbeat()
                return True
            except TransientError as exc:
                if not self.running:
                    log.warning("stopping with an unwritten batch (%s); it will be redelivered", exc)
                    return False
                log.warning("transient failure, retrying the same batch in %.1fs: %s", delay, exc)
                time.sleep(delay)
                delay = min(delay * 2, self.cfg.backoff_max_s)

    def _note_applied(self, items: Sequence[_Item]) -> None:
        for it in items:
            part = (it.record.topic, it.record.partition)
            self._applied[part] = max(self._applied.get(part, -1), it.record.offset)

    def _rewind_if_redis_lost(self, items: Sequence[_Item]) -> bool:
        """Before writing: did Redis lose batches this worker applied (a crash under appendfsync
        everysec drops the last second)? Then the partitions it lost are read again from what
        Redis holds, and the records in hand of them are dropped (they come round again). Writing
        a newer batch first would move the topics' watermarks past the lost records for good.
        A partition whose watermark is gone altogether (a Redis without persistence) is not
        rewound: that is `mood-monitor rebuild`'s work."""
        parts = {(it.record.topic, it.record.partition) for it in items} & set(self._applied)
        if not parts:
            return False
        wms = self.store.partition_watermarks(f"{t}:{p}" for t, p in sorted(parts))
        behind = {
            (t, p): wms[f"{t}:{p}"]
            for t, p in parts
            if f"{t}:{p}" in wms and wms[f"{t}:{p}"] < self._applied[(t, p)]
        }
        if not behind:
            return False
        self._gen += 1
        self._revocations.append((self._gen, frozenset(behind)))
        self._owned -= frozenset(behind)
        for (t, p), wm in sorted(behind.items()):
            log.warning(
                "Redis lost the writes of %s:%d after offset %d (applied up to %d): reading them again",
                t,
                p,
                wm,
                self._applied[(t, p)],
            )
            self.consumer.seek(t, p, wm + 1)
            self._applied[(t, p)] = wm
        return True

    def _idle(self) -> None:
        try:
            self.store.advance_seal(self.clock_ms() - self.cfg.lateness_ms)
            self._heartbeat()
        except TransientError as exc:
            log.warning("idle housekeeping failed: %s", exc)

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        if self.topics is not None:
            self.topics.request_reload()  # a flag only: the file is read at the next batch boundary

    def _refresh_topics(self) -> None:
        if self.topics is None:
            return
        matcher = self.topics.poll()
        if matcher is not None:
            self.matcher = matcher
            log.info("topics changed: the next batch is matched against %d topics", len(matcher.names))

    def _observe(self, batch: _InFlight, res: BatchResult, items: Sequence[_Item], write_s: float) -> None:
        now = self.clock_ms()
        metrics.observe_batch(
            records=res.records,
            tokens=batch.tokens,
            outcomes={
                "scored": res.scored,
                "aggregated": res.aggregated,
                "too_late": res.too_late,
                "unmatched": res.unmatched,
                "replayed": res.replayed,
            },
            dlq=res.dlq,
            deletions=res.deletions,
            model_s=batch.model_ms / 1000,
            write_s=write_s,
            ingest_ages_s=[
                (now - it.msg.ingested_ms) / 1000
                for it in items
                if it.topics and isinstance(it.msg, Post) and it.msg.ingested_ms
            ],
        )

    def _lag(self) -> dict[str, int] | None:
        """Records of each owned partition not yet applied: its high watermark (the client's
        last view) minus the next offset to apply."""
        highwaters = getattr(self.consumer, "highwaters", None)
        if not callable(highwaters):
            return None
        return {
            f"{t}:{p}": max(0, hw - self._applied[(t, p)] - 1)
            for (t, p), hw in highwaters().items()
            if (t, p) in self._applied and (t, p) in self._holding
        }

    def _heartbeat(self) -> None:
        metrics.observe_partitions(self._holding, self._lag())
        try:
            self.store.heartbeat(
                self.cfg.process_name,
                self.cfg.health_ttl_s,
                {
                    "records": self.totals.records,
                    "model": self.scorer.name,
                    "trained": bool(getattr(self.scorer, "trained", True)),
                    "partitions": [f"{t}:{p}" for t, p in sorted(self._holding)],
                },
            )
        except TransientError as exc:
            log.warning("heartbeat failed: %s", exc)

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
        stats = {
            "records": res.records,
            "scored": res.scored,
            "aggregated": res.aggregated,
            "too_late": res.too_late,
            "deletions": res.deletions,
            "unmatched": res.unmatched,
        }
        stats.update({f"dlq:{k}": v for k, v in res.dlq.items()})
        try:
            self.store.incr_stats("worker", {k: v for k, v in stats.items() if v})
        except TransientError as exc:  # counters are best effort; figures are not
            log.warning("stats update failed: %s", exc)

    # ---- one batch ---------------------------------------------------------------------------
    def _finish(
        self, items: Sequence[_Item], outs: Sequence[Any], now: int, made: list[_Scored] | None = None
    ) -> BatchResult:
        """Everything after the forward pass: labels (unless ``made`` on the model thread), id
        claims, aggregates, Redis, Kafka outputs."""
        res = BatchResult(records=len(items))
        if made is None:
            scored = self._score(items, outs, now)  # parks a post whose labels or delta fail
        else:  # of the records still this worker's (a rebalance may have taken some)
            mine = {id(it.record) for it in items}
            scored = [s for s in made if id(s.record) in mine]
        dlq: list[tuple[_Record, str, str]] = [(it.record, *it.dlq) for it in items if it.dlq is not None]
        deletions = [it.msg for it in items if isinstance(it.msg, Deletion)]

        # duplicate post ids (a source re-sent a post): the first record wins
        if scored:
            claims = self.store.claim_ids([(s.post.post.id, s.record.origin) for s in scored])
            kept = []
            for s, first in zip(scored, claims, strict=True):
                if first is None:
                    kept.append(s)
                else:
                    dlq.append((s.record, "duplicate_id", f"post id already counted from {first}"))
            scored = kept

        res.scored = len(scored)
        writes, counted, late, recent = self._plan_writes(scored, now)
        res.too_late = late
        res.unmatched = sum(1 for it in items if isinstance(it.msg, Post) and not it.topics)
        t_apply = time.monotonic()
        applied, skipped = self.store.apply(writes)
        if skipped:
            # another consumer wrote some of these partitions since we read the watermarks
            # (a rebalance race): plan again against the fresh watermarks
            writes, counted, late, recent = self._plan_writes(scored, now)
            self.store.apply(writes)
        if self.volume is not None:
            self._count_volume(items)
        metrics.WORKER_REDIS_APPLY_SECONDS.observe(time.monotonic() - t_apply)
        res.aggregated = counted
        res.replayed = len(scored) - counted - late

        for s in scored:
            # posts.scored keeps what a rebuild needs, not the text: a deletion at the source
            # must not leave the text in Kafka for the topic's retention
            self.producer.send(s.record.key, s.encoded, topic=self.cfg.scored_topic)
        for r, reason, detail in dlq:
            res.dlq[reason.split(":")[0]] += 1
            self.producer.send(
                r.key,
                _dlq_value(r, reason, detail, now),
                topic=self.cfg.dlq_topic,
                headers=[("reason", reason.encode())],
            )
        self.producer.flush()
        if self.cfg.keep_texts and recent:
            self.store.remember(recent)
        if deletions:
            self.store.forget_text([d.id for d in deletions])
            res.deletions = len(deletions)
        # last: every record of the batch is applied (the DLQ's and the unmatched ones too)
        last: dict[str, int] = {}
        for it in items:
            part = f"{it.record.topic}:{it.record.partition}"
            last[part] = max(last.get(part, -1), it.record.offset)
        self.store.advance_partitions(last)
        return res

    def _count_volume(self, items: Sequence[_Item]) -> None:
        """Every post of the batch, matched or not, into its minute's volume hash (per source
        and the language its source gave), once: a record at or below its partition's volume
        watermark was counted before (a redelivery)."""
        assert self.volume is not None
        parts = sorted({f"{it.record.topic}:{it.record.partition}" for it in items})
        for _attempt in range(5):
            wms = self.volume.volume_watermarks(parts)
            per: dict[str, PartitionWrite] = {}
            for it in items:
                part = f"{it.record.topic}:{it.record.partition}"
                off = it.record.offset
                if off <= wms.get(part, -1):
                    continue
                pw = per.get(part)
                if pw is None:
                    pw = per[part] = PartitionWrite(part, off, off)
                pw.first_offset = min(pw.first_offset, off)
                pw.last_offset = max(pw.last_offset, off)  # the DLQ's records move it too
                p = it.msg
                if not isinstance(p, Post):
                    continue
                ts = event_time(p.created_ms, p.ingested_ms, self.cfg.future_skew_ms)
                bucket = pw.deltas.setdefault(("m", minute_start(ts)), {})
                for kind in (POSTS, MATCHED) if it.matched else (POSTS,):
                    f = volume_field(kind, p.source, it.declared_lang)
                    bucket[f] = bucket.get(f, 0) + 1
            _applied, skipped = self.volume.apply_volume(list(per.values()))
            if not skipped:
                return
            # another consumer counted some of these partitions since the watermarks were read
            # (a rebalance race): count what is left against the fresh watermarks
        log.warning("volume counts of %d partitions skipped five times in a row: left uncounted", skipped)

    def _score(self, items: Sequence[_Item], outs: Sequence[Any], now: int) -> list[_Scored]:
        """Labels, event time, bucket delta and the posts.scored record of each post that
        matched; a post for which any of them fails is parked."""
        scored = []
        quota: dict[tuple[str, int], int] = {}  # (topic, minute) -> sample candidates so far
        for it, out in zip(items, outs, strict=True):
            p = it.msg
            if not isinstance(p, Post) or not it.topics:
                continue
            stage = "label"
            try:
                sp = scored_post(
                    p,
                    out,
                    self.to_labels,
                    self.cfg.uncertain_below,
                    topics=it.topics,
                    model=self.scorer.name,
                    scored_ms=now,
                    origin=it.record.origin,
                )
                stage = "aggregate"
                ts = event_time(p.created_ms, p.ingested_ms, self.cfg.future_skew_ms)
                sample = None
                if self.cfg.keep_texts:
                    m = minute_start(ts)
                    if any(quota.get((t, m), 0) < self.cfg.texts_per_minute for t in sp.topics):
                        # what the Redis sample may keep: cut on a word boundary, redacted
                        sample = sample_text(p.text)
                        for t in sp.topics:
                            quota[(t, m)] = quota.get((t, m), 0) + 1
                scored.append(
                    _Scored(it.record, sp, ts, post_delta(sp), encode_scored(sp, with_text=False), sample)
                )
            except Exception as exc:  # noqa: BLE001 - one record's failure stays with that record
                it.park(stage, exc)
        return scored

    def _plan_writes(
        self, scored: list[_Scored], now: int
    ) -> tuple[dict[str, list[PartitionWrite]], int, int, list[RecentPost]]:
        pairs = {(t, f"{s.record.topic}:{s.record.partition}") for s in scored for t in s.post.topics}
        wms = self.store.watermarks(sorted(pairs)) if pairs else {}
        per: dict[tuple[str, str], PartitionWrite] = {}
        counted_posts: set[str] = set()
        late = 0
        recent: list[RecentPost] = []
        last_by_part: dict[str, int] = defaultdict(lambda: -1)
        for s in scored:
            part = f"{s.record.topic}:{s.record.partition}"
            last_by_part[part] = max(last_by_part[part], s.record.offset)
        for s in scored:
            r, sp, ts = s.record, s.post, s.ts
            if not sp.topics:
                continue
            if ts < now - self.cfg.lateness_ms:
                late += 1
                continue
            part = f"{r.topic}:{r.partition}"
            fresh = False
            for topic in sp.topics:
                if r.offset <= wms.get((topic, part), -1):
                    continue  # applied before this redelivery
                fresh = True
                pw = per.get((topic, part))
                if pw is None:
                    pw = per[(topic, part)] = PartitionWrite(part, r.offset, last_by_part[part])
                pw.first_offset = min(pw.first_offset, r.offset)
                add_into(pw.deltas.setdefault(("m", minute_start(ts)), {}), s.delta)
                if s.sample is not None:
                    recent.append(RecentPost(topic, sp.post.id, ts, s.sample, sp.post.url, sp.sentiment))
            if fresh:
                counted_posts.add(r.origin)
        writes: dict[str, list[PartitionWrite]] = defaultdict(list)
        for (topic, _part), pw in per.items():
            add_hours(pw.deltas)  # the minutes' sums, as `add_at` per post would give
            writes[topic].append(pw)
        return dict(writes), len(counted_posts), late, recent


@dataclass(frozen=True, slots=True)
class _Scored:
    """A post with its labels, event time, bucket delta and posts.scored record."""

    record: Any
    post: ScoredPost
    ts: int
    delta: dict[str, float]
    encoded: bytes
    sample: str | None  # None: not a candidate for the text sample (its minute has enough)


def holds_partitions(heartbeat: Mapping[str, Any] | None) -> bool:
    """Whether a worker's heartbeat (`AggregateStore.heartbeat`, read back by `health()`) says
    it holds partitions now."""
    return bool(heartbeat and heartbeat.get("partitions"))


def _dlq_value(r: _Record, reason: str, detail: str, now_ms: int) -> bytes:
    """What an operator needs to find and fix a parked record, never its content (the post's
    text, author and links stay in posts.raw, for its retention only): where it is (origin,
    topic, partition, offset: `kcat -t <topic> -p <partition> -o <offset> -c 1`), why (the
    reason, the bad field, a detail that never quotes the value), its size and a SHA-256 of
    its bytes (to recognise the same payload again)."""
    raw = r.value or b""
    kind, _, rest = reason.partition(":")
    return orjson.dumps(
        {
            "reason": reason,
            "field": rest if kind == "decode" else "",
            "detail": detail[:1000],
            "origin": r.origin,
            "topic": r.topic,
            "partition": r.partition,
            "offset": r.offset,
            "dlq_ms": now_ms,
            "size": len(raw),
            "key_size": len(r.key or b""),
            "sha256": hashlib.sha256(raw).hexdigest(),
        }
    )
