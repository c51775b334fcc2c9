"""RSS 0.9x/1.0/2.0 and Atom feeds, polled with conditional GET (ETag / Last-Modified).

`parse_feed` turns a feed document into ``(dedup_key, Post)`` pairs with feedparser (the only
module importing it); `to_post` maps one entry. The text is the title plus the entry's content
or description turned from HTML into plain text (Reddit's Atom boilerplate, "submitted by /u/...
[link] [comments]", is cut). The dedup key is ``guid``/Atom ``id``, else ``link``, else a hash of
the title and text. Time is ``published``, else ``updated``, else the poll time: feeds are not
in date order, so nothing relies on it. A document feedparser cannot read at all raises
`DecodeError`; one it read with complaints (the "bozo" flag) still yields its entries.

A feed is written by someone else: its bytes are capped before feedparser sees them (the HTTP
client's ``max_body_bytes`` and `MAX_FEED_BYTES` here), entity tricks are left to feedparser
(its strict parser refuses a DTD's entities, and its loose fallback leaves ``&lol;`` as text:
no expansion, no external fetch), HTML goes through `html_to_text` (itself capped), and the
Reddit boilerplate is cut with `monitor.patterns.REDDIT_TAIL` (RE2: linear time). `to_post`
and `parse_feed` are `guarded`: any other exception from one entry is ``DecodeError("entry",
"internal_error:<type>")``, counted by `FeedConnector.poll`, which goes on with the rest.
Feed URLs are logged, and name their conditional-GET state in Redis, only redacted (F16: no
user:password@, no query; private feeds carry tokens there): the state's field is
``etag:<redacted URL>#<sha256 of the whole URL, 12 hex>``, unique per feed without holding it.
"""

from __future__ import annotations

import calendar
import hashlib
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import feedparser

from connectors.backoff import Backoff, RetryLater, wait
from connectors.base import PostSink, Skip, guarded
from connectors.http import MAX_BODY_BYTES, BodyTooLarge, HttpSource, redact_url
from connectors.live import Item, LiveConnector
from connectors.markup import html_to_text
from monitor.errors import ConfigError, DecodeError
from monitor.messages import MAX_ID_CHARS, Post
from monitor.patterns import REDDIT_TAIL
from monitor.store.connectors import ConnectorState

SOURCE = "rss"
MAX_FEED_BYTES = MAX_BODY_BYTES
_SC_ON = "<!-- SC_ON -->"


def _plain(detail: Any, value: str) -> str:
    kind = detail.get("type") if isinstance(detail, dict) else None
    if (isinstance(kind, str) and "html" in kind) or "<" in value:
        return html_to_text(value)
    return value.strip()


def _body(entry: Any) -> str:
    parts = entry.get("content")
    for part in parts if isinstance(parts, list) else []:
        if isinstance(part, dict) and isinstance(part.get("value"), str) and part["value"].strip():
            return _cut(part["value"], part)
    summary = entry.get("summary")
    if isinstance(summary, str):
        return _cut(summary, entry.get("summary_detail"))
    return ""


def _cut(value: str, detail: Any) -> str:
    if _SC_ON in value:
        value = value.split(_SC_ON, 1)[0]
    text: str = REDDIT_TAIL.sub("", _plain(detail, value))
    return text


def dedup_key(entry: Any, text: str) -> str:
    for name in ("id", "link"):
        v = entry.get(name)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return "sha1:" + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _ms(entry: Any, now_ms: int) -> int:
    for name in ("published_parsed", "updated_parsed"):
        st = entry.get(name)
        if isinstance(st, time.struct_time):
            ms = int(calendar.timegm(st) * 1000)
            if 0 < ms < 2**53:
                return ms
    return now_ms


