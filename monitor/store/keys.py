"""Every Redis key of the aggregate store and the alerter, built in one place (the connectors'
keys, ``<p>:conn:{<instance>}:{cursor,seen,meta,status,claim:<id>}`` and ``<p>:conn:index``, are
built by `monitor.store.connectors` from its own prefix).

Keys that one script or MULTI/EXEC touches together share a hash tag (the part in braces), so
that on a Redis Cluster they live in one slot, on one master: a topic's buckets, sample and
watermarks ``{t:<topic>}``; the duplicate-id guard's slices ``{seen}`` (or, sharded,
``{seen:<shard>}``, one tag per shard, so that the guard spreads over the masters); the stream volume
``{vol}``; the topic registry and its version ``{topics}``; everything of the alerter
``{alert}`` (its commit checks the lease, claims a fingerprint, saves the episode, queues the
outbox and appends to the log at once); one connector's keys ``{<instance>}``. A key touched
alone (``<p>:topics``, ``<p>:wm``, counters, the seal, heartbeats) needs no tag.

    <p>:{t:<topic>}:m:<minute_start_ms>   HASH  minute bucket (fields: see aggregates.py)
    <p>:{t:<topic>}:h:<hour_start_ms>     HASH  hour bucket
    <p>:{t:<topic>}:wm                    HASH  field "<kafka-topic>:<partition>" -> last applied offset
    <p>:topics                            SET   topics that have ever had a post
    <p>:wm                                HASH  field "<kafka-topic>:<partition>" -> last offset of
                                                 the last batch applied (every batch, whatever its
                                                 topics): where a worker resumes after Redis lost data
    <p>:{seen}:<slice>                    HASH  duplicate-id guard: 8-byte digest of a post id ->
                                                 "<kafka-topic>:<partition>:<offset>" of the record
                                                 that first carried it; one hash per time slice
                                                 (`dedup_slice_s`), the current and the previous are
                                                 checked, each expires two slices after its start
    <p>:{seen:<shard>}:<slice>            HASH  the same, split by digest into `dedup_shards` shards
                                                 (default 1, i.e. the key above; 16 on a cluster)
    <p>:{t:<topic>}:x:<minute_start_ms>   HASH  the topic's sample of that minute's posts (at most
                                                 `texts_per_minute`): post id -> text, url, time,
                                                 sentiment; expires `text_ttl_s` after the minute
    <p>:{t:<topic>}:recent                ZSET  the sampled post ids by event time (the sample's index)
    <p>:stat:<name>                       HASH  counters (dlq, too_late, duplicates, ...) by reason
    <p>:sealed                            STRING ms before which minutes are sealed for alerting
    <p>:health:<process>                  STRING heartbeat, TTL (used by `mood-monitor check`)
    <p>:{topics}:registry                 HASH  topic name -> JSON definition or removal (`topics add|remove`)
    <p>:{topics}:version                  STRING the registry's version, bumped by every change
    <p>:{vol}:m:<minute_start_ms>         HASH  stream volume of that minute, every post matched or
                                                 not: "n|<source>|<lang>" -> posts, "m|<source>|<lang>"
                                                 -> the posts that matched a topic (one hash a minute,
                                                 written per batch: no key per post)
    <p>:{vol}:wm                          HASH  field "<kafka-topic>:<partition>" -> last offset
                                                 counted in the volume hashes (exactly once)
"""

from __future__ import annotations

DEFAULT_PREFIX = "mm"


def _tag(prefix: str, topic: str) -> str:
    return f"{prefix}:{{t:{topic}}}"


def minute(prefix: str, topic: str, start_ms: int) -> str:
    return f"{_tag(prefix, topic)}:m:{start_ms}"


def hour(prefix: str, topic: str, start_ms: int) -> str:
    return f"{_tag(prefix, topic)}:h:{start_ms}"


def bucket(prefix: str, topic: str, kind: str, start_ms: int) -> str:
    return f"{_tag(prefix, topic)}:{kind}:{start_ms}"


def watermark(prefix: str, topic: str) -> str:
    return f"{_tag(prefix, topic)}:wm"


def topics(prefix: str) -> str:
    return f"{prefix}:topics"


def partition_watermarks(prefix: str) -> str:
    return f"{prefix}:wm"


def volume(prefix: str, minute_start_ms: int) -> str:
    return f"{prefix}:{{vol}}:m:{minute_start_ms}"


def volume_watermark(prefix: str) -> str:
    return f"{prefix}:{{vol}}:wm"


def topic_registry(prefix: str) -> str:
    return f"{prefix}:{{topics}}:registry"


def topic_registry_version(prefix: str) -> str:
    return f"{prefix}:{{topics}}:version"


def seen_slice(prefix: str, slice_no: int, shard: int | None = None) -> str:
    """One slice of the duplicate-id guard; with ``redis.dedup_shards`` > 1, of one shard
    (``{seen:<shard>}``: the shards' slots spread the guard over a cluster's masters)."""
    return f"{prefix}:{{seen}}:{slice_no}" if shard is None else f"{prefix}:{{seen:{shard}}}:{slice_no}"


def sample(prefix: str, topic: str, minute_start_ms: int) -> str:
    return f"{_tag(prefix, topic)}:x:{minute_start_ms}"


def stat(prefix: str, name: str) -> str:
    return f"{prefix}:stat:{name}"


def sealed(prefix: str) -> str:
    return f"{prefix}:sealed"


def health(prefix: str, process: str) -> str:
    return f"{prefix}:health:{process}"


def recent(prefix: str, topic: str) -> str:
    """ZSET of the sampled post ids of a topic scored by event time (representative posts)."""
    return f"{_tag(prefix, topic)}:recent"


# ---- alerter: one hash tag, {alert}, for all its keys (one slot: its commit script spans them) --
#   <p>:{alert}:lease                      STRING id of the one active alerter, TTL
#   <p>:{alert}:ep:<topic>:<rule>          HASH   episode state (open, breaches, clears, worst)
#   <p>:{alert}:outbox                     LIST   messages waiting for delivery (survive restarts)
#   <p>:{alert}:sent                       LIST   fingerprints of delivered messages (capped)
#   <p>:{alert}:disabled                   HASH   destination name -> reason (permanent errors)
#   <p>:{alert}:log                        STREAM episode openings, escalations, resolutions (capped)


def alert_lease(prefix: str) -> str:
    return f"{prefix}:{{alert}}:lease"


def alert_episode(prefix: str, topic: str, rule: str) -> str:
    return f"{prefix}:{{alert}}:ep:{topic}:{rule}"


def alert_outbox(prefix: str) -> str:
    return f"{prefix}:{{alert}}:outbox"


def alert_sent(prefix: str) -> str:
    return f"{prefix}:{{alert}}:sent"


def alert_disabled(prefix: str) -> str:
    return f"{prefix}:{{alert}}:disabled"


def alert_log(prefix: str) -> str:
    """STREAM of episode transitions (`monitor.alerts.history`), written with the episode."""
    return f"{prefix}:{{alert}}:log"


#   <p>:{alert}:fp:<topic>:<fingerprint>   STRING a notice claimed once (dedup across restarts), TTL
#   <p>:{alert}:delivered:<dest>|<fp>      STRING a notice delivered to a destination, TTL


def alert_fingerprint(prefix: str, topic: str, fingerprint: str) -> str:
    return f"{prefix}:{{alert}}:fp:{topic}:{fingerprint}"


def alert_delivered(prefix: str, destination: str, fingerprint: str) -> str:
    return f"{prefix}:{{alert}}:delivered:{destination}|{fingerprint}"
