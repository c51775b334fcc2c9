"""Reddit: new posts and comments of configured subreddits, polled with app-only OAuth.

`listing_items` maps one Listing (``/r/<sub>/new`` or ``/r/<sub>/comments``) to
``(fullname, Post)`` pairs, newest first as Reddit sends them; `to_post` maps one ``t3`` (post:
title + selftext) or ``t1`` (comment: body) thing. Time is ``created_utc``. Removed or deleted
bodies (``[removed]``, ``[deleted]``) carry no words and are skipped with a count. A child that
is not an object, or lacks its fullname or time, raises `DecodeError` naming the field.
"""

from __future__ import annotations

import time
from typing import Any

from connectors.base import Skip
from monitor.errors import DecodeError
from monitor.messages import Post

SOURCE = "reddit"
_GONE = frozenset({"[removed]", "[deleted]"})


def _text(data: dict[str, Any], name: str) -> str:
    v = data.get(name)
    return v if isinstance(v, str) else ""


def to_post(thing: Any, *, now_ms: int | None = None) -> Post:
    if not isinstance(thing, dict):
        raise DecodeError("child", "expected a JSON object")
    kind = thing.get("kind")
    data = thing.get("data")
    if not isinstance(data, dict):
        raise DecodeError("child.data", "missing or not an object")
    name = data.get("name")
    if not isinstance(name, str) or not name.startswith(("t1_", "t3_")):
        raise DecodeError("child.data.name", "missing or not a t1_/t3_ fullname")
    created = data.get("created_utc")
    if isinstance(created, bool) or not isinstance(created, int | float) or created <= 0:
        raise DecodeError("child.data.created_utc", "missing or not a positive number")
    if kind == "t3":
        title = _text(data, "title")
        body = _text(data, "selftext")
        text = "\n\n".join(t.strip() for t in (title, "" if body in _GONE else body) if t.strip())
    elif kind == "t1":
        if not isinstance(data.get("body"), str):
            raise DecodeError("child.data.body", "missing or not a string")
        text = _text(data, "body").strip()
        if text in _GONE:
            raise Skip("removed")
    else:
        raise DecodeError("child.kind", f"expected t1 or t3, got {str(kind)[:16]!r}")
    if not text:
        raise Skip("no_text")
    permalink = data.get("permalink")
    return Post(
        id=f"{SOURCE}:{name}", source=SOURCE, text=text, created_ms=int(created * 1000),
        ingested_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        author_id=str(data.get("author_fullname") or data.get("author") or "")[:512],
        url=f"https://www.reddit.com{permalink}" if isinstance(permalink, str) else "",
        is_reply=kind == "t1" and str(data.get("parent_id", "")).startswith("t1_"),
    )


def listing_children(listing: Any) -> list[Any]:
    """The ``data.children`` of a Listing; DecodeError when the document is not one."""
    if not isinstance(listing, dict) or listing.get("kind") != "Listing":
        raise DecodeError("listing", "not a Listing object")
    data = listing.get("data")
    children = data.get("children") if isinstance(data, dict) else None
    if not isinstance(children, list):
        raise DecodeError("listing.data.children", "missing or not a list")
    return children


def fullname(thing: Any) -> str | None:
    data = thing.get("data") if isinstance(thing, dict) else None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None
