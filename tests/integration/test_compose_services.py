"""The Kafka and Redis of docker-compose.yml, run for real without a Docker engine.

redis-server runs the compose service's own command line (its ACL file made by
scripts/compose_secrets.py), and Apache Kafka 4.1.1 (the jars of the local stack, the image's
version) runs the properties the apache/kafka image renders from the compose service's
KAFKA_* environment (KAFKA_FOO_BAR -> foo.bar), with its JAAS file; only ports, addresses and
data directories are moved to loopback and temporary places. The mood-monitor clients then log
in with the settings each compose service gets (its MOOD_* environment, its secret files).
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RAW = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
# the apache/kafka image's render-properties excludes these (they are JVM options, not properties)
_NOT_PROPERTIES = {"KAFKA_VERSION", "KAFKA_HEAP_OPT", "KAFKA_LOG4J_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS",
                   "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_LOG4J_ROOT_LOGLEVEL",
                   "KAFKA_LOG4J_LOGGERS", "KAFKA_TOOLS_LOG4J_LOGLEVEL"}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _default(value: object) -> str:
    """`${NAME:-default}` as compose reads it when NAME is not set."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))


def _service_env(name: str) -> dict[str, str]:
    svc = RAW["services"][name]
    env = svc.get("environment") or RAW["x-app"]["environment"]
    flat: dict[str, str] = {}
    for key, value in env.items():
        if key == "<<":
            for k, v in value.items():
                if k != "<<":
                    flat[k] = _default(v)
                else:
                    flat.update({kk: _default(vv) for kk, vv in v.items()})
        else:
            flat[key] = _default(value)
    return flat


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = importlib.util.spec_from_file_location("compose_secrets", ROOT / "scripts" / "compose_secrets.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    d = tmp_path_factory.mktemp("compose") / "secrets"
    mod.make(d, "mm")
    return d


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def compose_redis(secrets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    from devstack.stack import ensure_redis

    port, data = _free_port(), tmp_path_factory.mktemp("redis-data")
    cmd = [c.replace("/run/secrets/", f"{secrets_dir}/") for c in RAW["services"]["redis"]["command"]]
    assert cmd[0] == "redis-server"
    # what the image's /data and the compose network give, on loopback; later options win
    cmd = [
        ensure_redis(),
        *cmd[1:],
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data),
        "--save",
        "",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, "redis-server refused the compose command line"
            time.sleep(0.1)
    yield port
    _stop(proc)


def _kafka_properties(ports: dict[str, int], data: Path) -> str:
    env = {k: _default(v) for k, v in RAW["services"]["kafka"]["environment"].items()}
    lines = []
    for key, value in sorted(env.items()):
        if not key.startswith("KAFKA_") or key in _NOT_PROPERTIES:
            continue
        name = key[len("KAFKA_") :].lower().replace("___", "-").replace("__", "\0").replace("_", ".")
        value = str(value)
        for listener, port in ports.items():
            value = re.sub(rf"{listener}://[^:,]*:\d+", f"{listener}://127.0.0.1:{port}", value)
        if name == "controller.quorum.voters":
            value = re.sub(r":\d+$", f":{ports['CONTROLLER']}", value)
        if name == "log.dirs":
            value = str(data)
        lines.append(f"{name.replace(chr(0), '_')}={value}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def compose_kafka(secrets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    from devstack.stack import ensure_jars

    work = tmp_path_factory.mktemp("kafka")
    ports = {"INTERNAL": _free_port(), "LOCAL": _free_port(), "CONTROLLER": _free_port()}
    props = work / "server.properties"
    props.write_text(_kafka_properties(ports, work / "data"))
    opts = RAW["services"]["kafka"]["environment"]["KAFKA_OPTS"].replace("/run/secrets/", f"{secrets_dir}/")
    log4j = work / "log4j2.properties"
    shutil.copy(ROOT / "devstack" / "stack" / "log4j2.properties", log4j)
    java = [
        "java",
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={work}",
        "-cp",
        f"{ensure_jars()}/*",
    ]
    cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    fmt = subprocess.run(
        [*java, "-Xmx256m", "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(props)],
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    with (work / "kafka.out").open("wb") as out:
        proc = subprocess.Popen(
            [*java, "-Xmx512m", *opts.split(), "kafka.Kafka", str(props)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, (work / "kafka.out").read_text()[-3000:]
        try:
            socket.create_connection(("127.0.0.1", ports["INTERNAL"]), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    yield ports
    _stop(proc)


def _settings(service: str, secrets_dir: Path, monkeypatch: pytest.MonkeyPatch, **env: str):
    from monitor.settings import load_settings

    for key in [k for k in os.environ if k.startswith("MOOD_")]:
        monkeypatch.delenv(key)
    for key, value in {**_service_env(service), **env}.items():
        if key.startswith("MOOD_") and key != "MOOD_CONFIG":
            monkeypatch.setenv(key, value.replace("/run/secrets/", f"{secrets_dir}/"))
    return load_settings(ROOT / "config" / "monitor.yaml")


# ---- redis -------------------------------------------------------------------------------------


def test_redis_lets_no_one_in_without_a_user(compose_redis):
    anonymous = redis.Redis(port=compose_redis, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    health = redis.Redis(port=compose_redis, username="health", password="x", socket_timeout=5)
    assert health.ping() is True
    with pytest.raises(redis.exceptions.NoPermissionError):
        health.get("mm:topics")


def test_the_redis_health_check_passes(compose_redis):
    test = RAW["services"]["redis"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    shutil.which("redis-cli") or pytest.fail("redis-cli is installed with redis-server (Debian: redis-tools)")
    res = subprocess.run(["sh", "-c", test[1].replace("redis-cli", f"redis-cli -p {compose_redis}")])
    assert res.returncode == 0
    broken = (
        test[1]
        .replace("redis-cli", f"redis-cli -p {compose_redis}")
        .replace("--user health", "--user nobody")
    )
    assert subprocess.run(["sh", "-c", broken], capture_output=True).returncode != 0


@pytest.mark.parametrize(
    ("service", "role", "own_key", "foreign_key"),
    [
        ("worker", "worker", "mm:health:compose-test", "mm:conn:{x}:cursor"),
        ("alerter", "alerter", "mm:{alert}:compose-test", "mm:conn:{x}:cursor"),
        ("push", "connector", "mm:conn:compose-test", "mm:{alert}:x"),
        ("bluesky", "connector", "mm:conn:compose-test", "mm:health:x"),
    ],
)
def test_each_service_logs_in_to_redis_as_its_own_user(
    compose_redis, secrets_dir, monkeypatch, service, role, own_key, foreign_key
):
    from monitor.store.client import redis_client

    s = _settings(service, secrets_dir, monkeypatch, MOOD_REDIS__URL=f"redis://127.0.0.1:{compose_redis}/0")
    assert s.redis.username == role
    client = redis_client(s.redis)
    assert client.ping() is True
    client.set(own_key, "1")
    assert client.get(own_key) == b"1"
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.get(foreign_key)
    (secrets_dir / "wrong").write_text("not-the-password-0123456789")
    wrong = _settings(
        service,
        secrets_dir,
        monkeypatch,
        MOOD_REDIS__URL=f"redis://127.0.0.1:{compose_redis}/0",
        MOOD_REDIS__PASSWORD_FILE=str(secrets_dir / "wrong"),
    )
    with pytest.raises(redis.AuthenticationError):
        redis_client(wrong.redis).ping()


# ---- kafka -------------------------------------------------------------------------------------


def test_kafka_takes_the_services_login_and_carries_records(compose_kafka, secrets_dir, monkeypatch):
    from monitor.kafka import KafkaPostProducer, check_connection, read_topic

    bootstrap = f"127.0.0.1:{compose_kafka['INTERNAL']}"
    s = _settings("worker", secrets_dir, monkeypatch, MOOD_KAFKA__BOOTSTRAP_SERVERS=bootstrap)
    assert (s.kafka.security_protocol, s.kafka.sasl_mechanism) == ("SASL_PLAINTEXT", "PLAIN")
    check_connection(s.kafka)
    producer = KafkaPostProducer(s.kafka, "compose.check")
    producer.send(b"k", b"through the SASL listener")
    producer.flush()
    producer.close()
    got = read_topic(s.kafka, "compose.check", timeout_s=10)
    assert [r.value for r in got] == [b"through the SASL listener"]


def test_kafka_refuses_a_wrong_password_naming_the_setting(compose_kafka, secrets_dir, monkeypatch):
    from monitor.errors import ConfigError
    from monitor.kafka import check_connection

    (secrets_dir / "wrong-kafka").write_text("not-the-password-0123456789")
    s = _settings(
        "alerter",
        secrets_dir,
        monkeypatch,
        MOOD_KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{compose_kafka['INTERNAL']}",
        MOOD_KAFKA__SASL_PASSWORD_FILE=str(secrets_dir / "wrong-kafka"),
    )
    with pytest.raises(ConfigError) as exc:
        check_connection(s.kafka)
    assert "kafka.sasl_password" in str(exc.value) and "not-the-password" not in str(exc.value)


def test_kafka_answers_a_plaintext_client_only_on_its_loopback_health_listener(
    compose_kafka, monkeypatch, tmp_path
):
    from monitor.kafka import broker_answers
    from monitor.settings import load_settings

    for key in [k for k in os.environ if k.startswith("MOOD_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MOOD_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{compose_kafka['LOCAL']}")
    assert broker_answers(load_settings(ROOT / "config" / "monitor.yaml").kafka)
    monkeypatch.setenv("MOOD_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{compose_kafka['INTERNAL']}")
    assert not broker_answers(load_settings(ROOT / "config" / "monitor.yaml").kafka, timeout_s=3)
