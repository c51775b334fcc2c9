"""The stream's volume in Redis: how many posts came in each minute, matched or not, per source
and language, so that a dashboard can show the whole stream next to the topics and the share
of it that matched.

The worker matches topics before the model (`monitor.worker`): a post no topic wants is never
scored, claimed or remembered, and leaves no key of its own. It is counted here instead, one
hash a minute (``<p>:{vol}:m:<minute_start_ms>``, `monitor.store.keys`), written once a batch
with the same watermark-guarded script as the topics' buckets (``lua/apply_deltas.lua``, its
watermark hash ``<p>:{vol}:wm``), so a redelivered batch counts nothing twice. Fields:

    n|<source>|<lang>   posts (records decoded as posts)
    m|<source>|<lang>   the posts among them that matched at least one topic

``<lang>`` is the language tag the source gave (``und`` when it gave none: unmatched posts are
never run through language detection).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Protocol

import orjson

from monitor.aggregates import MINUTE_MS, minute_start
from monitor.store import keys
from monitor.store.buckets import PartitionWrite, RedisAggregateStore, read_offsets, translated

POSTS = "n"
MATCHED = "m"


def volume_field(kind: str, source: str, lang: str) -> str:
    return f"{kind}|{source}|{lang}"


@dataclass(frozen=True, slots=True)
class VolumeMinute:
    """One minute of the stream: posts and matched posts, in total and per (source, lang)."""

    start_ms: int
    posts: int = 0
    matched: int = 0
    by_source: dict[str, tuple[int, int]] = field(default_factory=dict)  # "source|lang" -> (posts, matched)

    @classmethod
    def from_hash(cls, start_ms: int, h: dict[str, str]) -> VolumeMinute:
        by: dict[str, list[int]] = {}
        for k, v in h.items():
            kind, _, rest = k.partition("|")
            if kind not in (POSTS, MATCHED) or not rest:
                continue
            slot = by.setdefault(rest, [0, 0])
            slot[kind == MATCHED] += int(v)
        return cls(
            start_ms,
            sum(p for p, _ in by.values()),
            sum(m for _, m in by.values()),
            {k: (p, m) for k, (p, m) in sorted(by.items())},
        )


class VolumeStore(Protocol):
    """What the worker writes of the stream's volume (`RedisVolumeStore`)."""

    def volume_watermarks(self, parts: Iterable[str]) -> dict[str, int]: ...
    def apply_volume(self, writes: Sequence[PartitionWrite]) -> tuple[int, int]: ...


class RedisVolumeStore:
    """Volume hashes beside a `RedisAggregateStore` (its client, prefix and minute TTL)."""

    def __init__(self, store: RedisAggregateStore) -> None:
        self.client = store.client
        self.prefix = store.prefix
        self.minute_ttl_s = store.minute_ttl_s
        script = resources.files("monitor.store").joinpath("lua", "apply_deltas.lua").read_text()
        self._apply = self.client.register_script(script)

    @translated
    def volume_watermarks(self, parts: Iterable[str]) -> dict[str, int]:
        """ "<kafka-topic>:<partition>" -> the last offset counted (-1 when none)."""
        got = read_offsets(self.client, keys.volume_watermark(self.prefix), parts)
        return {p: -1 if v is None else v for p, v in got.items()}

    @translated
    def apply_volume(self, writes: Sequence[PartitionWrite]) -> tuple[int, int]:
        """Add each partition's per-minute counts and move its watermark, atomically; a part at
        or below the watermark changes nothing. -> (parts applied, parts skipped)."""
        if not writes:
            return 0, 0
        key_list = [keys.volume_watermark(self.prefix)]
        index: dict[str, int] = {}
        payload = []
        for pw in writes:
            buckets = []
            for (kind, start), delta in pw.deltas.items():
                k = keys.volume(self.prefix, start)
                if k not in index:
                    key_list.append(k)
                    index[k] = len(key_list)  # Lua is 1-based
                buckets.append([index[k], kind, start // 1000, delta])
            payload.append(
                {"p": pw.partition, "first": pw.first_offset, "last": pw.last_offset, "b": buckets}
            )
        res = self._apply(
            keys=key_list, args=[self.minute_ttl_s, self.minute_ttl_s, orjson.dumps(payload).decode()]
        )
        return int(res[0]), int(res[1])

    @translated
    def read_volume(self, start_ms: int, end_ms: int) -> list[VolumeMinute]:
        """The minutes starting in [minute of start_ms, end_ms)."""
        starts = list(range(minute_start(start_ms), end_ms, MINUTE_MS))
        if not starts:
            return []
        pipe = self.client.pipeline(transaction=False)
        for s in starts:
            pipe.hgetall(keys.volume(self.prefix, s))
        return [
            VolumeMinute.from_hash(s, {str(k): str(v) for k, v in h.items()})
            for s, h in zip(starts, pipe.execute(), strict=True)
        ]
