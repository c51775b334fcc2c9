"""The Kafka and Redis security settings: checked at start-up with errors naming the setting,
turned into client arguments by one function each, and the per-process Redis ACL."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
import yaml

from devstack.stack.secure import make_pki
from monitor.errors import ConfigError
from monitor.kafka import client_kwargs, rd_config
from monitor.settings import load_settings
from monitor.store import alerts as alert_store
from monitor.store import buckets
from monitor.store.acl import ROLES, acl_file, password_hash, rules
from monitor.transport import KafkaSettings, RedisSettings


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    (d / "key.pw").write_text("s3cr3t-key-pw\n")
    make_pki(d / "tls", d / "key.pw")
    return d


def _load(tmp_path: Path, monkeypatch, kafka=None, redis=None, env=None) -> object:
    for k in [k for k in __import__("os").environ if k.startswith("MOOD_")]:
        monkeypatch.delenv(k)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(yaml.safe_dump({"kafka": kafka or {}, "redis": redis or {}}))
    return load_settings(cfg)


@pytest.mark.parametrize(
    ("kafka", "field", "reason"),
    [
        (
            {"security_protocol": "SASL_SSL"},
            "kafka.sasl_username",
            "required with security_protocol SASL_SSL",
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u"},
            "kafka.sasl_password",
            "required with security_protocol SASL_PLAINTEXT",
        ),
        (
            {"sasl_username": "u", "sasl_password": "p"},
            "kafka.security_protocol",
            "PLAINTEXT sends no SASL login",
        ),
        (
            {"ssl_cafile": "/etc/hostname"},
            "kafka.ssl_cafile",
            "set, but security_protocol PLAINTEXT does not use TLS",
        ),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"},
            "kafka.ssl_cafile",
            "cannot read",
        ),
        ({"security_protocol": "SSL", "ssl_cafile": "/etc/hostname"}, "kafka.ssl_cafile", "holds no PEM CA"),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_username": "u",
                "sasl_password": "p",
                "sasl_password_file": "/x",
            },
            "kafka.sasl_password",
            "not both",
        ),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "kafka.security_protocol", ""),
    ],
)
def test_kafka_security_errors_name_the_setting(tmp_path, monkeypatch, kafka, field, reason):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, monkeypatch, kafka=kafka)
    if kafka.get("sasl_mechanism") == "GSSAPI":
        assert e.value.field == "kafka.sasl_mechanism"
        return
    assert e.value.field == field and reason in e.value.reason


def test_the_password_comes_from_the_env_or_a_file_and_is_never_printed(tmp_path, monkeypatch):
    pw = tmp_path / "kafka.pw"
    pw.write_text("s3cr3t-from-file\n")
    s = _load(
        tmp_path,
        monkeypatch,
        kafka={"security_protocol": "SASL_SSL", "sasl_username": "mood"},
        env={"MOOD_KAFKA__SASL_PASSWORD_FILE": str(pw)},
    )
    assert s.kafka.sasl_secret().get_secret_value() == "s3cr3t-from-file"
    kw = client_kwargs(s.kafka)
    assert kw["sasl_plain_password"] == "s3cr3t-from-file" and kw["sasl_plain_username"] == "mood"
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert "s3cr3t" not in repr(s) and "s3cr3t" not in str(s.model_dump())
    s = _load(
        tmp_path,
        monkeypatch,
        kafka={"security_protocol": "SASL_SSL", "sasl_username": "mood"},
        env={"MOOD_KAFKA__SASL_PASSWORD": "s3cr3t-from-env"},
    )
    assert client_kwargs(s.kafka)["sasl_plain_password"] == "s3cr3t-from-env"
    empty = tmp_path / "empty.pw"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match=r"kafka\.sasl_password_file: .* is empty"):
        _load(
            tmp_path,
            monkeypatch,
            kafka={"security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password_file": str(empty)},
        )


def test_plaintext_kwargs_are_just_the_servers():
    assert client_kwargs("127.0.0.1:19092") == {"bootstrap_servers": "127.0.0.1:19092"}
    assert client_kwargs(KafkaSettings()) == {
        "bootstrap_servers": "127.0.0.1:19092",
        "security_protocol": "PLAINTEXT",
    }


def _mtls(pki: Path) -> dict[str, str]:
    """kafka settings for mutual TLS with the test PKI's client certificate and key password."""
    tls = pki / "tls"
    return {
        "security_protocol": "SSL",
        "ssl_cafile": str(tls / "ca.crt"),
        "ssl_certfile": str(tls / "client.crt"),
        "ssl_keyfile": str(tls / "client.key"),
        "ssl_password_file": str(pki / "key.pw"),
    }


