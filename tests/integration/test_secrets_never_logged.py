"""Secrets never logged (issue 15 item 8): a whole pipeline on the secured stack with every secret
set to a recognisable value, then every trace it leaves is searched for them.

The secrets are found, not listed: every `SecretStr` field of the settings model (walked
recursively; a field given neither directly nor by its ``*_file`` gets a generated value), every
``*_file`` a secret is read from, every settings method that hands out a `SecretStr` (webhook
URLs), every connector credential named in `connectors.cli.CONNECTORS`, and every password of
the secured stack. The pipeline: the signed push endpoint and the JSONL replay -> worker ->
Redis -> alerter -> a local Slack sink; ``status``, ``connectors status`` and ``mood`` as the
read-only user; then the failure paths (a wrong Kafka password, a wrong Redis password). Searched:
the stdout and stderr of every process, every log record of this process at DEBUG (kafka-python
and redis-py included), the DLQ records, every Redis value under the test's prefix, the text,
repr and traceback of every exception, the settings' repr and dump, and the servers' own logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import traceback
import typing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import yaml
from pydantic import BaseModel, SecretStr

from connectors.cli import CONNECTORS
from devstack.synthetic import demo_topics_config, stream
from devstack.webhook_sink import WebhookSink
from monitor.app import build_store
from monitor.errors import MoodMonitorError
from monitor.kafka import KafkaPostProducer, read_topic
from monitor.settings import Settings, load_settings
from monitor.store.buckets import RedisAggregateStore
from monitor.store.client import redis_client
from monitor.transport import KafkaSettings, RedisSettings

from .pipeline_helpers import REPO, cli, wait_for, write_jsonl
from .secure_helpers import secure_config

pytestmark = pytest.mark.integration

MARK = "s3cr3t"


# ---- finding the secrets -------------------------------------------------------------------------
def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The settings models an annotation names (``X``, ``X | None``, ``list[X]``, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def secret_fields(model: type[BaseModel], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths of every SecretStr field of the settings model (sections that are lists of
    models are walked too, under the list's field name)."""
    found = []
    for name, f in model.model_fields.items():
        if _is_secret(f.annotation):
            found.append((*path, name))
        for sub in _models_in(f.annotation):
            found += secret_fields(sub, (*path, name))
    return found


def _secret_methods(obj: BaseModel) -> list[SecretStr]:
    """What the zero-argument methods of a settings object that return a SecretStr hand out."""
    out = []
    for name in dir(type(obj)):
        fn = getattr(type(obj), name, None)
        if name.startswith("_") or not callable(fn) or isinstance(fn, type):
            continue
        try:
            ann = typing.get_type_hints(fn).get("return")
        except Exception:  # noqa: BLE001 - a hint that does not resolve is not a SecretStr
            continue
        if ann is None or not _is_secret(ann):
            continue
        try:
            value = getattr(obj, name)()
        except TypeError:  # it takes arguments
            continue
        if isinstance(value, SecretStr):
            out.append(value)
    return out


def secret_values(obj: Any) -> list[str]:
    """Every secret a loaded settings object holds or points to: SecretStr fields, the files
    of their ``<field>_file`` siblings, and what SecretStr-returning methods hand out."""
    out: list[str] = []
    if isinstance(obj, BaseModel):
        fields = type(obj).model_fields
        for name in fields:
            v = getattr(obj, name)
            base = name.removesuffix("_file")
            if isinstance(v, SecretStr):
                out.append(v.get_secret_value())
            elif base != name and v and base in fields and _is_secret(fields[base].annotation):
                out.append(Path(v).read_text().strip())
            else:
                out += secret_values(v)
        out += [v.get_secret_value() for v in _secret_methods(obj)]
    elif isinstance(obj, list | tuple):
        for v in obj:
            out += secret_values(v)
    return out


def fill_secrets(cfg: dict[str, Any]) -> list[str]:
    """Give every SecretStr setting the config leaves unset (neither it nor its ``_file``) a
    recognisable value, in place; returns the paths filled."""
    filled = []
    for path in secret_fields(Settings):
        node: Any = cfg
        for p in path[:-1]:
            node = node.setdefault(p, {}) if isinstance(node, dict) else None
        if not isinstance(node, dict) or node.get(path[-1]) or node.get(f"{path[-1]}_file"):
            continue
        node[path[-1]] = f"{MARK}-{'-'.join(path)}-{secrets.token_hex(20)}"
        filled.append(".".join(path))
    return filled


