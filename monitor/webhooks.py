"""The only module doing outbound HTTP: Slack incoming webhooks and generic JSON webhooks.

Slack's answers decide what happens to a message (see research notes on Slack webhooks):

    2xx                     delivered
    429                     wait Retry-After (seconds), then retry
    5xx / network error     retry with exponential backoff
    400 403 404 410         permanent: the destination is disabled with one log line; the other
                            destinations keep working

Webhook URLs are secrets: they never appear in logs or errors, only the destination's name.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import orjson

log = logging.getLogger(__name__)

PERMANENT = {400, 401, 403, 404, 410}


@dataclass(frozen=True)
class SendResult:
    status: int  # HTTP status, or 0 for a network error
    outcome: str  # "delivered" | "retry" | "permanent"
    retry_after_s: float = 0.0
    reason: str = ""


def post_json(url: str, body: dict[str, object], timeout_s: float = 10.0) -> SendResult:
    data = orjson.dumps(body)
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "mood-monitor"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - URL from config
            return SendResult(resp.status, "delivered")
    except urllib.error.HTTPError as exc:
        reason = exc.read(200).decode("utf-8", "replace").strip()
        if exc.code == 429:
            try:
                after = float(exc.headers.get("Retry-After") or 1)
            except ValueError:
                after = 1.0
            return SendResult(429, "retry", after, reason)
        if exc.code in PERMANENT or 400 <= exc.code < 500:
            return SendResult(exc.code, "permanent", 0.0, reason)
        return SendResult(exc.code, "retry", 0.0, reason)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        # the exception text may contain the URL: keep only its class
        return SendResult(0, "retry", 0.0, type(exc).__name__)


class Pacer:
    """At most ``rate_per_s`` messages per second per destination."""

    def __init__(self, rate_per_s: float) -> None:
        self.interval_s = 1.0 / rate_per_s
        self._last: dict[str, float] = {}

    def wait(self, destination: str) -> None:
        last = self._last.get(destination)
        if last is not None:
            delay = last + self.interval_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self._last[destination] = time.monotonic()
