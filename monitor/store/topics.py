"""The topic registry in Redis: topics added, changed or removed at run time
(``mood-monitor topics add|remove``), with a version counter that workers and the alerter poll.

    <p>:{topics}:registry   HASH    topic name -> JSON {"keywords", "hashtags", "query", "updated_ms"},
                                     or {"removed": true, "updated_ms"} (a topic of the file removed)
    <p>:{topics}:version    STRING  bumped by every change, in the same transaction as the change

Every change is one MULTI/EXEC (HSET + INCR), so a reader that sees a version also sees the
change that made it (`snapshot` reads both in one transaction too); the hash tag ``{topics}``
keeps both keys in one slot of a Redis Cluster, which a transaction needs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from monitor.store import keys
from monitor.store.buckets import RedisAggregateStore, _hash, translated


class TopicRegistry(Protocol):
    """The registry the topic catalog polls (`RedisTopicRegistry`)."""

    def version(self) -> int: ...
    def snapshot(self) -> tuple[int, dict[str, dict[str, Any]]]: ...


class RedisTopicRegistry:
    def __init__(self, store: RedisAggregateStore) -> None:
        self.client = store.client
        self.prefix = store.prefix

    @translated
    def version(self) -> int:
        v = self.client.get(keys.topic_registry_version(self.prefix))
        return int(v) if v is not None else 0

    @translated
    def snapshot(self) -> tuple[int, dict[str, dict[str, Any]]]:
        """(version, name -> entry), read in one transaction. An entry that is not a JSON
        object (written by hand) comes back as ``{"invalid": "<why>"}``."""
        pipe = self.client.pipeline(transaction=True)
        pipe.get(keys.topic_registry_version(self.prefix))
        pipe.hgetall(keys.topic_registry(self.prefix))
        v, raw = pipe.execute()
        entries: dict[str, dict[str, Any]] = {}
        for name, body in _hash(raw).items():
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = None
            entries[name] = parsed if isinstance(parsed, dict) else {"invalid": "not a JSON object"}
        return (int(v) if v is not None else 0), entries

    @translated
    def put(self, name: str, spec: Mapping[str, Any]) -> int:
        """Add or replace a topic; returns the new version."""
        body = {**spec, "updated_ms": int(time.time() * 1000)}
        return self._write(name, body)

    @translated
    def remove(self, name: str) -> int:
        """Remove a topic (also one the config file declares); returns the new version."""
        return self._write(name, {"removed": True, "updated_ms": int(time.time() * 1000)})

    @translated
    def forget(self, name: str) -> int:
        """Drop the registry's word on a topic: the config file's definition (if any) applies again."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(keys.topic_registry(self.prefix), name)
        pipe.incr(keys.topic_registry_version(self.prefix))
        return int(pipe.execute()[-1])

    def _write(self, name: str, body: Mapping[str, Any]) -> int:
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(keys.topic_registry(self.prefix), name, orjson.dumps(dict(body)).decode())
        pipe.incr(keys.topic_registry_version(self.prefix))
        return int(pipe.execute()[-1])
