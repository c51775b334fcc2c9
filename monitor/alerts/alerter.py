"""The alerter: APScheduler jobs that, while this process holds the Redis lease, evaluate the
rules on sealed minutes, advance each (topic, rule)'s episode and deliver the outbox.

    evaluate job (every interval_s):  lease -> for each topic and rule, each newly sealed
        minute end: rules.evaluate -> episodes.step -> on fire/renotify/resolve build the
        message -> ledger.commit (lease check + fingerprint SET NX + outbox + alert log entry +
        episode, atomic)
    deliver job (every second):       lease -> Dispatcher.deliver (pacing, 429, backoff)

Exactly one alerter is active at a time (the lease; a paused one that lost it writes nothing);
a restarted alerter resumes after the last minute its predecessor evaluated, and a notice
whose fingerprint was claimed is never queued again, so restarts neither lose nor repeat
alerts. A message stays in the outbox until delivered or refused for good.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Protocol
from urllib.parse import quote

from monitor import metrics
from monitor.aggregates import HOUR_MS, MINUTE_MS, Bucket, minute_start
from monitor.alerts import detectors
from monitor.alerts.delivery import Dispatcher, SendResult, post_json
from monitor.alerts.episodes import Episode, step
from monitor.alerts.history import log_fields
from monitor.alerts.message import AlertEvent, block_kit, generic_json
from monitor.alerts.rules import Evaluation, evaluate
from monitor.alerts.settings import AlertSettings, RuleSettings
from monitor.errors import TransientError
from monitor.prevalence import Corrector
from monitor.store.alerts import AlertLedger
from monitor.store.buckets import AggregateReader

log = logging.getLogger(__name__)


_STAT = {"fire": "fired", "renotify": "renotified", "resolve": "resolved"}


class TrackedTopics(Protocol):
    """The topics to evaluate, changed at run time (`monitor.catalog.TopicCatalog`)."""

    def poll(self) -> object: ...
    def names(self) -> list[str]: ...
    def request_reload(self) -> None: ...


class LeaseLost(Exception):
    """Another alerter took over between our lease check and a commit."""


def dashboard_link(template: str | None, topic: str, started_ms: int, end_ms: int) -> str | None:
    """``alerts.dashboard_url`` filled in: ``{topic}`` (URL-encoded), ``{from_ms}`` and ``{to_ms}``
    (an hour before the episode began to half an hour after the window evaluated), so that the
    link opens the dashboard on that topic and on the episode, also when followed days later
    (``http://127.0.0.1:8089/?topic={topic}&from={from_ms}&to={to_ms}``)."""
    if not template:
        return None
    return (
        template.replace("{topic}", quote(topic, safe=""))
        .replace("{from_ms}", str(started_ms - HOUR_MS))
        .replace("{to_ms}", str(end_ms + HOUR_MS // 2))
    )


@dataclass
class Alerter:
    settings: AlertSettings
    store: AggregateReader
    state: AlertLedger
    clock_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    send: Callable[[str, Mapping[str, object]], SendResult] = post_json
    owner: str = field(default_factory=lambda: f"alerter-{uuid.uuid4().hex[:8]}")
    sleep: Callable[[float], None] = time.sleep
    # the tracked topics (`monitor.catalog`): only those are evaluated; None: every topic in Redis
    catalog: TrackedTopics | None = None
    # the corrected shares of rules with ``corrected: true`` (`monitor.app.build_corrector`)
    corrector: Corrector | None = None

    def __post_init__(self) -> None:
        s = self.settings
        self.dispatcher = Dispatcher(
            s.destinations,
            self.state,
            send=self.send,
            sleep=self.sleep,
            clock_s=lambda: self.clock_ms() / 1000,
            backoff_base_s=s.backoff_base_s,
            backoff_max_s=s.backoff_max_s,
            give_up_after_s=s.give_up_after_s,
        )
        self.stats: dict[str, int] = {
            "evaluations": 0,
            "fired": 0,
            "renotified": 0,
            "resolved": 0,
            "duplicates_suppressed": 0,
        }
        self._cache: dict[str, dict[int, Bucket]] = {}
        for d in s.destinations:
            if d.url() is None:
                log.warning(
                    "destination %s has no URL (its url_env / url_file is empty): alerts for it are dropped",
                    d.name,
                )

    # ---- minutes ----------------------------------------------------------------------------
    def _minutes(self, topic: str, start_ms: int, end_ms: int, sealed_ms: int) -> list[Bucket]:
        """Minute buckets [start, end), sealed ones cached (they no longer change)."""
        cache = self._cache.setdefault(topic, {})
        missing = [t for t in range(start_ms, end_ms, MINUTE_MS) if t not in cache]
        if missing:
            for b in self.store.read_minutes(topic, missing[0], end_ms):
                if b.start_ms < sealed_ms:
                    cache[b.start_ms] = b
                else:
                    cache.pop(b.start_ms, None)
                    cache[-b.start_ms - 1] = b  # unsealed: kept for this call only
        out = [
            cache.get(t) or cache.pop(-t - 1, None) or Bucket(t) for t in range(start_ms, end_ms, MINUTE_MS)
        ]
        keep_from = end_ms - max((r.history_min for r in self.settings.rules), default=0) * MINUTE_MS
        for t in [t for t in cache if 0 <= t < keep_from]:
            del cache[t]
        return out

    def _ends(self, rule: RuleSettings, ep: Episode, sealed_ms: int, now_ms: int) -> list[int]:
        if not rule.sealed_only:
            return [minute_start(now_ms) + MINUTE_MS]
        if sealed_ms <= 0 or sealed_ms <= ep.last_end_ms:
            return []
        first = max(ep.last_end_ms + MINUTE_MS, sealed_ms - (self.settings.max_catchup_min - 1) * MINUTE_MS)
        if ep.last_end_ms == 0:
            first = sealed_ms
        return list(range(first, sealed_ms + 1, MINUTE_MS))

    # ---- evaluation ---------------------------------------------------------------------------
    def evaluate(self, now_ms: int | None = None) -> list[AlertEvent]:
        """Evaluate every topic's rules on the minutes sealed since the last evaluation; returns
        the notices queued (each exactly once, ever)."""
        now = now_ms if now_ms is not None else self.clock_ms()
        t0 = time.monotonic()
        sealed = self.store.sealed_until_ms()
        queued: list[AlertEvent] = []
        for topic in self._topics():
            rules = self.settings.rules_for(topic)
            saved = self.state.episodes(topic, [r.name for r in rules])
            for rule in rules:
                ep = Episode.from_json(saved.get(rule.name))
                for end in self._ends(rule, ep, sealed, now):
                    ep = self._one(topic, rule, ep, end, sealed, queued)
        self.stats["evaluations"] += 1
        metrics.ALERTER_EVALUATION_SECONDS.observe(time.monotonic() - t0)
        return queued

    def _topics(self) -> list[str]:
        """The topics with data in Redis, less those no longer tracked (a topic removed at run
        time stops being evaluated within ``topic_registry.poll_s``)."""
        topics = self.store.topics()
        if self.catalog is None:
            return topics
        self.catalog.poll()  # Redis down: logged there, the topics in use stay
        tracked = set(self.catalog.names())
        return [t for t in topics if t in tracked]

    def _one(
        self, topic: str, rule: RuleSettings, ep: Episode, end: int, sealed: int, queued: list[AlertEvent]
    ) -> Episode:
        minutes = self._minutes(topic, end - rule.history_min * MINUTE_MS, end, sealed)
        seasonal = self._seasonal(topic, rule, end)
        ev = evaluate(
            rule,
            minutes,
            end,
            baseline_end_ms=ep.baseline_end_ms if ep.open else None,
            seasonal_hours=seasonal,
            corrector=self.corrector,
        )
        new, action = step(ep, ev, rule)
        fp, entries, alert, logged = "", [], None, []
        if action is not None:
            alert = self._event(topic, rule, ev, new, action)
            fp = alert.fingerprint
            entries = self._entries(alert)
            logged = log_fields(alert)
        res = self.state.commit(self.owner, topic, rule.name, new.to_json(), fp, entries, logged)
        if res < 0:
            raise LeaseLost(self.owner)
        if alert is not None:
            if res == 1:
                queued.append(alert)
                self.stats[_STAT[alert.action]] += 1
                log.info(
                    "alert %s topic=%s rule=%s value=%.3f baseline=%.3f z=%s posts=%d destinations=%d",
                    alert.action,
                    topic,
                    rule.name,
                    ev.value,
                    ev.baseline,
                    "n/a" if ev.z is None else f"{ev.z:.2f}",
                    ev.posts,
                    len(entries),
                )
            else:
                self.stats["duplicates_suppressed"] += 1
        return new

    def _seasonal(self, topic: str, rule: RuleSettings, end: int) -> list[Bucket]:
        if not (rule.seasonal and rule.kind == "share_shift"):
            return []
        starts = detectors.same_hour_of_week(end, rule.seasonal_weeks)
        return [self.store.read_window(topic, h, h + HOUR_MS) for h in starts]

    def _event(self, topic: str, rule: RuleSettings, ev: Evaluation, ep: Episode, action: str) -> AlertEvent:
        examples: list[dict[str, Any]] = []
        terms: list[tuple[str, float]] = []
        if action != "resolve":
            w_start = ev.end_ms - rule.window_min * MINUTE_MS
            posts = self.store.recent_posts(topic, w_start, ev.end_ms - 1, limit=50)
            since = w_start - rule.baseline_lookback_min * MINUTE_MS
            before = self.store.recent_posts(topic, since, w_start - 1, limit=200)
            label = rule.metric.removesuffix("_share")
            examples = [p for p in posts if p.get("sentiment") == label] or posts
            examples = examples[:3]
            terms = detectors.moved_terms(
                [str(p.get("text", "")) for p in posts], [str(p.get("text", "")) for p in before]
            )
        dash = dashboard_link(self.settings.dashboard_url, topic, ep.started_ms or ev.end_ms, ev.end_ms)
        return AlertEvent(
            topic=topic,
            rule=rule.name,
            kind=rule.kind,
            metric=rule.metric,
            action=action,
            severity=ep.notified_severity or ev.severity,
            value=ev.value,
            baseline=ev.baseline,
            posts=ev.posts,
            window_min=rule.window_min,
            window_end_ms=ev.end_ms,
            episode_started_ms=ep.started_ms,
            notice=ep.notices,
            z=ev.z,
            phi=ev.phi,
            hits=ev.hits,
            baseline_kind=ev.baseline_kind,
            emotions=ev.emotions,
            examples=examples,
            terms=terms,
            dashboard_url=dash,
            link_hosts=frozenset(h.lower().strip(".") for h in self.settings.link_hosts),
        )

    def _entries(self, alert: AlertEvent) -> list[dict[str, Any]]:
        now_s = self.clock_ms() / 1000
        # the posts it quotes (topic, ids) and the same message without them: when one is gone
        # from the sample (deleted at the source) the bare body goes instead (drop_gone_quotes)
        quotes = [str(e["id"]) for e in list(alert.examples)[:3] if e.get("id")]
        bare = replace(alert, examples=())
        return [
            {
                "destination": d.name,
                "fingerprint": alert.fingerprint,
                "created_s": now_s,
                "attempts": 0,
                "next_s": 0,
                "body": block_kit(alert) if d.kind == "slack" else generic_json(alert),
                **(
                    {
                        "topic": alert.topic,
                        "quotes": quotes,
                        "bare": block_kit(bare) if d.kind == "slack" else generic_json(bare),
                    }
                    if quotes
                    else {}
                ),
            }
            for d in self.settings.destinations
            if d.wants(alert.topic, alert.severity)
        ]

    # ---- jobs ---------------------------------------------------------------------------------
    def holds_lease(self) -> bool:
        held = bool(self.state.hold_lease(self.owner, self.settings.lease_ttl_s))
        metrics.ALERTER_LEASE.set(int(held))
        if not held:
            log.debug("another alerter holds the lease")
        return held

    def tick(self) -> None:
        """The evaluate job: evaluate, then one delivery pass."""
        try:
            if not self.holds_lease():
                return
            self.evaluate()
            self.dispatcher.deliver()
            self.store.heartbeat(
                self.owner,
                max(10, int(self.settings.interval_s * 3)),
                {**self.stats, **self.dispatcher.stats},
            )
        except LeaseLost:
            log.warning("alerter %s lost the lease mid-evaluation; another alerter goes on", self.owner)
        except TransientError as exc:
            log.warning("alerter tick failed (will retry next tick): %s", exc)

    def deliver_job(self) -> None:
        try:
            if self.holds_lease():
                self.dispatcher.deliver()
        except TransientError as exc:
            log.warning("alerter delivery failed (will retry): %s", exc)

    def drain(self, timeout_s: float) -> None:
        """Keep delivering until the outbox is empty or the time is up (shutdown, tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if not self.state.outbox():
                    return
                self.dispatcher.deliver()
            except TransientError as exc:
                log.warning("drain: %s", exc)
            self.sleep(0.2)


def run_alerter(
    alerter: Alerter,
    *,
    install_signals: bool = False,
    max_ticks: int | None = None,
    drain_timeout_s: float = 10.0,
) -> int:
    """Run the evaluate job every ``interval_s`` and the deliver job every second with
    APScheduler until stopped (SIGTERM/SIGINT when ``install_signals``) or ``max_ticks``."""
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
        if alerter.catalog is not None:
            catalog = alerter.catalog
            signal.signal(signal.SIGHUP, lambda _s, _f: catalog.request_reload())
    sched = BackgroundScheduler(timezone="UTC")
    interval = alerter.settings.interval_s
    sched.add_job(
        job,
        "interval",
        seconds=interval,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(interval)),
        next_run_time=datetime.now(UTC),
    )
    sched.add_job(alerter.deliver_job, "interval", seconds=1, max_instances=1, coalesce=True)
    sched.start()
    log.info(
        "alerter %s started: %d rules, %d destinations, every %.0fs",
        alerter.owner,
        len(alerter.settings.rules),
        len(alerter.settings.destinations),
        interval,
    )
    try:
        while not stop["flag"] and (max_ticks is None or ticks["n"] < max_ticks):
            time.sleep(0.1)
    finally:
        sched.shutdown(wait=True)
        if alerter.holds_lease():
            alerter.drain(timeout_s=drain_timeout_s)
        with contextlib.suppress(TransientError):
            alerter.state.release_lease(alerter.owner)
    log.info("alerter stopped: %s %s", alerter.stats, alerter.dispatcher.stats)
    return 0
