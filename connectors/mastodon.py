"""Mastodon: hashtag/public streaming over SSE, with REST backfill after a reconnect.

`to_post` maps one Status entity to a `Post`; `event_to_item` maps one streaming event
(``update``, ``status.update``, ``delete``, ...) to a `Post`, a `Deletion` or None. The text is
``spoiler_text`` plus ``content`` turned from HTML into plain text; boosts count as the boosted
status (the dedup on its id drops a boost of a status already seen). Only ``public`` and
``unlisted`` statuses are taken. ``language`` is client-set and often wrong, so it is used only
when ``trust_language`` is on. Post ids are ``mastodon:<host>:<status id>`` because a ``delete``
event carries only the instance-local id.

Statuses come from other servers through federation, so nothing in one is trusted: every field
is type-checked before it is iterated or converted (a status id is 1-32 ASCII digits, since it
becomes the integer cursor), a boost is followed one level only, and `to_post`, `event_to_item`
and `ws_frame_to_item` are `guarded` (any other exception is ``DecodeError(stage,
"internal_error:<type>")``). Error messages never quote the payload. The stream's lines are
bounded (`SSEParser.max_line_chars`), and so are REST bodies (`HttpSource`).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import orjson

from connectors.backoff import Backoff, RetryLater
from connectors.base import PostSink, Skip, guarded
from connectors.credentials import Secret
from connectors.http import BodyTooLarge, HttpSource, redact_url
from connectors.live import Item, LiveConnector
from connectors.markup import html_to_text
from connectors.sse import SSEParser
from monitor.errors import ConfigError, DecodeError
from monitor.messages import Deletion, Post
from monitor.store.connectors import ConnectorState

log = logging.getLogger(__name__)

SOURCE = "mastodon"
_VISIBLE = frozenset({"public", "unlisted"})
_IGNORED_EVENTS = frozenset(
    {
        "notification",
        "conversation",
        "filters_changed",
        "announcement",
        "announcement.reaction",
        "announcement.delete",
        "encrypted_message",
    }
)


def _ms(iso: Any, field: str) -> int:
    if not isinstance(iso, str) or len(iso) > 64:
        raise DecodeError(field, "missing or not a timestamp string")
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError as exc:
        raise DecodeError(field, "not an ISO timestamp") from exc
    if when.tzinfo is None:
        raise DecodeError(field, "timestamp without a time zone")
    ms = int(when.timestamp() * 1000)
    if ms <= 0:
        raise DecodeError(field, "before 1970")
    return ms


def status_id(v: Any) -> str | None:
    """A status id as the cursor needs it (1-32 ASCII digits: ``'²'.isdigit()`` is true and a
    5,000-digit string is over int()'s limit), else None."""
    if isinstance(v, str) and 0 < len(v) <= 32 and v.isascii() and v.isdigit():
        return v
    return None


def _first_str(*vs: Any) -> str:
    """The first of ``vs`` that is a non-empty string, else ""."""
    return next((v for v in vs if isinstance(v, str) and v), "")


def post_id(host: str, status_id: str) -> str:
    return f"{SOURCE}:{host}:{status_id}"


@guarded("status")
def to_post(status: Any, *, host: str, now_ms: int | None = None, trust_language: bool = False) -> Post:
    """One Status entity -> Post; DecodeError names a bad field, Skip a status with no words.
    A boost counts as the boosted status; a boost inside a boost is not a Mastodon status."""
    if not isinstance(status, dict):
        raise DecodeError("status", "expected a JSON object")
    if isinstance(status.get("reblog"), dict):
        status = status["reblog"]
        if isinstance(status.get("reblog"), dict):
            raise DecodeError("status.reblog.reblog", "a boost of a boost")
    sid = status_id(status.get("id"))
    if sid is None:
        raise DecodeError("status.id", "missing or not a string of 1-32 digits")
    visibility = status.get("visibility")
    if not isinstance(visibility, str) or visibility not in _VISIBLE:  # a list is not hashable
        raise Skip("not_public")
    content = status.get("content")
    if not isinstance(content, str):
        raise DecodeError("status.content", "missing or not a string")
    spoiler = status.get("spoiler_text") or ""
    text = "\n".join(
        t for t in (html_to_text(spoiler) if isinstance(spoiler, str) else "", html_to_text(content)) if t
    )
    if not text:
        raise Skip("no_text")
    account = status.get("account")
    if not isinstance(account, dict):
        account = {}
    lang = status.get("language") if trust_language else None
    tags = status.get("tags")
    names = [t.get("name") for t in tags if isinstance(t, dict)] if isinstance(tags, list) else []
    url = _first_str(status.get("url"), status.get("uri"))
    author = _first_str(account.get("url"), account.get("acct"))
    return Post(
        id=post_id(host, sid),
        source=SOURCE,
        text=text,
        created_ms=_ms(status.get("created_at"), "status.created_at"),
        ingested_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        author_id=author[:512],
        lang=lang[:16] if isinstance(lang, str) else "",
        url=url,
        hashtags=tuple(dict.fromkeys(t.casefold() for t in names if isinstance(t, str) and t)),
        is_reply=status.get("in_reply_to_id") is not None,
        is_quote=isinstance(status.get("quote"), dict),
    )


@guarded("event")
def event_to_item(
    event: str, data: str, *, host: str, now_ms: int | None = None, trust_language: bool = False
) -> Post | Deletion | None:
    """One streaming event (SSE ``event``/``data`` or a WebSocket frame's event/payload)."""
    if event == "update":
        try:
            status = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DecodeError("data", "malformed JSON") from exc
        return to_post(status, host=host, now_ms=now_ms, trust_language=trust_language)
    if event == "status.update":
        raise Skip("edit")  # an edit does not change counts
    if event == "delete":
        sid = status_id(data.strip().strip('"'))
        if sid is None:
            raise DecodeError("data", "delete payload is not a status id")
        return Deletion(
            id=post_id(host, sid),
            source=SOURCE,
            deleted_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        )
    if event in _IGNORED_EVENTS:
        return None
    name = event[:32]
    raise Skip(
        f"event_{name}"
        if name.isascii() and name.replace(".", "").replace("_", "").isalnum()
        else "event_other"
    )


@guarded("frame")
def ws_frame_to_item(
    frame: str, *, host: str, now_ms: int | None = None, trust_language: bool = False
) -> Post | Deletion | None:
    """A WebSocket frame ``{"stream", "event", "payload"}``, whose payload is JSON in a string."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("frame", "malformed JSON") from exc
    if not isinstance(obj, dict):
        raise DecodeError("frame", "expected a JSON object")
    if "error" in obj:
        status = obj.get("status")
        code = status if type(status) is int and 0 <= status < 1000 else "?"
        raise DecodeError("frame.error", f"server error {code}")
    event = obj.get("event")
    if not isinstance(event, str):
        raise DecodeError("frame.event", "missing or not a string")
    payload = obj.get("payload", "")
    if not isinstance(payload, str):
        raise DecodeError("frame.payload", "not a string")
    return event_to_item(event, payload, host=host, now_ms=now_ms, trust_language=trust_language)


def streaming_base(instance: Any) -> str | None:
    """The streaming server's HTTP base from ``/api/v2/instance`` (``configuration.urls.streaming``)
    or ``/api/v1/instance`` (``urls.streaming_api``); ws(s):// becomes http(s)://."""
    if not isinstance(instance, dict):
        return None
    conf = instance.get("configuration")
    v2 = conf.get("urls") if isinstance(conf, dict) else None
    v1 = instance.get("urls")
    url = (v2.get("streaming") if isinstance(v2, dict) else None) or (
        v1.get("streaming_api") if isinstance(v1, dict) else None
    )
    if not isinstance(url, str) or "://" not in url:
        return None
    scheme, rest = url.split("://", 1)
    return {"ws": "http", "wss": "https"}.get(scheme, scheme) + "://" + rest.rstrip("/")


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_safe(url: str) -> bool:
    """May a bearer token go to ``url`` at all: https, or plain http to a loopback address."""
    scheme = url.split("://", 1)[0].lower()
    return scheme == "https" or (scheme == "http" and _loopback(_host(url)))


def own_streaming_host(found: str, base_url: str) -> bool:
    """Is a discovered streaming URL the instance's own (F16): the instance's host or a
    subdomain of it (``streaming.mastodon.social`` for ``mastodon.social``), over https (or
    plain http on loopback), never a downgrade from an https instance."""
    host, base = _host(found), _host(base_url)
    if not host or not base or not token_safe(found):
        return False
    if base_url.lower().startswith("https://") and not found.lower().startswith("https://"):
        return False
    return host == base or host.endswith("." + base)


class MastodonConnector(LiveConnector):
    """One stream of one instance: ``public``, ``public:local`` or ``hashtag:<tag>``.

    Each session first backfills over REST from the newest status id produced (``min_id``,
    page after page until empty), then follows the SSE stream; a dropped stream ends the
    session, and the next one backfills the gap. Dedup on the status id absorbs the overlap.
    The access token (``MASTODON_TOKEN``) goes only into the Authorization header, only over
    https (or plain http to loopback: a ConfigError otherwise), and to a discovered streaming
    server only when it is the instance's own host or a subdomain (`own_streaming_host`);
    another one is refused with a warning, and the instance's own host streams instead. An
    explicit ``streaming_url`` (``--streaming-url``) may name any https host.
    """

    name = SOURCE

    def __init__(
        self,
        sink: PostSink,
        state: ConnectorState,
        *,
        base_url: str,
        stream: str,
        token: Secret | None = None,
        streaming_url: str | None = None,
        trust_language: bool = False,
        backfill_pages: int = 10,
        http: HttpSource | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(sink, state, backoff=backoff)
        kind, _, tag = stream.partition(":")
        if kind not in ("public", "hashtag") or (kind == "hashtag" and not tag):
            raise ConfigError(
                "connectors.mastodon", "stream", f"{stream!r} is not public, public:local or hashtag:<tag>"
            )
        self.base_url = base_url.rstrip("/")
        self.host = self.base_url.split("://", 1)[-1]
        self.stream = stream
        self.token = token
        self.streaming_url = streaming_url.rstrip("/") if streaming_url else None
        for name, url in (("base_url", self.base_url), ("streaming_url", self.streaming_url)):
            if token is not None and url is not None and not token_safe(url):
                raise ConfigError(
                    "connectors.mastodon",
                    name,
                    "MASTODON_TOKEN is sent only over https:// (or plain http to a loopback address)",
                )
        self.trust_language = trust_language
        self.backfill_pages = backfill_pages
        self.http = http or HttpSource(read_timeout_s=90.0)  # heartbeats come every ~15 s

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token.value}"} if self.token else {}

    def _paths(self) -> tuple[str, str, dict[str, str]]:
        """(REST timeline path, streaming path, params shared by both)."""
        kind, _, arg = self.stream.partition(":")
        if kind == "hashtag":
            return f"/api/v1/timelines/tag/{arg}", "/api/v1/streaming/hashtag", {"tag": arg}
        if arg == "local":
            return "/api/v1/timelines/public", "/api/v1/streaming/public/local", {"local": "true"}
        return "/api/v1/timelines/public", "/api/v1/streaming/public", {}

    def _item(self, make: Callable[[], Post | Deletion | None], size: int | None) -> Item | None:
        item = self.map_one(make, size=size)
        if item is None:
            return None
        sid = item.id.rsplit(":", 1)[1]
        return (f"del:{sid}" if isinstance(item, Deletion) else sid), item

    def _cursor_after(self, items: Sequence[Item]) -> str | None:
        ids = [int(k) for k, it in items if isinstance(it, Post)]  # status_id() checked them
        cur = self.state.cursor()
        best = max([*ids, int(cur) if cur is not None and status_id(cur) else 0])
        return str(best) if best and str(best) != cur else None

    def backfill(self) -> None:
        rest, _, params = self._paths()
        for _ in range(self.backfill_pages):
            cur = self.state.cursor()
            if not cur:
                return  # first start: follow the stream from now on
            try:
                r = self.http.get(
                    self.base_url + rest,
                    params={**params, "min_id": cur, "limit": "40"},
                    headers=self._headers(),
                )
            except BodyTooLarge as exc:
                self.bad("body_too_large", size=exc.limit, where=rest)
                return  # the stream moves the cursor on; the next backfill starts after it
            if r.status != 200:
                raise RetryLater(f"backfill {rest}: HTTP {r.status}")
            try:
                statuses = orjson.loads(r.body)
            except orjson.JSONDecodeError:
                self.bad("malformed_timeline", size=len(r.body), where=rest)
                return
            if not isinstance(statuses, list) or not statuses:
                return
            items = [
                it
                for st in statuses
                if (
                    it := self._item(
                        partial(to_post, st, host=self.host, trust_language=self.trust_language), None
                    )
                )
                is not None
            ]
            self.deliver(items, self._cursor_after(items))
            if not items:
                return

    def session(self) -> None:
        if self.streaming_url is None:
            try:
                r = self.http.get(self.base_url + "/api/v2/instance")
                found = streaming_base(orjson.loads(r.body)) if r.status == 200 else None
            except (orjson.JSONDecodeError, BodyTooLarge):
                found = None
            if found and self.token is not None and not own_streaming_host(found, self.base_url):
                log.warning(
                    "%s: the instance names %s as its streaming server, not https on its own host "
                    "or a subdomain: the token is not sent there; streaming from %s "
                    "(give --streaming-url to choose another)",
                    self.name,
                    redact_url(found),
                    redact_url(self.base_url),
                )
                found = None
            self.streaming_url = found or self.base_url
            log.info("%s: streaming from %s", self.name, redact_url(self.streaming_url))
        self.backfill()
        _, path, params = self._paths()
        parser = SSEParser()
        url = self.streaming_url + path
        with self.http.lines(
            url, params=params, headers=self._headers(), max_line_chars=parser.max_line_chars
        ) as (status, lines):
            if status != 200:
                raise RetryLater(f"stream {path}: HTTP {status}")
            self.connected = True
            self.report()
            for line in lines:
                ev = parser.feed_line(line)
                if ev is not None:
                    self.backoff.reset()
                    if ev.too_long:
                        self.bad("sse_event_too_long", size=ev.size)
                    elif (
                        item := self._item(
                            partial(
                                event_to_item,
                                ev.event,
                                ev.data,
                                host=self.host,
                                trust_language=self.trust_language,
                            ),
                            len(ev.data),
                        )
                    ) is not None:
                        self.deliver([item], self._cursor_after([item]))
                if not self.keep_going():
                    return
        raise RetryLater("stream ended")
