"""Prometheus metrics of every mood-monitor process; the only module importing prometheus_client.

Two sources, two ways out:

* **Per process** (worker, alerter, connector): counters, gauges and histograms that only that
  process knows (batch sizes, inference seconds, Redis apply seconds, ingest-to-aggregate seconds,
  consumer lag, deliveries) live in the process's `REGISTRY`, together with the standard
  ``process_*`` / ``python_*`` collectors. ``metrics.port`` (or ``--metrics-port``) makes the
  process serve them itself (`serve_metrics`: prometheus_client's HTTP server on a daemon
  thread, ``metrics.host`` 127.0.0.1 by default); port 0, the default, serves nothing. Why not
  publish them through Redis for ``serve`` to expose: histograms are per process and Prometheus
  aggregates them itself (``sum by (le) (rate(..._bucket[5m]))``), each replica is a scrape
  target (``dns_sd_configs`` in `deploy/prometheus/prometheus.yml`), and no metric write sits on
  the worker's Redis path or needs a merge.
* **Shared state in Redis** (per-topic mood, the pipeline counters of all workers, heartbeats,
  the seal's lag, connector statuses): `RedisStateCollector` reads it at scrape time. The
  dashboard process (``mood-monitor serve``) registers it, so one target covers any number of
  workers.

For ``mood-monitor serve`` (engineer D1)::

    from monitor import metrics
    registry = metrics.serve_registry(store, topics=lambda: catalog.names(), max_topics=50)
    body, content_type = metrics.render(registry)      # GET /metrics -> Response(body, media_type=...)
    app = metrics.asgi_app(registry)                   # or: Mount("/metrics", app)
    metrics.HTTP_REQUESTS.labels(route="/api/v1/topics", method="GET", code="200").inc()
    metrics.HTTP_SECONDS.labels(route="/api/v1/topics").observe(seconds)
    metrics.SSE_CLIENTS.inc() / .dec()

``route`` must be the route's template (``/api/v1/topics/{topic}/window``), never the raw path,
so that labels stay bounded. Names follow https://prometheus.io/docs/practices/naming: the
``mood_monitor_`` prefix, base units (seconds, ratios 0-1), ``_total`` on counters. The table of
every metric is in the README ("Metrics").
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    make_asgi_app,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.aggregates import Bucket
from monitor.errors import ConfigError, TransientError

log = logging.getLogger(__name__)

NS = "mood_monitor"
# the mood gauges' windows (label ``window``)
WINDOWS_MS: dict[str, int] = {"5m": 5 * 60_000, "1h": 3_600_000}
SENTIMENTS = ("negative", "neutral", "positive")
EMOTIONS = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")
DEFAULT_MAX_TOPICS = 50

# no *_created series: Prometheus does not need them and they double the output
disable_created_metrics()  # type: ignore[no-untyped-call]
# The process's own registry: its metrics plus process_* / python_* (CPU seconds, RSS, fds, GC).
REGISTRY = CollectorRegistry(auto_describe=True)
for _c in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_c)

_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_TOKEN_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
_FAST_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SLOW_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def _counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
    return Counter(name, doc, labels, namespace=NS, registry=REGISTRY)


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
    return Gauge(name, doc, labels, namespace=NS, registry=REGISTRY)


def _histogram(name: str, doc: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> Histogram:
    return Histogram(name, doc, labels, namespace=NS, registry=REGISTRY, buckets=buckets)


# ---- worker ---------------------------------------------------------------------------------
WORKER_BATCHES = _counter("worker_batches", "Batches written to Redis and committed")
WORKER_RECORDS = _counter("worker_records", "Kafka records consumed and committed")
WORKER_POSTS = _counter(
    "worker_posts",
    "Posts by outcome (scored, aggregated, too_late, unmatched, replayed)",
    ["outcome"],
)
WORKER_DELETIONS = _counter("worker_deletions", "Deletions applied (texts dropped)")
WORKER_DLQ = _counter("worker_dlq", "Records parked in the DLQ, by reason kind", ["reason"])
WORKER_BATCH_RECORDS = _histogram("worker_batch_records", "Records per batch", _SIZE_BUCKETS)
WORKER_BATCH_TOKENS = _histogram("worker_batch_tokens", "Padded tokens per batch", _TOKEN_BUCKETS)
WORKER_INFERENCE_SECONDS = _histogram(
    "worker_inference_seconds", "Forward-pass time of a batch (the model thread)", _SLOW_S
)
WORKER_REDIS_APPLY_SECONDS = _histogram(
    "worker_redis_apply_seconds", "Time of a batch's aggregate write (the Lua calls)", _FAST_S
)
WORKER_WRITE_SECONDS = _histogram(
    "worker_write_seconds", "Everything after the model: Redis, Kafka outputs and the commit", _SLOW_S
)
WORKER_INGEST_TO_AGGREGATE_SECONDS = _histogram(
    "worker_ingest_to_aggregate_seconds",
    "From a post's ingest by its connector to its batch being committed",
    _SLOW_S,
)
WORKER_PARTITIONS = _gauge("worker_partitions_assigned", "Partitions of posts.raw this worker owns")
WORKER_LAG = _gauge(
    "worker_consumer_lag_records", "Records behind the partition's end (the client's view)", ["partition"]
)
TOPICS_TRACKED = _gauge("topics_tracked", "Topics this process matches or evaluates")
TOPICS_VERSION = _gauge("topics_version", "Version of the topic registry this process applies")
TOPICS_RELOADS = _counter("topics_reloads", "Topic set changes applied (registry or SIGHUP)", ["outcome"])

# ---- alerter --------------------------------------------------------------------------------
ALERTER_EVALUATION_SECONDS = _histogram(
    "alerter_evaluation_seconds", "Time of one evaluation of every topic and rule", _SLOW_S
)
ALERTER_LEASE = _gauge("alerter_lease_held", "1 while this alerter holds the single-alerter lease")

# ---- the dashboard's HTTP server (used by mood-monitor serve) ----------------------------------
HTTP_REQUESTS = _counter("http_requests", "HTTP requests answered", ["route", "method", "code"])
HTTP_SECONDS = _histogram("http_request_duration_seconds", "HTTP request time", _FAST_S, ["route"])
SSE_CLIENTS = _gauge("sse_clients", "Server-Sent Events clients connected")


def render(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The text exposition of ``registry`` and its Content-Type (for a ``/metrics`` route)."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def asgi_app(registry: CollectorRegistry = REGISTRY) -> Callable[..., Any]:
    """An ASGI app answering any GET with the exposition of ``registry`` (gzip if asked)."""
    app: Callable[..., Any] = make_asgi_app(registry=registry)
    return app


# ---- worker hooks (called by monitor.worker) --------------------------------------------------
def observe_batch(
    *,
    records: int,
    tokens: int,
    outcomes: Mapping[str, int],
    dlq: Mapping[str, int],
    deletions: int,
    model_s: float,
    write_s: float,
    ingest_ages_s: Iterable[float],
) -> None:
    """One committed batch of a worker."""
    WORKER_BATCHES.inc()
    WORKER_RECORDS.inc(records)
    WORKER_BATCH_RECORDS.observe(records)
    WORKER_BATCH_TOKENS.observe(tokens)
    if model_s > 0:
        WORKER_INFERENCE_SECONDS.observe(model_s)
    WORKER_WRITE_SECONDS.observe(write_s)
    for outcome, n in outcomes.items():
        if n:
            WORKER_POSTS.labels(outcome).inc(n)
    for reason, n in dlq.items():
        WORKER_DLQ.labels(reason).inc(n)
    if deletions:
        WORKER_DELETIONS.inc(deletions)
    for age in ingest_ages_s:
        WORKER_INGEST_TO_AGGREGATE_SECONDS.observe(max(0.0, age))


def observe_partitions(owned: Iterable[tuple[str, int]], lag: Mapping[str, int] | None = None) -> None:
    """The worker's assignment and, where the client knows it, each partition's lag."""
    parts = sorted(owned)
    WORKER_PARTITIONS.set(len(parts))
    if lag is None:
        return
    WORKER_LAG.clear()  # a revoked partition's series goes away
    for part, n in lag.items():
        WORKER_LAG.labels(part).set(n)


# ---- per-process collectors over in-memory state ------------------------------------------------
_ALERTER_COUNTERS = {
    "evaluations": ("alerter_evaluations", "Evaluation rounds"),
    "duplicates_suppressed": (
        "alerter_duplicates_suppressed",
        "Notices not queued again (their fingerprint was claimed before)",
    ),
}
_NOTICES = {"fired": "fire", "renotified": "renotify", "resolved": "resolve"}


class AlerterCollector(Collector):
    """The alerter's counters (`Alerter.stats`) and its dispatcher's (`Dispatcher.stats`)."""

    def __init__(self, alerter: Any) -> None:
        self.alerter = alerter

    def collect(self) -> Iterator[Metric]:
        stats: Mapping[str, int] = self.alerter.stats
        for key, (name, doc) in _ALERTER_COUNTERS.items():
            c = CounterMetricFamily(f"{NS}_{name}", doc)
            c.add_metric([], stats.get(key, 0))
            yield c
        notices = CounterMetricFamily(
            f"{NS}_alerter_notices", "Notices queued, by action (fire, renotify, resolve)", labels=["action"]
        )
        for key, action in _NOTICES.items():
            notices.add_metric([action], stats.get(key, 0))
        yield notices
        deliveries = CounterMetricFamily(
            f"{NS}_alerter_deliveries",
            "Outbox deliveries by outcome (delivered, retries, rejected, given_up, dropped)",
            labels=["outcome"],
        )
        for outcome, n in sorted(self.alerter.dispatcher.stats.items()):
            deliveries.add_metric([outcome], n)
        yield deliveries


class ConnectorCollector(Collector):
    """A connector's own counters (produced, deletions, bad, errors, ...) and its connection."""

    def __init__(self, connector: Any, instance: str | None = None) -> None:
        self.connector = connector
        self.instance = instance

    def collect(self) -> Iterator[Metric]:
        c = self.connector
        name = self.instance or str(getattr(c, "name", "connector"))
        stats = c.stats
        counters = {
            "posts": ("connector_posts", "Posts produced to posts.raw", stats.produced),
            "deletions": ("connector_deletions", "Deletions forwarded", stats.deletions),
            "bad": ("connector_bad_payloads", "Payloads that could not be mapped (skipped)", stats.bad),
            "errors": ("connector_errors", "Session errors (each followed by a backoff)", stats.errors),
            "duplicates": (
                "connector_duplicates",
                "Items already produced before (dedup)",
                getattr(c, "duplicates", 0),
            ),
            "reconnects": ("connector_reconnects", "Reconnections", getattr(c, "reconnects", 0)),
        }
        for metric, doc, value in counters.values():
            fam = CounterMetricFamily(f"{NS}_{metric}", doc, labels=["connector"])
            fam.add_metric([name], value)
            yield fam
        connected = GaugeMetricFamily(
            f"{NS}_connector_connected", "1 while connected to the source", labels=["connector"]
        )
        connected.add_metric([name], int(bool(getattr(c, "connected", False))))
        yield connected
        lag = GaugeMetricFamily(
            f"{NS}_connector_lag_seconds",
            "Ingest time minus event time of the newest post",
            labels=["connector"],
        )
        lag.add_metric([name], getattr(c, "lag_ms", 0) / 1000)
        yield lag


