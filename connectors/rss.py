"""RSS 0.9x/1.0/2.0 and Atom feeds, polled with conditional GET (ETag / Last-Modified).

`parse_feed` turns a feed document into ``(dedup_key, Post)`` pairs with feedparser (the only
module importing it); `to_post` maps one entry. The text is the title plus the entry's content
or description turned from HTML into plain text (Reddit's Atom boilerplate, "submitted by /u/...
[link] [comments]", is cut). The dedup key is ``guid``/Atom ``id``, else ``link``, else a hash of
the title and text. Time is ``published``, else ``updated``, else the poll time: feeds are not
in date order, so nothing relies on it. A document feedparser cannot read at all raises
`DecodeError`; one it read with complaints (the "bozo" flag) still yields its entries.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import time
from typing import Any

import feedparser

from connectors.base import Skip
from connectors.markup import html_to_text
from monitor.errors import DecodeError
from monitor.messages import MAX_ID_CHARS, Post

SOURCE = "rss"
_REDDIT_TAIL = re.compile(r"\s*submitted by\s+/u/\S+.*?\[link\]\s*\[comments\]\s*$", re.DOTALL)
_SC_ON = "<!-- SC_ON -->"


def _plain(detail: Any, value: str) -> str:
    kind = detail.get("type", "") if isinstance(detail, dict) else ""
    if "html" in kind or "<" in value:
        return html_to_text(value)
    return value.strip()


def _body(entry: Any) -> str:
    parts = entry.get("content") or []
    for part in parts:
        if isinstance(part, dict) and isinstance(part.get("value"), str) and part["value"].strip():
            return _cut(part["value"], part)
    summary = entry.get("summary")
    if isinstance(summary, str):
        return _cut(summary, entry.get("summary_detail"))
    return ""


def _cut(value: str, detail: Any) -> str:
    if _SC_ON in value:
        value = value.split(_SC_ON, 1)[0]
    return _REDDIT_TAIL.sub("", _plain(detail, value))


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
            return int(calendar.timegm(st) * 1000)
    return now_ms


def to_post(entry: Any, *, feed_lang: str = "", now_ms: int | None = None) -> tuple[str, Post]:
    """One feedparser entry -> (dedup key, Post); Skip when it has neither title nor text."""
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
        id=pid, source=SOURCE, text=text, created_ms=_ms(entry, now), ingested_ms=now,
        author_id=author[:512] if isinstance(author, str) else "",
        lang=feed_lang[:16], url=link if isinstance(link, str) else "",
    )


def parse_feed(document: bytes) -> tuple[list[Any], str]:
    """-> (entries, feed language). DecodeError when the bytes are not a feed at all."""
    d = feedparser.parse(document)
    entries = list(d.get("entries") or [])
    if not entries and d.get("bozo") and not d.get("feed"):
        exc = d.get("bozo_exception")
        raise DecodeError("feed", f"not an RSS/Atom document ({exc.__class__.__name__ if exc else '?'})")
    lang = d.get("feed", {}).get("language")
    return entries, lang.split("-")[0].lower() if isinstance(lang, str) else ""
