"""Bluesky through Jetstream v1 (``wss://<host>/subscribe?wantedCollections=app.bsky.feed.post``).

`to_post` maps one Jetstream event to a `Post` (a post create), a `Deletion` (a post delete) or
None (likes, follows, updates, identity/account events: not mood). Post text is the record's
text; the time is the server-witnessed ``time_us`` (``createdAt`` is client-set and spoofable);
the language is the first of ``langs``. `features` gives the hashtags (facet tags, record tags)
and the reply/quote flags.

Every field is type-checked before it is iterated or converted, and `to_post` is `guarded`: any
other exception from one event becomes ``DecodeError("event", "internal_error:<type>")``, which
`JetstreamConnector.handle` counts as a bad frame. A bad frame whose ``time_us`` is readable
still moves the cursor past it, so a restart does not meet it again.

Resume: the cursor is the largest ``time_us`` produced (arrival order is not monotonic), and a
reconnect asks for ``cursor - rewind_s``; the replayed overlap is dropped by the dedup on
``did/rkey``. No credentials; Jetstream publishes no rate limits, so reconnects back off with
jitter.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from connectors.backoff import Backoff, RetryLater, retry_after_s
from connectors.base import PostSink, Skip, guarded
from connectors.live import Item, LiveConnector
from monitor.errors import DecodeError
from monitor.messages import MAX_ID_CHARS, Deletion, Post
from monitor.store.connectors import ConnectorState

log = logging.getLogger(__name__)

SOURCE = "bluesky"
POST_COLLECTION = "app.bsky.feed.post"


def post_uri(did: str, rkey: str) -> str:
    return f"at://{did}/{POST_COLLECTION}/{rkey}"


def _need(obj: dict[str, Any], name: str, typ: type, where: str) -> Any:
    v = obj.get(name)
    if not isinstance(v, typ) or (typ is str and not v):
        raise DecodeError(f"{where}.{name}", f"missing or not a {typ.__name__}")
    return v


def event_time_us(event: Any) -> int:
    """The event's ``time_us`` (Jetstream's clock) when it is an integer whose milliseconds are
    a valid post time (1 .. 2**53 - 1), else 0."""
    time_us = event.get("time_us") if isinstance(event, dict) else None
    if type(time_us) is not int or not 1000 <= time_us < (2**53) * 1000:
        return 0
    return time_us


@guarded("event")
def to_post(event: Any, *, now_ms: int | None = None) -> Post | Deletion | None:
    """One decoded Jetstream event -> Post / Deletion / None; DecodeError names a bad field."""
    if not isinstance(event, dict):
        raise DecodeError("event", "expected a JSON object")
    kind = _need(event, "kind", str, "event")
    time_us = event_time_us(event)
    if not time_us:
        raise DecodeError("event.time_us", "missing or not a positive integer of microseconds")
    if kind != "commit":
        return None
    did = _need(event, "did", str, "event")
    commit = _need(event, "commit", dict, "event")
    if commit.get("collection") != POST_COLLECTION:
        return None
    op = _need(commit, "operation", str, "commit")
    rkey = _need(commit, "rkey", str, "commit")
    pid = f"{SOURCE}:{post_uri(did, rkey)}"
    if len(pid) > MAX_ID_CHARS:
        raise DecodeError("event.did/commit.rkey", "longer than a post id may be")
    if op == "delete":
        return Deletion(id=pid, source=SOURCE, deleted_ms=time_us // 1000)
    if op != "create":
        return None  # edits do not change counts
    record = _need(commit, "record", dict, "commit")
    text = record.get("text")
    if not isinstance(text, str):
        raise DecodeError("record.text", "missing or not a string")
    if not text.strip():
        raise Skip("no_text")  # a link- or image-only post has no words to score
    langs = record.get("langs")
    lang = langs[0] if isinstance(langs, list) and langs and isinstance(langs[0], str) else ""
    f = features(record)
    return Post(
        id=pid,
        source=SOURCE,
        text=text,
        created_ms=time_us // 1000,
        ingested_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        author_id=did,
        lang=lang[:16],
        url=f"https://bsky.app/profile/{did}/post/{rkey}",
        hashtags=f.hashtags,
        is_reply=f.is_reply,
        is_quote=f.is_quote,
    )


@dataclass(frozen=True, slots=True)
class Features:
    hashtags: tuple[str, ...]
    is_reply: bool
    is_quote: bool


def _list(v: Any) -> list[Any]:
    """A field that should be a list: itself when it is one, else nothing (a string, a number or
    an object in its place is ignored, never iterated)."""
    return v if isinstance(v, list) else []


def features(record: dict[str, Any]) -> Features:
    """Hashtags (facet tags + record tags, case-folded), reply and quote flags of a post record.
    ``facets``, a facet's ``features`` and ``tags`` are read only when they are lists."""
    tags: list[str] = []
    for facet in _list(record.get("facets")):
        for feat in _list(facet.get("features")) if isinstance(facet, dict) else []:
            if isinstance(feat, dict) and feat.get("$type") == "app.bsky.richtext.facet#tag":
                tag = feat.get("tag")
                if isinstance(tag, str) and tag:
                    tags.append(tag.lstrip("#").casefold())
    tags += [t.lstrip("#").casefold() for t in _list(record.get("tags")) if isinstance(t, str) and t]
    embed = record.get("embed")
    etype = embed.get("$type", "") if isinstance(embed, dict) else ""
    return Features(
        hashtags=tuple(dict.fromkeys(t for t in tags if t)),
        is_reply=isinstance(record.get("reply"), dict),
        is_quote=etype in ("app.bsky.embed.record", "app.bsky.embed.recordWithMedia"),
    )