def connector_credentials() -> dict[str, str]:
    """A recognisable value for every credential a connector reads (`CONNECTORS`' second column)."""
    out = {}
    for _help, names in CONNECTORS.values():
        for name in re.findall(r"\b[A-Z][A-Z0-9_]{3,}\b", names):
            raw = f"{MARK}-{name.lower()}-{secrets.token_hex(12)}"
            out[name] = (
                "whsec_" + base64.b64encode(raw.encode()).decode() if "WEBHOOK_SECRET" in name else raw
            )
    return out


def needles_of(value: str) -> list[str]:
    """What must never appear of one secret: the value, its URL password, a whsec_'s key."""
    out = [value] if MARK in value else []
    if "://" in value:
        pw = urlsplit(value).password
        if pw:
            out.append(pw)
    if value.startswith("whsec_"):
        out += [value, base64.b64decode(value.removeprefix("whsec_")).decode(errors="replace")]
    return [n for n in out if len(n) >= 8]


# ---- the check -------------------------------------------------------------------------------------
class Haystack:
    def __init__(self) -> None:
        self.parts: list[tuple[str, str]] = []

    def add(self, where: str, text: str | bytes | None) -> None:
        if text is None:
            return
        self.parts.append((where, text.decode(errors="replace") if isinstance(text, bytes) else text))

    def process(self, where: str, proc: subprocess.CompletedProcess[str]) -> None:
        self.add(f"{where} stdout", proc.stdout)
        self.add(f"{where} stderr", proc.stderr)

    def exception(self, where: str, exc: BaseException) -> None:
        self.add(f"{where} str", str(exc))
        self.add(f"{where} repr", repr(exc))
        self.add(f"{where} traceback", "".join(traceback.format_exception(exc)))

    def leaks(self, needles: dict[str, str]) -> list[str]:
        """'<secret name> in <where>' for every hit (the value itself is never printed)."""
        return [
            f"{name} in {where}" for where, text in self.parts for name, n in needles.items() if n in text
        ]


def _sign(key: bytes, msg_id: str, body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": f"v1,{sig}",
        "content-type": "application/json",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, dict):
        return " ".join(f"{_text(k)}={_text(x)}" for k, x in v.items())
    if isinstance(v, list | tuple | set):
        return " ".join(_text(x) for x in v)
    return str(v)


def _redis_dump(reader: RedisSettings, prefix: str) -> list[tuple[str, str]]:
    """Every key under ``prefix`` with its value as text (strings, hashes, lists, sets, zsets, streams)."""
    r = redis_client(reader)
    read = {
        b"string": r.get,
        b"hash": r.hgetall,
        b"list": lambda k: r.lrange(k, 0, -1),
        b"set": r.smembers,
        b"zset": lambda k: r.zrange(k, 0, -1, withscores=True),
        b"stream": r.xrange,
    }
    out = []
    for key in r.scan_iter(match=f"{prefix}:*", count=500):
        kind = r.type(key)
        value = read[kind](key) if kind in read else None
        out.append((_text(key), f"{_text(key)} {_text(value)}"))
    r.close()
    return out


