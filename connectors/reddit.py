"""Reddit: new posts and comments of configured subreddits, polled with app-only OAuth.

`listing_items` maps one Listing (``/r/<sub>/new`` or ``/r/<sub>/comments``) to
``(fullname, Post)`` pairs, newest first as Reddit sends them; `to_post` maps one ``t3`` (post:
title + selftext) or ``t1`` (comment: body) thing. Time is ``created_utc``. Removed or deleted
bodies (``[removed]``, ``[deleted]``) carry no words and are skipped with a count. A child that
is not an object, or lacks its fullname or time, raises `DecodeError` naming the field.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from connectors.backoff import Backoff, RetryLater, wait
from connectors.base import PostSink, Skip
from connectors.credentials import Secret
from connectors.http import HttpSource
from connectors.live import Item, LiveConnector
from connectors.state import RedisConnectorState
from monitor.errors import ConfigError, DecodeError
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


class RedditConnector(LiveConnector):
    """Polls ``/r/<sub>/new`` and ``/r/<sub>/comments`` with app-only OAuth (client credentials).

    Each listing keeps its newest fullname in Redis and asks ``before=`` it; an empty answer
    drops ``before`` for the next poll (the anchor may be gone for good) and the dedup on
    fullnames absorbs the overlap. Requests are spread so that ``X-Ratelimit-Remaining`` lasts
    until ``X-Ratelimit-Reset``; at zero it waits for the reset. 429/5xx back off (Retry-After).
    """

    name = SOURCE

    def __init__(self, sink: PostSink, state: RedisConnectorState, *, client_id: Secret,
                 client_secret: Secret, subreddits: Sequence[str],
                 kinds: Sequence[str] = ("new", "comments"),
                 auth_url: str = "https://www.reddit.com/api/v1/access_token",
                 api_url: str = "https://oauth.reddit.com", poll_interval_s: float = 30.0,
                 http: HttpSource | None = None, backoff: Backoff | None = None) -> None:
        super().__init__(sink, state, backoff=backoff)
        bad_kind = set(kinds) - {"new", "comments"}
        if bad_kind or not subreddits:
            raise ConfigError("connectors.reddit", "subreddits/kinds",
                              f"need subreddits and kinds from new, comments (got {sorted(bad_kind)})")
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
        r = self.http.request("POST", self.auth_url, data={"grant_type": "client_credentials"},
                              auth=(self.client_id.value, self.client_secret.value))
        if r.status in (400, 401, 403):
            raise ConfigError("reddit", "client_id/client_secret", f"rejected by Reddit (HTTP {r.status})")
        try:
            body = orjson.loads(r.body)
            tok, ttl = body["access_token"], float(body.get("expires_in", 3600))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RetryLater(f"token answer unreadable (HTTP {r.status})") from exc
        self._token, self._token_until = str(tok), time.monotonic() + ttl * 0.9
        return self._token

    def pace(self, headers: Mapping[str, str]) -> None:
        """Spread the remaining request budget over the time left in the rate-limit window."""
        try:
            remaining = float(headers["x-ratelimit-remaining"])
            reset_s = float(headers["x-ratelimit-reset"])
        except (KeyError, ValueError):
            self.gap_s = 0.0  # no budget sent (older API answers): the poll interval paces us
            return
        self.extra_status["ratelimit_remaining"] = remaining
        self.gap_s = reset_s if remaining < 1 else reset_s / remaining

    def path(self, sub: str, kind: str) -> str:
        return f"{self.api_url}/r/{sub}/new" if kind == "new" else f"{self.api_url}/r/{sub}/comments/"

    def poll(self, sub: str, kind: str) -> None:
        field = f"before:{sub}/{kind}"
        params = {"limit": "100", "raw_json": "1"}
        before = self.state.meta(field)
        if before:
            params["before"] = before
        r = self.http.get(self.path(sub, kind), params=params,
                          headers={"Authorization": f"bearer {self.token()}"})
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
            self.bad("malformed_listing", f"r/{sub}/{kind}: {exc}")
            return
        items: list[Item] = []
        for child in reversed(children):  # oldest first into Kafka
            try:
                post = to_post(child)
            except Skip as exc:
                self.skip(exc.reason)
                continue
            except DecodeError as exc:
                self.bad(f"bad_{exc.field}", str(exc))
                continue
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
