"""`mood-monitor rebuild`: recompute a time range's aggregates from the scored posts kept in
Kafka (``posts.scored``, retained for ``kafka.scored_retention_ms``), e.g. after a Redis loss.

``posts.scored`` holds the posts that matched a topic tracked when they were scored (the worker
matches before the model), and the baseline sample's: everything the topics' buckets were made
of, so a rebuild of those topics is complete. A topic added later has no past in it: that is
`monitor.backfill`'s work, from ``posts.raw``. The stream-volume hashes (every post, matched or
not) cannot be rebuilt from it and are left as they are.

The range is widened to whole hours so minute and hour buckets agree. Redeliveries in
``posts.scored`` are dropped (one record per post id, the first wins); posts that the worker
judged too late (event time older than its processing time minus the lateness allowance) stay
out, as they did live. Run it with the workers stopped: it overwrites the buckets in the range.

A record that is not a valid scored post (`decode_scored` checks every field: finite scores in
range, known labels) is counted as ``undecodable`` and skipped; one naming a topic that the
configuration does not track is counted as ``untracked`` and skipped (anyone who can write to
``posts.scored`` could otherwise create topics): one bad record never aborts a rebuild half-way.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson

from monitor.aggregates import (
    HOUR_MS,
    MINUTE_MS,
    Delta,
    add_into,
    event_time,
    hour_start,
    minute_start,
    post_delta,
)
from monitor.errors import ConfigError, DecodeError

log = logging.getLogger(__name__)


@dataclass
class RebuildResult:
    read: int = 0
    posts: int = 0
    duplicates: int = 0
    undecodable: int = 0
    untracked: int = 0  # records naming a topic the configuration does not track
    too_late: int = 0
    out_of_range: int = 0
    topics: int = 0
    start_ms: int = 0
    end_ms: int = 0


def rebuild(
    records: list[Any],
    store: Any,
    start_ms: int,
    end_ms: int,
    *,
    lateness_ms: int,
    future_skew_ms: int,
    progress: bool = False,
    topics: frozenset[str] | None = None,
) -> RebuildResult:
    """Recompute the buckets in [start_ms, end_ms) (widened to whole hours) from scored records."""
    from monitor.messages import decode_scored

    start = hour_start(start_ms)
    end = hour_start(end_ms - 1) + HOUR_MS if end_ms > start else start + HOUR_MS
    res = RebuildResult(read=len(records), start_ms=start, end_ms=end)
    seen: set[str] = set()
    per: dict[str, dict[str, dict[int, Delta]]] = defaultdict(lambda: {"m": {}, "h": {}})
    it: Any = records
    if progress:
        from tqdm import tqdm

        it = tqdm(records, unit="post", desc="rebuild")
    for r in it:
        try:
            sp = decode_scored(r.value or b"")
            d = post_delta(sp)
        except DecodeError:
            res.undecodable += 1
            continue
        except Exception as exc:  # noqa: BLE001 - one bad record must not abort the rebuild
            log.warning("rebuild: skipped a record (%s)", type(exc).__name__)
            res.undecodable += 1
            continue
        if topics is not None and not topics.issuperset(sp.topics):
            res.untracked += 1
            continue
        if sp.post.id in seen:
            res.duplicates += 1
            continue
        seen.add(sp.post.id)
        ts = event_time(sp.post.created_ms, sp.post.ingested_ms, future_skew_ms)
        if not start <= ts < end:
            res.out_of_range += 1
            continue
        if not sp.topics:
            continue
        if ts < sp.scored_ms - lateness_ms:
            res.too_late += 1
            continue
        res.posts += 1
        for topic in sp.topics:
            add_into(per[topic]["m"].setdefault(minute_start(ts), {}), d)
            add_into(per[topic]["h"].setdefault(hour_start(ts), {}), d)
    minutes = list(range(start, end, MINUTE_MS))
    hours = list(range(start, end, HOUR_MS))
    for topic in set(per) | set(store.topics()):
        store.replace_buckets(topic, "m", minutes, per[topic]["m"] if topic in per else {})
        store.replace_buckets(topic, "h", hours, per[topic]["h"] if topic in per else {})
    res.topics = len(per)
    return res


def cmd_rebuild(args: argparse.Namespace) -> int:
    from monitor.app import build_store, parse_window
    from monitor.kafka import read_topic
    from monitor.settings import load_settings

    s = load_settings(args.config)
    now = int(time.time() * 1000)
    if not args.since and not args.start_ms:
        raise ConfigError("rebuild", "--since/--start-ms", "give the range to rebuild, e.g. --since 6h")
    start = now - parse_window(args.since) if args.since else int(args.start_ms)
    end = int(args.end_ms) if args.end_ms else now + MINUTE_MS
    # scored records are produced after their event: read from a little before the range
    read_from = start - s.worker.lateness_s * 1000 - HOUR_MS
    records = read_topic(
        s.kafka,
        s.kafka.scored_topic,
        timeout_s=args.timeout_s,
        start_ms=None if args.from_beginning else max(0, read_from),
    )
    res = rebuild(
        records,
        build_store(s),
        start,
        end,
        lateness_ms=s.worker.lateness_s * 1000,
        future_skew_ms=s.worker.future_skew_s * 1000,
        progress=not args.quiet,
        topics=frozenset(t.name for t in s.topics) | {s.worker.baseline_topic},
    )
    print(orjson.dumps(res.__dict__).decode())
    return 0


def add_parsers(sub: Any) -> None:
    sp = sub.add_parser("rebuild", help="recompute aggregates for a time range from posts.scored")
    sp.add_argument("--config", default=None)
    sp.add_argument("--since", default=None, help="e.g. 6h: rebuild from this long ago until now")
    sp.add_argument("--start-ms", default=None)
    sp.add_argument("--end-ms", default=None)
    sp.add_argument("--from-beginning", action="store_true", help="read posts.scored from its start")
    sp.add_argument("--timeout-s", type=float, default=30.0)
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=cmd_rebuild)
