"""The alerter's state in Redis (through the store's client): the lease, each (topic, rule)'s
episode, notice fingerprints, the outbox and what was delivered where. Keys: `keys.py`.

One Lua call commits an evaluation: it checks the caller still holds the lease (a paused
alerter that lost it writes nothing), claims the notice's fingerprint (SET NX), queues its
messages only if the claim is new, and saves the episode, all at once; so a crash or a second
alerter can neither lose nor duplicate a notice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson

from monitor.store import keys
from monitor.store.buckets import RedisAggregateStore, RedisAlertState, translated

FINGERPRINT_TTL_S = 30 * 24 * 3600
EPISODE_TTL_S = 14 * 24 * 3600

_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local res = 0
if ARGV[3] ~= '' then
  if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[4]) then
    for i = 6, #ARGV do redis.call('RPUSH', KEYS[4], ARGV[i]) end
    res = 1
  end
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[5])
return res
"""


_REPLACE = """
local i = redis.call('LPOS', KEYS[1], ARGV[1])
if not i then return 0 end
if ARGV[2] == '' then redis.call('LREM', KEYS[1], 1, ARGV[1]) else redis.call('LSET', KEYS[1], i, ARGV[2]) end
return 1
"""


class OutboxStore(Protocol):
    """The outbox the dispatcher delivers from (`monitor.alerts.delivery.Dispatcher`)."""

    def outbox(self) -> list[dict[str, Any]]: ...
    def replace(self, old: Mapping[str, Any], new: Mapping[str, Any] | None) -> None: ...
    def mark_delivered(self, fingerprint: str, destination: str) -> None: ...
    def was_delivered(self, fingerprint: str, destination: str) -> bool: ...
    def disable(self, destination: str, reason: str) -> None: ...
    def disabled(self) -> dict[str, str]: ...


class AlertLedger(OutboxStore, Protocol):
    """The alerter's state: the lease, each (topic, rule)'s episode, and the outbox it commits
    notices to (`RedisAlertLedger`)."""

    def hold_lease(self, owner: str, ttl_s: int) -> bool: ...
    def release_lease(self, owner: str) -> None: ...
    def episodes(self, topic: str, rules: Sequence[str]) -> dict[str, dict[str, Any]]: ...
    def commit(
        self,
        owner: str,
        topic: str,
        rule: str,
        episode: Mapping[str, Any],
        fingerprint: str = "",
        entries: Sequence[Mapping[str, Any]] = (),
    ) -> int: ...


class RedisAlertLedger(RedisAlertState):
    def __init__(self, store: RedisAggregateStore) -> None:
        super().__init__(store)
        self._commit = self.client.register_script(_COMMIT)
        self._replace = self.client.register_script(_REPLACE)

    @translated
    def replace(self, old: Mapping[str, Any], new: Mapping[str, Any] | None) -> None:
        """Drop an outbox entry, or update it IN PLACE (a retried message keeps its turn)."""
        new_json = orjson.dumps(dict(new)).decode() if new else ""
        old_json = orjson.dumps(dict(old)).decode()
        self._replace(keys=[keys.alert_outbox(self.prefix)], args=[old_json, new_json])

    @translated
    def episodes(self, topic: str, rules: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not rules:
            return {}
        vals = self.client.mget([keys.alert_episode(self.prefix, topic, r) for r in rules])
        return {r: orjson.loads(v) for r, v in zip(rules, vals, strict=True) if v}

    @translated
    def commit(
        self,
        owner: str,
        topic: str,
        rule: str,
        episode: Mapping[str, Any],
        fingerprint: str = "",
        entries: Sequence[Mapping[str, Any]] = (),
    ) -> int:
        """Save the episode; with a fingerprint, queue ``entries`` once ever for it.
        Returns 1 queued, 0 already claimed before (nothing queued), -1 lease lost (nothing written)."""
        fp_key = keys.alert_fingerprint(self.prefix, topic, fingerprint or "-")
        return int(
            self._commit(
                keys=[
                    keys.alert_lease(self.prefix),
                    keys.alert_episode(self.prefix, topic, rule),
                    fp_key,
                    keys.alert_outbox(self.prefix),
                ],
                args=[
                    owner,
                    orjson.dumps(dict(episode)).decode(),
                    fingerprint,
                    FINGERPRINT_TTL_S,
                    EPISODE_TTL_S,
                    *(orjson.dumps(dict(e)).decode() for e in entries),
                ],
            )
        )

    @translated
    def mark_delivered(self, fingerprint: str, destination: str) -> None:
        key = keys.alert_delivered(self.prefix, destination, fingerprint)
        self.client.set(key, "1", ex=FINGERPRINT_TTL_S)
        self.mark_sent(fingerprint, destination)

    @translated
    def was_delivered(self, fingerprint: str, destination: str) -> bool:
        return bool(self.client.exists(keys.alert_delivered(self.prefix, destination, fingerprint)))