def test_mtls_files_are_loaded_at_start_up_with_the_key_password(pki, tmp_path, monkeypatch):
    good = _mtls(pki)
    s = _load(tmp_path, monkeypatch, kafka=good)
    kw = client_kwargs(s.kafka)
    assert kw["ssl_password"] == "s3cr3t-key-pw" and kw["ssl_certfile"].endswith("client.crt")
    assert kw["ssl_check_hostname"] is True
    with pytest.raises(ConfigError) as e:
        _load(
            tmp_path, monkeypatch, kafka={**good, "ssl_password_file": None, "ssl_password": "s3cr3t-not-it"}
        )
    assert e.value.field == "kafka.ssl_keyfile" and "key password" in e.value.reason
    assert "s3cr3t" not in str(e.value)
    with pytest.raises(ConfigError, match=r"kafka\.ssl_certfile: ssl_keyfile is set without"):
        _load(tmp_path, monkeypatch, kafka={**good, "ssl_certfile": None})


def _rd(kafka: object) -> dict[str, object]:
    conf = rd_config(kafka)  # type: ignore[arg-type]
    assert conf.pop("logger") is not None and callable(conf.pop("error_cb"))
    return conf


def test_librdkafka_gets_every_security_setting_under_its_own_names(pki, tmp_path, monkeypatch):
    """kafka.client: librdkafka is configured from the same settings as kafka-python: a setting
    one library gets and the other does not would be a hole in one of them."""
    tls = pki / "tls"
    assert _rd("127.0.0.1:19092") == {"bootstrap.servers": "127.0.0.1:19092"}
    assert _rd(KafkaSettings()) == {"bootstrap.servers": "127.0.0.1:19092", "security.protocol": "plaintext"}
    mtls = _load(tmp_path, monkeypatch, kafka={**_mtls(pki), "ssl_check_hostname": False})
    assert _rd(mtls.kafka) == {
        "bootstrap.servers": "127.0.0.1:19092",
        "security.protocol": "ssl",
        "ssl.endpoint.identification.algorithm": "none",
        "ssl.ca.location": str(tls / "ca.crt"),
        "ssl.certificate.location": str(tls / "client.crt"),
        "ssl.key.location": str(tls / "client.key"),
        "ssl.key.password": "s3cr3t-key-pw",
    }
    (tmp_path / "pw").write_text("s3cr3t-login\n")
    sasl = _load(
        tmp_path,
        monkeypatch,
        kafka={
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_username": "mood",
            "sasl_password_file": str(tmp_path / "pw"),
        },
    )
    assert _rd(sasl.kafka) == {
        "bootstrap.servers": "127.0.0.1:19092",
        "security.protocol": "sasl_ssl",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": "probe",  # the system's CAs, as kafka-python's default context
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "mood",
        "sasl.password": "s3cr3t-login",
    }
    # every kafka-python security argument has its librdkafka counterpart
    kw = client_kwargs(mtls.kafka)
    names = {
        "bootstrap_servers": "bootstrap.servers",
        "security_protocol": "security.protocol",
        "ssl_check_hostname": "ssl.endpoint.identification.algorithm",
        "ssl_cafile": "ssl.ca.location",
        "ssl_certfile": "ssl.certificate.location",
        "ssl_keyfile": "ssl.key.location",
        "ssl_password": "ssl.key.password",
        "sasl_mechanism": "sasl.mechanism",
        "sasl_plain_username": "sasl.username",
        "sasl_plain_password": "sasl.password",
    }
    for conf, kwargs in ((_rd(mtls.kafka), kw), (_rd(sasl.kafka), client_kwargs(sasl.kafka))):
        mapped = {names[k] for k in kwargs}
        assert mapped <= set(conf)
        assert set(conf) - mapped <= {"ssl.ca.location"}  # "probe" where kafka-python uses its default


