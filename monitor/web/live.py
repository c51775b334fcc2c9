"""The live stream's one poller and its fan-out.

One `Hub` per server process reads Redis every ``interval_s`` (in a worker thread: the store
is synchronous) while anyone is watching, and keeps the last snapshot in three parts:
``topics`` (each topic's 5-minute tile and its last minutes), ``status`` and ``alerts``. A part
that changed gets a new version and is offered to every subscriber. Redis load therefore does
not grow with viewers. Each subscriber has a small bounded queue: one that does not keep up
(its queue full) is dropped, its stream ends, and its browser reconnects and starts from the
current snapshot; nothing is buffered for it beyond that queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from monitor.aggregates import MINUTE_MS, minute_start
from monitor.errors import MoodMonitorError
from monitor.web.readmodel import LIVE_MINUTES, SUMMARY_WINDOW, ReadModel, now_ms

log = logging.getLogger(__name__)

PARTS = ("topics", "status", "alerts")
Event = tuple[str, int, dict[str, Any]]  # (part, version, payload)


def snapshot(model: ReadModel, max_topics: int, clock_ms: Callable[[], int] = now_ms) -> dict[str, Any]:
    """Everything the page updates live, read once (one call per poll, whatever the viewers)."""
    now = clock_ms()
    topics = model.topics()[:max_topics]
    rows = model.summary(topics, SUMMARY_WINDOW, now)
    first = minute_start(now) - (LIVE_MINUTES - 1) * MINUTE_MS
    for row in rows:
        row["minutes"] = model.series(row["topic"], first, now + 1, "1m")
    return {
        "topics": {"now_ms": now, "window": SUMMARY_WINDOW, "topics": rows},
        "status": model.status(now),
        "alerts": model.alerts(topics, now),
    }


def _comparable(part: str, body: dict[str, Any]) -> bytes:
    """A part's content without the fields that move by themselves (the clock, ages)."""
    if part == "topics":
        return orjson.dumps(body["topics"])
    if part == "status":
        return orjson.dumps(
            {k: v for k, v in body.items() if k not in ("now_ms", "processes")}
            | {"processes": [{k: v for k, v in p.items() if k != "age_s"} for p in body["processes"]]}
        )
    return orjson.dumps(body)


@dataclass(eq=False)
class Subscriber:
    send: MemoryObjectSendStream[Event]
    receive: MemoryObjectReceiveStream[Event]
    topics: frozenset[str] | None = None
    dropped: bool = False


@dataclass
class Hub:
    model: ReadModel
    interval_s: float = 2.0
    max_clients: int = 32
    max_topics: int = 50
    queue_size: int = 8
    clock_ms: Callable[[], int] = now_ms
    subscribers: set[Subscriber] = field(default_factory=set)
    parts: dict[str, Event] = field(default_factory=dict)
    _seen: dict[str, bytes] = field(default_factory=dict)
    version: int = 0
    polls: int = 0
    redis_up: bool = True
    _wake: anyio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    closing: bool = False

    # ---- subscribers --------------------------------------------------------------------
    def subscribe(self, topics: Sequence[str] | None = None) -> Subscriber | None:
        """A new subscriber, or None when ``max_clients`` are connected already."""
        if self.closing or len(self.subscribers) >= self.max_clients:
            return None
        send, receive = anyio.create_memory_object_stream[Event](self.queue_size)
        sub = Subscriber(send, receive, frozenset(topics) if topics else None)
        self.subscribers.add(sub)
        if self._wake is not None:
            self._wake.set()  # the first viewer need not wait a whole interval
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        sub.send.close()
        sub.receive.close()

    def shutdown(self) -> None:
        """End every live stream now (any thread, a signal handler included): the server is
        stopping, and an open stream would otherwise hold its drain until the grace time."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._close_all)

    def _close_all(self) -> None:
        self.closing = True
        for sub in list(self.subscribers):
            self.subscribers.discard(sub)
            sub.send.close()

    def current(self) -> list[Event]:
        return [self.parts[p] for p in PARTS if p in self.parts]

    def publish(self, event: Event) -> None:
        for sub in list(self.subscribers):
            try:
                sub.send.send_nowait(event)
            except anyio.WouldBlock:
                log.info("live stream: a client is %d events behind; dropping it", self.queue_size)
                sub.dropped = True
                self.subscribers.discard(sub)
                sub.send.close()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.subscribers.discard(sub)

    # ---- the poller -----------------------------------------------------------------------
    def update(self, snap: dict[str, Any]) -> list[Event]:
        """Take a snapshot: the parts that changed get a new version and are published."""
        changed = []
        for part in PARTS:
            body = snap.get(part)
            if body is None:
                continue
            key = _comparable(part, body)
            if self._seen.get(part) == key:
                continue
            self._seen[part] = key
            self.version += 1
            event = (part, self.version, body)
            self.parts[part] = event
            changed.append(event)
            self.publish(event)
        return changed

    async def poll_once(self) -> None:
        self.polls += 1
        try:
            snap = await anyio.to_thread.run_sync(snapshot, self.model, self.max_topics, self.clock_ms)
        except MoodMonitorError as exc:  # down, or refusing this user (an ACL error is a ConfigError)
            if self.redis_up:
                log.warning("live stream: redis read failed: %s", exc)
            self.redis_up = False
            self.update({"status": {"now_ms": self.clock_ms(), "redis": "down", "processes": []}})
            return
        self.redis_up = True
        snap["status"]["redis"] = "up"
        self.update(snap)

    async def run(self) -> None:
        """Poll while anyone watches (nothing is read while no one does). Runs until cancelled."""
        self._loop = asyncio.get_running_loop()
        while True:
            if self.subscribers:
                await self.poll_once()
            self._wake = anyio.Event()
            with anyio.move_on_after(self.interval_s):
                await self._wake.wait()


def frame(event: Event, topics: frozenset[str] | None = None) -> bytes:
    """One Server-Sent Events frame (``topics``: only these topics' rows)."""
    part, version, body = event
    if part == "topics" and topics is not None:
        body = {**body, "topics": [r for r in body["topics"] if r["topic"] in topics]}
    head = b"event: " + part.encode() + b"\nid: " + str(version).encode()
    return head + b"\ndata: " + orjson.dumps(body) + b"\n\n"
