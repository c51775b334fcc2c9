"""The connector lifecycle shared by every source.

A connector's ``run()`` loops while ``running`` (or until a bounded ``max_items``), maps each
platform payload to a `Post` with a pure ``to_post`` and produces it to ``posts.raw`` keyed by
post id. ``stop()`` asks it to finish; ``cleanup(failed)`` always flushes the producer so nothing
already accepted is lost.

Every payload is written by a stranger, so a mapping never lets one payload stop the connector:
each ``to_post`` is wrapped in `guarded`, which turns any exception that is not its own `Skip` or
`DecodeError` into ``DecodeError(<stage>, "internal_error:<ExceptionType>")``. The loops around
the mappings count such a payload as bad, log one line (its reason and size, never its content)
and go on past it. Only infrastructure failures (Kafka, Redis, a source's HTTP) retry or stop.
"""

from __future__ import annotations

import functools
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import ParamSpec, TypeVar

import orjson

from monitor.errors import DecodeError
from monitor.kafka import RecordProducer
from monitor.messages import Deletion, Post, encode_deletion, encode_post

log = logging.getLogger(__name__)


class Skip(Exception):  # noqa: N818 - not an error: a valid payload with nothing to score
    """A well-formed payload that carries no post to score (a link-only post, a removed comment).
    Counted by ``reason`` in `ConnectorStats.skipped`, never dropped silently."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


P = ParamSpec("P")
R = TypeVar("R")


def guarded(stage: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Wrap a payload mapping: `Skip` and `DecodeError` pass through, any other exception (a
    TypeError from a field of an unexpected type, a RecursionError, an AssertionError from a
    parser) becomes ``DecodeError(stage, "internal_error:<type>")``. The message names the
    exception's type only: its text may quote the payload."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def mapped(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except (Skip, DecodeError):
                raise
            except Exception as exc:
                raise DecodeError(stage, f"internal_error:{type(exc).__name__}") from exc

        return mapped

    return wrap


# where a connector's posts go: the one producer seam (`monitor.kafka.RecordProducer`)
PostSink = RecordProducer


@dataclass
class ConnectorStats:
    produced: int = 0
    deletions: int = 0
    bad: int = 0
    errors: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    def count_bad(self, reason: str) -> None:
        self.bad += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1

    def count_skipped(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


class Connector:
    name = "base"

    def __init__(self, sink: PostSink) -> None:
        self.sink = sink
        self.running = True
        self.stats = ConnectorStats()
        # --only-matching: a post this says no to is not produced (counted as skipped
        # "unmatched"); deletions always are. None: every post is produced (the default)
        self.keep: Callable[[Post], bool] | None = None

    def emit(self, item: Post | Deletion) -> None:
        """Produce one item; DecodeError (nothing sent) when it cannot be encoded."""
        if self.keep is not None and isinstance(item, Post) and not self.keep(item):
            self.stats.count_skipped("unmatched")
            return
        try:
            key = item.id.encode()
            value = encode_deletion(item) if isinstance(item, Deletion) else encode_post(item)
        except (UnicodeError, orjson.JSONEncodeError) as exc:  # e.g. a lone surrogate in a field
            raise DecodeError("post", f"unencodable:{type(exc).__name__}") from exc
        self.sink.send(key, value)
        if isinstance(item, Deletion):
            self.stats.deletions += 1
        else:
            self.stats.produced += 1

    def stop(self) -> None:
        self.running = False

    def install_signals(self) -> None:
        def _handler(signum: int, _frame: FrameType | None) -> None:
            log.info("%s: signal %s, stopping", self.name, signum)
            self.stop()

        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)

    def run(self) -> int:
        raise NotImplementedError

    def cleanup(self, failed: bool) -> None:
        try:
            self.sink.flush()
        finally:
            self.sink.close()
        log.info(
            "%s stopped%s: produced=%d deletions=%d bad=%d",
            self.name,
            " after a failure" if failed else "",
            self.stats.produced,
            self.stats.deletions,
            self.stats.bad,
        )
