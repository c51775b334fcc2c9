"""Alert messages: Slack Block Kit and the generic JSON body, and redaction of personal data
in quoted posts. Pure.

A message carries the evidence: topic, rule, current vs baseline value, z, posts, the window,
the emotion mix, up to three representative posts (short, linked, e-mail addresses and phone
numbers redacted, mrkdwn escaped) and the terms that moved; an episode's end gets a resolve
message. Slack limits respected: header <= 150 chars, <= 10 fields, section text <= 3000.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.patterns import EMAIL, PHONE_CANDIDATE, SAFE_URL

ICONS = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _phone_span(text: str, start: int, end: int) -> tuple[int, int]:
    """A candidate's span cut to a number's edges: not inside a word or after '+' on the left,
    ending in a digit not followed by a word character (the lookarounds RE2 does not have)."""
    while start < end and start > 0 and (_word(text[start - 1]) or text[start - 1] == "+"):
        start += 1
    while end > start and not (text[end - 1].isdigit() and (end == len(text) or not _word(text[end]))):
        end -= 1
    return start, end


def _is_phone(s: str) -> bool:
    digits = sum(c.isdigit() for c in s)
    return 9 <= digits <= 15 or (s.startswith("+") and 7 <= digits <= 15)


def redact(text: str) -> str:
    """E-mail addresses -> [email], phone numbers (7-15 digits with +, else 9-15) -> [phone]."""
    text = EMAIL.sub("[email]", text)
    out, last = [], 0
    for m in PHONE_CANDIDATE.finditer(text):
        a, b = _phone_span(text, m.start(), m.end())
        if b > a and PHONE_CANDIDATE.fullmatch(text[a:b]) and _is_phone(text[a:b]):
            out += [text[last:a], "[phone]"]
            last = b
    return "".join([*out, text[last:]])


def escape(text: str) -> str:
    """Slack mrkdwn control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def short(text: str, limit: int = 160) -> str:
    t = " ".join(text.split())
    return t if len(t) <= limit else t[: limit - 1] + "…"


def safe_url(url: object) -> str | None:
    u = str(url or "")
    return u if SAFE_URL.fullmatch(u) else None


@dataclass(frozen=True)
class AlertEvent:
    topic: str
    rule: str
    kind: str  # share_shift | volume_spike | threshold
    metric: str
    action: str  # fire | renotify | resolve
    severity: str
    value: float
    baseline: float
    posts: int
    window_min: int
    window_end_ms: int
    episode_started_ms: int
    notice: int = 1  # the how-many-th notice of the episode
    z: float | None = None
    phi: float = 1.0
    hits: int = 0
    baseline_kind: str = "ewma"
    emotions: Mapping[str, float] = field(default_factory=dict)
    examples: Sequence[Mapping[str, Any]] = ()
    terms: Sequence[tuple[str, float]] = ()
    dashboard_url: str | None = None

    @property
    def resolved(self) -> bool:
        return self.action == "resolve"

    @property
    def fingerprint(self) -> str:
        """The same notice of the same episode always has the same fingerprint (dedup key)."""
        return f"{self.topic}|{self.rule}|{self.episode_started_ms}|{self.action}|{self.notice}"

    @property
    def short_id(self) -> str:
        return hashlib.sha256(self.fingerprint.encode()).hexdigest()[:8]


def fmt(metric: str, v: float) -> str:
    if metric.endswith("_share"):
        return f"{v:.0%}"
    return f"{v:+.2f}" if metric == "mean_score" else f"{v:.0f}"


