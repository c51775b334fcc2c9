"""The composition root as a library: every process is built here from `Settings` (the store,
the scorer, a worker, an alerter) and nowhere else. The CLI (`monitor.cli`), the demo, the
benchmarks and the tests call these builders; nothing imports the CLI.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import TYPE_CHECKING, Any, NamedTuple

from monitor.errors import TransientError
from monitor.settings import Settings
from monitor.web.readmodel import mood_rows as mood_rows  # one figure code: CLI, demo, dashboard
from monitor.web.readmodel import parse_window as parse_window

if TYPE_CHECKING:
    from monitor.alerts.alerter import Alerter
    from monitor.catalog import TopicCatalog
    from monitor.model.base import EncodeFn, LabelFn, Scorer
    from monitor.prevalence import Corrector
    from monitor.store.buckets import RedisAggregateStore
    from monitor.worker import Worker

log = logging.getLogger(__name__)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("kafka", "urllib3", "httpx", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def process_name(role: str, pid: int | None = None) -> str:
    """The name a process of ``role`` (this one, or the child ``pid``) gives its heartbeat."""
    return f"{role}-{socket.gethostname()}-{os.getpid() if pid is None else pid}"


def build_store(s: Settings, prefix: str | None = None) -> RedisAggregateStore:
    from monitor.store.buckets import RedisAggregateStore

    r = s.redis
    return RedisAggregateStore(
        r,
        prefix or r.prefix,
        minute_ttl_s=r.minute_ttl_s,
        hour_ttl_s=r.hour_ttl_s,
        text_ttl_s=r.text_ttl_s,
        texts_per_minute=r.texts_per_minute,
        dedup_slice_s=r.dedup_slice_s,
    )


def build_corrector(s: Settings) -> Corrector:
    """The read side's corrected shares: ``model.share_method`` over the configured model's
    calibration (quantify.json; none for a hub model without one: raw counts, said so). Loads
    a JSON file, not the model; ConfigError naming the file on a malformed one."""
    from monitor.model.calibration import calibration_for
    from monitor.prevalence import Corrector

    return Corrector(s.model.share_method, calibration_for(s.model), s.model.share_level)


def _retention(ms: int) -> dict[str, str]:
    return {"retention.ms": str(ms), "segment.ms": str(max(60_000, ms // 4))}


def ensure_topics(s: Settings) -> None:
    from monitor.kafka import ensure_topics as _ensure

    k = s.kafka
    _ensure(
        k,
        {k.raw_topic: k.partitions, k.scored_topic: k.partitions, k.dlq_topic: 1},
        # Kafka deletes whole segments: a segment of a quarter of the retention keeps whole
        # posts at most 1.25 times as long as configured (the broker's default segment is 7 days)
        configs={
            k.raw_topic: _retention(s.privacy.raw_retention_ms),
            k.scored_topic: {"retention.ms": str(k.scored_retention_ms)},
            k.dlq_topic: _retention(s.privacy.dlq_retention_ms),
        },
    )


class HostSide(NamedTuple):
    """What a worker's host path gets of its model: the scorer (the model itself, or a
    `monitor.model.remote.RemoteScorer`), labels, tokenizing, and how many batches it may
    hand the scorer at once."""

    scorer: Scorer
    to_labels: LabelFn
    uncertain_below: float
    encode: EncodeFn
    batches_in_model: int


def build_scorer(s: Settings) -> tuple[Scorer, LabelFn, float]:
    from monitor.model.base import to_labels
    from monitor.model.scorers import load_scorer

    cfg = s.model
    scorer = load_scorer(cfg)
    if not getattr(scorer, "trained", True):
        log.warning("model %s is UNTRAINED: its labels are random, for plumbing checks only", scorer.name)
    return scorer, to_labels, float(getattr(cfg, "uncertain_below", 0.0))


def build_catalog(s: Settings, store: RedisAggregateStore, config_path: str | None = None) -> TopicCatalog:
    """The tracked topics: the file's, overlaid by the Redis registry (`monitor.catalog`), read
    once now; a SIGHUP re-reads ``config_path`` (the same file the process started from)."""
    from monitor.catalog import TopicCatalog
    from monitor.settings import load_settings
    from monitor.store.topics import RedisTopicRegistry

    catalog = TopicCatalog(
        s.topics,
        RedisTopicRegistry(store),
        reload_file=lambda: load_settings(config_path).topics,
        poll_s=s.topic_registry.poll_s,
    )
    try:
        catalog.load()
    except TransientError as exc:
        log.warning("topic registry unreadable at start-up (%s): the file's topics until it answers", exc)
    return catalog


def build_worker(
    s: Settings, *, name: str | None = None, config_path: str | None = None, model: HostSide | None = None
) -> Worker:
    """A worker with its model loaded here, or (``model``) the host side of one whose model
    runs in another process (`monitor.hosts`)."""
    from monitor.batcher import BatchLimits
    from monitor.kafka import batch_consumer, post_producer
    from monitor.store.volume import RedisVolumeStore
    from monitor.worker import Worker, WorkerConfig

    ensure_topics(s)
    if model is None:
        from monitor.model.runtime import model_batches, pretokenizer

        scorer, to_labels, floor = build_scorer(s)
        model = HostSide(scorer, to_labels, floor, pretokenizer(scorer), model_batches(scorer))
    scorer, to_labels, floor = model.scorer, model.to_labels, model.uncertain_below
    w = s.worker
    cfg = WorkerConfig(
        dlq_topic=s.kafka.dlq_topic,
        scored_topic=s.kafka.scored_topic,
        max_text_chars=w.max_text_chars,
        lateness_ms=w.lateness_s * 1000,
        future_skew_ms=w.future_skew_s * 1000,
        uncertain_below=floor,
        backoff_max_s=w.backoff_max_s,
        health_ttl_s=w.health_ttl_s,
        keep_texts=w.keep_texts,
        author_key=s.privacy.author_key_bytes(s.kafka.bootstrap_servers),
        process_name=name or process_name("worker"),
        batches_in_model=model.batches_in_model,
        baseline_rate=w.baseline_rate,
        baseline_topic=w.baseline_topic,
        texts_per_minute=s.redis.texts_per_minute,
    )
    producer = post_producer(s.kafka, s.kafka.scored_topic)
    worker: Worker | None = None

    def revoked(parts: list[tuple[str, int]]) -> None:
        if worker is not None:
            worker.on_revoked(parts)

    def assigned(parts: list[tuple[str, int]]) -> None:
        if worker is not None:
            worker.on_assigned(parts)

    consumer = batch_consumer(
        s.kafka,
        s.kafka.raw_topic,
        s.kafka.group_id,
        max_batch=w.max_batch,
        max_wait_ms=w.max_wait_ms,
        on_revoked=revoked,
        on_assigned=assigned,
        client_id=cfg.process_name,
    )
    store = build_store(s)
    catalog = build_catalog(s, store, config_path)
    worker = Worker(
        cfg,
        consumer,
        producer,
        scorer,
        to_labels,
        store,
        catalog.matcher(),
        encode=model.encode,
        limits=BatchLimits(
            max_posts=w.max_batch,
            max_tokens=w.batch_tokens,
            max_wait_ms=w.max_wait_ms,
            max_records=w.max_records,
        ),
        topics=catalog,
        volume=RedisVolumeStore(store),
    )
    return worker


def build_alerter(s: Settings, *, config_path: str | None = None) -> Alerter:
    from monitor.alerts.alerter import Alerter
    from monitor.store.alerts import RedisAlertLedger

    store = build_store(s)
    ledger = RedisAlertLedger(store, log_max_len=s.alerts.log_max_len)
    catalog = build_catalog(s, store, config_path)
    # rules with `corrected: true` read the model's calibration (a JSON file, not the model)
    corrector = build_corrector(s) if any(r.corrected for r in s.alerts.rules) else None
    return Alerter(
        s.alerts, store, ledger, owner=process_name("alerter"), catalog=catalog, corrector=corrector
    )


def build_dashboard(s: Settings) -> tuple[Any, Any, str, int]:
    """`mood-monitor serve`: the dashboard app over the store (the read token resolved and the
    loopback rule checked first), with its host and port. Loads no model."""
    from monitor.store.connectors import read_statuses
    from monitor.web.app import WebConfig, create_app
    from monitor.web.live import Hub
    from monitor.web.readmodel import RedisReadModel
    from monitor.web.settings import check_bind, read_token

    d = s.dashboard
    token = read_token(d)
    check_bind(d.host, token)
    store = build_store(s)
    conn_prefix = f"{store.prefix}:conn:"
    model = RedisReadModel(
        store,
        s.alerts,
        # as `mood-monitor connectors status` reads them
        connector_statuses=lambda: read_statuses(s.redis, prefix=conn_prefix),
        corrector=build_corrector(s),  # the window answer is `mood --json`'s, corrected shares too
    )
    hub = Hub(model, interval_s=d.push_interval_s, max_clients=d.max_clients, max_topics=d.max_topics)
    cfg = WebConfig(
        token=token,
        allowed_hosts=tuple(d.allowed_hosts),
        show_texts=d.show_texts,
        metrics_auth=d.metrics_auth,
        max_topics=d.max_topics,
    )
    return create_app(model, hub, cfg, metrics=_metrics_app(s, store)), hub, d.host, d.port


def _metrics_app(s: Settings, store: RedisAggregateStore) -> Any:
    """serve's /metrics: its own HTTP and process metrics plus the Redis state, at scrape time;
    per-topic series for the tracked topics only (file + registry, `monitor.catalog`), at most
    ``metrics.max_topics`` of them (bounded labels)."""
    from monitor import metrics

    catalog = build_catalog(s, store)
    registry = metrics.serve_registry(store, topics=catalog.current_names, max_topics=s.metrics.max_topics)
    return metrics.asgi_app(registry)


def _corrected_cell(r: dict[str, Any]) -> str:
    """The corrected negative share and its interval, e.g. ``64% [55-72] pacc``."""
    c = r.get("corrected")
    if not c or not c.get("n"):
        return "-"
    neg = c["negative"]
    return f"{neg['share'] * 100:.0f}% [{neg['low'] * 100:.0f}-{neg['high'] * 100:.0f}] {c['method']}"


def render_table(rows: list[dict[str, Any]]) -> str:
    """Raw counted shares, and the corrected negative share with its interval when present."""
    head = (
        f"{'topic':<14}{'posts':>7}{'neg%':>7}{'neu%':>7}{'pos%':>7}{'score':>8}  "
        f"{'neg% corrected [int.]':<24}top emotion"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['topic']:<14}{r['posts']:>7}{r['negative'] * 100:>6.0f}%{r['neutral'] * 100:>6.0f}%"
            f"{r['positive'] * 100:>6.0f}%{r['mean_score']:>+8.2f}  "
            f"{_corrected_cell(r):<24}{r['top_emotion']}"
        )
    return "\n".join(lines)