def test_redis_settings_tls_and_acl_user(pki, tmp_path, monkeypatch):
    tls = pki / "tls"
    s = _load(
        tmp_path,
        monkeypatch,
        redis={"url": "rediss://127.0.0.1:6380/0", "username": "worker", "ssl_ca_certs": str(tls / "ca.crt")},
        env={"MOOD_REDIS__PASSWORD": "s3cr3t-redis"},
    )
    assert s.redis.tls and s.redis.secret().get_secret_value() == "s3cr3t-redis"
    client = buckets.redis_client(s.redis)
    ckw = client.connection_pool.connection_kwargs
    assert ckw["username"] == "worker" and ckw["password"] == "s3cr3t-redis"
    assert ckw["ssl_ca_certs"] == str(tls / "ca.crt") and ckw["ssl_cert_reqs"] == "required"
    assert "SSL" in client.connection_pool.connection_class.__name__
    # the password may sit in the URL instead (but not in both places)
    assert RedisSettings(url="redis://:p%40ss@h:1/0").secret().get_secret_value() == "p@ss"
    for redis, field, reason in (
        ({"url": "redis://:pw@h:1/0", "password": "x"}, "redis.password", "give it in one place"),
        (
            {"url": "redis://h:1/0", "ssl_ca_certs": str(tls / "ca.crt")},
            "redis.ssl_ca_certs",
            "not rediss://",
        ),
        ({"url": "http://h:1/0"}, "redis.url", "is not redis://"),
        ({"url": "rediss://h:1/0", "ssl_ca_certs": "/nonexistent"}, "redis.ssl_ca_certs", "cannot read"),
    ):
        with pytest.raises(ConfigError) as e:
            _load(tmp_path, monkeypatch, redis=redis)
        assert e.value.field == field and reason in e.value.reason
        assert "pw" not in str(e.value)


# ---- the ACL ------------------------------------------------------------------------------------
def _lua_commands(text: str) -> set[str]:
    return {m.lower() for m in re.findall(r"redis\.p?call\(\s*'([A-Za-z]+)'", text)}


def _allowed(role: str) -> set[str]:
    return {t[1:] for t in rules("mm")[role].split() if t.startswith("+")}


def test_every_command_of_the_lua_scripts_is_allowed_to_its_role():
    lua = resources.files("monitor.store").joinpath("lua")
    worker = set().union(*(_lua_commands(f.read_text()) for f in lua.iterdir() if f.name.endswith(".lua")))
    assert worker and worker <= _allowed("worker"), worker - _allowed("worker")
    # scripts kept as strings: the aggregate store's are the worker's, the ledger's the alerter's
    worker_inline = _lua_commands(" ".join(v for v in vars(buckets).values() if isinstance(v, str)))
    assert worker_inline <= _allowed("worker"), worker_inline - _allowed("worker")
    strings = [v for v in vars(alert_store).values() if isinstance(v, str)]
    inline = _lua_commands(" ".join(strings) + buckets.RedisAlertState._RENEW)
    assert inline and inline <= _allowed("alerter"), inline - _allowed("alerter")


def test_the_acl_is_least_privilege():
    r = rules("mm")
    assert set(r) == set(ROLES)
    for role, body in r.items():
        tokens = body.split()
        assert "-@all" in tokens and "resetkeys" in tokens, role
        assert not any(t.startswith("+@") for t in tokens), f"{role}: a whole category"
        assert not {"flushall", "flushdb", "config", "keys", "eval", "script", "debug", "acl"} & _allowed(
            role
        ), role
        patterns = [t for t in tokens if "~" in t]
        assert patterns and all(t.split("~", 1)[1].startswith("mm:") for t in patterns), role
    # read-only where only read: the reader everywhere, the alerter on buckets
    assert all(t.startswith("%R~") for t in r["reader"].split() if "~" in t)
    assert "%R~mm:{t:*}:m:*" in r["alerter"] and "~mm:{t:*}:m:*" not in r["alerter"].replace("%R~", "")
    # the connector writes its own state only; it may read the topic registry (--only-matching)
    conn = [t for t in r["connector"].split() if "~" in t]
    assert sorted(conn) == ["%R~mm:{topics}:*", "~mm:conn:*"]


def test_the_acl_file_holds_hashes_not_passwords():
    text = acl_file("mm", {"worker": "s3cr3t-w", "reader": "s3cr3t-r"})
    assert "s3cr3t" not in text
    assert text.splitlines()[0] == "user default off"
    assert f"user worker on {password_hash('s3cr3t-w')} " in text
    assert len(text.splitlines()) == 3


def test_docs_show_the_acl_as_the_code_renders_it():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    for role, body in rules("mm").items():
        assert f"user {role} on #<sha256 of its password> {body}" in doc, (
            f"docs/security.md shows an old ACL of {role!r}: paste the output of "
            'python -c "from monitor.store.acl import rules; '
            "[print(f'user {k} on #<sha256 of its password> {v}') for k, v in rules('mm').items()]\""
        )