@guarded("entry")
def to_post(entry: Any, *, feed_lang: str = "", now_ms: int | None = None) -> tuple[str, Post]:
    """One feedparser entry -> (dedup key, Post); Skip when it has neither title nor text."""
    if not isinstance(entry, dict):
        raise DecodeError("entry", "expected a mapping")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    title = entry.get("title")
    title = _plain(entry.get("title_detail"), title) if isinstance(title, str) else ""
    body = _body(entry)
    text = title if not body or body == title else (f"{title}\n\n{body}" if title else body)
    if not text.strip():
        raise Skip("no_text")
    key = dedup_key(entry, text)
    pid = f"{SOURCE}:{key}"
    if len(pid) > MAX_ID_CHARS:
        pid = f"{SOURCE}:sha1:{hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()}"
    link = entry.get("link")
    author = entry.get("author")
    return key, Post(
        id=pid,
        source=SOURCE,
        text=text,
        created_ms=_ms(entry, now),
        ingested_ms=now,
        author_id=author[:512] if isinstance(author, str) else "",
        lang=feed_lang[:16],
        url=link if isinstance(link, str) else "",
    )


@guarded("feed")
def parse_feed(document: bytes) -> tuple[list[Any], str]:
    """-> (entries, feed language). DecodeError when the bytes are not a feed at all, or are
    over `MAX_FEED_BYTES`."""
    if len(document) > MAX_FEED_BYTES:
        raise DecodeError("feed", f"over {MAX_FEED_BYTES} bytes")
    d = feedparser.parse(document)
    found = d.get("entries")
    entries = list(found) if isinstance(found, list) else []
    if not entries and not d.get("version"):
        exc = d.get("bozo_exception")
        why = exc.__class__.__name__ if exc else "no RSS/Atom root element"
        raise DecodeError("feed", f"not an RSS/Atom document ({why})")
    feed = d.get("feed")
    lang = feed.get("language") if isinstance(feed, dict) else None
    return entries, lang.split("-")[0].lower() if isinstance(lang, str) else ""


def feed_ref(url: str) -> str:
    """How a feed is named in Redis: redacted, plus a digest of the whole URL (two feeds that
    differ only in their token keep apart)."""
    return f"{redact_url(url)}#{hashlib.sha256(url.encode()).hexdigest()[:12]}"


class FeedConnector(LiveConnector):
    """Polls each feed URL with ``If-None-Match``/``If-Modified-Since`` from the last 200 answer
    (kept in Redis), so an unchanged feed costs a 304 and no parsing; new entries are found by the
    dedup on their keys, since feeds are in no reliable order."""

    name = SOURCE

    def __init__(
        self,
        sink: PostSink,
        state: ConnectorState,
        *,
        feeds: Sequence[str],
        poll_interval_s: float = 300.0,
        http: HttpSource | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(sink, state, backoff=backoff)
        if not feeds:
            raise ConfigError("connectors.rss", "feeds", "no feed URLs configured")
        self.feeds = list(feeds)
        self.poll_interval_s = poll_interval_s
        self.http = http or HttpSource()
        self.not_modified = 0

    def poll(self, url: str) -> None:
        headers = {}
        ref = feed_ref(url)
        etag, modified = self.state.meta(f"etag:{ref}"), self.state.meta(f"modified:{ref}")
        if etag:
            headers["If-None-Match"] = etag
        if modified:
            headers["If-Modified-Since"] = modified
        where = redact_url(url)
        try:
            r = self.http.get(url, headers=headers)
        except BodyTooLarge as exc:
            self.connected = True
            self.bad("body_too_large", size=exc.limit, where=where)
            return
        self.connected = True
        if r.status == 304:
            self.not_modified += 1
            self.extra_status["not_modified"] = self.not_modified
            self.report()
            return
        if r.status != 200:
            raise RetryLater(f"feed {where}: HTTP {r.status}")
        meta = {
            f"etag:{ref}": r.headers.get("etag", ""),
            f"modified:{ref}": r.headers.get("last-modified", ""),
        }
        try:
            entries, lang = parse_feed(r.body)
        except DecodeError as exc:
            self.bad("not_a_feed", size=len(r.body), why=exc.reason, where=where)
            self.state.commit([], None, meta={k: "" for k in meta})  # re-fetch it whole next time
            return
        items: list[Item] = []
        now = int(time.time() * 1000)
        for e in entries:
            got = self.map_one(partial(to_post, e, feed_lang=lang, now_ms=now))
            if got is not None:
                items.append(got)
        self.deliver(items, meta=meta)
        self.backoff.reset()

    def session(self) -> None:
        while self.keep_going():
            for url in self.feeds:
                if not self.keep_going():
                    return
                self.poll(url)
            wait(self.poll_interval_s, self.keep_going)
