"""Reddit: new posts and comments of configured subreddits, polled with app-only OAuth.

`listing_items` maps one Listing (``/r/<sub>/new`` or ``/r/<sub>/comments``) to
``(fullname, Post)`` pairs, newest first as Reddit sends them; `to_post` maps one ``t3`` (post:
title + selftext) or ``t1`` (comment: body) thing. Time is ``created_utc``. Removed or deleted
bodies (``[removed]``, ``[deleted]``) carry no words and are skipped with a count. A child that
is not an object, or lacks its fullname or time, raises `DecodeError` naming the field; `to_post`
is `guarded`, so any other exception from one child is ``DecodeError("child",
"internal_error:<type>")`` and `RedditConnector.poll` counts it and goes on with the rest of the
listing. Numbers from Reddit (``created_utc``, the rate-limit headers, ``expires_in``) are
range-checked before they are converted or slept on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import orjson

from connectors.backoff import Backoff, RetryLater, wait
from connectors.base import PostSink, Skip, guarded
from connectors.credentials import Secret
from connectors.http import BodyTooLarge, HttpSource
from connectors.live import Item, LiveConnector
from monitor.errors import ConfigError, DecodeError
from monitor.messages import MAX_ID_CHARS, Post
from monitor.store.connectors import ConnectorState

SOURCE = "reddit"
_GONE = frozenset({"[removed]", "[deleted]"})
_MAX_CREATED_S = 2**53 // 1000  # created_ms must stay an exact integer (the wire format's limit)
_MAX_WAIT_S = 3600.0  # no rate-limit header may make us sleep longer than this


def _text(data: dict[str, Any], name: str) -> str:
    v = data.get(name)
    return v if isinstance(v, str) else ""


@guarded("child")
def to_post(thing: Any, *, now_ms: int | None = None) -> Post:
    if not isinstance(thing, dict):
        raise DecodeError("child", "expected a JSON object")
    kind = thing.get("kind")
    data = thing.get("data")
    if not isinstance(data, dict):
        raise DecodeError("child.data", "missing or not an object")
    name = data.get("name")
    if not isinstance(name, str) or not name.startswith(("t1_", "t3_")) or len(name) > MAX_ID_CHARS - 16:
        raise DecodeError("child.data.name", "missing or not a t1_/t3_ fullname")
    created = data.get("created_utc")
    # `not 0 < x <= max` is also true for NaN; 1e308 * 1000 would be inf (OverflowError in int())
    if isinstance(created, bool) or not isinstance(created, int | float) or not 0 < created <= _MAX_CREATED_S:
        raise DecodeError("child.data.created_utc", "missing or not a positive number of seconds")
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
        raise DecodeError("child.kind", f"expected t1 or t3, got a {type(kind).__name__}")
    if not text:
        raise Skip("no_text")
    permalink = data.get("permalink")
    author = data.get("author_fullname") or data.get("author") or ""
    parent = data.get("parent_id")
    return Post(
        id=f"{SOURCE}:{name}",
        source=SOURCE,
        text=text,
        created_ms=int(created * 1000),
        ingested_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        author_id=author[:512] if isinstance(author, str) else "",
        url=f"https://www.reddit.com{permalink}" if isinstance(permalink, str) else "",
        is_reply=kind == "t1" and isinstance(parent, str) and parent.startswith("t1_"),
    )


@guarded("listing")
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
    return name if isinstance(name, str) and len(name) <= MAX_ID_CHARS else None


def _nonneg(v: Any) -> float | None:
    """A number from Reddit (seconds, a request budget): a finite float >= 0, else None."""
    try:
        x = float(v) if isinstance(v, str | int | float) and not isinstance(v, bool) else math.nan
    except (ValueError, OverflowError):
        return None
    return x if math.isfinite(x) and x >= 0 else None


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


class RedditConnector(LiveConnector):
    """Polls ``/r/<sub>/new`` and ``/r/<sub>/comments`` with app-only OAuth (client credentials).

    Each listing keeps its newest fullname in Redis and asks ``before=`` it; an empty answer
    drops ``before`` for the next poll (the anchor may be gone for good) and the dedup on
    fullnames absorbs the overlap. Requests are spread so that ``X-Ratelimit-Remaining`` lasts
    until ``X-Ratelimit-Reset``; at zero it waits for the reset. 429/5xx back off (Retry-After).
    """

    name = SOURCE

    def __init__(
        self,
        sink: PostSink,
        state: ConnectorState,
        *,
        client_id: Secret,
        client_secret: Secret,
        subreddits: Sequence[str],
        kinds: Sequence[str] = ("new", "comments"),
        auth_url: str = "https://www.reddit.com/api/v1/access_token",
        api_url: str = "https://oauth.reddit.com",
        poll_interval_s: float = 30.0,
        http: HttpSource | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(sink, state, backoff=backoff)
        bad_kind = set(kinds) - {"new", "comments"}
        if bad_kind or not subreddits:
            raise ConfigError(
                "connectors.reddit",
                "subreddits/kinds",
                f"need subreddits and kinds from new, comments (got {sorted(bad_kind)})",
            )
        self.client_id = client_id
        self.client_secret = client_secret
        self.listings = [(s.removeprefix("r/"), k) for s in subreddits for k in kinds]
        self.auth_url = auth_url
        self.api_url = api_url.rstrip("/")
        self.poll_interval_s = poll_interval_s
        self.http = http or HttpSource()
        self._token: str | None = None
        self._token_until = 0.0
        self.gap_s = 0.0

    def token(self) -> str:
        if self._token and time.monotonic() < self._token_until:
            return self._token
        try:
            r = self.http.request(
                "POST",
                self.auth_url,
                data={"grant_type": "client_credentials"},
                auth=(self.client_id.value, self.client_secret.value),
            )
        except BodyTooLarge as exc:
            raise RetryLater("token answer over the size limit") from exc
        if r.status in (400, 401, 403):
            raise ConfigError("reddit", "client_id/client_secret", f"rejected by Reddit (HTTP {r.status})")
        body = _json(r.body)
        tok = body.get("access_token") if isinstance(body, dict) else None
        ttl = _nonneg(body.get("expires_in", 3600)) if isinstance(body, dict) else None
        if not isinstance(tok, str) or not tok or ttl is None:
            raise RetryLater(f"token answer unreadable (HTTP {r.status})")
        self._token, self._token_until = tok, time.monotonic() + min(ttl, 86400.0) * 0.9
        return self._token

    def pace(self, headers: Mapping[str, str]) -> None:
        """Spread the remaining request budget over the time left in the rate-limit window."""
        remaining = _nonneg(headers.get("x-ratelimit-remaining"))
        reset_s = _nonneg(headers.get("x-ratelimit-reset"))
        if remaining is None or reset_s is None:
            self.gap_s = 0.0  # no budget sent (older API answers): the poll interval paces us
            return
        self.extra_status["ratelimit_remaining"] = remaining
        reset_s = min(reset_s, _MAX_WAIT_S)
        self.gap_s = reset_s if remaining < 1 else reset_s / remaining

    def path(self, sub: str, kind: str) -> str:
        return f"{self.api_url}/r/{sub}/new" if kind == "new" else f"{self.api_url}/r/{sub}/comments/"

    def poll(self, sub: str, kind: str) -> None:
        field = f"before:{sub}/{kind}"
        params = {"limit": "100", "raw_json": "1"}
        before = self.state.meta(field)
        if before:
            params["before"] = before
        try:
            r = self.http.get(
                self.path(sub, kind), params=params, headers={"Authorization": f"bearer {self.token()}"}
            )
        except BodyTooLarge as exc:
            self.bad("body_too_large", size=exc.limit, where=f"r/{sub}/{kind}")
            return
        if r.status == 401:
            self._token = None
            raise RetryLater("access token refused; fetching a new one")
        if r.status != 200:
            raise RetryLater(f"r/{sub}/{kind}: HTTP {r.status}")
        self.connected = True
        self.pace(r.headers)
        try:
            children = listing_children(orjson.loads(r.body))
        except (orjson.JSONDecodeError, DecodeError) as exc:
            why = exc.reason if isinstance(exc, DecodeError) else "malformed JSON"
            self.bad("malformed_listing", size=len(r.body), why=why, where=f"r/{sub}/{kind}")
            return
        items: list[Item] = []
        for child in reversed(children):  # oldest first into Kafka
            post = self.map_one(partial(to_post, child))
            if isinstance(post, Post):
                items.append((post.id.removeprefix(f"{SOURCE}:"), post))
        newest = fullname(children[0]) if children else None
        self.deliver(items, meta={field: newest or ""})
        self.backoff.reset()

    def session(self) -> None:
        while self.keep_going():
            for sub, kind in self.listings:
                wait(self.gap_s, self.keep_going)
                if not self.keep_going():
                    return
                self.poll(sub, kind)
            wait(self.poll_interval_s, self.keep_going)
