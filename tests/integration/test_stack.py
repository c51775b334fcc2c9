"""The local stack itself: both servers answer, a record survives a broker restart."""

from __future__ import annotations

import socket

import pytest

from devstack.stack import LocalStack, cli, redis_ping
from monitor.kafka import KafkaPostProducer, ensure_topics, read_topic

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_status_reports_both_up(stack, capsys):
    assert cli(["status"]) == 0
    out = capsys.readouterr().out
    assert "kafka 127.0.0.1:" in out and ": up" in out and "DOWN" not in out


def test_produce_and_consume_through_the_real_broker(kafka_bootstrap, unique):
    ensure_topics(kafka_bootstrap, {unique: 1})
    p = KafkaPostProducer(kafka_bootstrap, unique)
    p.send(b"k", b"hello")
    p.flush()
    p.close()
    recs = read_topic(kafka_bootstrap, unique)
    assert [(r.key, r.value) for r in recs] == [(b"k", b"hello")]


def test_private_stack_keeps_a_record_across_a_broker_restart(tmp_path):
    st = LocalStack(
        dir=tmp_path / "stack", kafka_port=_free_port(), controller_port=_free_port(), redis_port=_free_port()
    )
    try:
        st.up()
        assert redis_ping(st.redis_port)
        ensure_topics(st.kafka_bootstrap, {"keep": 1})
        p = KafkaPostProducer(st.kafka_bootstrap, "keep")
        p.send(b"k", b"survives")
        p.flush()
        p.close()
        st.stop_kafka()
        assert not st.kafka_ready()
        st.start_kafka()
        assert [r.value for r in read_topic(st.kafka_bootstrap, "keep", timeout_s=15)] == [b"survives"]
    finally:
        st.down()
    assert st.status() == {"kafka": False, "redis": False}
