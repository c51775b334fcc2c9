"""Jittered exponential backoff and Retry-After parsing. Pure (the clock and sleep are injected).

`Backoff.next_delay_s()` gives "full jitter" delays (uniform in [base/2, cap]) that double per
failure up to ``max_s`` and start again after `reset()`. `retry_after_s` reads a server's wait:
``Retry-After`` in seconds or as an HTTP date, Reddit's ``X-Ratelimit-Reset`` (seconds) or
Mastodon's ``X-RateLimit-Reset`` (an ISO timestamp).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime

from monitor.errors import TransientError


class RetryLater(TransientError):
    """A source answered 429/5xx or asked us to wait; ``retry_after_s`` is its wish, if any."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class Backoff:
    def __init__(
        self, base_s: float = 1.0, max_s: float = 60.0, factor: float = 2.0, rng: random.Random | None = None
    ) -> None:
        if base_s <= 0 or max_s < base_s or factor < 1:
            raise ValueError("need 0 < base_s <= max_s and factor >= 1")
        self.base_s = base_s
        self.max_s = max_s
        self.factor = factor
        self.failures = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto

    def next_delay_s(self) -> float:
        cap = min(self.max_s, self.base_s * self.factor**self.failures)
        self.failures += 1
        return self._rng.uniform(min(cap, self.base_s) / 2, cap)

    def delay_for(self, retry_after_s: float | None) -> float:
        """The server's wish when it gave one (capped at ``max_s`` x 10), else the next backoff."""
        if retry_after_s is not None:
            self.failures += 1
            return min(max(retry_after_s, 0.0), self.max_s * 10)
        return self.next_delay_s()

    def reset(self) -> None:
        self.failures = 0


def retry_after_s(value: str | None, *, now_s: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After / rate-limit reset header; None when absent or unreadable."""
    if value is None:
        return None
    v = value.strip()
    if not v:
        return None
    now = time.time() if now_s is None else now_s
    try:
        return max(0.0, float(v))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(v)
        except (TypeError, ValueError, IndexError):
            return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def wait(
    delay_s: float,
    keep_going: Callable[[], bool],
    *,
    step_s: float = 0.1,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Sleep ``delay_s`` in small steps, returning early once ``keep_going()`` is false."""
    end = time.monotonic() + delay_s
    while keep_going():
        left = end - time.monotonic()
        if left <= 0:
            return
        sleep(min(step_s, left))