def watch(collector: Collector, registry: CollectorRegistry = REGISTRY) -> None:
    """Add a collector (`AlerterCollector`, `ConnectorCollector`) to the process's registry."""
    registry.register(collector)


# ---- shared state in Redis, read at scrape time (mood-monitor serve) -----------------------------
class StateReader(Protocol):
    """What `RedisStateCollector` reads (`monitor.store.RedisAggregateStore`)."""

    def topics(self) -> list[str]: ...
    def read_window(self, topic: str, start_ms: int, end_ms: int) -> Bucket: ...
    def stats(self, name: str) -> dict[str, int]: ...
    def health(self) -> dict[str, dict[str, Any]]: ...
    def sealed_until_ms(self) -> int: ...


_PIPELINE_OUTCOMES = ("scored", "aggregated", "too_late", "deletions", "unmatched")


class RedisStateCollector(Collector):
    """Per-topic mood gauges and the whole pipeline's state, read from Redis at each scrape.

    ``topics`` gives the tracked topic names (the topic catalog: config file + registry); only
    those get series, sorted and capped at ``max_topics`` (``mood_monitor_topics_dropped`` says
    how many were left out), so a label can never grow without bound. If Redis cannot be read,
    ``mood_monitor_redis_up`` is 0 and no other state is reported (the scrape still answers)."""

    def __init__(
        self,
        reader: StateReader,
        topics: Callable[[], Iterable[str]] | None = None,
        *,
        max_topics: int = DEFAULT_MAX_TOPICS,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.reader = reader
        self.topics = topics
        self.max_topics = max_topics
        self.clock_ms = clock_ms

    def describe(self) -> list[Metric]:
        return []  # collected lazily: never read Redis at registration

    def collect(self) -> Iterator[Metric]:
        t0 = time.monotonic()
        up = GaugeMetricFamily(f"{NS}_redis_up", "1 when the last scrape could read Redis")
        try:
            families = list(self._families())
            up.add_metric([], 1)
        except TransientError as exc:
            log.warning("metrics scrape: Redis unreadable: %s", exc)
            families = []
            up.add_metric([], 0)
        yield from families
        yield up
        took = GaugeMetricFamily(f"{NS}_exporter_scrape_seconds", "Time the last scrape spent reading Redis")
        took.add_metric([], time.monotonic() - t0)
        yield took

    def _names(self) -> tuple[list[str], int]:
        names = sorted(set(self.topics() if self.topics is not None else self.reader.topics()))
        return names[: self.max_topics], max(0, len(names) - self.max_topics)

    def _families(self) -> Iterator[Metric]:
        now = self.clock_ms()
        names, dropped = self._names()
        tracked = GaugeMetricFamily(f"{NS}_topics_exported", "Topics with mood series in this scrape")
        tracked.add_metric([], len(names))
        yield tracked
        left = GaugeMetricFamily(
            f"{NS}_topics_dropped", "Tracked topics left out of the mood series (over metrics.max_topics)"
        )
        left.add_metric([], dropped)
        yield left
        yield from self._mood(names, now)
        yield from self._pipeline(now)

    def _mood(self, names: Sequence[str], now: int) -> Iterator[Metric]:
        tw = ["topic", "window"]
        posts = GaugeMetricFamily(f"{NS}_topic_posts", "Posts counted in the window", labels=tw)
        sent = GaugeMetricFamily(
            f"{NS}_topic_sentiment_ratio",
            "Share of the window's definite posts (negative + neutral + positive) with the sentiment",
            labels=[*tw, "sentiment"],
        )
        score = GaugeMetricFamily(
            f"{NS}_topic_score_mean", "Mean sentiment score, P(positive) - P(negative)", labels=tw
        )
        emo = GaugeMetricFamily(
            f"{NS}_topic_emotion_ratio",
            "Share of the window's posts with the emotion",
            labels=[*tw, "emotion"],
        )
        unc = GaugeMetricFamily(
            f"{NS}_topic_uncertain_ratio", "Share of the window's posts labelled uncertain", labels=tw
        )
        for topic in names:
            for window, span in WINDOWS_MS.items():
                # the current, still-filling minute included (as `mood-monitor mood` does)
                b = self.reader.read_window(topic, now - span, now + 60_000)
                lab = [topic, window]
                posts.add_metric(lab, b.n)
                score.add_metric(lab, b.mean_score)
                unc.add_metric(lab, b.uncertain / b.n if b.n else 0.0)
                for s in SENTIMENTS:
                    sent.add_metric([*lab, s], b.share(s))
                for e in EMOTIONS:
                    emo.add_metric([*lab, e], b.emotions.get(e, 0) / b.n if b.n else 0.0)
        yield from (posts, sent, score, emo, unc)

    def _pipeline(self, now: int) -> Iterator[Metric]:
        stats = self.reader.stats("worker")
        recs = CounterMetricFamily(
            f"{NS}_pipeline_records", "Records committed by all workers (Redis counters)"
        )
        recs.add_metric([], stats.get("records", 0))
        yield recs
        posts = CounterMetricFamily(
            f"{NS}_pipeline_posts", "Posts by outcome, all workers (Redis counters)", labels=["outcome"]
        )
        for outcome in _PIPELINE_OUTCOMES:
            posts.add_metric([outcome], stats.get(outcome, 0))
        yield posts
        dlq = CounterMetricFamily(
            f"{NS}_pipeline_dlq", "Records parked in the DLQ by all workers, by reason", labels=["reason"]
        )
        for k, v in sorted(stats.items()):
            if k.startswith("dlq:"):
                dlq.add_metric([k.removeprefix("dlq:")], v)
        yield dlq
        sealed = self.reader.sealed_until_ms()
        lag = GaugeMetricFamily(
            f"{NS}_sealed_lag_seconds", "How far the sealed-minute watermark is behind now (alerting's view)"
        )
        lag.add_metric([], (now - sealed) / 1000 if sealed else 0.0)
        yield lag
        beats = GaugeMetricFamily(
            f"{NS}_heartbeat_age_seconds",
            "Age of each live process's heartbeat (gone when its TTL expires)",
            labels=["process"],
        )
        for proc, body in sorted(self.reader.health().items()):
            ts = body.get("ts_ms")
            if isinstance(ts, int | float):
                beats.add_metric([proc], max(0.0, (now - ts) / 1000))
        yield beats


def serve_registry(
    reader: StateReader,
    topics: Callable[[], Iterable[str]] | None = None,
    *,
    max_topics: int = DEFAULT_MAX_TOPICS,
    clock_ms: Callable[[], int] | None = None,
) -> CollectorRegistry:
    """The registry ``mood-monitor serve`` renders: this process's `REGISTRY` (HTTP, SSE,
    process_*) plus the Redis state (`RedisStateCollector`)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Nested(REGISTRY))
    kw: dict[str, Any] = {"max_topics": max_topics}
    if clock_ms is not None:
        kw["clock_ms"] = clock_ms
    reg.register(RedisStateCollector(reader, topics, **kw))
    return reg


class _Nested(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


# ---- the per-process endpoint --------------------------------------------------------------------
def serve_metrics(port: int, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY) -> int:
    """Serve ``registry`` on http://host:port/metrics from a daemon thread; returns the bound port
    (``port`` 0 means none: nothing is served and 0 is returned). A port that cannot be bound is
    a `ConfigError` naming ``metrics.port``."""
    if port <= 0:
        return 0
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        log.warning(
            "metrics served on %s:%d, beyond loopback: keep that port on a private network", host, port
        )
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(
            "metrics", "port", f"cannot serve metrics on {host}:{port}: {exc.strerror}"
        ) from exc
    bound = int(server.server_port)
    log.info("metrics on http://%s:%d/metrics", host, bound)
    return bound
