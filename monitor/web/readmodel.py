"""The read side as plain data: every figure the dashboard, its API and `mood-monitor mood`
show is computed here, from the store's readers, so the page and the command line never
disagree (`mood_rows` is the one window-figure function; `monitor.app` re-exports it).

`ReadModel` is the seam the HTTP app depends on (`RedisReadModel` here, a fake in the unit
tests). Answers are JSON-ready dicts; times are epoch ms, ages seconds. Nothing here carries
a URL of Redis, a token or a destination's address: processes, connectors and destinations
appear by name only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from monitor.aggregates import HOUR_MS, MINUTE_MS, Bucket, minute_start
from monitor.alerts.episodes import FIRING, PENDING, Episode
from monitor.alerts.settings import AlertSettings
from monitor.errors import ConfigError
from monitor.prevalence import Corrector
from monitor.taxonomy import SENTIMENTS, UNCERTAIN, UNSUPPORTED

if TYPE_CHECKING:  # the figures above the Redis read model import no redis client
    from monitor.store.buckets import RedisAggregateStore

UNITS_MS = {"s": 1000, "m": MINUTE_MS, "h": HOUR_MS, "d": 86_400_000}
STEPS_MS = {"1m": MINUTE_MS, "1h": HOUR_MS}
MAX_POINTS = 1440
LIVE_MINUTES = 3  # the minutes the live stream re-sends (late posts revise the recent ones)
SUMMARY_WINDOW = "5m"


def parse_window(text: str) -> int:
    """'90s', '15m', '1h', '7d' -> milliseconds; ConfigError on anything else."""
    t = text.strip().lower()
    if len(t) < 2 or t[-1] not in UNITS_MS or not t[:-1].isdigit() or int(t[:-1]) <= 0:
        raise ConfigError("--window", "window", f"{text!r} is not like 90s, 15m, 1h or 7d")
    return int(t[:-1]) * UNITS_MS[t[-1]]


def top_emotion(b: Bucket) -> str:
    return max(
        (e for e in b.emotions if e not in (UNCERTAIN, UNSUPPORTED)),
        key=lambda e: b.emotions[e],
        default="-",
    )


def net_sentiment(b: Bucket) -> float:
    """(positive - negative) / (positive + negative), 0 when neither."""
    pos, neg = b.sentiments.get("positive", 0), b.sentiments.get("negative", 0)
    return (pos - neg) / (pos + neg) if pos + neg else 0.0


def mood_row(topic: str, window: str, b: Bucket, corrector: Corrector | None = None) -> dict[str, Any]:
    """One topic's figures over one window, as `mood-monitor mood --json` prints them; with a
    ``corrector``, also the shares corrected for the topic's mix with their interval
    (``corrected``; the raw counted shares stay where they were)."""
    row = {
        "topic": topic,
        "window": window,
        "posts": b.n,
        "negative": round(b.share("negative"), 3),
        "neutral": round(b.share("neutral"), 3),
        "positive": round(b.share("positive"), 3),
        "mean_score": round(b.mean_score, 3),
        "uncertain": b.uncertain,
        "top_emotion": top_emotion(b),
        "emotions": dict(b.emotions),
    }
    if corrector is not None:
        row["corrected"] = corrector.row(b.evidence)
    return row


class WindowReader(Protocol):
    def read_window(self, topic: str, start_ms: int, end_ms: int) -> Bucket: ...


def mood_rows(
    store: WindowReader, topics: Iterable[str], window: str, now_ms: int, corrector: Corrector | None = None
) -> list[dict[str, Any]]:
    """One row of live figures per topic over the last ``window`` (``mood-monitor mood``, the
    demo's table, the dashboard's tiles and its window answer)."""
    window_ms = parse_window(window)
    return [
        mood_row(t, window, store.read_window(t, now_ms - window_ms, now_ms + MINUTE_MS), corrector)
        for t in topics
    ]


def point(b: Bucket) -> dict[str, Any]:
    """One bucket of a series: counts (the page stacks them) and the mean score."""
    return {
        "t": b.start_ms,
        "n": b.n,
        "s": {k: b.sentiments.get(k, 0) for k in (*SENTIMENTS, UNCERTAIN, UNSUPPORTED)},
        "e": dict(b.emotions),
        "score_mean": round(b.mean_score, 4),
        "net": round(net_sentiment(b), 4),
    }


class ReadModel(Protocol):
    """What the HTTP app reads (`RedisReadModel`; a fake in tests)."""

    def topics(self) -> list[str]: ...
    def summary(self, topics: Sequence[str], window: str, now_ms: int) -> list[dict[str, Any]]: ...
    def window(self, topic: str, window: str, now_ms: int) -> dict[str, Any]: ...
    def series(self, topic: str, start_ms: int, end_ms: int, step: str) -> list[dict[str, Any]]: ...
    def posts(self, topic: str, start_ms: int, end_ms: int, limit: int) -> list[dict[str, Any]]: ...
    def alerts(self, topics: Sequence[str], now_ms: int) -> dict[str, Any]: ...
    def status(self, now_ms: int) -> dict[str, Any]: ...
    def ping(self) -> bool: ...


def summary_row(topic: str, window: str, cur: Bucket, prev: Bucket) -> dict[str, Any]:
    """A tile: the window's figures, the previous window's and the change in posts."""
    row = mood_row(topic, window, cur)
    before = mood_row(topic, window, prev)
    row["net_sentiment"] = round(net_sentiment(cur), 3)
    before["net_sentiment"] = round(net_sentiment(prev), 3)
    return {
        "topic": topic,
        "current": row,
        "previous": before,
        "posts_change": cur.n - prev.n,
        "posts_change_ratio": round((cur.n - prev.n) / prev.n, 3) if prev.n else None,
    }


LOG_ENTRIES = 200  # the newest alert-log entries the timeline shows
_LOG_FIELDS = ("kind", "topic", "rule", "rule_kind", "metric", "severity", "ts_ms", "episode")
_LOG_FIGURES = ("episode_started_ms", "notice", "value", "baseline", "z", "posts", "window_min", "text")


def log_entry(e: Mapping[str, Any]) -> dict[str, Any]:
    """An alert-log entry as the API shows it: the episode transition and its figures."""
    return {k: e.get(k) for k in ("id", "recorded_ms", *_LOG_FIELDS, *_LOG_FIGURES)}


_HEARTBEAT_FIELDS = ("records", "model", "trained", "evaluations", "delivered", "retries", "given_up")


class RedisReadModel:
    """The read model over the real store, the alert ledger and the connectors' state."""

    def __init__(
        self,
        store: RedisAggregateStore,
        alerts: AlertSettings,
        *,
        connector_statuses: Callable[[], Mapping[str, Mapping[str, str]]] | None = None,
        corrector: Corrector | None = None,
    ) -> None:
        from monitor.store.alerts import RedisAlertLedger, RedisAlertLog

        self.store = store
        self.ledger = RedisAlertLedger(store)
        self.log = RedisAlertLog(store)
        self.alert_settings = alerts
        self._connector_statuses = connector_statuses or dict
        self.corrector = corrector  # the window answer's corrected shares, as `mood --json`

    @classmethod
    def from_url(cls, store: RedisAggregateStore, alerts: AlertSettings, redis_url: str) -> RedisReadModel:
        from monitor.store.connectors import read_statuses

        prefix = f"{store.prefix}:conn:"
        return cls(store, alerts, connector_statuses=lambda: read_statuses(redis_url, prefix=prefix))

    def topics(self) -> list[str]:
        return self.store.topics()

    def ping(self) -> bool:
        return self.store.ping()

    def summary(self, topics: Sequence[str], window: str, now_ms: int) -> list[dict[str, Any]]:
        w = parse_window(window)
        end = now_ms + MINUTE_MS
        out = []
        for t in topics:
            cur = self.store.read_window(t, now_ms - w, end)
            prev = self.store.read_window(t, now_ms - 2 * w, now_ms - w)
            out.append(summary_row(t, window, cur, prev))
        return out

    def window(self, topic: str, window: str, now_ms: int) -> dict[str, Any]:
        return mood_rows(self.store, [topic], window, now_ms, self.corrector)[0]

    def series(self, topic: str, start_ms: int, end_ms: int, step: str) -> list[dict[str, Any]]:
        if step == "1h":
            buckets = self.store.read_hours(topic, start_ms, end_ms)
        else:
            buckets = self.store.read_minutes(topic, start_ms, end_ms)
        return [point(b) for b in buckets]

    def posts(self, topic: str, start_ms: int, end_ms: int, limit: int) -> list[dict[str, Any]]:
        return [
            {
                "id": str(p.get("id", "")),
                "ts_ms": int(p.get("ts_ms", 0) or 0),
                "text": str(p.get("text", "")),
                "url": str(p.get("url", "") or ""),
                "sentiment": str(p.get("sentiment", "")),
            }
            for p in self.store.recent_posts(topic, start_ms, end_ms, limit=limit)
        ]

    def alerts(self, topics: Sequence[str], now_ms: int) -> dict[str, Any]:
        open_: list[dict[str, Any]] = []
        past: list[dict[str, Any]] = []
        for topic in topics:
            rules = {r.name: r for r in self.alert_settings.rules_for(topic)}
            for name, raw in self.ledger.episodes(topic, list(rules)).items():
                ep = Episode.from_json(raw)
                base = {
                    "topic": topic,
                    "rule": name,
                    "kind": rules[name].kind,
                    "metric": rules[name].metric,
                    "started_ms": ep.started_ms,
                    "notices": ep.notices,
                    "severity": ep.notified_severity or rules[name].severity,
                    "window_min": rules[name].window_min,  # started_ms is the first breaching window's end
                    "peak_level": round(ep.peak_level, 4),
                }
                if ep.status in (PENDING, FIRING):
                    open_.append({**base, "status": ep.status, "last_end_ms": ep.last_end_ms})
                elif ep.started_ms and ep.notices and ep.cooldown_until_ms:
                    ended = ep.cooldown_until_ms - rules[name].cooldown_s * 1000
                    past.append({**base, "status": "resolved", "ended_ms": ended})
        open_.sort(key=lambda e: -e["started_ms"])
        past.sort(key=lambda e: -e["ended_ms"])
        wanted = set(topics)
        log = [log_entry(e) for e in self.log.last(LOG_ENTRIES) if e.get("topic") in wanted]
        return {"open": open_, "past": past, "log": log}

    def status(self, now_ms: int) -> dict[str, Any]:
        health = self.store.health()
        processes = []
        for name in sorted(health):
            beat = health[name]
            info = {k: beat[k] for k in _HEARTBEAT_FIELDS if k in beat}
            if "partitions" in beat:
                info["partitions"] = len(beat["partitions"])
            processes.append(
                {
                    "name": name,
                    "role": name.split("-", 1)[0],
                    "ts_ms": int(beat.get("ts_ms", 0)),
                    "age_s": round((now_ms - int(beat.get("ts_ms", 0))) / 1000, 1),
                    **info,
                }
            )
        connectors: list[dict[str, Any]] = []
        for name, h in self._connector_statuses().items():
            if not h:
                connectors.append({"name": name, "state": "stale"})
                continue
            connectors.append(
                {
                    "name": name,
                    "state": "connected" if h.get("connected") == "1" else "down",
                    "last_event_ms": int(h.get("last_event_ms", "0") or 0),
                    "lag_s": round(int(h.get("lag_ms", "0") or 0) / 1000, 1),
                    **{k: int(h.get(k, "0") or 0) for k in ("produced", "deletions", "bad", "errors")},
                }
            )
        worker = self.store.stats("worker")
        dlq = {k.removeprefix("dlq:"): v for k, v in worker.items() if k.startswith("dlq:")}
        from monitor.store.volume import RedisVolumeStore

        # the whole stream, matched or not, over the summary window (`monitor.store.volume`)
        minutes = RedisVolumeStore(self.store).read_volume(now_ms - parse_window(SUMMARY_WINDOW), now_ms + 1)
        posts, matched = sum(m.posts for m in minutes), sum(m.matched for m in minutes)
        by_source: dict[str, dict[str, int]] = {}
        for m in minutes:
            for key, (n, k) in m.by_source.items():
                slot = by_source.setdefault(key, {"posts": 0, "matched": 0})
                slot["posts"] += n
                slot["matched"] += k
        sealed = self.store.sealed_until_ms()
        return {
            "now_ms": now_ms,
            "processes": processes,
            "connectors": connectors,
            "worker": {k: v for k, v in worker.items() if not k.startswith("dlq:")},
            "dlq": {"total": sum(dlq.values()), "by_reason": dlq},
            "stream": {
                "window": SUMMARY_WINDOW,
                "posts": posts,
                "matched": matched,
                "matched_share": round(matched / posts, 4) if posts else None,
                "by_source_lang": by_source,  # "<source>|<lang>" -> posts, matched
            },
            "sealed_until_ms": sealed,
            "sealed_lag_s": round((minute_start(now_ms) - sealed) / 1000, 1) if sealed else None,
            "alerts": {
                "outbox": len(self.ledger.outbox()),
                "disabled_destinations": sorted(self.ledger.disabled()),
            },
        }


def now_ms() -> int:
    return int(time.time() * 1000)
