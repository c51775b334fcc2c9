"""Inbound HTTP for the polling and streaming connectors: the only module importing httpx.

`HttpSource` wraps one client with connect/read timeouts and a User-Agent. Its errors are
translated here, once: a transport failure (refused, reset, timed out, cut mid-body) and a
429/5xx answer become `RetryLater` (carrying ``Retry-After`` when the server sent it); every
other status is handed back for the connector to judge (304 Not Modified, 401 for a token
refresh). Request headers are never logged, so tokens stay out of the logs; URLs are logged and
named in errors only through `redact_url` (no user:password@, no query: a private feed's URL is
a credential), httpx's own "HTTP Request: ..." line included. httpx drops the Authorization
header on a redirect to another origin (host, port or scheme), so a token does not follow one.

Sizes are bounded, since a feed or an API answer is written by someone else: a body over
``max_body_bytes`` (8 MiB by default, after decompression) raises `BodyTooLarge` (a
`DecodeError`: the connector counts it as a bad payload and goes on) without being read further,
and `lines` hands over at most ``max_line_chars + 1`` characters of a line (the rest of an
over-long line is dropped while reading; the extra character tells the caller it was cut).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from connectors.backoff import RetryLater, retry_after_s
from connectors.sse import MAX_LINE_CHARS, split_lines
from monitor.errors import DecodeError

USER_AGENT = "mood-monitor/0.1 (+self-hosted mood monitor)"
MAX_BODY_BYTES = 8 << 20


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path`` of a URL: no userinfo, no query (``?...`` says there was
    one), no fragment. For logs, errors and Redis keys: a feed URL may carry a token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # e.g. an unclosed IPv6 bracket or a port out of range
        return "(unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}" + ("?..." if parts.query else "")


class _RedactURLs(logging.Filter):
    """httpx logs every request at INFO with its full URL (query and password included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


logging.getLogger("httpx").addFilter(_RedactURLs())


class BodyTooLarge(DecodeError):
    """An answer whose body is over the limit: not read further, a bad payload, not an outage."""

    def __init__(self, limit: int) -> None:
        super().__init__("body", f"over {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _check(resp: httpx.Response, what: str) -> None:
    if resp.status_code == 429 or resp.status_code >= 500:
        wait = retry_after_s(resp.headers.get("retry-after"))
        raise RetryLater(f"{what}: HTTP {resp.status_code}", wait)


def _read(resp: httpx.Response, limit: int) -> bytes:
    """The (decoded) body, refused before reading when Content-Length is over ``limit`` and
    cut off as soon as the bytes read pass it."""
    declared = resp.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and len(declared) <= 20 and int(declared) > limit:
        raise BodyTooLarge(limit)
    parts: list[bytes] = []
    size = 0
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        parts.append(chunk)
    return b"".join(parts)


class HttpSource:
    def __init__(
        self,
        *,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 30.0,
        user_agent: str = USER_AGENT,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self._client = httpx.Client(
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            headers={"User-Agent": user_agent},
            follow_redirects=True,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Reply:
        """One request, its body read whole up to ``max_body_bytes`` (else `BodyTooLarge`)."""
        what = f"{method} {redact_url(url)}"
        try:
            with self._client.stream(
                method, url, params=params, headers=headers, data=data, auth=auth
            ) as resp:
                _check(resp, what)
                body = _read(resp, self.max_body_bytes)
        except httpx.HTTPError as exc:
            raise RetryLater(f"{what}: {exc.__class__.__name__}") from exc
        return Reply(resp.status_code, dict(resp.headers), body)

    def get(
        self, url: str, *, params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None
    ) -> Reply:
        return self.request("GET", url, params=params, headers=headers)

    @contextmanager
    def lines(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        max_line_chars: int = MAX_LINE_CHARS,
    ) -> Iterator[tuple[int, Iterator[str]]]:
        """A streamed GET: (status, an iterator of body lines, each cut at ``max_line_chars + 1``
        characters); a cut stream raises RetryLater."""
        what = f"GET {redact_url(url)} (stream)"
        try:
            with self._client.stream("GET", url, params=params, headers=headers) as resp:
                _check(resp, what)
                yield resp.status_code, _guard(split_lines(resp.iter_text(), max_line_chars), what)
        except httpx.HTTPError as exc:
            raise RetryLater(f"{what}: {exc.__class__.__name__}") from exc

    def close(self) -> None:
        self._client.close()


def _guard(it: Iterator[str], what: str) -> Iterator[str]:
    try:
        yield from it
    except httpx.HTTPError as exc:
        raise RetryLater(f"{what}: {exc.__class__.__name__}") from exc
