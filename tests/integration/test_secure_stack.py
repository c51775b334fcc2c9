"""The pipeline through the secured stack (TLS + SCRAM Kafka, TLS-only Redis with one ACL user per
process), and the three ways a client gets it wrong: a wrong password, an unknown CA and a
plaintext client. Each of those fails at once with one line naming the setting, and never prints
the secret."""

from __future__ import annotations

import time
from collections import Counter

import orjson
import pytest

from devstack.synthetic import demo_topics_config, stream
from devstack.webhook_sink import WebhookSink
from monitor.app import build_store
from monitor.errors import ConfigError
from monitor.kafka import (
    KafkaPostProducer,
    RdBatchConsumer,
    RdPostProducer,
    batch_consumer,
    ensure_topics,
    post_producer,
    read_topic,
)
from monitor.settings import load_settings
from monitor.store.client import redis_client, store_error
from monitor.store.connectors import RedisConnectorState, read_statuses
from monitor.transport import KafkaSettings, RedisSettings

from .pipeline_helpers import cli, write_jsonl
from .secure_helpers import secure_config

pytestmark = pytest.mark.integration

WRONG = "s3cr3t-wrong-password-0451"


def _one_error_line(proc, *secrets: str) -> str:
    """The process failed with exactly one line on stderr, which holds none of ``secrets``."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    for s in secrets:
        assert s not in proc.stderr and s not in proc.stdout
    return lines[0]


@pytest.mark.parametrize("client", ["kafka-python", "librdkafka"])
def test_pipeline_end_to_end_through_tls_scram_and_acl_users(tmp_path, secure_stack, unique, client):
    st = secure_stack
    lib = {"MOOD_KAFKA__CLIENT": client}  # the connector's and the worker's producers and consumer
    posts = list(stream(160, id_prefix=unique))
    truth = Counter(p["topic"] for p in posts)
    for p in posts:
        p.pop("intended"), p.pop("topic")
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
        "destinations": [{"name": "slack", "url_env": "SECURE_E2E_HOOK"}],
    }
    topics = demo_topics_config()
    cfg = {
        role: secure_config(tmp_path, st, unique, role, topics=topics, alerts=alerts)
        for role in ("connector", "worker", "alerter", "reader")
    }
    # the source deletes five posts: the worker drops their texts and guard digests, which its
    # ACL user must allow
    gone = [p["id"] for p in posts[:5]]
    deletions = [
        {"kind": "delete", "id": pid, "source": p.get("source", "replay"), "deleted_ms": 1}
        for pid, p in zip(gone, posts, strict=False)
    ]
    with WebhookSink() as sink:
        out = cli(
            "replay",
            str(write_jsonl(tmp_path / "in.jsonl", posts + deletions, [b"{bad json"])),
            "--config",
            str(cfg["connector"]),
            env=lib,
        )
        # the bad line travels too: the worker parks it in the DLQ
        assert orjson.loads(out.stdout.splitlines()[-1])["produced"] == len(posts) + len(deletions) + 1
        cli("worker", "--config", str(cfg["worker"]), "--idle-timeout-s", "5", env=lib)
        cli(
            "alerts",
            "--config",
            str(cfg["alerter"]),
            "--max-ticks",
            "2",
            env={"SECURE_E2E_HOOK": sink.url("/services/T/B/x")},
        )
        assert len(sink.received) == 1
        body = sink.received[0].json()
    assert "phonex" in body["text"] and f"{truth['phonex']}" in body["text"]
    reader = build_store(load_settings(cfg["reader"]))
    sampled = {r["id"] for t in reader.topics() for r in reader.recent_posts(t, 0, 2**62, limit=1000)}
    assert sampled and not sampled & set(gone)
    # the read side as its own read-only user: figures and heartbeats
    mood = cli("mood", "phonex", "--json", "--config", str(cfg["reader"]))
    assert f'"posts":{truth["phonex"]}' in mood.stdout
    status = cli("status", "--config", str(cfg["reader"]))
    assert "worker-" in status.stdout and "alerter-" in status.stdout
    # the bad line went to the DLQ, read back over SASL_SSL
    s = load_settings(cfg["worker"])
    assert len(read_topic(s.kafka, s.kafka.dlq_topic, timeout_s=10)) == 1


def test_connector_state_as_the_connector_user_and_read_by_the_reader(secure_stack, unique):
    st = secure_stack
    state = RedisConnectorState(
        RedisSettings(**st.redis_section("connector")), "rss", prefix=f"{unique}:conn:"
    )
    state.commit(["a", "b"], cursor="42", meta={"etag": "x"})
    assert state.unseen(["a", "c"]) == {"c"} and state.cursor() == "42"
    assert state.claim("hook-1", 60) and not state.claim("hook-1", 60)
    state.report({"produced": 2})
    reader = RedisSettings(**st.redis_section("reader"))
    assert read_statuses(reader, prefix=f"{unique}:conn:")["rss"]["produced"] == "2"
    with pytest.raises(ConfigError, match=r"redis\.username: the ACL of user 'reader' denies"):
        RedisConnectorState(reader, "rss", prefix=f"{unique}:conn:").commit(["z"], cursor="43")


@pytest.mark.parametrize(
    ("role", "command", "args"),
    [
        ("worker", "get", ("{p}:{{alert}}:outbox",)),  # the worker cannot read the alerter's outbox
        ("worker", "flushall", ()),
        ("alerter", "hset", ("{p}:{{t:x}}:m:0", "n", "1")),  # the alerter only reads buckets
        ("connector", "hgetall", ("{p}:{{t:x}}:m:0",)),  # a connector sees only its own state
        ("reader", "set", ("{p}:sealed", "0")),  # the read side writes nothing
        ("reader", "config", ("get", "requirepass")),
        ("operator", "get", ("{p}:{{alert}}:lease",)),
    ],
)
def test_each_process_user_gets_only_its_keys_and_commands(secure_stack, unique, role, command, args):
    client = redis_client(RedisSettings(**secure_stack.redis_section(role)))
    with pytest.raises(Exception) as caught:  # noqa: PT011 - judged below by store_error
        client.execute_command(command.upper(), *(a.format(p=unique) for a in args))
    err = store_error(caught.value, client)
    assert isinstance(err, ConfigError) and err.field == "redis.username"
    assert f"user {role!r}" in str(err)


def test_scram_sha_256_and_the_mtls_listener_work_too(secure_stack, unique):
    for section in (
        secure_stack.kafka_section(sasl_mechanism="SCRAM-SHA-256"),
        secure_stack.kafka_mtls_section(),  # client certificate whose key is password-protected
    ):
        k = KafkaSettings(**section)
        ensure_topics(k, {unique: 1})
        p = KafkaPostProducer(k, unique)
        p.send(b"k", k.security_protocol.encode())
        p.flush()
        p.close()
    values = sorted(r.value for r in read_topic(KafkaSettings(**secure_stack.kafka_section()), unique))
    assert values == [b"SASL_SSL", b"SSL"]


def test_librdkafka_through_scram_512_scram_256_and_mtls(secure_stack, unique):
    """The same logins as kafka-python's, under librdkafka's configuration names: a record
    produced and read back by a group member through each listener and mechanism."""
    sections = {
        "scram-512": secure_stack.kafka_section(),
        "scram-256": secure_stack.kafka_section(sasl_mechanism="SCRAM-SHA-256"),
        "mtls": secure_stack.kafka_mtls_section(),  # client certificate with a password-protected key
    }
    for name, section in sections.items():
        k = KafkaSettings(**section, client="librdkafka")
        topic = f"{unique}-{name}"
        ensure_topics(k, {topic: 1})
        p = post_producer(k, topic)
        assert isinstance(p, RdPostProducer)
        p.send(b"k", name.encode())
        p.flush()
        p.close()
        c = batch_consumer(k, topic, f"{topic}-g")
        assert isinstance(c, RdBatchConsumer)
        try:
            got = []
            deadline = time.monotonic() + 30
            while not got and time.monotonic() < deadline:
                got = c.poll(200, 10)
            assert [(r.key, r.value) for r in got] == [(b"k", name.encode())]
            c.commit(got)
        finally:
            c.close()


# ---- the three failures: one line naming the setting, fast, the secret never printed -------------
def test_wrong_kafka_password_is_one_line_naming_the_setting(tmp_path, secure_stack, unique):
    cfg = secure_config(tmp_path, secure_stack, unique, "connector", topics=[])
    env = {"MOOD_KAFKA__SASL_PASSWORD_FILE": "", "MOOD_KAFKA__SASL_PASSWORD": WRONG}
    proc = cli(
        "replay",
        str(write_jsonl(tmp_path / "in.jsonl", [])),
        "--config",
        str(cfg),
        env=env,
        check=False,
        timeout=60,
    )
    line = _one_error_line(proc, WRONG, secure_stack.secret("kafka-mood"))
    assert line == (
        f"mood-monitor: config error: kafka {secure_stack.kafka_bootstrap}: kafka.sasl_password: "
        "rejected by the broker for user 'mood' (SCRAM-SHA-512 authentication failed)"
    )


def test_wrong_redis_password_is_one_line_naming_the_setting(tmp_path, secure_stack, unique):
    cfg = secure_config(tmp_path, secure_stack, unique, "reader", topics=[])
    env = {"MOOD_REDIS__PASSWORD_FILE": "", "MOOD_REDIS__PASSWORD": WRONG}
    proc = cli("status", "--config", str(cfg), env=env, check=False, timeout=60)
    line = _one_error_line(proc, WRONG, secure_stack.secret("redis-reader"))
    assert line == (
        f"mood-monitor: config error: redis 127.0.0.1:{secure_stack.redis_port}: redis.password: "
        "rejected by the server for user 'reader' (invalid username-password pair or user disabled)"
    )


def test_unknown_ca_is_one_line_naming_the_setting(tmp_path, secure_stack, unique):
    other = str(secure_stack.tls_dir / "other-ca.crt")
    cfg = secure_config(tmp_path, secure_stack, unique, "connector", topics=[], kafka={"ssl_cafile": other})
    proc = cli(
        "replay", str(write_jsonl(tmp_path / "in.jsonl", [])), "--config", str(cfg), check=False, timeout=60
    )
    line = _one_error_line(proc, secure_stack.secret("kafka-mood"))
    assert line.startswith(
        f"mood-monitor: config error: kafka {secure_stack.kafka_bootstrap}: kafka.ssl_cafile: "
        "the broker's certificate is not signed by this CA ("
    ), line
    cfg = secure_config(tmp_path, secure_stack, unique, "reader", topics=[], redis={"ssl_ca_certs": other})
    proc = cli("status", "--config", str(cfg), check=False, timeout=60)
    line = _one_error_line(proc, secure_stack.secret("redis-reader"))
    assert line.startswith(
        f"mood-monitor: config error: redis 127.0.0.1:{secure_stack.redis_port}: redis.ssl_ca_certs: "
        "the server's certificate is not signed by this CA ("
    ), line


def test_plaintext_client_at_the_tls_listener_is_one_line_naming_the_setting(tmp_path, secure_stack, unique):
    plain = {
        "security_protocol": "PLAINTEXT",
        "sasl_username": None,
        "sasl_password_file": None,
        "ssl_cafile": None,
    }
    cfg = secure_config(tmp_path, secure_stack, unique, "connector", topics=[], kafka=plain)
    proc = cli(
        "replay", str(write_jsonl(tmp_path / "in.jsonl", [])), "--config", str(cfg), check=False, timeout=60
    )
    line = _one_error_line(proc)
    assert line == (
        f"mood-monitor: config error: kafka {secure_stack.kafka_bootstrap}: kafka.security_protocol: "
        "PLAINTEXT, but the listener speaks TLS: use SSL or SASL_SSL"
    )
    redis_plain = {"url": f"redis://127.0.0.1:{secure_stack.redis_port}/0", "ssl_ca_certs": None}
    cfg = secure_config(tmp_path, secure_stack, unique, "reader", topics=[], redis=redis_plain)
    proc = cli("status", "--config", str(cfg), check=False, timeout=60)
    line = _one_error_line(proc, secure_stack.secret("redis-reader"))
    assert line == (
        f"mood-monitor: config error: redis 127.0.0.1:{secure_stack.redis_port}: redis.url: "
        "the server speaks TLS but the URL is redis://: use rediss://"
    )


def test_the_mtls_listener_without_a_client_certificate_names_the_setting(secure_stack, unique):
    k = KafkaSettings(
        **secure_stack.kafka_mtls_section(ssl_certfile=None, ssl_keyfile=None, ssl_password_file=None)
    )
    with pytest.raises(ConfigError, match=r"kafka\.ssl_certfile: the listener requires a client certificate"):
        ensure_topics(k, {unique: 1})
