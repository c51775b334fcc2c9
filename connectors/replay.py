"""JSONL replay: demos, backfills and tests.

Each line is one post as a JSON object with at least ``id`` and ``text``; missing fields are
filled (``source`` "replay", ``created_ms``/``ingested_ms`` now, the schema version). With
``now=True`` every post's ``created_ms`` is set to the moment it is sent (a live-looking demo).
A line that cannot be turned into a post is forwarded as it is, keyed by its line number, so the
worker parks it in the DLQ with the reason: bad input never vanishes. Whatever a line holds
(deep nesting, huge numbers, odd types), `normalise_line` never raises: any exception while
reading it makes it such a forwarded line, counted and logged by line number, never by content.
``rate_per_s`` paces the replay for backfills; a progress bar shows how far it has got.
With ``loop=True`` the file is replayed again and again, and every pass after the first gives
its posts fresh ids (``<id>~<pass>``; with ``now=True`` fresh times too), so a looped stream
keeps counting instead of ending in the DLQ as duplicates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from connectors.base import Connector, PostSink
from monitor.errors import DecodeError
from monitor.messages import SCHEMA_VERSION, decode

log = logging.getLogger(__name__)


def normalise_line(
    line: bytes, *, now_ms: int, force_now: bool, pass_no: int = 0
) -> tuple[bytes | None, bytes]:
    """-> (key, value). A good line becomes an encoded post keyed by its id (``<id>~<pass_no>``
    after the first pass); a bad one is returned unchanged with key None (the caller keys it
    by line number). Never raises."""
    try:
        return _normalise(line, now_ms=now_ms, force_now=force_now, pass_no=pass_no)
    except Exception:  # a line of any shape is the DLQ's business, never the end of a replay
        return None, line


def _normalise(line: bytes, *, now_ms: int, force_now: bool, pass_no: int = 0) -> tuple[bytes | None, bytes]:
    try:
        obj: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, line
    if not isinstance(obj, dict):
        return None, line
    obj.setdefault("v", SCHEMA_VERSION)
    obj.setdefault("kind", "post")
    if pass_no and isinstance(obj.get("id"), str) and obj["id"]:
        obj["id"] = f"{obj['id']}~{pass_no}"
    if obj.get("kind") == "post":
        obj.setdefault("source", "replay")
        obj.setdefault("ingested_ms", now_ms)
        if force_now or "created_ms" not in obj:
            obj["created_ms"] = now_ms
        if force_now:
            obj["ingested_ms"] = now_ms
    value = orjson.dumps(obj)
    try:
        decode(value, max_text_chars=10_000_000)
    except DecodeError:
        return None, value  # let the worker name the field in the DLQ
    pid = obj.get("id")
    return (pid.encode() if isinstance(pid, str) and pid else None), value


class ReplayConnector(Connector):
    name = "replay"

    def __init__(
        self,
        sink: PostSink,
        path: str | Path,
        *,
        rate_per_s: float | None = None,
        now: bool = False,
        progress: bool = False,
        loop: bool = False,
    ) -> None:
        super().__init__(sink)
        self.path = Path(path)
        self.rate_per_s = rate_per_s
        self.now = now
        self.progress = progress
        self.loop = loop

    def _lines(self) -> Iterator[tuple[int, int, bytes]]:
        """(pass, line number, line) of every non-blank line; passes go on while ``loop``."""
        pass_no = 0
        while True:
            with self.path.open("rb") as fh:
                for n, line in enumerate(fh, start=1):
                    stripped = line.strip()
                    if stripped:
                        yield pass_no, n, stripped
            if not self.loop:
                return
            pass_no += 1

    def run(self, max_items: int | None = None) -> int:
        total = None
        if self.progress:
            with self.path.open("rb") as fh:
                total = sum(1 for ln in fh if ln.strip())
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="post", desc=f"replay {self.path.name}")
        start = time.monotonic()
        sent = 0
        failed = True
        try:
            for pass_no, n, line in self._lines():
                if not self.running or (max_items is not None and sent >= max_items):
                    break
                if self.rate_per_s:
                    due = start + sent / self.rate_per_s
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                key, value = normalise_line(
                    line, now_ms=int(time.time() * 1000), force_now=self.now, pass_no=pass_no
                )
                if key is None:
                    self.stats.count_bad("unparseable_line")
                    log.warning("%s line %d is not a valid post; forwarded for the DLQ", self.path, n)
                    key = f"{self.path.name}:{n}".encode()
                    self.stats.produced += 1
                    self.sink.send(key, value)
                else:
                    self.sink.send(key, value)
                    self.stats.produced += 1
                sent += 1
                if bar is not None:
                    bar.update(1)
            failed = False
        finally:
            if bar is not None:
                bar.close()
            self.cleanup(failed)
        return 0
