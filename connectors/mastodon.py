"""Mastodon: hashtag/public streaming over SSE, with REST backfill after a reconnect.

`to_post` maps one Status entity to a `Post`; `event_to_item` maps one streaming event
(``update``, ``status.update``, ``delete``, ...) to a `Post`, a `Deletion` or None. The text is
``spoiler_text`` plus ``content`` turned from HTML into plain text; boosts count as the boosted
status (the dedup on its id drops a boost of a status already seen). Only ``public`` and
``unlisted`` statuses are taken. ``language`` is client-set and often wrong, so it is used only
when ``trust_language`` is on. Post ids are ``mastodon:<host>:<status id>`` because a ``delete``
event carries only the instance-local id.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson

from connectors.base import Skip
from connectors.markup import html_to_text
from monitor.errors import DecodeError
from monitor.messages import Deletion, Post

SOURCE = "mastodon"
_VISIBLE = frozenset({"public", "unlisted"})
_IGNORED_EVENTS = frozenset({"notification", "conversation", "filters_changed", "announcement",
                             "announcement.reaction", "announcement.delete", "encrypted_message"})


def _ms(iso: Any, field: str) -> int:
    if not isinstance(iso, str):
        raise DecodeError(field, "missing or not a string")
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError as exc:
        raise DecodeError(field, f"not an ISO timestamp: {iso[:40]!r}") from exc
    if when.tzinfo is None:
        raise DecodeError(field, "timestamp without a time zone")
    return int(when.timestamp() * 1000)


def post_id(host: str, status_id: str) -> str:
    return f"{SOURCE}:{host}:{status_id}"


def to_post(status: Any, *, host: str, now_ms: int | None = None,
            trust_language: bool = False) -> Post:
    """One Status entity -> Post; DecodeError names a bad field, Skip a status with no words."""
    if not isinstance(status, dict):
        raise DecodeError("status", "expected a JSON object")
    if isinstance(status.get("reblog"), dict):
        return to_post(status["reblog"], host=host, now_ms=now_ms, trust_language=trust_language)
    sid = status.get("id")
    if not isinstance(sid, str) or not sid.isdigit():
        raise DecodeError("status.id", "missing or not a string of digits")
    if status.get("visibility") not in _VISIBLE:
        raise Skip("not_public")
    content = status.get("content")
    if not isinstance(content, str):
        raise DecodeError("status.content", "missing or not a string")
    spoiler = status.get("spoiler_text") or ""
    text = "\n".join(t for t in (html_to_text(spoiler) if isinstance(spoiler, str) else "",
                                 html_to_text(content)) if t)
    if not text:
        raise Skip("no_text")
    account = status.get("account")
    if not isinstance(account, dict):
        account = {}
    lang = status.get("language") if trust_language else None
    tags = [t.get("name") for t in status.get("tags") or [] if isinstance(t, dict)]
    url = status.get("url") or status.get("uri") or ""
    return Post(
        id=post_id(host, sid), source=SOURCE, text=text,
        created_ms=_ms(status.get("created_at"), "status.created_at"),
        ingested_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        author_id=str(account.get("url") or account.get("acct") or "")[:512],
        lang=lang[:16] if isinstance(lang, str) else "",
        url=url if isinstance(url, str) else "",
        hashtags=tuple(dict.fromkeys(t.casefold() for t in tags if isinstance(t, str) and t)),
        is_reply=status.get("in_reply_to_id") is not None,
        is_quote=isinstance(status.get("quote"), dict),
    )


def event_to_item(event: str, data: str, *, host: str, now_ms: int | None = None,
                  trust_language: bool = False) -> Post | Deletion | None:
    """One streaming event (SSE ``event``/``data`` or a WebSocket frame's event/payload)."""
    if event == "update":
        try:
            status = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DecodeError("data", f"malformed JSON ({exc})") from exc
        return to_post(status, host=host, now_ms=now_ms, trust_language=trust_language)
    if event == "status.update":
        raise Skip("edit")  # an edit does not change counts
    if event == "delete":
        sid = data.strip().strip('"')
        if not sid.isdigit():
            raise DecodeError("data", f"delete payload is not a status id: {data[:40]!r}")
        return Deletion(id=post_id(host, sid), source=SOURCE,
                        deleted_ms=int(time.time() * 1000) if now_ms is None else now_ms)
    if event in _IGNORED_EVENTS:
        return None
    raise Skip(f"event_{event[:32]}")


def ws_frame_to_item(frame: str, *, host: str, now_ms: int | None = None,
                     trust_language: bool = False) -> Post | Deletion | None:
    """A WebSocket frame ``{"stream", "event", "payload"}``, whose payload is JSON in a string."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("frame", f"malformed JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise DecodeError("frame", "expected a JSON object")
    if "error" in obj:
        raise DecodeError("frame.error", f"server error {obj.get('status')}: {obj['error']}")
    event = obj.get("event")
    if not isinstance(event, str):
        raise DecodeError("frame.event", "missing or not a string")
    payload = obj.get("payload", "")
    if not isinstance(payload, str):
        raise DecodeError("frame.payload", "not a string")
    return event_to_item(event, payload, host=host, now_ms=now_ms, trust_language=trust_language)
