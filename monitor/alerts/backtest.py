"""`mood-monitor backtest`: replay minute buckets through the alert rules and print when each
alert would have fired, re-notified and resolved, so thresholds can be tuned before going live.

    mood-monitor backtest [--config F] [--topic T ...] [--since 24h | --start-ms A --end-ms B]
    mood-monitor backtest --jsonl FILE        buckets or scored posts from a file, no Redis

`simulate` is the pure core and takes the very same decisions as the live alerter
(`rules.evaluate` + `episodes.step`, one evaluation per minute end, cooldowns in data time).

JSONL lines are either minute buckets ``{"topic", "start_ms", "n", "s:negative", "e:anger", ...}``
(the fields of aggregates.py) or scored posts ``{"topic", "ts_ms", "sentiment", "emotion"}``;
a line that is neither is reported with its line number and counted, never silently skipped.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from monitor.aggregates import MINUTE_MS, Bucket, minute_start
from monitor.alerts.episodes import Episode, step
from monitor.alerts.message import fmt
from monitor.alerts.rules import evaluate
from monitor.alerts.settings import RuleSettings
from monitor.errors import ConfigError


@dataclass(frozen=True)
class Transition:
    topic: str
    rule: str
    action: str  # fire | renotify | resolve
    end_ms: int
    severity: str
    value: float
    baseline: float
    z: float | None
    posts: int
    metric: str

    def line(self) -> str:
        ts = datetime.fromtimestamp(self.end_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        z = "n/a" if self.z is None else f"{self.z:.1f}"
        return (
            f"{ts} UTC  {self.action.upper():8s} topic={self.topic} rule={self.rule} "
            f"severity={self.severity} value={fmt(self.metric, self.value)} "
            f"baseline={fmt(self.metric, self.baseline)} z={z} posts={self.posts}"
        )


def contiguous(buckets: Iterable[Bucket], start_ms: int, end_ms: int) -> list[Bucket]:
    """Minute buckets [start, end), one per minute, empty ones filled in."""
    by = {b.start_ms: b for b in buckets}
    return [by.get(t) or Bucket(t) for t in range(minute_start(start_ms), end_ms, MINUTE_MS)]


def simulate(
    rules: Sequence[RuleSettings], topic: str, minutes: Sequence[Bucket], start_ms: int, end_ms: int
) -> list[Transition]:
    """Evaluate ``rules`` at every minute end in (start, end]; ``minutes`` must be contiguous
    and reach back ``history_min`` before ``start`` for full baselines."""
    if not minutes:
        return []
    first = minutes[0].start_ms
    out: list[Transition] = []
    for rule in rules:
        ep = Episode()
        span = rule.history_min
        for end in range(minute_start(start_ms) + MINUTE_MS, end_ms + 1, MINUTE_MS):
            i = (end - first) // MINUTE_MS
            ev = evaluate(
                rule,
                minutes[max(0, i - span) : i],
                end,
                baseline_end_ms=ep.baseline_end_ms if ep.open else None,
            )
            ep, action = step(ep, ev, rule)
            if action is not None:
                out.append(
                    Transition(
                        topic,
                        rule.name,
                        action,
                        end,
                        ep.notified_severity or ev.severity,
                        ev.value,
                        ev.baseline,
                        ev.z,
                        ev.posts,
                        rule.metric,
                    )
                )
    out.sort(key=lambda t: (t.end_ms, t.topic, t.rule))
    return out


def read_jsonl(path: Path) -> tuple[dict[str, list[Bucket]], int]:
    """Per-topic minute buckets from a JSONL file; returns (buckets, bad line count)."""
    acc: dict[str, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    bad = 0
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise ConfigError(str(path), "--jsonl", f"cannot read: {exc.strerror}") from exc
    for no, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            d = orjson.loads(raw)
            topic = str(d["topic"])
            if "start_ms" in d:
                fields = acc[topic][minute_start(int(d["start_ms"]))]
                for k, v in d.items():
                    if k == "n" or k == "score_sum" or k.split(":", 1)[0] in ("s", "e", "l", "src"):
                        fields[k] += float(v)
            else:
                fields = acc[topic][minute_start(int(d["ts_ms"]))]
                fields["n"] += 1
                fields[f"s:{d['sentiment']}"] += 1
                if d.get("emotion"):
                    fields[f"e:{d['emotion']}"] += 1
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            bad += 1
            print(
                f"{path}:{no}: skipped, not a bucket or scored post ({type(exc).__name__}: {exc})",
                file=sys.stderr,
            )
    return {t: [Bucket.from_hash(s, h) for s, h in sorted(per.items())] for t, per in acc.items()}, bad
