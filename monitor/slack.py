"""Slack Block Kit messages for alerts, and redaction of personal data in quoted posts. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?<!\w)\+?\d[\d\s().-]{7,}\d(?!\w)")


def redact(text: str) -> str:
    return PHONE.sub("[phone]", EMAIL.sub("[email]", text))


def short(text: str, limit: int = 160) -> str:
    t = " ".join(text.split())
    return t if len(t) <= limit else t[: limit - 1] + "…"


@dataclass(frozen=True)
class AlertEvent:
    topic: str
    rule: str
    metric: str
    value: float
    threshold: float
    direction: str  # "above" | "below"
    posts: int
    window_min: int
    window_end_ms: int
    severity: str
    mean_score: float
    emotions: Mapping[str, float] = field(default_factory=dict)
    examples: Sequence[Mapping[str, Any]] = ()
    resolved: bool = False

    @property
    def fingerprint(self) -> str:
        return f"{self.topic}|{self.rule}|{self.window_end_ms}|{'resolved' if self.resolved else 'firing'}"


def _fmt(metric: str, v: float) -> str:
    return f"{v:.0%}" if metric.endswith("_share") else (f"{v:+.2f}" if metric == "mean_score" else f"{v:.0f}")


def block_kit(ev: AlertEvent) -> dict[str, Any]:
    """The Slack message: a plain-text fallback plus Block Kit blocks with the evidence."""
    what = ev.metric.replace("_", " ")
    icon = ":white_check_mark:" if ev.resolved else {"critical": ":rotating_light:", "warning": ":warning:"}.get(
        ev.severity, ":information_source:")
    title = (f"Resolved: {what} on {ev.topic} is back {'below' if ev.direction == 'above' else 'above'} "
             f"{_fmt(ev.metric, ev.threshold)}") if ev.resolved else (
        f"{what.capitalize()} on {ev.topic} is {_fmt(ev.metric, ev.value)} "
        f"({ev.direction} {_fmt(ev.metric, ev.threshold)})")
    mix = ", ".join(f"{k} {v:.0%}" for k, v in sorted(ev.emotions.items(), key=lambda kv: -kv[1])[:4]) or "n/a"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{title}"[:150]}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Topic*\n{ev.topic}"},
            {"type": "mrkdwn", "text": f"*Rule*\n{ev.rule} ({ev.severity})"},
            {"type": "mrkdwn", "text": f"*{what.capitalize()}*\n{_fmt(ev.metric, ev.value)} "
                                       f"(threshold {_fmt(ev.metric, ev.threshold)})"},
            {"type": "mrkdwn", "text": f"*Posts*\n{ev.posts} in the last {ev.window_min} min"},
            {"type": "mrkdwn", "text": f"*Mean sentiment*\n{ev.mean_score:+.2f}"},
            {"type": "mrkdwn", "text": f"*Emotion mix*\n{mix}"},
        ]},
    ]
    if ev.examples and not ev.resolved:
        lines = []
        for ex in list(ev.examples)[:3]:
            txt = short(redact(str(ex.get("text", ""))))
            url = ex.get("url")
            lines.append(f"• <{url}|{txt}>" if url else f"• {txt}")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Representative posts*\n" +
                                                   "\n".join(lines)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                   f"mood-monitor · {icon} · window ending {ev.window_end_ms} (epoch ms)"}]})
    return {"text": f"{icon} {title}", "blocks": blocks}


def generic_json(ev: AlertEvent) -> dict[str, Any]:
    return {"type": "mood_alert", "status": "resolved" if ev.resolved else "firing", "topic": ev.topic,
            "rule": ev.rule, "metric": ev.metric, "value": ev.value, "threshold": ev.threshold,
            "direction": ev.direction, "posts": ev.posts, "window_min": ev.window_min,
            "window_end_ms": ev.window_end_ms, "severity": ev.severity, "mean_score": ev.mean_score,
            "emotions": dict(ev.emotions),
            "examples": [{"text": short(redact(str(e.get("text", "")))), "url": e.get("url")}
                         for e in list(ev.examples)[:3]],
            "fingerprint": ev.fingerprint}
