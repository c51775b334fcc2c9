"""The alerter: an APScheduler job that, while it holds the Redis lease, reads topic windows,
evaluates the rules, claims a cooldown per (topic, rule) and delivers through a Redis outbox.

    tick = hold lease -> evaluate rules -> enqueue new alerts -> deliver the outbox

Exactly one alerter is active at a time (the lease), a restarted alerter never re-sends an
alert still in its cooldown (the claim lives in Redis), and a message that could not be
delivered stays in the outbox until Slack takes it or answers with a permanent error.
"""

from __future__ import annotations

import logging
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from monitor.aggregates import MINUTE_MS, Bucket, minute_start
from monitor.alert_settings import AlertSettings, DestinationSettings, RuleSettings
from monitor.errors import TransientError
from monitor.slack import AlertEvent, block_kit, generic_json
from monitor.taxonomy import EMOTIONS
from monitor.webhooks import Pacer, SendResult, post_json

log = logging.getLogger(__name__)
SEVERITY = {"info": 0, "warning": 1, "critical": 2}


def metric_value(metric: str, b: Bucket) -> float:
    if metric == "volume":
        return float(b.n)
    if metric == "mean_score":
        return b.mean_score
    label = metric.removesuffix("_share")
    return b.emotion_share(label) if label in EMOTIONS else b.share(label)


def breached(rule: RuleSettings, value: float) -> bool:
    return (rule.above is not None and value > rule.above) or (rule.below is not None and value < rule.below)


