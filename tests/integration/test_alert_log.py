"""The alert log on the real Redis: one stream entry per episode transition (open, escalate,
resolve), written in the same Lua call as the episode, never twice, also when alerters are
killed and replaced mid-episode or a commit is retried."""

from __future__ import annotations

import time

import pytest

from monitor.aggregates import MINUTE_MS, Bucket, minute_start
from monitor.alerts.alerter import Alerter
from monitor.alerts.history import episode_id
from monitor.alerts.message import AlertEvent
from monitor.alerts.settings import AlertSettings
from monitor.store import keys
from monitor.store.alerts import RedisAlertLedger, RedisAlertLog
from monitor.store.buckets import PartitionWrite, RedisAggregateStore
from tests.buckets import bucketed
from tests.unit.alerts.test_detectors import synth_minutes

pytestmark = pytest.mark.integration

RULE = {"name": "neg", "metric": "negative_share", "baseline_lookback_min": 120, "window_min": 15}


def _delta(b: Bucket) -> dict[str, float]:
    d: dict[str, float] = {"n": b.n, "score_sum": b.score_sum}
    d.update({f"s:{k}": v for k, v in b.sentiments.items()})
    d.update({f"e:{k}": v for k, v in b.emotions.items()})
    return d


def test_every_transition_logged_once_across_kills(redis_url, unique):
    store = RedisAggregateStore(redis_url, f"al-{unique}")
    settings = AlertSettings(rules=[RULE], destinations=[])
    rule = settings.rules[0]
    hist, start, length, total = rule.history_min, rule.history_min + 30, 40, rule.history_min + 120
    t0 = minute_start(int(time.time() * 1000)) - 5 * 3_600_000
    minutes = synth_minutes(total, 5, 0.2, seed=5, start_ms=t0, shift=(start, start + length, 0.8))
    store.apply(
        {"brand": [PartitionWrite("p:0", 0, 0, bucketed((b.start_ms, _delta(b)) for b in minutes if b.n))]}
    )
    alerter = Alerter(settings, store, RedisAlertLedger(store))
    queued: list[AlertEvent] = []
    for m in range(hist, total + 1):
        store.advance_seal(t0 + m * MINUTE_MS)
        assert alerter.holds_lease()
        got = alerter.evaluate()
        queued += got
        if got or m % 37 == 0:  # killed right after a commit, and now and then in between
            store.client.delete(keys.alert_lease(store.prefix))
            alerter = Alerter(settings, store, RedisAlertLedger(store))
    log = RedisAlertLog(store)
    entries = log.read(newest_first=False)
    kinds = [e["kind"] for e in entries]
    assert kinds[0] == "open" and kinds[-1] == "resolve" and kinds.count("open") == 1
    assert set(kinds[1:-1]) <= {"escalate"}
    # exactly the notices queued, in order, once each
    assert [(e["ts_ms"], e["notice"]) for e in entries] == [(q.window_end_ms, q.notice) for q in queued]
    assert len({e["alert"] for e in entries}) == len(entries) == log.length()
    first = entries[0]
    assert {e["episode"] for e in entries} == {episode_id("brand", "neg", first["episode_started_ms"])}
    assert first["topic"] == "brand" and first["rule"] == "neg" and first["rule_kind"] == "share_shift"
    assert first["severity"] in ("warning", "critical") and first["posts"] > 0 and first["z"] > 4
    assert "negative share on brand" in first["text"].lower() and first["value"] > first["baseline"]
    assert entries[-1]["text"].startswith("Resolved")
    # the newest-first reader and its filters
    assert log.last(1)[0]["id"] == entries[-1]["id"]
    assert log.last(5, topic="other") == []
    assert log.read(start_ms=entries[-1]["recorded_ms"] + 1) == []
    assert len(log.read(end_ms=entries[0]["recorded_ms"])) >= 1


def _ledger_commit(ledger: RedisAlertLedger, owner: str, fp: str) -> int:
    fields = ["kind", "open", "topic", "acme", "rule", "neg", "ts_ms", "60000", "z", ""]
    return ledger.commit(owner, "acme", "neg", {"status": "firing"}, fp, [{"body": {}}], fields)


def test_a_retried_commit_logs_nothing_and_a_lost_lease_writes_nothing(redis_url, unique):
    store = RedisAggregateStore(redis_url, f"al-{unique}")
    ledger = RedisAlertLedger(store)
    log = RedisAlertLog(store)
    assert _ledger_commit(ledger, "a1", "fp1") == -1  # no lease held
    assert log.length() == 0
    assert ledger.hold_lease("a1", 30)
    assert _ledger_commit(ledger, "a1", "fp1") == 1
    assert _ledger_commit(ledger, "a1", "fp1") == 0  # the same notice again (a retry after a crash)
    assert ledger.commit("a1", "acme", "neg", {"status": "firing"}) == 0  # no notice: episode only
    assert log.length() == 1 and len(ledger.outbox()) == 1
    (e,) = log.last(10)
    assert e["kind"] == "open" and e["ts_ms"] == 60000 and e["z"] is None


def test_the_log_is_capped(redis_url, unique):
    store = RedisAggregateStore(redis_url, f"al-{unique}")
    ledger = RedisAlertLedger(store, log_max_len=100)
    assert ledger.hold_lease("a1", 30)
    for i in range(1500):
        assert _ledger_commit(ledger, "a1", f"fp{i}") == 1
    n = RedisAlertLog(store).length()
    assert 100 <= n < 1500  # MAXLEN ~ trims whole nodes (100 entries each by default)
    assert len(RedisAlertLog(store).last(2000)) == n
