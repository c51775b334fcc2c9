"""The aggregate store in Redis (the `monitor.store` package is the only one importing redis):
aggregate writes (one Lua call per topic), dashboard reads, duplicate-id claims, counters, seal
and health keys. Key names come from `keys.py`.

redis-py errors are translated into `StoreUnavailable` here; callers back off and retry the
same batch without committing Kafka offsets.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ParamSpec, Protocol, TypeVar

import orjson
import redis
from redis.commands.core import Script

from monitor.aggregates import (
    HOUR_MS,
    MINUTE_MS,
    Bucket,
    Delta,
    hour_start,
    merge,
    minute_start,
    window_plan,
)
from monitor.errors import StoreUnavailable
from monitor.prevalence import is_float_field
from monitor.store import keys
from monitor.store.client import RedisClient, is_cluster, redis_client, store_error
from monitor.transport import RedisSettings

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def translated(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise store_error(exc, getattr(args[0], "client", None) if args else None) from exc

    return wrapper


# redis-py's stubs type every reply as bytes | str, also for a decode_responses client (whose
# replies are str): the replies are narrowed here, once
def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _strs(reply: Iterable[object]) -> list[str]:
    return [_str(v) for v in reply]


def _hash(reply: Mapping[Any, Any]) -> dict[str, str]:
    return {_str(k): _str(v) for k, v in reply.items()}


def _replicas(reply: object) -> int:
    return reply if isinstance(reply, int) else 0


def id_digest(post_id: str) -> bytes:
    """The 8 bytes the duplicate-id guard keeps of a post id (a collision among the ids of one
    guard window is about 1 in 10^8 at 10^5 posts a slice)."""
    return hashlib.blake2b(post_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()


def read_offsets(client: Any, key: str, parts: Iterable[str]) -> dict[str, int | None]:
    """One watermark hash's offsets of ``parts`` ("<kafka-topic>:<partition>"; None: none yet),
    in one HMGET."""
    parts = list(parts)
    if not parts:
        return {}
    vals = client.hmget(key, parts)
    return {p: int(v) if v is not None else None for p, v in zip(parts, vals, strict=True)}


@dataclass(slots=True)
class PartitionWrite:
    """One source partition's contribution to one topic in one batch."""

    partition: str  # "<kafka-topic>:<partition>"
    first_offset: int
    last_offset: int
    deltas: dict[tuple[str, int], Delta] = field(default_factory=dict)  # ("m"|"h", start) -> delta


@dataclass(frozen=True, slots=True)
class RecentPost:
    topic: str
    post_id: str
    ts_ms: int
    text: str
    url: str
    sentiment: str


class AggregateStore(Protocol):
    """What the worker writes: duplicate-id claims, watermark-guarded bucket deltas, texts,
    counters, the seal and its heartbeat (`RedisAggregateStore`; an in-memory fake in tests)."""

    def claim_ids(self, items: Sequence[tuple[str, str]]) -> list[str | None]: ...
    def watermarks(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]: ...
    def apply(self, writes: Mapping[str, Sequence[PartitionWrite]]) -> tuple[int, int]: ...
    def remember(self, posts: Sequence[RecentPost]) -> None: ...
    def forget_text(self, post_ids: Sequence[str]) -> int: ...
    def advance_partitions(self, last_offsets: Mapping[str, int]) -> None: ...
    def partition_watermarks(self, parts: Iterable[str]) -> dict[str, int]: ...
    def incr_stats(self, name: str, counts: Mapping[str, int]) -> None: ...
    def advance_seal(self, until_ms: int) -> int: ...
    def heartbeat(self, process: str, ttl_s: int, info: Mapping[str, Any] | None = None) -> None: ...