def test_no_secret_in_any_log_record_value_output_or_error(
    tmp_path, secure_stack, unique, caplog, monkeypatch
):
    st = secure_stack
    caplog.set_level(logging.DEBUG)
    for name in ("kafka", "redis", "monitor", "connectors", "devstack"):
        caplog.set_level(logging.DEBUG, logger=name)  # restored after the test
    creds = connector_credentials()
    assert "PUSH_WEBHOOK_SECRET" in creds  # the discovery found the push secret
    for k, v in creds.items():
        monkeypatch.setenv(k, v)
    slack_url_env = "SECRETS_TEST_SLACK_URL"
    alerts = {
        "interval_s": 1,
        "rules": [
            {
                "name": "busy",
                "metric": "volume",
                "above": 5,
                "window_min": 10,
                "min_posts": 0,
                "sealed_only": False,
            }
        ],
        "destinations": [{"name": "slack", "url_env": slack_url_env}],
    }
    hay = Haystack()
    with WebhookSink() as sink:
        slack_url = sink.url(f"/services/T0/B0/{MARK}-slack-{secrets.token_hex(12)}")
        monkeypatch.setenv(slack_url_env, slack_url)
        # one config per role, every secret of the settings model set
        cfgs: dict[str, Path] = {}
        filled: list[str] = []
        for role in ("connector", "worker", "alerter", "reader"):
            path = secure_config(tmp_path, st, unique, role, topics=demo_topics_config(), alerts=alerts)
            cfg = yaml.safe_load(path.read_text())
            filled = fill_secrets(cfg)
            path.write_text(yaml.safe_dump(cfg))
            cfgs[role] = path
        assert "privacy.author_key" in filled or "privacy.author_key" not in {
            ".".join(p) for p in secret_fields(Settings)
        }

        # the recognisable values, found by walking the loaded settings (and the stack's passwords)
        needles: dict[str, str] = {}
        for role, path in cfgs.items():
            s = load_settings(path)
            for i, v in enumerate(secret_values(s)):
                for n in needles_of(v):
                    needles[f"{role}-setting-{i}:{n[:6]}.."] = n
            hay.add(f"{role} settings repr", repr(s))
            hay.add(f"{role} settings str", str(s))
            hay.add(f"{role} settings dump", s.model_dump_json())
        for name, v in creds.items():
            for n in needles_of(v):
                needles[f"${name}"] = n
        found = secret_values(load_settings(cfgs["worker"]))
        assert st.secret("kafka-mood") in found and st.secret("redis-worker") in found  # from *_file
        assert slack_url in found  # handed out by a settings method (the destination's url())
        assert len(filled) >= 2  # SecretStr settings the config left unset got values
        for f in sorted((st.dir / "secrets").glob("*.password")):
            needles[f"stack {f.stem}"] = f.read_text().strip()
        wrong = f"{MARK}-a-wrong-password-{secrets.token_hex(8)}"
        needles["the wrong password"] = wrong
        assert any(n.startswith("$PUSH") for n in needles) and any("slack" in n for n in needles.values())
        assert len(needles) >= 8

        # the pipeline: push endpoint + replay -> worker -> Redis -> alerter -> Slack sink
        port = _free_port()
        push_log = tmp_path / "push.log"
        push = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor",
                "connectors",
                "run",
                "push",
                "--port",
                str(port),
                "--config",
                str(cfgs["connector"]),
            ],
            cwd=REPO,
            stdout=push_log.open("wb"),
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
        try:
            assert wait_for(lambda: _port_open(port), timeout_s=60), push_log.read_text()
            key = base64.b64decode(creds["PUSH_WEBHOOK_SECRET"].removeprefix("whsec_"))
            posts = list(stream(60, id_prefix=f"{unique}p"))
            body = orjson.dumps([{"id": p["id"], "text": p["text"]} for p in posts])
            res = httpx.post(
                f"http://127.0.0.1:{port}/ingest",
                content=body,
                headers=_sign(key, f"{unique}-m1", body),
                timeout=30,
            )
            assert res.status_code == 202, res.text
            hay.add("push answer", res.text)
            bad = httpx.post(
                f"http://127.0.0.1:{port}/ingest",
                content=body,
                headers=_sign(b"x" * 32, f"{unique}-m2", body),
                timeout=30,
            )
            assert bad.status_code == 401
            hay.add("push refusal", bad.text)
        finally:
            push.send_signal(signal.SIGTERM)
            push.wait(timeout=60)
        hay.add("push connector output", push_log.read_bytes())

        replay = list(stream(40, id_prefix=f"{unique}r"))
        for p in replay:
            p.pop("intended"), p.pop("topic")
        hay.process(
            "replay",
            cli(
                "replay",
                str(write_jsonl(tmp_path / "in.jsonl", replay, [b"{bad json", b'{"id": 1}'])),
                "--config",
                str(cfgs["connector"]),
            ),
        )
        hay.process("worker", cli("worker", "--config", str(cfgs["worker"]), "--idle-timeout-s", "5"))
        hay.process("alerter", cli("alerts", "--config", str(cfgs["alerter"]), "--max-ticks", "2"))
        assert sink.received, "the alert reached the sink"
        for i, m in enumerate(sink.received):
            hay.add(f"slack message {i}", m.body)
    hay.process("status", cli("status", "--config", str(cfgs["reader"])))
    hay.process("connectors status", cli("connectors", "status", "--config", str(cfgs["reader"])))
    hay.process("mood", cli("mood", "--json", "--config", str(cfgs["reader"])))
    hay.process("dlq", cli("dlq", "--config", str(cfgs["reader"])))

    # in this process, at DEBUG: the clients' own logs, with every secret of the worker's config
    s = load_settings(cfgs["worker"])
    dlq = read_topic(s.kafka, s.kafka.dlq_topic, timeout_s=10)
    assert len(dlq) >= 2
    for r in dlq:
        hay.add(f"DLQ record {r.offset}", r.value)
        hay.add(f"DLQ key {r.offset}", r.key)
    p = KafkaPostProducer(s.kafka, s.kafka.raw_topic)
    p.flush()
    p.close()
    assert build_store(s).stats("worker")
    assert build_store(load_settings(cfgs["reader"])).health()  # heartbeats: the read side's SCAN
    dump = _redis_dump(RedisSettings(**st.redis_section("reader")), unique)
    assert len(dump) > 10  # buckets, samples, watermarks, heartbeats, alert and connector state
    for key, text in dump:
        hay.add(f"redis {key}", text)

    # the failure paths: a wrong Kafka password, a wrong Redis password (processes and in-process)
    wrong_kafka = {"MOOD_KAFKA__SASL_PASSWORD_FILE": "", "MOOD_KAFKA__SASL_PASSWORD": wrong}
    proc = cli(
        "replay", str(tmp_path / "in.jsonl"), "--config", str(cfgs["connector"]), env=wrong_kafka, check=False
    )
    assert proc.returncode == 2 and "kafka.sasl_password" in proc.stderr
    hay.process("replay, wrong Kafka password", proc)
    wrong_redis = {"MOOD_REDIS__PASSWORD_FILE": "", "MOOD_REDIS__PASSWORD": wrong}
    for args in (("worker", "--idle-timeout-s", "2"), ("alerts", "--max-ticks", "1"), ("status",)):
        role = {"worker": "worker", "alerts": "alerter"}.get(args[0], "reader")
        proc = cli(*args, "--config", str(cfgs[role]), env=wrong_redis, check=False)
        assert proc.returncode == 2 and "redis.password" in proc.stderr, proc.stderr
        hay.process(f"{args[0]}, wrong Redis password", proc)
    for attempt in (
        lambda: KafkaPostProducer(
            KafkaSettings(**st.kafka_section(sasl_password_file=None, sasl_password=wrong)), "x"
        ),
        lambda: RedisAggregateStore(
            RedisSettings(**st.redis_section("worker", password_file=None, password=wrong)), unique
        ).ping(),
        lambda: load_settings(
            _with(cfgs["worker"], tmp_path, kafka={"sasl_password_file": str(tmp_path / "missing")})
        ),
    ):
        with pytest.raises(MoodMonitorError) as caught:
            attempt()
        hay.exception("in-process error", caught.value)
    hay.add("log records of this process", caplog.text)
    hay.add("log messages of this process", "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records))
    for name in ("kafka.log", "redis.log"):
        hay.add(f"stack {name}", (st.dir / name).read_bytes() if (st.dir / name).exists() else b"")

    assert len(hay.parts) > 30
    assert hay.leaks(needles) == []
    # and the check can fail: a secret put where it must not be is found
    probe = Haystack()
    probe.add("probe", f"connecting with password={wrong}")
    assert probe.leaks(needles) == ["the wrong password in probe"]


def _with(path: Path, tmp_path: Path, **sections: dict[str, Any]) -> Path:
    cfg = yaml.safe_load(path.read_text())
    for name, over in sections.items():
        cfg[name] = {**cfg.get(name, {}), **over}
    out = tmp_path / f"variant-{len(list(tmp_path.glob('variant-*')))}.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return out


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
