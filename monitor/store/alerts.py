"""The alerter's state in Redis (through the store's client): the lease, each (topic, rule)'s
episode, notice fingerprints, the outbox and what was delivered where. Keys: `keys.py`.

One Lua call commits an evaluation: it checks the caller still holds the lease (a paused
alerter that lost it writes nothing), claims the notice's fingerprint (SET NX), queues its
messages and appends its entry to the alert log (a capped stream, XADD MAXLEN ~) only if the
claim is new, and saves the episode, all at once; so a crash or a second alerter can neither
lose nor duplicate a notice or its log entry. `RedisAlertLog` reads the log back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson

from monitor.store import keys
from monitor.store.buckets import RedisAggregateStore, RedisAlertState, _str, translated

FINGERPRINT_TTL_S = 30 * 24 * 3600
EPISODE_TTL_S = 14 * 24 * 3600
LOG_MAX_LEN = 10_000  # the alert log keeps about this many entries (MAXLEN ~: trimmed by whole nodes)

_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local res = 0
if ARGV[3] ~= '' then
  if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[4]) then
    local nlog = tonumber(ARGV[6])
    if nlog > 0 then
      local f = {}
      for i = 1, nlog do f[i] = ARGV[7 + i] end
      redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[7], '*', unpack(f))
    end
    for i = 8 + nlog, #ARGV do redis.call('RPUSH', KEYS[4], ARGV[i]) end
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
    def drop_gone_quotes(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]: ...
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
        log: Sequence[str] = (),
    ) -> int: ...


class RedisAlertLedger(RedisAlertState):
    def __init__(self, store: RedisAggregateStore, *, log_max_len: int = LOG_MAX_LEN) -> None:
        super().__init__(store)
        self.log_max_len = log_max_len
        self._commit = self.client.register_script(_COMMIT)
        self._replace = self.client.register_script(_REPLACE)

    @translated
    def replace(self, old: Mapping[str, Any], new: Mapping[str, Any] | None) -> None:
        """Drop an outbox entry, or update it IN PLACE (a retried message keeps its turn)."""
        new_json = orjson.dumps(dict(new)).decode() if new else ""
        old_json = orjson.dumps(dict(old)).decode()
        self._replace(keys=[keys.alert_outbox(self.prefix)], args=[old_json, new_json])

    @translated
    def drop_gone_quotes(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``entries`` (the outbox as read), with every entry whose quoted posts are not all in
        their topic's sample any more (a source deleted one, or its text expired) replaced,
        in place in Redis too, by the same message without quotes (its ``bare`` body): a
        deleted post is never sent, and leaves no text in the outbox."""
        quoting = [e for e in entries if e.get("quotes") and e.get("topic")]
        if not quoting:
            return entries
        pipe = self.client.pipeline(transaction=False)
        for e in quoting:
            pipe.zmscore(keys.recent(self.prefix, str(e["topic"])), [str(q) for q in e["quotes"]])
        gone = {
            id(e): e for e, scores in zip(quoting, pipe.execute(), strict=True) if None in (scores or [None])
        }
        out = []
        for e in entries:
            if id(e) in gone:
                bare = {k: v for k, v in e.items() if k not in ("quotes", "bare")}
                bare["body"] = e.get("bare") or {"text": "(the quoted posts were deleted)"}
                self.replace(e, bare)
                e = bare
            out.append(e)
        return out

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
        log: Sequence[str] = (),
    ) -> int:
        """Save the episode; with a fingerprint, queue ``entries`` and append ``log`` (a flat
        [field, value, ...] list, `monitor.alerts.history.log_fields`) to the alert log, once
        ever for it. Returns 1 queued, 0 already claimed before (nothing queued or logged),
        -1 lease lost (nothing written)."""
        fp_key = keys.alert_fingerprint(self.prefix, topic, fingerprint or "-")
        return int(
            self._commit(
                keys=[
                    keys.alert_lease(self.prefix),
                    keys.alert_episode(self.prefix, topic, rule),
                    fp_key,
                    keys.alert_outbox(self.prefix),
                    keys.alert_log(self.prefix),
                ],
                args=[
                    owner,
                    orjson.dumps(dict(episode)).decode(),
                    fingerprint,
                    FINGERPRINT_TTL_S,
                    EPISODE_TTL_S,
                    len(log),
                    self.log_max_len,
                    *log,
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


_INTS = ("ts_ms", "episode_started_ms", "notice", "posts", "window_min")
_FLOATS = ("value", "baseline", "z")


def _entry(entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": entry_id, "recorded_ms": int(entry_id.split("-", 1)[0]), **fields}
    for k in _INTS:
        if fields.get(k, "").lstrip("-").isdigit():
            out[k] = int(fields[k])
    for k in _FLOATS:
        try:
            out[k] = float(fields[k]) if fields.get(k) else None
        except ValueError:
            out[k] = None
    return out


class RedisAlertLog:
    """Reads the alert log (``<p>:alert:log``, written by `RedisAlertLedger.commit`): episode
    openings, escalations and resolutions, for the dashboard's timeline and history.

    Each entry is a dict: ``id`` (the stream id), ``recorded_ms`` (when it was written), and the
    fields of `monitor.alerts.history` with ``ts_ms``, ``episode_started_ms``, ``notice``,
    ``posts``, ``window_min`` as ints and ``value``, ``baseline``, ``z`` as floats (``z`` may be
    None)."""

    _PAGE = 500

    def __init__(self, store: RedisAggregateStore) -> None:
        self.client = store.client
        self.key = keys.alert_log(store.prefix)

    @translated
    def read(
        self,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        limit: int = 100,
        topic: str | None = None,
        newest_first: bool = True,
    ) -> list[dict[str, Any]]:
        """Entries recorded in [start_ms, end_ms] (either open), at most ``limit``, optionally
        of one topic only; newest first unless ``newest_first`` is False."""
        lo = "-" if start_ms is None else str(start_ms)
        hi = "+" if end_ms is None else f"{end_ms}-18446744073709551615"
        out: list[dict[str, Any]] = []
        while len(out) < limit:
            page: Any = (
                self.client.xrevrange(self.key, max=hi, min=lo, count=self._PAGE)
                if newest_first
                else self.client.xrange(self.key, min=lo, max=hi, count=self._PAGE)
            )
            for entry_id, fields in page:
                e = _entry(_str(entry_id), {_str(k): _str(v) for k, v in fields.items()})
                if topic is None or e.get("topic") == topic:
                    out.append(e)
                    if len(out) >= limit:
                        break
            if len(page) < self._PAGE:
                break
            last = _str(page[-1][0])
            if newest_first:
                hi = f"({last}"
            else:
                lo = f"({last}"
        return out

    def last(self, n: int = 50, topic: str | None = None) -> list[dict[str, Any]]:
        """The ``n`` newest entries (of ``topic``), newest first."""
        return self.read(limit=n, topic=topic)

    @translated
    def length(self) -> int:
        return int(self.client.xlen(self.key))
