"""The shared shape of a live connector: sessions, backoff, dedup, checkpoints, status.

A live connector implements ``session()``: connect, read, and hand batches of
``(dedup_key, Post | Deletion)`` to `deliver` until the connection drops or `stop()` is asked.
`run()` calls it again and again, backing off with jitter between failures (the server's
Retry-After when it sent one), and stops when asked, after ``max_items`` records, or after
``idle_timeout_s`` without a new record (bounded modes for tests and backfills).

`deliver` drops keys already produced (Redis dedup), produces the rest keyed by post id,
flushes the producer, and only then marks the keys seen and moves the cursor, so a crash
can duplicate (and the next run's dedup catches it) but never lose a record. Status
(connected, lag, last event time, counts, errors) goes to Redis for `mood-monitor connectors
status` after every batch and every state change.

One bad payload never stops a session: `map_one` runs a payload mapping and turns a `Skip` into
a skip count and a `DecodeError` (or any other exception a mapping lets out) into a bad count
and one log line with the reason and the payload's size, never its text (post texts and author
ids stay out of the logs). The session then moves its cursor past the payload as usual, so a
restart cannot meet it again and again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from connectors.backoff import Backoff, RetryLater, wait
from connectors.base import Connector, PostSink, Skip
from monitor.errors import ConfigError, DecodeError, TransientError
from monitor.messages import Deletion, Post
from monitor.store.connectors import ConnectorState

log = logging.getLogger(__name__)

Item = tuple[str, Post | Deletion]
T = TypeVar("T")


class Done(Exception):  # noqa: N818 - control flow, not an error
    """Raised inside a session when a bounded run has what it asked for."""


class LiveConnector(Connector):
    name = "live"

    def __init__(self, sink: PostSink, state: ConnectorState, *, backoff: Backoff | None = None) -> None:
        super().__init__(sink)
        self.state = state
        self.backoff = backoff or Backoff(1.0, 60.0)
        self.connected = False
        self.last_event_ms = 0
        self.lag_ms = 0
        self.reconnects = 0
        self.duplicates = 0
        self._max_items: int | None = None
        self._idle_timeout_s: float | None = None
        self._last_new = time.monotonic()
        self.extra_status: dict[str, int | str | float] = {}  # per platform (rate-limit budget)

    # ---- to be written by each platform ---------------------------------------------------
    def session(self) -> None:
        raise NotImplementedError

    # ---- helpers for sessions -------------------------------------------------------------
    def deliver(
        self, items: Sequence[Item], cursor: str | None = None, *, meta: dict[str, str] | None = None
    ) -> int:
        """Produce the new items, flush, then checkpoint; -> how many were new."""
        keys = [k for k, _ in items]
        fresh = self.state.unseen(keys)
        new = unusable = 0
        for key, item in items:
            if key in fresh:
                fresh.discard(key)
                try:
                    self.emit(item)
                except DecodeError as exc:
                    self.bad(f"bad_{exc.field}", why=exc.reason)
                    unusable += 1  # its key is still committed: a replay skips it too
                    continue
                new += 1
                if isinstance(item, Post):
                    self.last_event_ms = max(self.last_event_ms, item.created_ms)
                    self.lag_ms = max(0, item.ingested_ms - item.created_ms)
        self.duplicates += len(items) - new - unusable
        if new:
            self.sink.flush()
            self._last_new = time.monotonic()
        self.state.commit(keys, cursor, meta=meta)
        self.report()
        if self._max_items is not None and self.stats.produced + self.stats.deletions >= self._max_items:
            raise Done
        return new

    def skip(self, reason: str) -> None:
        self.stats.count_skipped(reason)

    def bad(self, reason: str, *, size: int | None = None, why: str = "", where: str = "") -> None:
        """A frame or item that cannot be used: counted by reason, logged in one line, skipped.
        The line carries the reason, our own ``why`` (a DecodeError's reason), the payload's
        ``size`` and ``where`` it came from (a URL without its query), never the payload."""
        self.stats.count_bad(reason)
        log.warning(
            "%s: skipped a bad payload: reason=%s%s%s%s",
            self.name,
            reason,
            f" ({why[:120]})" if why else "",
            f" size={size}" if size is not None else "",
            f" from {where[:200]}" if where else "",
        )

    def map_one(self, make: Callable[[], T], *, size: int | None = None) -> T | None:
        """Run one payload mapping: -> its result (a Post, a Deletion, None), or None after counting a
        `Skip` (skipped) or a `DecodeError` (bad). Any other exception from the mapping is a
        bad payload too (``internal_error:<type>``): one payload never ends the session."""
        try:
            return make()
        except Skip as exc:
            self.skip(exc.reason)
        except DecodeError as exc:
            self.bad(f"bad_{exc.field}", size=size, why=exc.reason)
        except (TransientError, Done):
            raise
        except Exception as exc:
            self.bad("internal_error", size=size, why=type(exc).__name__)
        return None

    def keep_going(self) -> bool:
        if not self.running:
            return False
        return not (
            self._idle_timeout_s is not None and time.monotonic() - self._last_new > self._idle_timeout_s
        )

    def report(self) -> None:
        try:
            self.state.report(
                {
                    "connected": int(self.connected),
                    "last_event_ms": self.last_event_ms,
                    "lag_ms": self.lag_ms,
                    "produced": self.stats.produced,
                    "deletions": self.stats.deletions,
                    "bad": self.stats.bad,
                    "errors": self.stats.errors,
                    "reconnects": self.reconnects,
                    "duplicates": self.duplicates,
                    "updated_ms": int(time.time() * 1000),
                    "skipped": sum(self.stats.skipped.values()),
                    **self.extra_status,
                }
            )
        except TransientError as exc:
            log.warning("%s: status not reported: %s", self.name, exc)

    # ---- the loop ---------------------------------------------------------------------------
    def run(self, max_items: int | None = None, idle_timeout_s: float | None = None) -> int:
        self._max_items = max_items
        self._idle_timeout_s = idle_timeout_s
        self._last_new = time.monotonic()
        failed = True
        try:
            while self.keep_going():
                delay: float | None = None
                try:
                    self.session()
                    delay = self.backoff.next_delay_s() if self.running else None
                except Done:
                    break
                except RetryLater as exc:
                    self.stats.errors += 1
                    delay = self.backoff.delay_for(exc.retry_after_s)
                    log.warning("%s: %s; retrying in %.1fs", self.name, exc, delay)
                except (TransientError, OSError) as exc:
                    self.stats.errors += 1
                    delay = self.backoff.next_delay_s()
                    log.warning(
                        "%s: %s: %s; retrying in %.1fs", self.name, exc.__class__.__name__, exc, delay
                    )
                finally:
                    self.connected = False
                    self.report()
                if delay is not None and self.keep_going():
                    self.reconnects += 1
                    wait(delay, self.keep_going)
            failed = False
        except ConfigError:
            raise
        finally:
            self.cleanup(failed)
        return 0
