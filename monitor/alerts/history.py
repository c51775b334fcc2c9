"""The alert log's entries: what the dashboard's timeline and Grafana's annotations read of each
episode transition. Pure; the alerter hands `log_fields` to `RedisAlertLedger.commit`, which
XADDs them in the same Lua call that claims the notice's fingerprint and saves the episode, so an
entry is written exactly when (and only once ever that) the notice is queued.

    kind       open | escalate | resolve     (the episode's fire / renotify / resolve)
    topic, rule, rule_kind (share_shift | volume_spike | threshold), metric, severity
    ts_ms      the evaluated window's end (data time; the entry's stream id is when it was written)
    episode    a stable id of the episode (topic, rule, its start), the same on all its entries
    episode_started_ms, notice (the how-many-th notice), alert (the message's short id)
    value, baseline, z, posts, window_min   the figures the decision was taken on
    text       one line for a human (no post text: only topic, rule and figures)
"""

from __future__ import annotations

import hashlib

from monitor.alerts.message import AlertEvent, summary

KINDS = {"fire": "open", "renotify": "escalate", "resolve": "resolve"}


def episode_id(topic: str, rule: str, started_ms: int) -> str:
    """The same for every entry of one episode, different for the next episode of that rule."""
    return hashlib.sha256(f"{topic}|{rule}|{started_ms}".encode()).hexdigest()[:12]


def _plain(text: str) -> str:
    """The summary without its leading Slack emoji code (``:rotating_light: ...``)."""
    if text.startswith(":") and " " in text:
        return text.split(" ", 1)[1]
    return text.strip()


def log_fields(alert: AlertEvent) -> list[str]:
    """The stream entry of a notice as a flat [field, value, ...] list (all strings)."""
    fields = {
        "kind": KINDS[alert.action],
        "topic": alert.topic,
        "rule": alert.rule,
        "rule_kind": alert.kind,
        "metric": alert.metric,
        "severity": alert.severity,
        "ts_ms": str(alert.window_end_ms),
        "episode": episode_id(alert.topic, alert.rule, alert.episode_started_ms),
        "episode_started_ms": str(alert.episode_started_ms),
        "notice": str(alert.notice),
        "alert": alert.short_id,
        "value": f"{alert.value:.6g}",
        "baseline": f"{alert.baseline:.6g}",
        "z": "" if alert.z is None else f"{alert.z:.4g}",
        "posts": str(alert.posts),
        "window_min": str(alert.window_min),
        "text": _plain(summary(alert)),
    }
    return [x for kv in fields.items() for x in kv]
