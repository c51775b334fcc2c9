"""`mood-monitor backfill --topic NAME`: count a topic added later over the posts that came in
before it was tracked, read again from ``posts.raw`` (kept for ``kafka.raw_retention_ms``).

The worker matches topics before the model (`monitor.worker`), so ``posts.scored`` holds only
the posts that matched a topic tracked at the time: a new topic's past cannot come from it (that
is `rebuild`'s source, for topics already tracked). Backfill reads ``posts.raw`` from ``--since``
(or its beginning) up to its end, matches every post against the one topic, scores the ones that
match with the configured model and adds their deltas to the topic's minute and hour buckets.
It runs beside live workers, once they have picked the topic up (within
``topic_registry.poll_s`` of ``topics add``, or after a SIGHUP for the file), and counts each
post once:

* on a partition where live workers already counted the topic (``posts.scored`` holds a record
  of it from there), backfill counts the partition's matching records before the first of them;
* on a partition where they have not, it counts the matching records the workers have processed
  so far (up to the partition's watermark, read before ``posts.scored``, which a worker flushes
  before it moves the watermark): they all went by before the topic was tracked;
* the last offset counted is kept in the topic's watermark hash (``backfill:<partition>``,
  written in the same atomic call as the buckets), so a second run counts only what is new
  to it: records that went by a worker which had not picked up the topic yet when the first run
  ran. Run it again after a while if the first run came early.

One case is not covered: a worker that had not picked up the topic yet when its partition moved
to it from one that had (a rebalance within ``poll_s`` of the change) lets a few records go by
uncounted after the topic's first live record.

What it does not do: the Redis text sample of the topic is not filled for the past, nothing is
written to ``posts.scored`` (a later `rebuild` of the range does not reproduce the backfilled
posts: backfill again after it), lateness is not applied (a past post is late by definition;
buckets already past their Redis lifetime are skipped), and minutes the alerter already sealed
are not evaluated again. A post older than ``posts.raw``'s retention is gone.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from monitor.aggregates import add_at, event_time, post_delta
from monitor.errors import ConfigError, DecodeError
from monitor.messages import Post, decode, decode_scored
from monitor.model.base import EncodeFn, LabelFn, Scorer, scored_post
from monitor.model.language import post_language
from monitor.store.buckets import PartitionWrite
from monitor.topics import TopicMatcher

log = logging.getLogger(__name__)

BACKFILL_PREFIX = "backfill:"
SCORE_CHUNK = 256


@dataclass
class BackfillResult:
    topic: str
    read: int = 0
    matched: int = 0  # posts of posts.raw that match the topic
    counted: int = 0  # of them, added to the buckets now
    live: int = 0  # of them, counted by the live workers already (left alone)
    undecodable: int = 0
    partitions: dict[str, str] = field(default_factory=dict)  # partition -> how it was written


def first_live_offsets(scored: Sequence[Any], topic: str) -> dict[str, int]:
    """raw partition ("<kafka-topic>:<partition>") -> the first raw offset live workers counted
    ``topic`` at, from the ``posts.scored`` records naming it (their ``origin``)."""
    out: dict[str, int] = {}
    for r in scored:
        try:
            sp = decode_scored(r.value or b"")
        except DecodeError:
            continue
        if topic not in sp.topics or sp.origin.count(":") < 2:
            continue
        part, _, off = sp.origin.rpartition(":")
        if off.isdigit():
            out[part] = min(out.get(part, int(off)), int(off))
    return out


def backfill(
    topic: str,
    matcher: TopicMatcher,
    raw: Sequence[Any],
    read_scored: Callable[[], Sequence[Any]],
    store: Any,
    scorer: Scorer,
    to_labels: LabelFn,
    encode: EncodeFn,
    *,
    uncertain_below: float = 0.0,
    future_skew_ms: int = 300_000,
    max_text_chars: int = 20_000,
) -> BackfillResult:
    """Count ``topic`` over the ``raw`` records (see the module docstring)."""
    res = BackfillResult(topic, read=len(raw))
    per_part: dict[str, list[tuple[int, Post]]] = {}
    for r in raw:
        try:
            msg = decode(r.value if r.value is not None else b"", max_text_chars=max_text_chars)
        except DecodeError:
            res.undecodable += 1
            continue
        if not isinstance(msg, Post) or topic not in matcher.match(msg):
            continue
        msg = msg.with_lang(post_language(msg.lang, msg.text))
        per_part.setdefault(f"{r.topic}:{r.partition}", []).append((r.offset, msg))
        res.matched += 1
    for part in per_part:
        per_part[part].sort(key=lambda x: x[0])

    deltas = _score_all(topic, per_part, scorer, to_labels, encode, uncertain_below, future_skew_ms)
    parts = sorted(per_part)
    # read before posts.scored: a record at or below a partition's watermark was applied, and a
    # worker flushes posts.scored before it advances the watermark
    processed = store.partition_watermarks(parts)
    live = first_live_offsets(read_scored(), topic)
    done = store.watermarks([(topic, BACKFILL_PREFIX + p) for p in parts])
    writes = []
    for part in parts:
        # live workers count the topic from its first record they scored; a partition with none
        # yet: every record they processed so far went by without it
        bound = live.get(part, processed.get(part, -1) + 1)
        before = done.get((topic, BACKFILL_PREFIX + part), -1)
        rows = [(o, d) for o, d in deltas[part] if before < o < bound]
        res.live += sum(1 for o, _ in deltas[part] if o >= bound)
        if not rows:
            res.partitions[part] = "nothing left to count"
            continue
        pw = PartitionWrite(BACKFILL_PREFIX + part, rows[0][0], rows[-1][0])
        for _off, (ts, d) in rows:
            add_at(pw.deltas, ts, d)
        writes.append(pw)
        res.counted += len(rows)
        res.partitions[part] = f"counted {len(rows)} up to offset {rows[-1][0]}"
    if writes:
        store.apply({topic: writes})
    return res


def _score_all(
    topic: str,
    per_part: dict[str, list[tuple[int, Post]]],
    scorer: Scorer,
    to_labels: LabelFn,
    encode: EncodeFn,
    uncertain_below: float,
    future_skew_ms: int,
) -> dict[str, list[tuple[int, tuple[int, dict[str, float]]]]]:
    """partition -> [(offset, (event time, delta))] in offset order."""
    flat = [(part, off, p) for part, rows in per_part.items() for off, p in rows]
    out: dict[str, list[tuple[int, tuple[int, dict[str, float]]]]] = {part: [] for part in per_part}
    now = int(time.time() * 1000)
    for i in range(0, len(flat), SCORE_CHUNK):
        chunk = flat[i : i + SCORE_CHUNK]
        texts, _tokens = encode([p.text for _, _, p in chunk])
        outs = scorer.score(texts, [p.lang for _, _, p in chunk])
        for (part, off, p), o in zip(chunk, outs, strict=True):
            sp = scored_post(
                p,
                o,
                to_labels,
                uncertain_below,
                topics=(topic,),
                model=scorer.name,
                scored_ms=now,
                origin=f"{part}:{off}",
            )
            ts = event_time(p.created_ms, p.ingested_ms, future_skew_ms)
            out[part].append((off, (ts, post_delta(sp))))
    return out


def cmd_backfill(args: argparse.Namespace) -> int:
    from monitor.app import build_catalog, build_scorer, build_store, parse_window
    from monitor.catalog import to_rule
    from monitor.kafka import read_topic
    from monitor.model.runtime import pretokenizer
    from monitor.settings import load_settings

    s = load_settings(args.config)
    store = build_store(s)
    catalog = build_catalog(s, store, args.config)
    rules = {t.topic.name: to_rule(t.topic) for t in catalog.tracked()}
    if args.topic not in rules:
        raise ConfigError("backfill", "--topic", f"{args.topic!r} is not a tracked topic (file or registry)")
    if not args.since and not args.from_beginning:
        raise ConfigError("backfill", "--since/--from-beginning", "give how far back to read posts.raw")
    now = int(time.time() * 1000)
    start = None if args.from_beginning else max(0, now - parse_window(args.since))
    raw = read_topic(s.kafka, s.kafka.raw_topic, timeout_s=args.timeout_s, start_ms=start)
    scorer, to_labels, floor = build_scorer(s)
    res = backfill(
        args.topic,
        TopicMatcher([rules[args.topic]]),
        raw,
        lambda: read_topic(s.kafka, s.kafka.scored_topic, timeout_s=args.timeout_s, start_ms=start),
        store,
        scorer,
        to_labels,
        pretokenizer(scorer),
        uncertain_below=floor,
        future_skew_ms=s.worker.future_skew_s * 1000,
        max_text_chars=s.worker.max_text_chars,
    )
    print(orjson.dumps(res.__dict__).decode())
    return 0


def add_parsers(sub: Any) -> None:
    sp = sub.add_parser("backfill", help="count a newly added topic over the past posts of posts.raw")
    sp.add_argument("--config", default=None)
    sp.add_argument("--topic", required=True, help="a tracked topic (in the file or the registry)")
    sp.add_argument("--since", default=None, help="e.g. 24h: read posts.raw from this long ago")
    sp.add_argument("--from-beginning", action="store_true", help="read posts.raw from its start")
    sp.add_argument("--timeout-s", type=float, default=30.0)
    sp.set_defaults(func=cmd_backfill)
