"""Inbound HTTP for the polling and streaming connectors: the only module importing httpx.

`HttpSource` wraps one client with connect/read timeouts and a User-Agent. Its errors are
translated here, once: a transport failure (refused, reset, timed out, cut mid-body) and a
429/5xx answer become `RetryLater` (carrying ``Retry-After`` when the server sent it); every
other status is handed back for the connector to judge (304 Not Modified, 401 for a token
refresh). Request headers are never logged, so tokens stay out of the logs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from connectors.backoff import RetryLater, retry_after_s

USER_AGENT = "mood-monitor/0.1 (+self-hosted mood monitor)"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _check(resp: httpx.Response, what: str) -> None:
    if resp.status_code == 429 or resp.status_code >= 500:
        wait = retry_after_s(resp.headers.get("retry-after"))
        raise RetryLater(f"{what}: HTTP {resp.status_code}", wait)


class HttpSource:
    def __init__(self, *, connect_timeout_s: float = 10.0, read_timeout_s: float = 30.0,
                 user_agent: str = USER_AGENT) -> None:
        self._client = httpx.Client(
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            headers={"User-Agent": user_agent}, follow_redirects=True)

    def request(self, method: str, url: str, *, params: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None, data: Mapping[str, str] | None = None,
                auth: tuple[str, str] | None = None) -> Reply:
        what = f"{method} {url.split('?', 1)[0]}"
        try:
            resp = self._client.request(method, url, params=params, headers=headers, data=data, auth=auth)
        except httpx.HTTPError as exc:
            raise RetryLater(f"{what}: {exc.__class__.__name__}") from exc
        _check(resp, what)
        return Reply(resp.status_code, dict(resp.headers), resp.content)

    def get(self, url: str, *, params: Mapping[str, str] | None = None,
            headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("GET", url, params=params, headers=headers)

    @contextmanager
    def lines(self, url: str, *, params: Mapping[str, str] | None = None,
              headers: Mapping[str, str] | None = None) -> Iterator[tuple[int, Iterator[str]]]:
        """A streamed GET: (status, an iterator of body lines); a cut stream raises RetryLater."""
        what = f"GET {url.split('?', 1)[0]} (stream)"
        try:
            with self._client.stream("GET", url, params=params, headers=headers) as resp:
                _check(resp, what)
                yield resp.status_code, _guard(resp.iter_lines(), what)
        except httpx.HTTPError as exc:
            raise RetryLater(f"{what}: {exc.__class__.__name__}") from exc

    def close(self) -> None:
        self._client.close()


def _guard(it: Iterator[str], what: str) -> Iterator[str]:
    try:
        yield from it
    except httpx.HTTPError as exc:
        raise RetryLater(f"{what}: {exc.__class__.__name__}") from exc
