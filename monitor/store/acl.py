"""The least-privilege Redis ACL of each process: the key patterns and commands it uses, no more.

`rules(prefix)` gives, per role, the ACL rule of that role's user; `acl_file(prefix, passwords)`
renders a whole ACL file (``redis-server --aclfile``) with the passwords as SHA-256 hashes
(``#<hex>``), the default user switched off. The secured local stack loads it; docs/security.md
shows it for the default prefix. Keys: `monitor.store.keys`; commands: the calls in this package
and in its Lua scripts (Redis checks the commands a script runs against the caller's ACL too).

    worker     the aggregate writes: buckets, watermarks, the duplicate-id guard, the text
               sample, counters, the seal, its heartbeat (EVALSHA of the scripts); nothing of
               the alerter's (a deletion's quotes leave the outbox through the alerter)
    alerter    reads buckets, the sample and the seal; owns the alert keys (lease, episodes,
               fingerprints, outbox, delivered, disabled); its heartbeat
    connector  the connectors' state only (cursor, seen, meta, status, claims, the index)
    reader     the read side (``status``, ``check``, ``mood``, the dashboard): read-only on every
               key of the prefix, read commands only
    operator   ``mood-monitor rebuild`` (run with the workers stopped: overwrites buckets),
               ``mood-monitor backfill`` (adds a new topic's past, watermark-guarded) and
               ``mood-monitor topics add|remove`` (the topic registry)

Workers and the alerter read the topic registry (``<p>:{topics}:registry`` / ``:version``, in a
MULTI/EXEC) but only the operator writes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

ROLES = ("alerter", "connector", "operator", "reader", "worker")

# redis-py's Script: EVALSHA, and SCRIPT EXISTS / LOAD when the server does not know the script
_SCRIPTS = ("evalsha", "script|exists", "script|load")
_CONNECTION = ("ping",)


def _keys(prefix: str, mode: str, *patterns: str) -> list[str]:
    return [f"{mode}~{prefix}:{p}" for p in patterns]


def rules(prefix: str = "mm") -> dict[str, str]:
    """role -> the ACL rule body (without ``user <name> on >password``)."""
    bucket_keys = ("{t:*}:m:*", "{t:*}:h:*")
    roles: dict[str, tuple[list[str], tuple[str, ...]]] = {
        "worker": (
            _keys(
                prefix,
                "",
                *bucket_keys,
                "{t:*}:wm",
                "{t:*}:x:*",
                "{t:*}:recent",
                "topics",
                "wm",
                "{seen*}:*",  # {seen}, or the shards {seen:<n>}
                "{vol}:*",  # the stream's volume per minute (`monitor.store.volume`)
                "stat:*",
                "sealed",
                "health:*",
            )
            + _keys(prefix, "%R", "{topics}:*"),
            (
                *_CONNECTION,
                *_SCRIPTS,
                "multi",
                "exec",
                # direct calls
                "get",
                "set",
                "hget",
                "hmget",
                "hgetall",
                "hincrby",
                "hdel",
                "sadd",
                "smembers",
                "zmscore",
                "zrem",
                # inside apply_deltas / remember / claim_ids / advance_partitions
                "time",
                "hset",
                "hsetnx",
                "hlen",
                "hincrbyfloat",
                "expire",
                "expireat",
                "zadd",
                "zremrangebyscore",
            ),
        ),
        "alerter": (
            [
                *_keys(prefix, "", "{alert}:*", "health:*"),
                *_keys(
                    prefix, "%R", *bucket_keys, "{t:*}:x:*", "{t:*}:recent", "topics", "{topics}:*", "sealed"
                ),
            ],
            (
                *_CONNECTION,
                *_SCRIPTS,
                "multi",
                "exec",
                "get",
                "mget",
                "set",
                "del",
                "exists",
                "hget",
                "hgetall",
                "hset",
                "smembers",
                "zrevrangebyscore",
                "zmscore",  # are the posts an outbox entry quotes still in the sample?
                "lrange",
                "lpush",
                "ltrim",
                "lrem",
                "rpush",
                "xrange",
                "xrevrange",
                "xlen",
                # inside the lease, commit and replace scripts (the commit appends to the alert log)
                "lpos",
                "lset",
                "xadd",
            ),
        ),
        "connector": (
            # + the topic registry, read by a firehose connector run with --only-matching
            _keys(prefix, "", "conn:*") + _keys(prefix, "%R", "{topics}:*"),
            (
                *_CONNECTION,
                "multi",
                "exec",
                "get",
                "set",
                "del",
                "expire",
                "hget",
                "hset",
                "hgetall",
                "sadd",
                "smembers",
                "zadd",
                "zmscore",
                "zremrangebyscore",
                "zremrangebyrank",
            ),
        ),
        "reader": (
            _keys(prefix, "%R", "*"),
            (
                *_CONNECTION,
                "multi",
                "exec",
                "get",
                "mget",
                "exists",
                "type",
                "ttl",
                "pttl",
                "scan",
                "hget",
                "hmget",
                "hgetall",
                "hlen",
                "smembers",
                "sismember",
                "scard",
                "zrange",
                "zrangebyscore",
                "zrevrange",
                "zrevrangebyscore",
                "zscore",
                "zmscore",
                "zcard",
                "lrange",
                "llen",
                "xrange",
                "xrevrange",
                "xread",
                "xlen",
            ),
        ),
        "operator": (
            # backfill: the topic's watermarks (its own backfill:<partition> fields, by the
            # apply script) and the partitions' watermarks (read)
            _keys(prefix, "", *bucket_keys, "{t:*}:wm", "topics", "{topics}:*") + _keys(prefix, "%R", "wm"),
            (
                *_CONNECTION,
                *_SCRIPTS,
                "time",
                "expire",
                "hmget",
                "multi",
                "exec",
                "get",
                "del",
                "hget",
                "hgetall",
                "hset",
                "hdel",
                "hincrby",
                "hincrbyfloat",
                "incr",
                "expireat",
                "sadd",
                "smembers",
            ),
        ),
    }
    return {
        role: " ".join(["resetkeys", "resetchannels", *patterns, "-@all", *(f"+{c}" for c in commands)])
        for role, (patterns, commands) in sorted(roles.items())
    }


def password_hash(password: str) -> str:
    """The form an ACL file keeps a password in (``#`` + SHA-256 hex): the file holds no secret."""
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def acl_file(prefix: str, passwords: Mapping[str, str], users: Mapping[str, str] | None = None) -> str:
    """A whole ACL file: the default user off, one user per role in ``passwords`` (role ->
    password), named ``users[role]`` (default: the role's name)."""
    lines = [
        "user default off",
    ]
    for role, body in rules(prefix).items():
        if role in passwords:
            name = (users or {}).get(role, role)
            lines.append(f"user {name} on {password_hash(passwords[role])} {body}")
    return "\n".join(lines) + "\n"