class AggregateReader(Protocol):
    """What the read side (the alerter, `mood-monitor mood`) reads."""

    def topics(self) -> list[str]: ...
    def read_minutes(self, topic: str, start_ms: int, end_ms: int) -> list[Bucket]: ...
    def read_window(self, topic: str, start_ms: int, end_ms: int) -> Bucket: ...
    def recent_posts(
        self, topic: str, start_ms: int, end_ms: int, limit: int = 50
    ) -> list[dict[str, Any]]: ...
    def sealed_until_ms(self) -> int: ...
    def heartbeat(self, process: str, ttl_s: int, info: Mapping[str, Any] | None = None) -> None: ...


class RedisAggregateStore:
    def __init__(
        self,
        url: RedisSettings | str,
        prefix: str = keys.DEFAULT_PREFIX,
        *,
        minute_ttl_s: int = 48 * 3600,
        hour_ttl_s: int = 35 * 24 * 3600,
        text_ttl_s: int = 24 * 3600,
        texts_per_minute: int = 8,
        dedup_slice_s: int = 3600,
        socket_timeout_s: float = 5.0,
        wait_replicas: int | None = None,
        wait_timeout_ms: int | None = None,
        dedup_shards: int | None = None,
    ) -> None:
        self.prefix = prefix
        # replicas that must hold a batch's bucket writes before `apply` returns (default: the
        # settings' redis.wait_replicas / wait_timeout_ms; a plain URL: none)
        r = url if isinstance(url, RedisSettings) else None
        self.wait_replicas = wait_replicas if wait_replicas is not None else r.wait_replicas if r else 0
        self.wait_timeout_ms = wait_timeout_ms or (r.wait_timeout_ms if r else 1000)
        self.minute_ttl_s = minute_ttl_s
        self.hour_ttl_s = hour_ttl_s
        self.text_ttl_s = text_ttl_s
        self.texts_per_minute = texts_per_minute
        self.dedup_slice_s = dedup_slice_s
        self.client: RedisClient = redis_client(url, socket_timeout_s=socket_timeout_s, decode_responses=True)
        self.cluster = is_cluster(self.client)
        # the duplicate-id guard's shards (None: 1 key per slice, as ever; on a cluster 16, spread
        # over the masters)
        shards = dedup_shards or (r.dedup_shards if r else None) or (16 if self.cluster else 1)
        self.dedup_shards = shards
        scripts = resources.files("monitor.store").joinpath("lua")
        self._apply = self.client.register_script(scripts.joinpath("apply_deltas.lua").read_text())
        self._remember = self.client.register_script(scripts.joinpath("remember.lua").read_text())
        self._claim = self.client.register_script(scripts.joinpath("claim_ids.lua").read_text())
        self._advance = self.client.register_script(scripts.joinpath("advance_partitions.lua").read_text())
        self._pipelined = (self._apply, self._remember, self._claim)

    def _script(self, pipe: Any, script: Script, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Queue one script call on a pipeline. A cluster pipeline refuses EVALSHA by name and
        does not load scripts: the call goes as a raw command, routed by its keys' slot, and
        `_execute` loads the scripts where a master does not know them."""
        if self.cluster:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        else:
            script(keys=keys, args=args, client=pipe)

    def _execute(self, build: Callable[[Any], None]) -> list[Any]:
        """Run the pipeline ``build`` fills. A master that does not know a script yet (a new
        cluster, a replica promoted since: a script cache is not replicated) answers NOSCRIPT:
        the scripts are loaded on every master and the whole pipeline runs again, which changes
        nothing twice (the bucket writes are watermark-guarded, the sample's HSETNX)."""
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            build(pipe)
            try:
                return list(pipe.execute())
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
                for script in self._pipelined:
                    self.client.script_load(script.script)  # a cluster client: on every master
        raise AssertionError("unreachable")

    # ---- writes -------------------------------------------------------------------------
    @translated
    def ping(self) -> bool:
        return bool(self.client.ping())

    @translated
    def watermarks(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """(topic, partition) -> last applied offset (-1 when none)."""
        pairs = list(pairs)
        pipe = self.client.pipeline(transaction=False)
        for topic, part in pairs:
            pipe.hget(keys.watermark(self.prefix, topic), part)
        vals = pipe.execute()
        return {p: int(v) if v is not None else -1 for p, v in zip(pairs, vals, strict=True)}

    @translated
    def apply(self, writes: Mapping[str, Sequence[PartitionWrite]]) -> tuple[int, int]:
        """Apply per-topic partition writes; returns (parts applied, parts skipped as replays)."""
        if not writes:
            return 0, 0
        waits: list[int] = []

        def build(pipe: Any) -> None:
            waits[:] = self._queue_apply(pipe, writes)

        results = self._execute(build)
        acked = [results[i] for i in waits]
        if any(not isinstance(n, int) or n < self.wait_replicas for n in acked):
            raise StoreUnavailable(
                f"redis: the batch's writes reached {min(map(_replicas, acked))} of the "
                f"{self.wait_replicas} replicas asked for (redis.wait_replicas) within "
                f"{self.wait_timeout_ms} ms; retrying it"
            )
        applied = sum(int(r[0]) for r in results if isinstance(r, list))
        skipped = sum(int(r[1]) for r in results if isinstance(r, list))
        return applied, skipped

    def _queue_apply(self, pipe: Any, writes: Mapping[str, Sequence[PartitionWrite]]) -> list[int]:
        """Queue the scripts (and, with ``wait_replicas``, a WAIT on each master written to,
        on the connection that wrote: WAIT counts that connection's writes); returns the
        positions of the WAITs in the pipeline."""
        queued = 0
        masters: dict[str, Any] = {}
        for topic, parts in writes.items():
            key_list: list[str] = [keys.watermark(self.prefix, topic)]
            index: dict[str, int] = {}
            payload: list[dict[str, Any]] = []
            for pw in parts:
                buckets = []
                for (kind, start), delta in pw.deltas.items():
                    k = keys.bucket(self.prefix, topic, kind, start)
                    if k not in index:
                        key_list.append(k)
                        index[k] = len(key_list)  # Lua is 1-based
                    buckets.append([index[k], kind, start // 1000, delta])
                payload.append(
                    {"p": pw.partition, "first": pw.first_offset, "last": pw.last_offset, "b": buckets}
                )
            self._script(
                pipe,
                self._apply,
                key_list,
                [self.minute_ttl_s, self.hour_ttl_s, orjson.dumps(payload).decode()],
            )
            pipe.sadd(keys.topics(self.prefix), topic)
            queued += 2
            if self.wait_replicas and self.cluster:
                for k in (key_list[0], keys.topics(self.prefix)):
                    node = self._master_of(k)
                    masters[node.name] = node
        if not self.wait_replicas:
            return []
        if not self.cluster:
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
            return [queued]
        for node in masters.values():
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms, target_nodes=node)
        return list(range(queued, queued + len(masters)))

    def _master_of(self, key: str) -> Any:
        """The cluster node that serves ``key``'s slot now (the client's slot map)."""
        client: Any = self.client
        return client.get_node_from_key(key)

    @translated
    def replace_buckets(
        self, topic: str, kind: str, starts: Sequence[int], deltas: Mapping[int, Delta]
    ) -> None:
        """Rebuild: overwrite the ``kind`` buckets at ``starts`` of a topic with ``deltas``
        (a start with no delta becomes empty). Not watermark-guarded: run it with workers stopped.
        The buckets change in one MULTI/EXEC (one slot: the topic's hash tag)."""
        ttl = self.hour_ttl_s if kind == "h" else self.minute_ttl_s
        self.client.sadd(keys.topics(self.prefix), topic)  # another slot: not in the transaction
        pipe = self.client.pipeline(transaction=True)
        for start in starts:
            k = keys.bucket(self.prefix, topic, kind, start)
            pipe.delete(k)
            for fld, val in deltas.get(start, {}).items():
                if is_float_field(fld):
                    pipe.hincrbyfloat(k, fld, val)
                else:
                    pipe.hincrby(k, fld, int(val))
            if deltas.get(start):
                pipe.expireat(k, start // 1000 + ttl)
        pipe.execute()

    @translated
    def claim_ids(self, items: Sequence[tuple[str, str]]) -> list[str | None]:
        """Claim post ids for their records. For each (post_id, origin) returns None when the id
        is new or was claimed by this same record before (a redelivery), else the origin of
        the record that carried it first (a duplicate). An id is remembered for one to two
        ``dedup_slice_s`` (a source re-sending a post later than that is counted again)."""
        if not items:
            return []
        slice_no = int(time.time()) // self.dedup_slice_s
        expires = (slice_no + 2) * self.dedup_slice_s
        shards: dict[int | None, list[int]] = {}
        digests = [id_digest(post_id) for post_id, _ in items]
        for i, d in enumerate(digests):
            shards.setdefault(self._shard(d), []).append(i)

        for _post_id, origin in items:
            if "\n" in origin:  # a line per origin: Kafka topic names cannot hold one
                raise ValueError(f"claim_ids: an origin with a line break: {origin!r}")

        def build(pipe: Any) -> None:
            for shard, idx in shards.items():
                blob = b"".join(digests[i] for i in idx)
                origins = "\n".join(items[i][1] for i in idx)
                slices = [keys.seen_slice(self.prefix, n, shard) for n in (slice_no, slice_no - 1)]
                self._script(pipe, self._claim, slices, [expires, blob, origins])

        out: list[str | None] = [None] * len(items)
        for idx, res in zip(shards.values(), self._execute(build), strict=True):
            for i, r in zip(idx, _str(res).split("\n"), strict=True):
                out[i] = r or None
        return out

    def _shard(self, digest: bytes) -> int | None:
        """The guard's shard of an id digest (None: the guard is one hash per slice)."""
        return None if self.dedup_shards == 1 else int.from_bytes(digest[:4], "big") % self.dedup_shards

    @translated
    def incr_stats(self, name: str, counts: Mapping[str, int]) -> None:
        if not counts:
            return
        pipe = self.client.pipeline(transaction=False)
        for k, v in counts.items():
            pipe.hincrby(keys.stat(self.prefix, name), k, v)
        pipe.execute()

    @translated
    def stats(self, name: str) -> dict[str, int]:
        return {k: int(v) for k, v in _hash(self.client.hgetall(keys.stat(self.prefix, name))).items()}

    @translated
    def remember(self, posts: Sequence[RecentPost]) -> None:
        """Add posts to their topic's sample (at most ``texts_per_minute`` a minute; the first
        ones of a minute are kept): the representative posts that alerts quote."""
        if not posts:
            return
        per_topic: dict[str, list[RecentPost]] = {}
        for p in posts:
            per_topic.setdefault(p.topic, []).append(p)
        now_ms = int(time.time() * 1000)
        calls: list[tuple[list[str], list[Any]]] = []
        for topic, group in per_topic.items():
            key_list = [keys.recent(self.prefix, topic)]
            index: dict[str, int] = {}
            entries = []
            for p in group:
                m = minute_start(p.ts_ms)
                k = keys.sample(self.prefix, topic, m)
                if k not in index:
                    key_list.append(k)
                    index[k] = len(key_list)
                text = {"text": p.text[:500], "url": p.url, "ts_ms": p.ts_ms, "sentiment": p.sentiment}
                entries.append([index[k], m // 1000, p.post_id, p.ts_ms, orjson.dumps(text).decode()])
            calls.append(
                (key_list, [self.texts_per_minute, self.text_ttl_s, now_ms, orjson.dumps(entries).decode()])
            )

        def build(pipe: Any) -> None:
            for key_list, args in calls:
                self._script(pipe, self._remember, key_list, args)

        self._execute(build)

    @translated
    def forget_text(self, post_ids: Sequence[str]) -> int:
        """A source deleted these posts: drop every trace of them the worker keeps: their text,
        url and id in every topic's sample and its index, and their digest in the duplicate-id
        guard. Returns how many sampled texts were dropped. (Alert messages still waiting that
        quote one of them are the alerter's: it sends them without their quotes once a quoted
        post is gone from the sample, `RedisAlertLedger.drop_gone_quotes`.)

        Without its digest a re-sent copy of a deleted post would be counted again; a
        redelivered record is not (the watermarks skip what was applied)."""
        if not post_ids:
            return 0
        topics = self.topics()
        pipe = self.client.pipeline(transaction=False)
        for t in topics:
            pipe.zmscore(keys.recent(self.prefix, t), list(post_ids))
        found = pipe.execute()
        for t, scores in zip(topics, found, strict=True):
            for pid, ts in zip(post_ids, scores or [], strict=False):
                if ts is not None:
                    pipe.hdel(keys.sample(self.prefix, t, minute_start(int(ts))), pid)
                    pipe.zrem(keys.recent(self.prefix, t), pid)
        dropped = sum(int(r) for r in pipe.execute()[::2])
        slice_no = int(time.time()) // self.dedup_slice_s
        by_shard: dict[int | None, list[bytes]] = {}
        for d in (id_digest(pid) for pid in post_ids):
            by_shard.setdefault(self._shard(d), []).append(d)
        for shard, digests in by_shard.items():
            for s in (slice_no, slice_no - 1):
                pipe.hdel(keys.seen_slice(self.prefix, s, shard), *digests)
        pipe.execute()
        return dropped

    @translated
    def recent_posts(self, topic: str, start_ms: int, end_ms: int, limit: int = 50) -> list[dict[str, Any]]:
        """The topic's sampled posts in [start_ms, end_ms], newest first."""
        reply: Any = self.client.zrevrangebyscore(
            keys.recent(self.prefix, topic), end_ms, start_ms, start=0, num=limit, withscores=True
        )
        ids = [(_str(pid), int(ts)) for pid, ts in reply]
        if not ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for pid, ts in ids:
            pipe.hget(keys.sample(self.prefix, topic, minute_start(ts)), pid)
        texts = pipe.execute()
        return [{"id": pid, **orjson.loads(v)} for (pid, _), v in zip(ids, texts, strict=True) if v]

    @translated
    def advance_partitions(self, last_offsets: Mapping[str, int]) -> None:
        """Record that every record up to these offsets ("<kafka-topic>:<partition>" -> offset)
        is applied, whatever topics the batch had."""
        if last_offsets:
            args: list[Any] = []
            for part, off in sorted(last_offsets.items()):
                args += [part, off]
            self._advance(keys=[keys.partition_watermarks(self.prefix)], args=args)

    @translated
    def partition_watermarks(self, parts: Iterable[str]) -> dict[str, int]:
        """ "<kafka-topic>:<partition>" -> the last offset applied, for the parts Redis knows."""
        got = read_offsets(self.client, keys.partition_watermarks(self.prefix), parts)
        return {p: v for p, v in got.items() if v is not None}

    @translated
    def advance_seal(self, until_ms: int) -> int:
        """Minutes strictly before ``until_ms`` are sealed; the seal only moves forward."""
        until_ms = minute_start(until_ms)
        k = keys.sealed(self.prefix)
        cur = self.client.get(k)
        if cur is None or int(cur) < until_ms:
            self.client.set(k, until_ms)
            return until_ms
        return int(cur)

    @translated
    def sealed_until_ms(self) -> int:
        v = self.client.get(keys.sealed(self.prefix))
        return int(v) if v is not None else 0

    @translated
    def heartbeat(self, process: str, ttl_s: int, info: Mapping[str, Any] | None = None) -> None:
        body = {"ts_ms": int(time.time() * 1000), **(info or {})}
        self.client.set(keys.health(self.prefix, process), orjson.dumps(body).decode(), ex=ttl_s)

    @translated
    def health(self) -> dict[str, dict[str, Any]]:
        pattern = keys.health(self.prefix, "*")
        out: dict[str, dict[str, Any]] = {}
        for k in self.client.scan_iter(match=pattern, count=500):
            v = self.client.get(k)
            if v is not None:
                out[k.rsplit(":", 1)[-1]] = orjson.loads(v)
        return out

    # ---- reads (dashboards, alerter, `mood-monitor mood`) --------------------------------
    @translated
    def topics(self) -> list[str]:
        return sorted(_strs(self.client.smembers(keys.topics(self.prefix))))

    @translated
    def read_minutes(self, topic: str, start_ms: int, end_ms: int) -> list[Bucket]:
        starts = list(range(minute_start(start_ms), end_ms, MINUTE_MS))
        if not starts:
            return []
        pipe = self.client.pipeline(transaction=False)
        for s in starts:
            pipe.hgetall(keys.minute(self.prefix, topic, s))
        return [Bucket.from_hash(s, h) for s, h in zip(starts, pipe.execute(), strict=True)]

    @translated
    def read_hours(self, topic: str, start_ms: int, end_ms: int) -> list[Bucket]:
        """The hour buckets starting in [hour of start_ms, end_ms) (the dashboard's long series)."""
        starts = list(range(hour_start(start_ms), end_ms, HOUR_MS))
        if not starts:
            return []
        pipe = self.client.pipeline(transaction=False)
        for s in starts:
            pipe.hgetall(keys.hour(self.prefix, topic, s))
        return [Bucket.from_hash(s, h) for s, h in zip(starts, pipe.execute(), strict=True)]

    @translated
    def read_window(self, topic: str, start_ms: int, end_ms: int) -> Bucket:
        minutes, hours = window_plan(start_ms, end_ms)
        pipe = self.client.pipeline(transaction=False)
        for s in minutes:
            pipe.hgetall(keys.minute(self.prefix, topic, s))
        for s in hours:
            pipe.hgetall(keys.hour(self.prefix, topic, s))
        res = pipe.execute()
        buckets = [Bucket.from_hash(s, h) for s, h in zip(minutes + hours, res, strict=True)]
        return merge(buckets, minute_start(start_ms))

    def close(self) -> None:
        self.client.close()


class RedisAlertState:
    """The alerter's state in Redis: the single-alerter lease, cooldown claims, the outbox."""

    _RENEW = """
    local cur = redis.call('GET', KEYS[1])
    if (not cur) or cur == ARGV[1] then
      redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
      return 1
    end
    return 0
    """

    def __init__(self, store: RedisAggregateStore) -> None:
        self.client = store.client
        self.prefix = store.prefix
        self._renew = self.client.register_script(self._RENEW)

    @translated
    def hold_lease(self, owner: str, ttl_s: int) -> bool:
        """Take or renew the lease: exactly one alerter evaluates and sends at a time."""
        return bool(self._renew(keys=[keys.alert_lease(self.prefix)], args=[owner, ttl_s]))

    @translated
    def release_lease(self, owner: str) -> None:
        if self.client.get(keys.alert_lease(self.prefix)) == owner:
            self.client.delete(keys.alert_lease(self.prefix))

    @translated
    def outbox(self) -> list[dict[str, Any]]:
        return [orjson.loads(v) for v in self.client.lrange(keys.alert_outbox(self.prefix), 0, -1)]

    @translated
    def replace(self, old: Mapping[str, Any], new: Mapping[str, Any] | None) -> None:
        """Drop an outbox entry (delivered / given up) or put it back updated (retry later)."""
        k = keys.alert_outbox(self.prefix)
        pipe = self.client.pipeline(transaction=True)
        pipe.lrem(k, 1, orjson.dumps(old).decode())
        if new is not None:
            pipe.rpush(k, orjson.dumps(new).decode())
        pipe.execute()

    @translated
    def mark_sent(self, fingerprint: str, destination: str) -> None:
        k = keys.alert_sent(self.prefix)
        self.client.lpush(k, f"{destination}|{fingerprint}")
        self.client.ltrim(k, 0, 9999)

    @translated
    def disable(self, destination: str, reason: str) -> None:
        self.client.hset(keys.alert_disabled(self.prefix), destination, reason)

    @translated
    def disabled(self) -> dict[str, str]:
        return _hash(self.client.hgetall(keys.alert_disabled(self.prefix)))
