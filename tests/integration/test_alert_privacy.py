"""What a Slack alert shows of the posts it quotes, as the local HTTP server standing in for
Slack receives it from a real alerter over the real local Redis: no unfurling, a post's own
links as text, only a platform permalink linked, no bidi override, no address or card number,
no @handle among the terms that moved."""

from __future__ import annotations

import time

import pytest

from devstack.webhook_sink import WebhookSink
from monitor.alerts.alerter import Alerter
from monitor.alerts.settings import AlertSettings
from monitor.store.alerts import RedisAlertLedger
from monitor.store.buckets import PartitionWrite, RecentPost, RedisAggregateStore
from tests.buckets import bucketed

pytestmark = pytest.mark.integration

HOSTILE = (
    "refund at https://evil.example/login or www.evil.example, cc @jane_doe \u202egnp.exe "
    "mail jane.doe@example.com card 4111 1111 1111 1111 <https://evil.example|bsky.app>"
)


def _seed(store: RedisAggregateStore, topic: str) -> None:
    now = int(time.time() * 1000)
    m = now - now % 60_000
    delta = {"n": 40, "s:negative": 30, "s:neutral": 10, "score_sum": -24.0, "e:anger": 30, "e:neutral": 10}
    store.apply({topic: [PartitionWrite("p:0", 0, 0, bucketed([(m, delta)]))]})
    urls = [
        "https://bsky.app/profile/x/post/1",
        "https://evil.example/p/2",
        "https://social.example/@a/3",  # linked: a host of alerts.link_hosts
    ]
    store.remember([RecentPost(topic, f"{topic}-{i}", now, HOSTILE, urls[i], "negative") for i in range(3)])


def test_the_slack_body_quotes_posts_without_links_spoofing_or_personal_data(redis_url, unique, monkeypatch):
    store = RedisAggregateStore(redis_url, f"ap-{unique}")
    _seed(store, "brand")
    with WebhookSink() as sink:
        monkeypatch.setenv("TEST_HOOK_PRIV", sink.url("/hook/priv"))
        settings = AlertSettings(
            interval_s=1,
            rules=[
                {
                    "name": "neg",
                    "metric": "negative_share",
                    "above": 0.5,
                    "window_min": 5,
                    "min_posts": 10,
                    "sealed_only": False,
                }
            ],
            destinations=[{"name": "priv", "kind": "slack", "url_env": "TEST_HOOK_PRIV"}],
            link_hosts=["bsky.app", "social.example"],  # a Mastodon instance's permalinks too
        )
        a = Alerter(settings, store, RedisAlertLedger(store))
        a.tick()
        a.drain(timeout_s=10)
    assert len(sink.received) == 1
    raw = sink.received[0].body.decode()
    body = sink.received[0].json()
    assert body["unfurl_links"] is False and body["unfurl_media"] is False
    posts = next(
        b["text"]["text"] for b in body["blocks"] if "Representative" in b.get("text", {}).get("text", "")
    )
    assert posts.count("\n•") == 3
    assert "hxxps://evil[.]example/login" in posts and "www[.]evil[.]example" in posts
    assert "<https://bsky.app/profile/x/post/1|bsky.app>" in posts  # the platform's permalink, linked
    assert "<https://social.example/@a/3|social.example>" in posts
    assert "<https://evil" not in raw  # nothing else is
    assert "(evil[.]example, not linked)" in posts
    for gone in ("\u202e", "\\u202e", "jane.doe", "@example.com", "4111"):
        assert gone not in raw, gone
    assert "[email]" in posts and "[card]" in posts
    terms = next(f["text"] for b in body["blocks"] for f in b.get("fields", []) if "Terms" in f["text"])
    assert "card" in terms and "jane" not in terms  # a quote may name an account, the terms never do
