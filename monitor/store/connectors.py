"""Connector state in Redis: resume cursor, dedup memory, HTTP validators, live status.

Every key starts with ``mm:conn:{<instance>}:`` (``<instance>`` is the connector's configured
name, e.g. ``bluesky`` or ``rss-news``; in braces, a hash tag: on a Redis Cluster one
connector's keys share a slot, so that `commit` is one MULTI/EXEC)::

    mm:conn:{<i>}:cursor   string  where to resume (Jetstream time_us, Mastodon status id, ...)
    mm:conn:{<i>}:seen     zset    dedup keys already produced, score = ms first seen; trimmed to
                                   the newest ``seen_max`` members and to ``seen_ttl_s``
    mm:conn:{<i>}:meta     hash    small per-connector memory (RSS ETag/Last-Modified per feed,
                                   Reddit newest fullname per listing, ...)
    mm:conn:{<i>}:status   hash    connected, last_event_ms, lag_ms, produced, deletions, bad,
                                   errors, updated_ms (expires after ``status_ttl_s``)
    mm:conn:{<i>}:claim:<id> string a webhook-id already accepted by the push endpoint, TTL
    mm:conn:index          set     instance names that have reported a status

A key is marked seen only after its record was flushed to Kafka (`commit`), so a crash between
the two produces a duplicate at worst, never a gap; the cursor moves in the same transaction.
This module (with `monitor.store.buckets`) is where the connectors touch the redis client; its errors
become `StoreUnavailable`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import redis

from monitor.errors import StoreUnavailable
from monitor.store.client import redis_client, store_error
from monitor.transport import RedisSettings

PREFIX = "mm:conn:"


def status_key(prefix: str, instance: str) -> str:
    return f"{prefix}{{{instance}}}:status"


@contextmanager
def _translated(what: str, client: Any = None) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        err = store_error(exc, client, f"connector state: {what}")
        if isinstance(err, StoreUnavailable):  # the class only: connector errors never carry text
            err = StoreUnavailable(f"connector state: {what}: {exc.__class__.__name__}")
        raise err from exc


class ConnectorState(Protocol):
    """A connector's cursor, dedup keys, idempotency claims, meta and status
    (`RedisConnectorState`)."""

    def cursor(self) -> str | None: ...
    def unseen(self, keys: Iterable[str]) -> set[str]: ...
    def commit(
        self,
        keys: Iterable[str],
        cursor: str | None = None,
        *,
        meta: Mapping[str, str] | None = None,
        now_ms: int | None = None,
    ) -> None: ...
    def claim(self, key: str, ttl_s: int) -> bool: ...
    def release(self, key: str) -> None: ...
    def meta(self, field: str) -> str | None: ...
    def report(self, status: Mapping[str, int | str | float]) -> None: ...
    def close(self) -> None: ...


class RedisConnectorState:
    def __init__(
        self,
        url: RedisSettings | str,
        instance: str,
        *,
        prefix: str = PREFIX,
        seen_max: int = 200_000,
        seen_ttl_s: int = 7 * 86400,
        status_ttl_s: int = 3600,
        client: Any | None = None,
    ) -> None:
        self.r: Any = client or redis_client(url, socket_timeout_s=10)
        self.instance = instance
        self.prefix = prefix
        self.base = status_key(prefix, instance).removesuffix("status")
        self.seen_max = seen_max
        self.seen_ttl_s = seen_ttl_s
        self.status_ttl_s = status_ttl_s

    def key(self, part: str) -> str:
        return self.base + part

    # ---- cursor and dedup -----------------------------------------------------------------
    def cursor(self) -> str | None:
        with _translated("read cursor", self.r):
            v = self.r.get(self.key("cursor"))
        return v.decode() if isinstance(v, bytes) else v

    def unseen(self, keys: Iterable[str]) -> set[str]:
        """The keys not produced before (dedup across restarts and reconnects)."""
        ks = list(dict.fromkeys(keys))
        if not ks:
            return set()
        with _translated("read dedup set", self.r):
            scores = self.r.zmscore(self.key("seen"), ks)
        return {k for k, s in zip(ks, scores, strict=True) if s is None}

    def commit(
        self,
        keys: Iterable[str],
        cursor: str | None = None,
        *,
        meta: Mapping[str, str] | None = None,
        now_ms: int | None = None,
    ) -> None:
        """Remember ``keys`` as produced and move the cursor, after the producer flushed."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        ks = list(keys)
        seen = self.key("seen")
        with _translated("commit", self.r):
            pipe = self.r.pipeline(transaction=True)
            if ks:
                pipe.zadd(seen, dict.fromkeys(ks, now), nx=True)
                pipe.zremrangebyscore(seen, "-inf", now - self.seen_ttl_s * 1000)
                pipe.zremrangebyrank(seen, 0, -self.seen_max - 1)
            if cursor is not None:
                pipe.set(self.key("cursor"), cursor)
            if meta:
                pipe.hset(self.key("meta"), mapping=dict(meta))
            pipe.execute()

    def claim(self, key: str, ttl_s: int) -> bool:
        """SET NX with a TTL: True the first time ``key`` is claimed (webhook-id idempotency)."""
        with _translated("claim", self.r):
            return bool(self.r.set(self.key(f"claim:{key}"), b"1", nx=True, ex=ttl_s))

    def release(self, key: str) -> None:
        with _translated("release", self.r):
            self.r.delete(self.key(f"claim:{key}"))

    def meta(self, field: str) -> str | None:
        with _translated("read meta", self.r):
            v = self.r.hget(self.key("meta"), field)
        return v.decode() if isinstance(v, bytes) else v

    # ---- status -----------------------------------------------------------------------------
    def report(self, status: Mapping[str, int | str | float]) -> None:
        with _translated("report status", self.r):
            pipe = self.r.pipeline(transaction=False)
            pipe.hset(self.key("status"), mapping={k: str(v) for k, v in status.items()})
            pipe.expire(self.key("status"), self.status_ttl_s)
            pipe.sadd(f"{self.prefix}index", self.instance)
            pipe.execute()

    def close(self) -> None:
        self.r.close()


def read_statuses(
    url: RedisSettings | str, *, prefix: str = PREFIX, client: Any | None = None
) -> dict[str, dict[str, str]]:
    """instance -> its last status (an instance whose status expired shows as {})."""
    r: Any = client or redis_client(url, socket_timeout_s=10)
    with _translated("read statuses", r):
        names = sorted(n.decode() for n in r.smembers(f"{prefix}index"))
        out: dict[str, dict[str, str]] = {}
        for n in names:
            h = r.hgetall(status_key(prefix, n))
            out[n] = {k.decode(): v.decode() for k, v in h.items()}
    if client is None:
        r.close()
    return out
