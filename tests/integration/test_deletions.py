"""A source deletes a post: the worker drops every stored trace of it (the sampled text used
for alert examples, its id, its duplicate-guard digest, its quotes in waiting alerts); the
figures stay counts. Real Kafka, real Redis, a real worker process."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from monitor.kafka import read_topic
from monitor.messages import Deletion, encode_deletion
from monitor.settings import load_settings
from monitor.store.buckets import RedisAggregateStore

from . import faults as F

pytestmark = pytest.mark.integration


def test_deleted_posts_lose_their_text_but_stay_counted(tmp_path, kafka_bootstrap, redis_url, unique):
    import yaml

    cfg = F.config(tmp_path, kafka_bootstrap, redis_url, unique)
    raw = yaml.safe_load(cfg.read_text())
    raw["redis"]["texts_per_minute"] = 50  # every post of the minute joins the sample
    cfg.write_text(yaml.safe_dump(raw))
    s = load_settings(cfg)
    store = RedisAggregateStore(redis_url, s.redis.prefix)
    posts = F.good_posts(40, unique)
    gone = [p["id"] for p in posts[:10]]
    now = int(time.time() * 1000)
    deletions = [
        (pid.encode(), encode_deletion(Deletion(id=pid, source="fault", deleted_ms=now))) for pid in gone
    ]
    F.produce(kafka_bootstrap, f"{unique}.raw", posts, deletions)
    assert F.worker(cfg, tmp_path / "w.log", "--idle-timeout-s", "4").wait(timeout=240) == 0

    assert sum(F.multiplicity(store).values()) == len(posts)  # counts are kept
    kept = {
        r["id"] for t in store.topics() for r in store.recent_posts(t, now - 3_600_000, now + 3_600_000, 100)
    }
    assert kept == {p["id"] for p in posts[10:]}, "deleted posts must not be offered as examples"
    samples = list(store.client.scan_iter(f"{s.redis.prefix}:{{t:*}}:x:*"))
    in_sample = {pid for k in samples for pid in store.client.hkeys(k)}
    assert in_sample == {p["id"] for p in posts[10:]}  # the deleted texts are gone from Redis
    # and Kafka's posts.scored (kept for rebuilds) never carried the texts in the first place
    scored = read_topic(kafka_bootstrap, f"{unique}.scored", timeout_s=10)
    assert len(scored) == len(posts)
    assert not any(b"and nothing else" in r.value for r in scored)


def _everything(client: Any, prefix: str) -> bytes:
    """Every key under ``prefix`` and every value in it, as bytes, whatever its type."""
    out = []
    for key in client.scan_iter(match=f"{prefix}*".encode(), count=1000):
        kind = client.type(key).decode()
        out.append(key)
        if kind == "string":
            out.append(client.get(key) or b"")
        elif kind == "hash":
            out += [x for kv in client.hgetall(key).items() for x in kv]
        elif kind == "zset":
            out += [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "list":
            out += client.lrange(key, 0, -1)
        elif kind == "set":
            out += list(client.smembers(key))
        elif kind == "stream":
            out += [x for _, fields in client.xrange(key) for kv in fields.items() for x in kv]
    return b"\n".join(out)


def test_a_deletion_leaves_no_trace_of_the_post_in_redis(
    tmp_path, kafka_bootstrap, redis_url, unique, monkeypatch
):
    """Posts (with an address, a card number, an author and a link) go through a real worker; an
    alert quoting some of them waits in the outbox (its destination is down); then the source
    deletes half of them. After the worker's batch and the alerter's next delivery attempt no key
    or value under the run's prefix holds a deleted post's id, text, author or duplicate-guard
    digest, the waiting alert no longer quotes any post, and no stored text anywhere holds an
    address or a card number."""
    import redis
    import yaml
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    from monitor.alerts.alerter import Alerter
    from monitor.alerts.message import AlertEvent
    from monitor.alerts.settings import AlertSettings, DestinationSettings
    from monitor.store import keys
    from monitor.store.alerts import RedisAlertLedger
    from monitor.store.buckets import id_digest

    cfg = F.config(tmp_path, kafka_bootstrap, redis_url, unique, partitions=2)
    raw_cfg = yaml.safe_load(cfg.read_text())
    raw_cfg["redis"]["texts_per_minute"] = 50  # every post of the minute joins the sample
    cfg.write_text(yaml.safe_dump(raw_cfg))
    s = load_settings(cfg)
    prefix = s.redis.prefix
    store = RedisAggregateStore(redis_url, prefix)
    now = int(time.time() * 1000)

    def marker(i: int) -> str:
        return f"{unique}m{i}x"

    def author(i: int) -> str:
        return f"did:plc:{unique}a{i}x"

    posts = [
        {
            "v": 1,
            "kind": "post",
            "id": f"{unique}-p{i:02d}",
            "source": "fault",
            "text": f"{marker(i)} about kw{i % 4}: mail {unique}{i}@example.com or pay 4111 1111 1111 1111",
            "lang": "en",
            "created_ms": now,
            "ingested_ms": now,
            "author_id": author(i),
            "url": f"https://bsky.app/profile/{author(i)}/post/{i}",
        }
        for i in range(12)
    ]
    F.produce(kafka_bootstrap, f"{unique}.raw", posts)
    assert F.worker(cfg, tmp_path / "w1.log", "--idle-timeout-s", "4").wait(timeout=240) == 0

    # an alert on f0 (posts 0, 4, 8) waits in the outbox (nothing listens on the destination's
    # port: every attempt fails and is retried), quoting them
    examples = store.recent_posts("f0", now - 3_600_000, now + 3_600_000, 50)
    assert {e["id"] for e in examples} == {f"{unique}-p{i:02d}" for i in (0, 4, 8)}
    monkeypatch.setenv("S4_DOWN_URL", "http://127.0.0.1:9/hook")
    dests = [
        DestinationSettings(name="ops", kind="slack", url_env="S4_DOWN_URL"),
        DestinationSettings(name="hook", kind="webhook", url_env="S4_DOWN_URL"),
    ]
    ledger = RedisAlertLedger(store)
    alerter = Alerter(AlertSettings(destinations=dests), store, ledger, owner=f"{unique}-alerter")
    ev = AlertEvent(
        topic="f0",
        rule="neg",
        kind="share_shift",
        metric="negative_share",
        action="fire",
        severity="warning",
        value=0.5,
        baseline=0.1,
        posts=3,
        window_min=15,
        window_end_ms=now,
        episode_started_ms=now,
        examples=examples,
    )
    assert ledger.hold_lease(alerter.owner, 60)
    assert ledger.commit(alerter.owner, "f0", "neg", {}, ev.fingerprint, alerter._entries(ev)) == 1
    rc = redis.Redis.from_url(redis_url)
    before = _everything(rc, prefix)
    assert marker(0).encode() in b"".join(rc.lrange(keys.alert_outbox(prefix), 0, -1))  # the test can fail
    assert all(marker(i).encode() in before for i in range(12))

    gone = list(range(6))
    deletions = [
        (p["id"].encode(), encode_deletion(Deletion(id=p["id"], source="fault", deleted_ms=now)))
        for p in posts[:6]
    ]
    F.produce(kafka_bootstrap, f"{unique}.raw", [], deletions)
    assert F.worker(cfg, tmp_path / "w2.log", "--idle-timeout-s", "4").wait(timeout=240) == 0
    alerter.dispatcher.deliver()  # the next attempt: the quotes of deleted posts go first

    after = _everything(rc, prefix)
    for i in gone:
        for trace in (posts[i]["id"], marker(i), author(i)):
            assert trace.encode() not in after, f"{trace} still in Redis"
        assert id_digest(posts[i]["id"]) not in after  # the duplicate-id guard forgot it too
    for i in range(6, 12):  # the others are still there (the search above can find things)
        assert marker(i).encode() in after and id_digest(posts[i]["id"]) in after
    for secret in (b"@example.com", b"4111 1111"):
        assert secret not in after  # redacted before it was stored
    outbox = [orjson.loads(v) for v in rc.lrange(keys.alert_outbox(prefix), 0, -1)]
    assert len(outbox) == 2 and all("quotes" not in e and "bare" not in e for e in outbox)
    assert all(e["fingerprint"] == ev.fingerprint and e["attempts"] == 1 for e in outbox)  # retried, bare

    # posts.scored: the author only as a pseudonym, no text, no link; retention set on the topics
    scored = read_topic(kafka_bootstrap, f"{unique}.scored", timeout_s=10)
    assert len(scored) == len(posts)
    for r in scored:
        post = orjson.loads(r.value)["post"]
        assert post["author_id"].startswith("h:") and post["text"] == "" and post["url"] == ""
        assert unique + "a" not in r.value.decode()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id=f"{unique}-check")
    try:
        names = [f"{unique}.raw", f"{unique}.dlq", f"{unique}.scored"]
        got = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    finally:
        admin.close()
    retention = {n: got["topic"][n]["retention.ms"]["value"] for n in names}
    assert retention == {
        f"{unique}.raw": str(s.privacy.raw_retention_ms),
        f"{unique}.dlq": str(s.privacy.dlq_retention_ms),
        f"{unique}.scored": str(s.kafka.scored_retention_ms),
    }
    # segments of a quarter of the retention: whole posts never outlive it by a broker default
    assert got["topic"][f"{unique}.raw"]["segment.ms"]["value"] == str(s.privacy.raw_retention_ms // 4)
