"""Bluesky Jetstream connector against a loopback fake server replaying recorded events, producing
to the real local Kafka with its cursor and dedup state in the real local Redis."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from connectors.backoff import Backoff
from connectors.bluesky import JetstreamConnector
from monitor.kafka import KafkaPostProducer, ensure_topics, read_topic
from monitor.store.connectors import RedisConnectorState, read_statuses
from tests.recorded import jsonl_lines

from .fake_jetstream import FakeJetstream, JetstreamScript

pytestmark = pytest.mark.integration

EVENTS = jsonl_lines("jetstream/expected_v1.jsonl")
BAD = {2: "{not json", 4: b"\x00\x01binary", 6: '{"kind":"commit","did":"did:plc:x"}'}


def _run(kafka_bootstrap, redis_url, unique, url, **kw):
    state = RedisConnectorState(redis_url, "bluesky", prefix=f"t-{unique}:conn:")
    conn = JetstreamConnector(
        KafkaPostProducer(kafka_bootstrap, f"{unique}.raw"),
        state,
        url=url,
        rewind_s=0.05,
        batch_wait_s=0.1,
        backoff=Backoff(0.05, 0.5),
    )
    conn.run(idle_timeout_s=kw.get("idle_timeout_s", 3.0))
    return conn, state


def _produced(kafka_bootstrap, unique):
    recs = read_topic(kafka_bootstrap, f"{unique}.raw", timeout_s=10)
    return [orjson.loads(r.value) for r in recs], Counter(r.key for r in recs)


def test_drop_503_and_bad_frames_lose_nothing_and_duplicate_nothing(kafka_bootstrap, redis_url, unique):
    ensure_topics(kafka_bootstrap, {f"{unique}.raw": 2})
    script = JetstreamScript(EVENTS, reject_first=1, retry_after="1", drop_after=[8], bad_frames=BAD)
    with FakeJetstream(script) as fake:
        conn, state = _run(kafka_bootstrap, redis_url, unique, fake.url)
    values, keys = _produced(kafka_bootstrap, unique)
    posts = [v for v in values if v["kind"] == "post"]
    dels = [v for v in values if v["kind"] == "delete"]
    # 17 post creates (one link-only, skipped and counted) + 1 delete, each exactly once
    assert len(posts) == 16 and len(dels) == 1
    assert max(keys.values()) == 1
    assert conn.stats.skipped == {"no_text": 1}
    # the three malformed frames were counted by reason and skipped
    assert conn.stats.bad == 3
    assert set(conn.stats.by_reason) == {"malformed_json", "binary_frame", "bad_event.time_us"}
    # one handshake refused with 503, then a drop after 8 frames: the reconnect resumed from the
    # largest time_us seen minus the 50 ms rewind, and the dedup dropped the overlap
    assert fake.handshakes == 3 and len(fake.cursors) == 2 and fake.cursors[0] is None
    assert fake.cursors[1] is not None and conn.duplicates > 0
    st = read_statuses(redis_url, prefix=f"t-{unique}:conn:")["bluesky"]
    assert st["produced"] == "16" and st["deletions"] == "1" and st["bad"] == "3"
    assert int(st["errors"]) == 2 and st["connected"] == "0" and int(st["last_event_ms"]) > 0
    assert int(state.cursor()) == max(
        orjson.loads(e)["time_us"]
        for e in EVENTS
        if orjson.loads(e)["kind"] != "commit"
        or orjson.loads(e)["commit"]["collection"] == "app.bsky.feed.post"
    )


def test_restart_resumes_from_the_stored_cursor_without_duplicates(kafka_bootstrap, redis_url, unique):
    ensure_topics(kafka_bootstrap, {f"{unique}.raw": 1})
    with FakeJetstream(JetstreamScript(EVENTS)) as fake:
        _run(kafka_bootstrap, redis_url, unique, fake.url, idle_timeout_s=1.5)
        first, _ = _produced(kafka_bootstrap, unique)
        conn2, _ = _run(kafka_bootstrap, redis_url, unique, fake.url, idle_timeout_s=1.5)
    assert fake.cursors[0] is None and fake.cursors[1] is not None  # the restart asked for a cursor
    values, keys = _produced(kafka_bootstrap, unique)
    assert len(first) == 17 and len(values) == 17 and max(keys.values()) == 1
    assert conn2.stats.produced == 0 and conn2.duplicates > 0


def _poison(time_us: int, rkey: str, record: dict) -> str:
    return orjson.dumps(
        {
            "did": "did:plc:poison",
            "time_us": time_us,
            "kind": "commit",
            "commit": {
                "operation": "create",
                "collection": "app.bsky.feed.post",
                "rkey": rkey,
                "record": record,
            },
        }
    ).decode()


def test_poison_records_are_skipped_and_a_restart_does_not_crash_on_them(
    kafka_bootstrap, redis_url, unique, caplog
):
    """F3: a record with ``tags``/``facets`` that are not lists crashed the connector, and every
    restart rewound to it again. Now it is taken (the odd fields ignored), records that cannot be
    posts are counted, nothing is logged of their text, and a restart finishes as well."""
    ensure_topics(kafka_bootstrap, {f"{unique}.raw": 1})
    top = max(orjson.loads(e)["time_us"] for e in EVENTS)
    poison = [
        _poison(top + 1, "p1", {"text": "secret words one", "tags": 5, "facets": "x", "langs": 7}),
        _poison(top + 2, "p2", {"text": ["secret words two"]}),
        _poison(top + 3, "p3", {"text": "secret words three", "facets": [{"features": 9}, 5]}),
    ]
    with FakeJetstream(JetstreamScript([*EVENTS, *poison])) as fake:
        conn, state = _run(kafka_bootstrap, redis_url, unique, fake.url, idle_timeout_s=1.5)
        conn2, _ = _run(kafka_bootstrap, redis_url, unique, fake.url, idle_timeout_s=1.5)
    values, keys = _produced(kafka_bootstrap, unique)
    ids = {v["id"].rsplit("/", 1)[1] for v in values}
    assert {"p1", "p3"} <= ids and "p2" not in ids and max(keys.values()) == 1
    assert conn.stats.by_reason == {"bad_record.text": 1}
    assert int(state.cursor()) == top + 3  # past the last (bad) record
    assert conn2.stats.produced == 0 and conn2.duplicates > 0  # the restart re-read the rewind only
    assert "secret words" not in caplog.text
