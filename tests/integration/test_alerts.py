"""Alerts on the real local Redis with a local HTTP server standing in for Slack."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from devstack.synthetic import demo_topics_config, stream
from devstack.webhook_sink import WebhookSink
from monitor.alerts.alerter import Alerter
from monitor.alerts.settings import AlertSettings
from monitor.store.alerts import RedisAlertLedger
from monitor.store.buckets import PartitionWrite, RecentPost, RedisAggregateStore
from tests.buckets import bucketed

from .pipeline_helpers import cli, write_config, write_jsonl

pytestmark = pytest.mark.integration


def _settings(sink: WebhookSink, monkeypatch, *, dests=("a",), **rule) -> AlertSettings:
    for d in dests:
        monkeypatch.setenv(f"TEST_HOOK_{d.upper()}", sink.url(f"/hook/{d}"))
    r = {
        "name": "neg",
        "metric": "negative_share",
        "above": 0.5,
        "window_min": 5,
        "min_posts": 10,
        "cooldown_s": 600,
        "sealed_only": False,
        **rule,
    }
    return AlertSettings(
        interval_s=1,
        rules=[r],
        destinations=[{"name": d, "kind": "slack", "url_env": f"TEST_HOOK_{d.upper()}"} for d in dests],
    )


def _seed(store: RedisAggregateStore, topic: str, neg: int, other: int) -> None:
    now = int(time.time() * 1000)
    m = now - now % 60_000
    store.apply(
        {
            topic: [
                PartitionWrite(
                    "p:0",
                    0,
                    0,
                    bucketed(
                        [
                            (
                                m,
                                {
                                    "n": neg + other,
                                    "s:negative": neg,
                                    "s:neutral": other,
                                    "score_sum": -0.8 * neg,
                                    "e:anger": neg,
                                    "e:neutral": other,
                                },
                            )
                        ]
                    ),
                )
            ]
        }
    )
    store.remember(
        [
            RecentPost(
                topic,
                f"{topic}-{i}",
                now,
                f"awful service, mail me at bob{i}@example.com or call +44 20 7946 0958 now",
                f"https://example.org/{i}",
                "negative",
            )
            for i in range(5)
        ]
    )


def test_end_to_end_alert_reaches_the_webhook(tmp_path, kafka_bootstrap, redis_url, unique, monkeypatch):
    posts = list(stream(160, id_prefix=unique))
    truth = Counter(p["topic"] for p in posts)
    for p in posts:
        p.pop("intended"), p.pop("topic")
    with WebhookSink() as sink:
        alerts = {
            "interval_s": 1,
            "rules": [
                {
                    "name": "busy",
                    "metric": "volume",
                    "above": 10,
                    "window_min": 10,
                    "min_posts": 0,
                    "topics": ["phonex"],
                    "sealed_only": False,
                }
            ],
            "destinations": [{"name": "slack", "url_env": "E2E_HOOK"}],
        }
        cfg = write_config(
            tmp_path, kafka_bootstrap, redis_url, unique, topics=demo_topics_config(), alerts=alerts
        )
        cli("replay", str(write_jsonl(tmp_path / "in.jsonl", posts, [b"{bad json"])), "--config", str(cfg))
        cli("worker", "--config", str(cfg), "--idle-timeout-s", "5")
        cli("alerts", "--config", str(cfg), "--max-ticks", "2", env={"E2E_HOOK": sink.url("/services/T/B/x")})
        assert len(sink.received) == 1
        body = sink.received[0].json()
    assert "phonex" in body["text"] and f"{truth['phonex']}" in body["text"]
    fields = [f["text"] for b in body["blocks"] if b["type"] == "section" for f in b.get("fields", [])]
    assert f"*Posts*\n{truth['phonex']} in the last 10 min" in fields
    assert "*Topic*\nphonex" in fields


def test_429_then_500_then_200_delivers_exactly_once(redis_url, unique, monkeypatch):
    store = RedisAggregateStore(redis_url, f"al-{unique}")
    _seed(store, "brand", neg=30, other=10)
    with WebhookSink(retry_after_s=1) as sink:
        sink.script["/hook/a"] = [429, 500, 200]
        a = Alerter(_settings(sink, monkeypatch), store, RedisAlertLedger(store))
        a.tick()
        a.drain(timeout_s=20)
        assert [s for _, s in sink.attempts] == [429, 500, 200]
        assert len(sink.received) == 1
        a.tick()  # still breaching, but in cooldown: nothing new
        a.drain(timeout_s=3)
    assert len(sink.received) == 1 and a.state.outbox() == []
    body = sink.received[0].json()
    text = str(body)
    assert "brand" in body["text"] and "75%" in body["text"]
    assert "@example.com" not in text and "7946" not in text and "[email]" in text and "[phone]" in text


def test_404_disables_one_destination_and_the_other_is_served(redis_url, unique, monkeypatch, caplog):
    store = RedisAggregateStore(redis_url, f"al-{unique}")
    _seed(store, "brand", neg=30, other=10)
    with WebhookSink() as sink:
        sink.script["/hook/gone"] = [404]
        a = Alerter(_settings(sink, monkeypatch, dests=("gone", "ok")), store, RedisAlertLedger(store))
        a.tick()
        a.drain(timeout_s=10)
    assert [r.path for r in sink.received] == ["/hook/ok"]
    assert "gone" in a.state.disabled()
    lines = [r.getMessage() for r in caplog.records if "disabled" in r.getMessage()]
    assert len(lines) == 1 and "/hook/gone" not in lines[0] and "127.0.0.1" not in lines[0]


def test_restarted_alerter_does_not_notify_twice(redis_url, unique, monkeypatch):
    store = RedisAggregateStore(redis_url, f"al-{unique}")
    _seed(store, "brand", neg=30, other=10)
    with WebhookSink() as sink:
        settings = _settings(sink, monkeypatch)
        first = Alerter(settings, store, RedisAlertLedger(store))
        first.tick()
        first.drain(timeout_s=5)
        first.state.release_lease(first.owner)  # as a clean stop does; a killed one's lease expires
        second = Alerter(settings, store, RedisAlertLedger(store))
        second.tick()
        second.drain(timeout_s=3)
    assert len(sink.received) == 1


def test_only_the_lease_holder_sends(redis_url, unique, monkeypatch):
    store = RedisAggregateStore(redis_url, f"al-{unique}")
    _seed(store, "brand", neg=30, other=10)
    with WebhookSink() as sink:
        settings = _settings(sink, monkeypatch)
        a, b = (Alerter(settings, store, RedisAlertLedger(store)) for _ in range(2))
        assert a.state.hold_lease(a.owner, 30)
        b.tick()
        assert b.stats["evaluations"] == 0
        a.tick()
        a.drain(timeout_s=5)
    assert len(sink.received) == 1
