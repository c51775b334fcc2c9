"""Alert messages: Slack Block Kit and the generic JSON body, and how quoted posts are made
safe. Pure.

A message carries the evidence: topic, rule, current vs baseline value, z, posts, the window,
the emotion mix, up to three representative posts and the terms that moved; an episode's end
gets a resolve message. Slack limits respected: header <= 150 chars, <= 10 fields, section
text <= 3000.

A quoted post is redacted (`monitor.privacy.redact`: e-mail addresses, card and phone numbers),
stripped of bidi overrides and zero-width characters, shortened, mrkdwn-escaped, and its own
links are shown as text (``hxxps://evil[.]example``: Slack auto-links URLs and bare domains in
mrkdwn text, and a link's label could say anything). Only a permalink on a site of
``link_hosts`` (the platforms' own: bsky.app, reddit.com by default) is linked, with its host
as the label. The Slack body asks for no unfurling (``unfurl_links``/``unfurl_media`` false), so
Slack fetches no URL of a post. "Terms that moved" never shows an @handle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.patterns import INVISIBLE, SAFE_URL
from monitor.privacy import redact

ICONS = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}
# permalinks of these sites (and their subdomains) are linked; any other post URL is shown as
# text (a post's own links never become clickable links to arbitrary sites)
LINK_HOSTS = frozenset({"bsky.app", "reddit.com"})


def escape(text: str) -> str:
    """Slack mrkdwn control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def short(text: str, limit: int = 160) -> str:
    """White space folded, invisible characters (bidi overrides, zero-width) dropped, cut."""
    t = " ".join(INVISIBLE.sub("", text).split())
    return t if len(t) <= limit else t[: limit - 1] + "…"


def safe_url(url: object) -> str | None:
    u = str(url or "")
    return u if SAFE_URL.fullmatch(u) else None


def url_host(url: str) -> str:
    """The host of an http(s) URL, lower-cased, without user info or port."""
    rest = url.split("://", 1)[-1]
    for end in "/?#":
        rest = rest.split(end, 1)[0]
    return rest.rsplit("@", 1)[-1].split(":", 1)[0].lower()


def linkable(url: object, hosts: frozenset[str] = LINK_HOSTS) -> str | None:
    """The URL when it is http(s) and its host is one of ``hosts`` or under one, else None."""
    u = safe_url(url)
    if u is None:
        return None
    host = url_host(u)
    return u if any(host == h or host.endswith("." + h) for h in hosts) else None


_TRAILING = ".,;:!?)]}\"'"


def _domain_like(token: str) -> bool:
    """``evil.example``, ``www.x.org/path``: a dot between word characters and a last label
    of two or more letters (what a chat client turns into a link)."""
    core = token.rstrip(_TRAILING)
    head = core.split("/", 1)[0]
    if "." not in head:
        return False
    labels = head.split(".")
    return len(labels[-1]) >= 2 and labels[-1].isalpha() and all(labels[:-1]) and labels[-2][-1:].isalnum()


def defang(text: str) -> str:
    """Links in a post's text as text that no client auto-links: ``hxxps://evil[.]example/x``
    (the scheme broken, the host's dots bracketed; ``www.`` and bare domains too)."""
    out = []
    for token in text.split(" "):
        low = token.lower()
        scheme = low.find("://")
        if scheme >= 0 or _domain_like(token):
            start = scheme + 3 if scheme >= 0 else 0
            host_end = len(token.rstrip(_TRAILING))
            for end in "/?#":
                i = token.find(end, start)
                host_end = i if 0 <= i < host_end else host_end
            token = token[:start].replace("ttp", "xxp").replace("TTP", "XXP") + (
                token[start:host_end].replace(".", "[.]") + token[host_end:]
            )
        out.append(token)
    return " ".join(out)


def quote(text: str, limit: int = 140) -> str:
    """A post as an alert quotes it: redacted, invisible characters dropped, white space
    folded, cut, its links made plain text."""
    return defang(short(redact(text), limit))


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
    link_hosts: frozenset[str] = LINK_HOSTS

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
        line = f"• {escape(quote(str(ex.get('text', ''))))}"
        url = safe_url(ex.get("url"))
        if url and linkable(url, ev.link_hosts):
            line += f" (<{url}|{escape(url_host(url))}>)"
        elif url:
            line += f" ({escape(defang(url_host(url)))}, not linked)"
        lines.append(line)
    return "\n".join(lines)


def _terms(ev: AlertEvent) -> list[str]:
    """The terms that moved, never an @handle (a person's account name)."""
    return [t for t, _ in ev.terms if not t.startswith("@")][:5]


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
    terms = ", ".join(escape(short(t, 60)) for t in _terms(ev))
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
    # no previews: Slack would fetch the URLs of the message (unfurl_links) and its media
    return {"text": summary(ev), "blocks": blocks, "unfurl_links": False, "unfurl_media": False}


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
        "terms": _terms(ev),
        "examples": [
            {"text": quote(str(e.get("text", ""))), "url": linkable(e.get("url"), ev.link_hosts)}
            for e in list(ev.examples)[:3]
        ],
        "summary": summary(ev),
        "fingerprint": ev.fingerprint,
    }
