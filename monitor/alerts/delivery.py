"""Outbound HTTP of the alerter (the connectors' inbound HTTP is `connectors.http`): Slack
incoming webhooks and generic JSON webhooks, and the dispatcher that empties the alert outbox
into them.

What an answer does to a message (see the research notes on Slack webhooks):

    2xx                     delivered (recorded per destination, so a restart never re-sends it)
    429                     the destination waits Retry-After seconds, then the same message again
    5xx / 408 / network     retry with exponential backoff (base * 2^attempt, capped)
    400 401 403 404 410     permanent: the destination is disabled with ONE log line, its queued
                            messages are dropped (counted), the other destinations keep working;
                            it is enabled again when its URL changes
    other 4xx               this message is dropped (counted, one log line), the destination stays

At most ``max_per_s`` messages per second per destination; messages of one destination leave in
order (an alert is never overtaken by its own resolve). Webhook URLs are secrets: they never
appear in logs or errors, only the destination's name.
"""

from __future__ import annotations

import hashlib
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from monitor.alerts.settings import DestinationSettings
from monitor.store.alerts import OutboxStore

log = logging.getLogger(__name__)

DISABLING = frozenset({400, 401, 403, 404, 410})


@dataclass(frozen=True)
class SendResult:
    status: int  # HTTP status, or 0 for a network error
    outcome: str  # "delivered" | "retry" | "permanent" | "rejected"
    retry_after_s: float = 0.0
    reason: str = ""


def classify(status: int, retry_after: str | None, reason: str) -> SendResult:
    if 200 <= status < 300:
        return SendResult(status, "delivered")
    if status == 429:
        try:
            after = max(0.0, float(retry_after or 1))
        except ValueError:
            after = 1.0
        return SendResult(429, "retry", after, reason)
    if status in DISABLING:
        return SendResult(status, "permanent", 0.0, reason)
    if 400 <= status < 500 and status != 408:
        return SendResult(status, "rejected", 0.0, reason)
    return SendResult(status, "retry", 0.0, reason)


def post_json(url: str, body: Mapping[str, object], timeout_s: float = 10.0) -> SendResult:
    """POST ``body`` as JSON. Never raises for HTTP or network trouble; never puts the URL in
    the result (the exception text may contain it: only its class is kept)."""
    data = orjson.dumps(body)
    if not url.startswith(("https://", "http://")):
        return SendResult(0, "permanent", 0.0, "URL is not http(s)")
    req = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "mood-monitor"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - URL from config
            return classify(resp.status, None, "")
    except urllib.error.HTTPError as exc:
        reason = exc.read(200).decode("utf-8", "replace").strip()
        return classify(exc.code, exc.headers.get("Retry-After"), reason[:100])
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, ValueError) as exc:
        return SendResult(0, "retry", 0.0, type(exc).__name__)


def url_tag(url: str) -> str:
    """A short hash of a URL: tells a changed URL apart without storing or logging it."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


@dataclass
class Dispatcher:
    destinations: Sequence[DestinationSettings]
    store: OutboxStore
    send: Callable[[str, Mapping[str, object]], SendResult] = post_json
    clock_s: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    give_up_after_s: float = 24 * 3600.0
    stats: dict[str, int] = field(
        default_factory=lambda: {"delivered": 0, "retries": 0, "dropped": 0, "rejected": 0, "given_up": 0}
    )

    def __post_init__(self) -> None:
        self._by_name = {d.name: d for d in self.destinations}
        self._last_send_s: dict[str, float] = {}
        self._not_before_s: dict[str, float] = {}

    def _enabled_url(self, name: str, disabled: Mapping[str, str]) -> str | None:
        d = self._by_name.get(name)
        url = d.url() if d else None
        if d is None or url is None:
            return None
        secret = url.get_secret_value()
        mark = disabled.get(name)
        if mark is not None and mark.split("|", 1)[0] == url_tag(secret):
            return None
        return secret

    def deliver(self, budget_s: float = 5.0) -> int:
        """Send what is due, in order per destination, paced; returns messages delivered."""
        start = self.clock_s()
        delivered = 0
        disabled = self.store.disabled()
        blocked: set[str] = set()
        # a message quoting a post deleted since it was queued goes out without its quotes
        for entry in self.store.drop_gone_quotes(self.store.outbox()):
            name = str(entry.get("destination"))
            if name in blocked:
                continue
            now = self.clock_s()
            url = self._enabled_url(name, disabled)
            if url is None:
                self._drop(entry, name, disabled)
                continue
            if self.store.was_delivered(entry["fingerprint"], name):
                self.store.replace(entry, None)  # delivered before a restart took it off the queue
                continue
            if now - float(entry.get("created_s", now)) > self.give_up_after_s:
                self.store.replace(entry, None)
                self.stats["given_up"] += 1
                log.error(
                    "gave up on an alert for destination %s after %.0fs undelivered",
                    name,
                    now - float(entry.get("created_s", now)),
                )
                continue
            due = max(float(entry.get("next_s", 0)), self._not_before_s.get(name, 0.0))
            pace = self._last_send_s.get(name, 0.0) + 1.0 / self._by_name[name].max_per_s
            if due > now or now - start > budget_s:
                blocked.add(name)
                continue
            if pace > now:
                self.sleep(pace - now)
            self._last_send_s[name] = self.clock_s()
            res = self.send(url, entry["body"])
            if self._settle(entry, name, url, res, disabled):
                delivered += 1
            else:
                blocked.add(name)
        return delivered

    def _settle(
        self, entry: dict[str, Any], name: str, url: str, res: SendResult, disabled: dict[str, str]
    ) -> bool:
        if res.outcome == "delivered":
            self.store.mark_delivered(entry["fingerprint"], name)
            self.store.replace(entry, None)
            self.stats["delivered"] += 1
            return True
        if res.outcome == "permanent":
            reason = f"HTTP {res.status} {res.reason}".strip()
            disabled[name] = f"{url_tag(url)}|{reason}"
            self.store.disable(name, disabled[name])
            log.error(
                "destination %s disabled: %s (other destinations keep working; it is enabled again "
                "when its URL changes)",
                name,
                reason,
            )
            self._drop(entry, name, disabled)
            return False
        if res.outcome == "rejected":
            self.store.replace(entry, None)
            self.stats["rejected"] += 1
            log.error(
                "destination %s rejected an alert: HTTP %s %s (message dropped)", name, res.status, res.reason
            )
            return False
        attempts = int(entry.get("attempts", 0)) + 1
        if res.status == 429:
            wait_s = res.retry_after_s
            self._not_before_s[name] = self.clock_s() + wait_s
        else:
            wait_s = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempts - 1))
        self.store.replace(entry, {**entry, "attempts": attempts, "next_s": self.clock_s() + wait_s})
        self.stats["retries"] += 1
        log.warning(
            "destination %s answered %s; attempt %d, next in %.1fs",
            name,
            res.status or "no connection",
            attempts,
            wait_s,
        )
        return False

    def _drop(self, entry: Mapping[str, Any], name: str, disabled: Mapping[str, str]) -> None:
        self.store.replace(entry, None)
        self.stats["dropped"] += 1
        why = "its destination is switched off" if name in disabled else "no URL or no longer configured"
        log.debug("dropped a queued alert for %s: %s", name, why)