@dataclass
class Alerter:
    settings: AlertSettings
    store: Any  # RedisAggregateStore
    state: Any  # RedisAlertState
    clock_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    send: Callable[[str, dict[str, Any]], SendResult] = post_json
    owner: str = field(default_factory=lambda: f"alerter-{uuid.uuid4().hex[:8]}")
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self.pacer = Pacer(self.settings.max_per_s_per_destination)
        self.stats = {"evaluations": 0, "fired": 0, "delivered": 0, "retries": 0, "dropped": 0}

    # ---- evaluation ---------------------------------------------------------------------
    def evaluate(self, now_ms: int) -> list[AlertEvent]:
        events = []
        sealed = self.store.sealed_until_ms()
        for topic in self.store.topics():
            for rule in self.settings.rules:
                if not rule.applies_to(topic):
                    continue
                end = sealed if rule.sealed_only else minute_start(now_ms) + MINUTE_MS
                if end <= 0:
                    continue
                start = end - rule.window_min * MINUTE_MS
                b = self.store.read_window(topic, start, end)
                basis = b.n if rule.metric == "volume" else b.scored
                if basis < rule.min_posts:
                    continue
                value = metric_value(rule.metric, b)
                if not breached(rule, value):
                    continue
                threshold = rule.above if rule.above is not None else rule.below
                assert threshold is not None
                emo_total = sum(b.emotions.get(e, 0) for e in EMOTIONS)
                ev = AlertEvent(
                    topic=topic, rule=rule.name, metric=rule.metric, value=value, threshold=threshold,
                    direction="above" if rule.above is not None else "below", posts=b.n,
                    window_min=rule.window_min, window_end_ms=end, severity=rule.severity,
                    mean_score=b.mean_score,
                    emotions={e: b.emotions.get(e, 0) / emo_total for e in EMOTIONS if emo_total and b.emotions.get(e)},
                    examples=self._examples(topic, start, end, rule.metric))
                if self.state.claim(topic, rule.name, ev.fingerprint, rule.cooldown_s):
                    events.append(ev)
                    log.info("alert fired topic=%s rule=%s value=%.3f posts=%d", topic, rule.name, value, b.n)
        self.stats["evaluations"] += 1
        return events

    def _examples(self, topic: str, start: int, end: int, metric: str) -> list[dict[str, Any]]:
        posts = self.store.recent_posts(topic, start, end, limit=50)
        want = metric.removesuffix("_share") if metric.endswith("_share") else None
        chosen = [p for p in posts if want is None or p.get("sentiment") == want] or posts
        return chosen[:3]

    # ---- delivery ---------------------------------------------------------------------------
    def route(self, ev: AlertEvent) -> list[DestinationSettings]:
        return [d for d in self.settings.destinations
                if ("*" in d.topics or ev.topic in d.topics) and SEVERITY[ev.severity] >= SEVERITY[d.min_severity]]

    def enqueue(self, events: list[AlertEvent]) -> None:
        entries = []
        for ev in events:
            for d in self.route(ev):
                body = block_kit(ev) if d.kind == "slack" else generic_json(ev)
                entries.append({"destination": d.name, "fingerprint": ev.fingerprint, "body": body,
                                "attempts": 0, "next_ms": 0})
            self.stats["fired"] += 1
        self.state.enqueue(entries)

    def deliver(self, now_ms: int | None = None) -> int:
        """Send what is due in the outbox; returns messages delivered."""
        delivered = 0
        disabled = self.state.disabled()
        dests = {d.name: d for d in self.settings.destinations}
        for entry in self.state.outbox():
            name = entry["destination"]
            if name in disabled or name not in dests:
                self.state.replace(entry, None)
                self.stats["dropped"] += 1
                log.warning("dropped an alert for destination %s (%s)", name,
                            disabled.get(name, "no longer configured"))
                continue
            now = now_ms if now_ms is not None else self.clock_ms()
            if entry.get("next_ms", 0) > now:
                continue
            url = dests[name].url()
            if url is None:
                self._disable(name, "no URL: its url_env / url_file is empty")
                disabled[name] = "no URL"
                self.state.replace(entry, None)
                continue
            self.pacer.wait(name)
            res = self.send(url.get_secret_value(), entry["body"])
            if res.outcome == "delivered":
                self.state.mark_sent(entry["fingerprint"], name)
                self.state.replace(entry, None)
                self.stats["delivered"] += 1
                delivered += 1
            elif res.outcome == "permanent":
                self._disable(name, f"HTTP {res.status} {res.reason}".strip())
                disabled[name] = "permanent"
                self.state.replace(entry, None)
                self.stats["dropped"] += 1
            else:
                attempts = int(entry.get("attempts", 0)) + 1
                wait_s = res.retry_after_s if res.status == 429 else min(60.0, 0.5 * 2 ** attempts)
                self.state.replace(entry, {**entry, "attempts": attempts,
                                           "next_ms": self.clock_ms() + int(wait_s * 1000)})
                self.stats["retries"] += 1
                log.warning("destination %s answered %s; retry %d in %.1fs", name, res.status or "no connection",
                            attempts, wait_s)
        return delivered

    def _disable(self, name: str, reason: str) -> None:
        self.state.disable(name, reason)
        log.error("destination %s disabled: %s (other destinations keep working)", name, reason)

    def tick(self) -> None:
        try:
            if not self.state.hold_lease(self.owner, self.settings.lease_ttl_s):
                log.debug("another alerter holds the lease")
                return
            now = self.clock_ms()
            self.enqueue(self.evaluate(now))
            self.deliver()
            self.store.heartbeat(self.owner, max(10, int(self.settings.interval_s * 3)), self.stats)
        except TransientError as exc:
            log.warning("alerter tick failed (will retry next tick): %s", exc)

    def drain(self, timeout_s: float) -> None:
        """Keep delivering until the outbox is empty or the time is up (shutdown, tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if not self.state.outbox():
                    return
                self.deliver()
            except TransientError as exc:
                log.warning("drain: %s", exc)
            self.sleep(0.2)


def run_alerter(alerter: Alerter, *, install_signals: bool = False, max_ticks: int | None = None) -> int:
    """Run ``tick`` every ``interval_s`` with APScheduler until stopped (or ``max_ticks``)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    stop = {"flag": False, "signals": 0}
    ticks = {"n": 0}

    def job() -> None:
        alerter.tick()
        ticks["n"] += 1

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop["signals"] += 1
        if stop["signals"] > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop["flag"] = True

    if install_signals:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    sched = BackgroundScheduler(timezone="UTC")
    sched.add_job(job, "interval", seconds=alerter.settings.interval_s, max_instances=1, coalesce=True,
                  next_run_time=datetime.now(UTC))
    sched.start()
    log.info("alerter %s started: %d rules, %d destinations, every %.0fs", alerter.owner,
             len(alerter.settings.rules), len(alerter.settings.destinations), alerter.settings.interval_s)
    try:
        while not stop["flag"] and (max_ticks is None or ticks["n"] < max_ticks):
            time.sleep(0.1)
    finally:
        sched.shutdown(wait=True)
        alerter.drain(timeout_s=10)
        try:
            alerter.state.release_lease(alerter.owner)
        except TransientError:
            pass
    log.info("alerter stopped: %s", alerter.stats)
    return 0
