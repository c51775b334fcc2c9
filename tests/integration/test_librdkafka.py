"""The librdkafka (confluent-kafka) producer and batch consumer on the real broker: the same
contract as kafka-python's (`monitor.kafka`): keys, values, headers and offsets come back, only
committed positions are resumed from, a seek asked for while partitions are assigned is where
reading starts, two members split the partitions and hear of a rebalance."""

from __future__ import annotations

import time

import pytest

from monitor.kafka import RdBatchConsumer, RdPostProducer, ensure_topics, read_topic

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, n: int) -> None:
    """``n`` records (values "0", "1", ...) on ``topic``, flushed."""
    p = RdPostProducer(bootstrap, topic)
    for i in range(n):
        p.send(None, str(i).encode())
    p.flush()
    p.close()


def _drain(consumer, want: int, timeout_s: float = 30.0):
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        got += consumer.poll(200, 64)
    return got


def test_records_round_trip_with_keys_headers_and_offsets(kafka_bootstrap, unique):
    ensure_topics(kafka_bootstrap, {unique: 2})
    p = RdPostProducer(kafka_bootstrap, unique)
    sent = [p.send(f"k{i}".encode(), f"v{i}".encode()) for i in range(50)]
    tagged = p.send(b"h", b"with headers", headers=[("reason", b"decode:text")])
    p.flush()
    where = [s.where() for s in sent]
    assert all(part in (0, 1) and off >= 0 for part, off in where)
    assert len(set(where)) == 50
    p.close()
    back = read_topic(kafka_bootstrap, unique)  # kafka-python reads what librdkafka wrote
    assert sorted(r.value for r in back) == sorted([f"v{i}".encode() for i in range(50)] + [b"with headers"])
    assert tagged.where()[1] >= 0

    c = RdBatchConsumer(kafka_bootstrap, unique, f"{unique}-g", max_batch=16)
    try:
        got = _drain(c, 51)
        assert sorted((r.key, r.value) for r in got) == sorted(
            [(f"k{i}".encode(), f"v{i}".encode()) for i in range(50)] + [(b"h", b"with headers")]
        )
        assert {(r.partition, r.offset) for r in got if r.key != b"h"} == set(where)
        assert all(r.timestamp_ms > 0 for r in got)
        assert set(c.assignment()) == {(unique, 0), (unique, 1)}
        assert c.poll(0, 16) == []  # nothing left: an empty poll is a list, not an error
        hw = c.highwaters()
        assert sum(hw.values()) == 51
    finally:
        c.close()


def test_only_committed_positions_are_resumed(kafka_bootstrap, unique):
    ensure_topics(kafka_bootstrap, {unique: 1})
    _produce(kafka_bootstrap, unique, 30)
    c = RdBatchConsumer(kafka_bootstrap, unique, f"{unique}-g", max_batch=10)
    got = _drain(c, 30)
    c.commit([r for r in got if r.offset < 12])  # the caller wrote only the first 12
    c.close()
    c2 = RdBatchConsumer(kafka_bootstrap, unique, f"{unique}-g", max_batch=10)
    try:
        again = _drain(c2, 18)
        assert [r.offset for r in again] == list(range(12, 30))
    finally:
        c2.close()


def test_a_seek_while_assigning_is_where_reading_starts(kafka_bootstrap, unique):
    # the worker resumes from the watermarks Redis holds (issue 19): it seeks inside on_assigned
    ensure_topics(kafka_bootstrap, {unique: 1})
    _produce(kafka_bootstrap, unique, 20)
    seen: list[list[tuple[str, int]]] = []
    c: RdBatchConsumer | None = None

    def assigned(parts):
        seen.append(parts)
        for t, part in parts:
            assert c is not None
            c.seek(t, part, 15)

    c = RdBatchConsumer(kafka_bootstrap, unique, f"{unique}-g", on_assigned=assigned)
    try:
        got = _drain(c, 5)
        assert [r.offset for r in got] == [15, 16, 17, 18, 19]
        assert seen == [[(unique, 0)]]
        c.seek(unique, 0, 3)  # outside the callback: a plain seek of an assigned partition
        assert [r.offset for r in _drain(c, 17)] == list(range(3, 20))
    finally:
        c.close()


def test_two_members_split_the_partitions_and_hear_the_rebalance(kafka_bootstrap, unique):
    ensure_topics(kafka_bootstrap, {unique: 4})
    revoked: list[list[tuple[str, int]]] = []
    a = RdBatchConsumer(
        kafka_bootstrap, unique, f"{unique}-g", on_revoked=revoked.append, session_timeout_ms=6000
    )
    b = None
    try:
        deadline = time.monotonic() + 30
        while len(a.assignment()) < 4 and time.monotonic() < deadline:
            a.poll(100, 16)
        assert len(a.assignment()) == 4
        b = RdBatchConsumer(kafka_bootstrap, unique, f"{unique}-g", session_timeout_ms=6000)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            a.assignment() and b.assignment() and len(a.assignment()) < 4
        ):
            a.poll(100, 16)
            b.poll(100, 16)
        assert a.assignment() and b.assignment()
        assert sorted(a.assignment() + b.assignment()) == [(unique, i) for i in range(4)]
        assert revoked and sorted(revoked[0]) == [(unique, i) for i in range(4)]
    finally:
        a.close()
        if b is not None:
            b.close()
