"""Settings: one YAML file plus ``MOOD_*`` environment overrides, validated once at start-up.

Environment variables override the file with ``__`` between levels, for example
``MOOD_KAFKA__BOOTSTRAP_SERVERS=kafka:9092`` or ``MOOD_REDIS__URL=redis://:pw@redis:6379/0``.
Secrets (Redis URL with a password, webhook URLs) are `SecretStr` and never printed; a
password may also come from a file (``*_password_file``, e.g. a docker secret), read at start-up.
A bad file or value raises `ConfigError` naming the file and the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from monitor.alerts.settings import AlertSettings
from monitor.errors import ConfigError
from monitor.model.settings import ModelSettings
from monitor.privacy.settings import PrivacySettings
from monitor.transport import KafkaSettings, RedisSettings, SettingError
from monitor.web.settings import DashboardSettings

# the Kafka and Redis sections live in monitor.transport (monitor.kafka and monitor.store use them)
__all__ = ["KafkaSettings", "RedisSettings", "Settings", "TopicSettings", "WorkerSettings", "load_settings"]

DEFAULT_CONFIG = "config/monitor.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WorkerSettings(_Section):
    # a batch is filled until it holds max_batch posts or batch_tokens tokens; while the model is
    # idle it waits at most max_wait_ms for more (while the model is busy it keeps filling)
    max_batch: int = Field(512, ge=1, le=4096)
    batch_tokens: int = Field(8192, ge=16)
    max_wait_ms: int = Field(250, ge=1, le=60_000)
    max_text_chars: int = Field(20_000, ge=1)
    # posts whose event time is more than this before their ingest time are counted as too late
    lateness_s: int = Field(120, ge=0)
    # a source clock more than this ahead of ingest time is not trusted: ingest time is used
    future_skew_s: int = Field(300, ge=0)
    backoff_max_s: float = Field(30.0, gt=0)
    health_ttl_s: int = Field(30, ge=2)
    keep_texts: bool = True
    # topics are matched before the model: a post no topic wants is only counted (per minute,
    # source and language). This share of all posts (chosen by a hash of the post id) is
    # scored anyway into the series baseline_topic, the general mood; 0: off
    baseline_rate: float = Field(0.0, ge=0.0, le=1.0)
    baseline_topic: str = Field("all-posts", min_length=1, max_length=100, pattern=r"^[^{}\s:]+$")
    # for a firehose of which few posts match: a batch may hold this many records, max_batch
    # then counts the posts that go to the model, and a batch of a few waits up to max_wait_ms
    # for more (monitor.batcher); unset: max_batch records, handed over as soon as the model is free
    max_records: int | None = Field(None, ge=1, le=65_536)
    # the host path (Kafka, decoding, matching, tokenizing, labels, Redis) in this many processes,
    # each a member of the consumer group, all scoring through the one model this worker loads
    # (`monitor.hosts`): past one process's GIL, for a model faster than one host path (a GPU)
    host_processes: int = Field(1, ge=1, le=64)


class MetricsSettings(_Section):
    # a worker, alerter or connector serves its own Prometheus /metrics on host:port (0: off;
    # `--metrics-port` on the command overrides); `mood-monitor serve` exposes the Redis side
    port: int = Field(0, ge=0, le=65535)
    host: str = "127.0.0.1"
    # per-topic mood series are kept for at most this many topics (bounded labels)
    max_topics: int = Field(50, ge=1, le=10_000)


class TopicRegistrySettings(_Section):
    # how often workers and the alerter look for topics added or removed at run time
    poll_s: float = Field(10.0, gt=0, le=60)


class TopicSettings(_Section):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^{}\s:]+$")
    keywords: list[str] = []
    hashtags: list[str] = []
    query: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MOOD_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    worker: WorkerSettings = WorkerSettings()
    model: ModelSettings = ModelSettings()
    topics: list[TopicSettings] = []
    alerts: AlertSettings = AlertSettings()
    metrics: MetricsSettings = MetricsSettings()
    topic_registry: TopicRegistrySettings = TopicRegistrySettings()
    dashboard: DashboardSettings = DashboardSettings()
    privacy: PrivacySettings = PrivacySettings()

    @field_validator("topics")
    @classmethod
    def _unique_topics(cls, v: list[TopicSettings]) -> list[TopicSettings]:
        names = [t.name for t in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate topic names: {sorted(dup)}")
        return v


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(root)"


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load the YAML file (``MOOD_CONFIG`` or ``config/monitor.yaml`` when not given)."""
    source = str(path or os.environ.get("MOOD_CONFIG") or DEFAULT_CONFIG)
    data: dict[str, Any] = {}
    p = Path(source)
    if path is not None or p.exists():
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(source, "(file)", "not found") from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
            raise ConfigError(source, where, f"invalid YAML: {getattr(exc, 'problem', exc)}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(source, "(root)", "expected a mapping of sections")
        data = loaded
    try:
        return _with_env(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, SettingError):  # a section's cross-field check: name the setting itself
            raise ConfigError(source, _field_path((*err["loc"], cause.field)), cause.reason) from exc
        raise ConfigError(source, _field_path(tuple(err["loc"])), err["msg"]) from exc


def _with_env(data: dict[str, Any]) -> Settings:
    # init kwargs beat env in pydantic-settings; we want env to beat the file, so merge by hand
    # (the env values unvalidated: a section's checks must see the file's values too)
    env_only = (
        EnvSettingsSource(Settings)()
        if any(k.startswith("MOOD_") and k != "MOOD_CONFIG" for k in os.environ)
        else {}
    )
    merged = _deep_merge(data, env_only)
    return Settings(**merged)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out