def _hhmm(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M")


def _window(ev: AlertEvent) -> str:
    start = ev.window_end_ms - ev.window_min * 60_000
    day = datetime.fromtimestamp(start / 1000, UTC).strftime("%Y-%m-%d")
    return f"{day} {_hhmm(start)}–{_hhmm(ev.window_end_ms)} UTC ({ev.window_min} min)"


def _what(ev: AlertEvent) -> str:
    return "volume" if ev.metric == "volume" else ev.metric.replace("_share", " share").replace("_", " ")


def _compare(ev: AlertEvent) -> str:
    """'46% vs 18% baseline' / '212 posts vs 60 expected' / '62% (threshold 50%)'."""
    if ev.kind == "threshold":
        return f"{fmt(ev.metric, ev.value)} (threshold {fmt(ev.metric, ev.baseline)})"
    if ev.kind == "volume_spike":
        ratio = ev.value / max(ev.baseline, 0.5)
        return f"{ev.value:.0f} posts vs {ev.baseline:.0f} expected ({ratio:.1f}×)"
    return f"{fmt(ev.metric, ev.value)} vs {fmt(ev.metric, ev.baseline)} baseline"


def summary(ev: AlertEvent) -> str:
    """One line: the notification text and the fallback of the blocks."""
    what = _what(ev)
    z = f", z {ev.z:.1f}" if ev.z is not None else ""
    if ev.resolved:
        return (
            f"{':white_check_mark:'} Resolved: {what} on {ev.topic} is back to normal "
            f"({_compare(ev)}{z}, {ev.posts} posts in {ev.window_min} min)"
        )
    lead = "Still worsening" if ev.action == "renotify" else what.capitalize()
    tail = f": {what}" if ev.action == "renotify" else ""
    return (
        f"{ICONS.get(ev.severity, '')} {lead}{tail} on {ev.topic}: {_compare(ev)}{z}, "
        f"{ev.posts} posts in {ev.window_min} min"
    )


def _examples(ev: AlertEvent) -> str:
    lines = []
    for ex in list(ev.examples)[:3]:
        txt = escape(short(redact(str(ex.get("text", ""))), 140))
        url = safe_url(ex.get("url"))
        lines.append(f"• <{url}|{txt}>" if url else f"• {txt}")
    return "\n".join(lines)


def block_kit(ev: AlertEvent) -> dict[str, Any]:
    """The Slack message: a plain-text fallback plus Block Kit blocks with the evidence."""
    what = _what(ev)
    if ev.resolved:
        title = f"Resolved: {what} on {ev.topic}"
    elif ev.action == "renotify":
        title = f"Worse: {what} on {ev.topic} ({ev.severity})"
    else:
        title = f"{what.capitalize()} alert: {ev.topic} ({ev.severity})"
    z = "n/a" if ev.z is None else f"{ev.z:.1f}" + (f" (φ {ev.phi:.1f})" if ev.phi > 1.05 else "")
    ranked = sorted(ev.emotions.items(), key=lambda kv: (-kv[1], kv[0]))[:4]
    mix = ", ".join(f"{k} {v:.0%}" for k, v in ranked)
    terms = ", ".join(escape(t) for t, _ in list(ev.terms)[:5])
    label = ev.metric.removesuffix("_share")
    hits = f"{ev.posts} in the last {ev.window_min} min"
    if ev.kind == "share_shift":
        hits += f" ({ev.hits} {label})"
    fields = [
        f"*Topic*\n{escape(ev.topic)}",
        f"*Rule*\n`{ev.rule}` ({ev.kind}, {ev.severity})",
        f"*{'Value' if ev.kind == 'threshold' else 'Current vs baseline'}*\n{_compare(ev)}",
        f"*z*\n{z}",
        f"*Posts*\n{hits}",
        f"*Window*\n{_window(ev)}",
        f"*Emotion mix*\n{mix or 'n/a'}",
        f"*Terms that moved*\n{terms or 'n/a'}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": escape(summary(ev))[:3000]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f[:2000]} for f in fields]},
    ]
    if ev.examples and not ev.resolved:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": ("*Representative posts*\n" + _examples(ev))[:3000]},
            }
        )
    ctx = [
        f"mood-monitor · alert `{ev.short_id}` · episode since {_hhmm(ev.episode_started_ms)} UTC · "
        f"baseline {ev.baseline_kind}"
    ]
    dash = safe_url(ev.dashboard_url)
    if dash:
        ctx.append(f"<{dash}|Open dashboard>")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in ctx]})
    return {"text": summary(ev), "blocks": blocks}


def generic_json(ev: AlertEvent) -> dict[str, Any]:
    """The body for a generic JSON webhook: the same evidence as plain fields."""
    return {
        "type": "mood_alert",
        "version": 1,
        "status": "resolved" if ev.resolved else "firing",
        "action": ev.action,
        "topic": ev.topic,
        "rule": ev.rule,
        "kind": ev.kind,
        "metric": ev.metric,
        "severity": ev.severity,
        "value": ev.value,
        "baseline": ev.baseline,
        "baseline_kind": ev.baseline_kind,
        "z": ev.z,
        "phi": ev.phi,
        "posts": ev.posts,
        "hits": ev.hits,
        "window_min": ev.window_min,
        "window_end_ms": ev.window_end_ms,
        "episode_started_ms": ev.episode_started_ms,
        "emotions": dict(ev.emotions),
        "terms": [t for t, _ in ev.terms],
        "examples": [
            {"text": short(redact(str(e.get("text", ""))), 140), "url": safe_url(e.get("url"))}
            for e in list(ev.examples)[:3]
        ],
        "summary": summary(ev),
        "fingerprint": ev.fingerprint,
    }