def dedup_key(item: Post | Deletion) -> str:
    return ("del:" if isinstance(item, Deletion) else "") + item.id.removeprefix(f"{SOURCE}:at://")


class JetstreamConnector(LiveConnector):
    name = SOURCE

    def __init__(
        self,
        sink: PostSink,
        state: ConnectorState,
        *,
        url: str,
        rewind_s: float = 5.0,
        batch_max: int = 200,
        batch_wait_s: float = 0.5,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(sink, state, backoff=backoff)
        self.url = url
        self.rewind_s = rewind_s
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.max_time_us = 0

    def connect_url(self) -> str:
        stored = self.state.cursor()
        if stored and stored.isascii() and stored.isdigit() and len(stored) <= 20:
            self.max_time_us = max(self.max_time_us, int(stored))
        params: list[tuple[str, str]] = [("wantedCollections", POST_COLLECTION)]
        if self.max_time_us:
            params.append(("cursor", str(max(0, self.max_time_us - int(self.rewind_s * 1e6)))))
        return f"{self.url}?{urlencode(params)}"

    def session(self) -> None:
        url = self.connect_url()
        try:
            ws = connect(url, open_timeout=10, close_timeout=2, max_size=2**22)
        except InvalidStatus as exc:
            status = exc.response.status_code
            wait_s = retry_after_s(exc.response.headers.get("Retry-After"))
            raise RetryLater(f"Jetstream answered HTTP {status}", wait_s) from exc
        except InvalidHandshake as exc:
            raise RetryLater(f"Jetstream handshake failed: {exc}") from exc
        with ws:
            self.connected = True
            self.report()
            log.info("%s connected: %s", self.name, url)
            batch: list[Item] = []
            batch_max_us = self.max_time_us
            deadline = time.monotonic() + self.batch_wait_s
            try:
                while self.keep_going():
                    try:
                        frame = ws.recv(timeout=max(0.05, deadline - time.monotonic()))
                    except TimeoutError:
                        frame = None
                    if frame is not None:
                        batch_max_us = max(batch_max_us, self.handle(frame, batch))
                    if len(batch) >= self.batch_max or time.monotonic() >= deadline:
                        self.flush_batch(batch, batch_max_us)
                        batch = []
                        deadline = time.monotonic() + self.batch_wait_s
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else "no close frame"
                raise RetryLater(f"Jetstream connection closed ({code})") from exc
            finally:
                self.flush_batch(batch, batch_max_us)

    def handle(self, frame: str | bytes, batch: list[Item]) -> int:
        """Parse one frame into ``batch``; -> its time_us, also for a skipped or bad event whose
        time_us is readable (the cursor moves past it); 0 when there is none. Never raises for
        a frame's content: a bad one is counted and logged by reason and size."""
        if isinstance(frame, bytes):
            self.bad("binary_frame", size=len(frame))
            return 0
        try:
            event = orjson.loads(frame)
        except orjson.JSONDecodeError:
            self.bad("malformed_json", size=len(frame))
            return 0
        item = self.map_one(lambda: to_post(event), size=len(frame))
        self.backoff.reset()
        if item is not None:
            batch.append((dedup_key(item), item))
        return event_time_us(event)

    def flush_batch(self, batch: list[Item], max_us: int) -> None:
        if not batch and max_us <= self.max_time_us:
            return
        cursor = str(max_us) if max_us > self.max_time_us else None
        self.deliver(batch, cursor)  # may raise Done in a bounded run, after checkpointing
        self.max_time_us = max(self.max_time_us, max_us)
