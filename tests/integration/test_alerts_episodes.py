"""Planted shifts through the real alerter on the real local Redis, a local HTTP server standing
in for Slack and a generic JSON webhook: fire promptly and once, resolve, survive being killed."""

from __future__ import annotations

import time

import pytest

from devstack.webhook_sink import WebhookSink
from monitor.aggregates import MINUTE_MS, Bucket, minute_start
from monitor.alerts.alerter import Alerter, LeaseLost
from monitor.alerts.settings import AlertSettings
from monitor.store import keys
from monitor.store.alerts import RedisAlertLedger
from monitor.store.buckets import PartitionWrite, RedisAggregateStore
from tests.buckets import bucketed
from tests.unit.alerts.test_detectors import T0 as UNIT_T0
from tests.unit.alerts.test_detectors import _ideal_end, synth_minutes

pytestmark = pytest.mark.integration

RULE = {"name": "neg", "metric": "negative_share", "baseline_lookback_min": 120, "window_min": 15}


def _delta(b: Bucket) -> dict[str, float]:
    d: dict[str, float] = {"n": b.n, "score_sum": b.score_sum}
    d.update({f"s:{k}": v for k, v in b.sentiments.items()})
    d.update({f"e:{k}": v for k, v in b.emotions.items()})
    return d


def _alerter(settings: AlertSettings, store: RedisAggregateStore) -> Alerter:
    return Alerter(settings, store, RedisAlertLedger(store))


@pytest.mark.parametrize(("rate", "p1"), [(150, 0.40), (5, 0.80)], ids=["busy", "quiet"])
def test_planted_shift_fires_once_survives_a_kill_and_resolves(redis_url, unique, monkeypatch, rate, p1):
    store = RedisAggregateStore(redis_url, f"al-{unique}")
    settings = AlertSettings(
        rules=[RULE],
        destinations=[
            {"name": "slack", "kind": "slack", "url_env": "T_HOOK_SLACK"},
            {"name": "json", "kind": "webhook", "url_env": "T_HOOK_JSON"},
        ],
    )
    rule = settings.rules[0]
    hist, start, length, total = rule.history_min, rule.history_min + 30, 40, rule.history_min + 120
    t0 = minute_start(int(time.time() * 1000)) - 5 * 3_600_000
    minutes = synth_minutes(total, rate, 0.2, seed=5, start_ms=t0, shift=(start, start + length, p1))
    store.apply(
        {"brand": [PartitionWrite("p:0", 0, 0, bucketed((b.start_ms, _delta(b)) for b in minutes if b.n))]}
    )
    ideal = _ideal_end(rule, rate, 0.2, p1, start) - UNIT_T0 + t0
    with WebhookSink() as sink:
        monkeypatch.setenv("T_HOOK_SLACK", sink.url("/slack"))
        monkeypatch.setenv("T_HOOK_JSON", sink.url("/json"))
        alerter = _alerter(settings, store)
        fired_at = None
        killed = []
        for m in range(hist, total + 1):
            store.advance_seal(t0 + m * MINUTE_MS)
            assert alerter.holds_lease()
            queued = alerter.evaluate()
            if any(q.action == "fire" for q in queued):
                fired_at = t0 + m * MINUTE_MS
                # killed after queueing, before delivering: its lease runs out, a new one takes over
                killed.append(alerter)
                store.client.delete(keys.alert_lease(store.prefix))
                alerter = _alerter(settings, store)
            elif fired_at and m == (fired_at - t0) // MINUTE_MS + 5:
                killed.append(alerter)  # killed again mid-episode, after delivering
                store.client.delete(keys.alert_lease(store.prefix))
                alerter = _alerter(settings, store)
            alerter.tick()
        alerter.drain(timeout_s=10)
        # a killed alerter that wakes up holds no lease and can write nothing
        store.advance_seal(t0 + (total + 1) * MINUTE_MS)
        killed[0].tick()
        with pytest.raises(LeaseLost):
            killed[0].evaluate()
    json_msgs = [r.json() for r in sink.received if r.path == "/json"]
    slack_msgs = [r.json() for r in sink.received if r.path == "/slack"]
    actions = [m["action"] for m in json_msgs]
    assert actions.count("fire") == 1 and actions.count("resolve") == 1 and actions[-1] == "resolve"
    assert set(actions) <= {"fire", "renotify", "resolve"}
    assert len({m["fingerprint"] for m in json_msgs}) == len(json_msgs) == len(slack_msgs)  # no duplicates
    assert fired_at is not None and t0 + start * MINUTE_MS < fired_at <= ideal + 2 * MINUTE_MS
    resolved_at = next(m["window_end_ms"] for m in json_msgs if m["action"] == "resolve")
    shift_end = t0 + (start + length) * MINUTE_MS
    assert shift_end < resolved_at <= shift_end + (rule.window_min + rule.resolve_after + 2) * MINUTE_MS
    assert "brand" in slack_msgs[0]["text"] and slack_msgs[-1]["text"].startswith(
        ":white_check_mark: Resolved"
    )
    assert alerter.state.outbox() == []


def test_routing_by_topic_and_severity(redis_url, unique, monkeypatch):
    store = RedisAggregateStore(redis_url, f"al-{unique}")
    now = int(time.time() * 1000)
    m = now - now % MINUTE_MS
    store.apply(
        {
            t: [PartitionWrite("p:0", 0, 0, bucketed([(m, {"n": 40, "s:negative": 30, "s:neutral": 10})]))]
            for t in ("acme", "other")
        }
    )
    rules = [
        {"name": "neg", "above": 0.5, "window_min": 5, "min_posts": 10, "sealed_only": False},
        {
            "name": "neg",
            "above": 0.5,
            "window_min": 5,
            "min_posts": 10,
            "sealed_only": False,
            "topics": ["acme"],
            "severity": "critical",
        },
    ]
    with WebhookSink() as sink:
        for name in ("all", "acme", "pager"):
            monkeypatch.setenv(f"T_{name.upper()}", sink.url(f"/{name}"))
        settings = AlertSettings(
            rules=rules,
            destinations=[
                {"name": "all", "url_env": "T_ALL"},
                {"name": "acme", "url_env": "T_ACME", "topics": ["acme"]},
                {"name": "pager", "kind": "webhook", "url_env": "T_PAGER", "min_severity": "critical"},
            ],
        )
        a = _alerter(settings, store)
        a.tick()
        a.drain(timeout_s=10)
    got = sorted(
        (r.path, r.json().get("topic") or r.json()["text"].split(" on ")[1].split(":")[0])
        for r in sink.received
    )
    assert got == [("/acme", "acme"), ("/all", "acme"), ("/all", "other"), ("/pager", "acme")]
