"""The connector lifecycle shared by every source.

A connector's ``run()`` loops while ``running`` (or until a bounded ``max_items``), maps each
platform payload to a `Post` with a pure ``to_post`` and produces it to ``posts.raw`` keyed by
post id. ``stop()`` asks it to finish; ``cleanup(failed)`` always flushes the producer so nothing
already accepted is lost.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

from monitor.messages import Deletion, Post, encode_deletion, encode_post

log = logging.getLogger(__name__)


class Skip(Exception):  # noqa: N818 - not an error: a valid payload with nothing to score
    """A well-formed payload that carries no post to score (a link-only post, a removed comment).
    Counted by ``reason`` in `ConnectorStats.skipped`, never dropped silently."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PostSink(Protocol):
    def send(self, key: bytes | None, value: bytes, *, topic: str | None = None,
             headers: Sequence[tuple[str, bytes]] | None = None) -> None: ...
    def flush(self, timeout_s: float = 30.0) -> None: ...
    def close(self, timeout_s: float = 10.0) -> None: ...


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

    def emit(self, item: Post | Deletion) -> None:
        if isinstance(item, Deletion):
            self.sink.send(item.id.encode(), encode_deletion(item))
            self.stats.deletions += 1
        else:
            self.sink.send(item.id.encode(), encode_post(item))
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
        log.info("%s stopped%s: produced=%d deletions=%d bad=%d", self.name,
                 " after a failure" if failed else "", self.stats.produced, self.stats.deletions,
                 self.stats.bad)
