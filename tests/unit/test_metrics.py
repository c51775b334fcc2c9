"""monitor.metrics without servers: the exposition parses with Prometheus' own parser, names
follow the conventions, the mood gauges are bounded by the topic catalog and a Redis outage
is a gauge, not a failed scrape."""

from __future__ import annotations

import re
import socket
import urllib.request
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor import metrics
from monitor.aggregates import Bucket
from monitor.errors import ConfigError, StoreUnavailable

NOW = 1_800_000_000_000


class FakeReader:
    def __init__(self, buckets: dict[str, Bucket], *, down: bool = False) -> None:
        self.buckets = buckets
        self.down = down
        self.windows: list[tuple[str, int, int]] = []

    def topics(self) -> list[str]:
        return sorted(self.buckets)

    def read_window(self, topic: str, start_ms: int, end_ms: int) -> Bucket:
        if self.down:
            raise StoreUnavailable("redis: ConnectionError: refused")
        self.windows.append((topic, start_ms, end_ms))
        return self.buckets.get(topic, Bucket(start_ms))

    def stats(self, name: str) -> dict[str, int]:
        assert name == "worker"
        return {"records": 12, "scored": 10, "aggregated": 9, "dlq:decode": 2}

    def health(self) -> dict[str, dict[str, Any]]:
        return {"worker-h-1": {"ts_ms": NOW - 4_000}, "alerter-h-2": {"ts_ms": NOW - 1_000}}

    def sealed_until_ms(self) -> int:
        return NOW - 180_000


def _bucket(n: int, neg: int, pos: int, neu: int, joy: int) -> Bucket:
    return Bucket.from_hash(
        0,
        {
            "n": str(n),
            "s:negative": str(neg),
            "s:positive": str(pos),
            "s:neutral": str(neu),
            "s:uncertain": str(n - neg - pos - neu),
            "e:joy": str(joy),
            "score_sum": str(0.5 * n),
        },
    )


def _parse(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(fams: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    for s in fams[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise AssertionError(f"no {sample} {labels}")


def test_serve_registry_parses_and_reports_mood_and_pipeline():
    reader = FakeReader({"coffee": _bucket(10, 2, 5, 2, 4), "metro": _bucket(0, 0, 0, 0, 0)})
    reg = metrics.serve_registry(reader, topics=lambda: ["coffee", "metro"], clock_ms=lambda: NOW)
    body, ctype = metrics.render(reg)
    assert ctype.startswith("text/plain")
    fams = _parse(body.decode())
    assert (
        _value(fams, "mood_monitor_topic_posts", "mood_monitor_topic_posts", topic="coffee", window="5m")
        == 10
    )
    neg = _value(
        fams,
        "mood_monitor_topic_sentiment_ratio",
        "mood_monitor_topic_sentiment_ratio",
        topic="coffee",
        window="1h",
        sentiment="negative",
    )
    assert neg == pytest.approx(2 / 9)  # of the definite posts
    assert _value(
        fams,
        "mood_monitor_topic_emotion_ratio",
        "mood_monitor_topic_emotion_ratio",
        topic="coffee",
        emotion="joy",
    ) == pytest.approx(0.4)
    assert _value(
        fams, "mood_monitor_topic_uncertain_ratio", "mood_monitor_topic_uncertain_ratio", topic="coffee"
    ) == (pytest.approx(0.1))
    assert (
        _value(fams, "mood_monitor_topic_posts", "mood_monitor_topic_posts", topic="metro", window="1h") == 0
    )
    # counters parse as counters, with _total samples
    assert fams["mood_monitor_pipeline_posts"].type == "counter"
    assert (
        _value(fams, "mood_monitor_pipeline_posts", "mood_monitor_pipeline_posts_total", outcome="scored")
        == 10
    )
    assert _value(fams, "mood_monitor_pipeline_dlq", "mood_monitor_pipeline_dlq_total", reason="decode") == 2
    assert _value(fams, "mood_monitor_sealed_lag_seconds", "mood_monitor_sealed_lag_seconds") == 180
    assert _value(
        fams, "mood_monitor_heartbeat_age_seconds", "mood_monitor_heartbeat_age_seconds", process="worker-h-1"
    ) == pytest.approx(4.0)
    assert _value(fams, "mood_monitor_redis_up", "mood_monitor_redis_up") == 1
    # the process's own metrics come along: process_* and the HTTP families for serve
    assert "process_resident_memory_bytes" in fams
    assert "mood_monitor_http_requests" in fams
    # the windows read: now - span to the end of the current minute
    assert ("coffee", NOW - 300_000, NOW + 60_000) in reader.windows


def test_topic_labels_are_capped_and_come_from_the_catalog():
    buckets = {f"t{i:03d}": _bucket(1, 1, 0, 0, 0) for i in range(20)}
    reader = FakeReader(buckets)
    # the catalog names 12 topics; Redis knows 20 (old ones): only the catalog's, capped at 5
    reg = metrics.serve_registry(reader, topics=lambda: [f"t{i:03d}" for i in range(12)], max_topics=5)
    fams = _parse(metrics.render(reg)[0].decode())
    topics = {s.labels["topic"] for s in fams["mood_monitor_topic_posts"].samples}
    assert topics == {f"t{i:03d}" for i in range(5)}
    assert _value(fams, "mood_monitor_topics_dropped", "mood_monitor_topics_dropped") == 7


def test_redis_down_is_a_gauge_not_a_failed_scrape():
    reader = FakeReader({"coffee": _bucket(3, 1, 1, 1, 0)}, down=True)
    fams = _parse(metrics.render(metrics.serve_registry(reader))[0].decode())
    assert _value(fams, "mood_monitor_redis_up", "mood_monitor_redis_up") == 0
    assert "mood_monitor_topic_posts" not in fams


def test_names_follow_the_conventions():
    """One prefix, counters end in _total, no unit-less time, no camelCase."""
    reader = FakeReader({"coffee": _bucket(3, 1, 1, 1, 0)})
    metrics.observe_batch(
        records=3,
        tokens=96,
        outcomes={"scored": 3},
        dlq={},
        deletions=0,
        model_s=0.1,
        write_s=0.01,
        ingest_ages_s=[0.5],
    )
    text = metrics.render(metrics.serve_registry(reader))[0].decode()
    fams = list(text_string_to_metric_families(text))
    ours = [f for f in fams if f.name.startswith("mood_monitor_")]
    assert len(ours) > 25
    for f in fams:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", f.name), f.name
        if f.type == "counter":
            assert all(s.name == f.name + "_total" for s in f.samples), f.name
        words = set(f.name.split("_"))
        if words & {
            "latency",
            "duration",
            "time",
            "lag",
            "age",
        }:  # a time: in seconds (or a count of records)
            assert f.name.endswith(("_seconds", "_records")), f.name
    others = {f.name.split("_")[0] for f in fams} - {"mood", "process", "python"}
    assert not others, others


def test_batch_observations_land_in_the_histograms():
    fams0 = _parse(metrics.render()[0].decode())
    before = _value(fams0, "mood_monitor_worker_batch_records", "mood_monitor_worker_batch_records_count")
    metrics.observe_batch(
        records=40,
        tokens=1000,
        outcomes={"scored": 38, "aggregated": 30},
        dlq={"decode": 2},
        deletions=1,
        model_s=0.2,
        write_s=0.02,
        ingest_ages_s=[1.0, 2.0],
    )
    fams = _parse(metrics.render()[0].decode())
    assert (
        _value(fams, "mood_monitor_worker_batch_records", "mood_monitor_worker_batch_records_count")
        == before + 1
    )
    le64 = _value(
        fams, "mood_monitor_worker_batch_records", "mood_monitor_worker_batch_records_bucket", le="64.0"
    )
    assert le64 >= 1
    assert _value(fams, "mood_monitor_worker_dlq", "mood_monitor_worker_dlq_total", reason="decode") >= 2
    assert fams["mood_monitor_worker_ingest_to_aggregate_seconds"].type == "histogram"


def test_partition_lag_series_follow_the_assignment():
    metrics.observe_partitions([("posts.raw", 0), ("posts.raw", 1)], {"posts.raw:0": 5, "posts.raw:1": 0})
    metrics.observe_partitions([("posts.raw", 1)], {"posts.raw:1": 7})
    fams = _parse(metrics.render()[0].decode())
    lag = {s.labels["partition"]: s.value for s in fams["mood_monitor_worker_consumer_lag_records"].samples}
    assert lag == {"posts.raw:1": 7}
    assert (
        _value(fams, "mood_monitor_worker_partitions_assigned", "mood_monitor_worker_partitions_assigned")
        == 1
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_metrics_serves_the_registry_over_http():
    assert metrics.serve_metrics(0) == 0  # off: nothing bound
    port = metrics.serve_metrics(_free_port())
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:  # noqa: S310 - loopback
        fams = _parse(resp.read().decode())
    assert "mood_monitor_worker_batches" in fams
    with pytest.raises(ConfigError, match="metrics: port"):
        metrics.serve_metrics(port)  # taken


def test_the_asgi_app_serves_the_serve_registry():
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    reader = FakeReader({"coffee": _bucket(4, 1, 2, 1, 0)})
    app = Starlette(routes=[Mount("/metrics", metrics.asgi_app(metrics.serve_registry(reader)))])
    with TestClient(app) as client:
        resp = client.get("/metrics/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    fams = _parse(resp.text)
    assert (
        _value(fams, "mood_monitor_topic_posts", "mood_monitor_topic_posts", topic="coffee", window="5m") == 4
    )


def test_the_alerter_and_connector_collectors_report_their_running_totals():
    from prometheus_client import CollectorRegistry

    alerter = SimpleNamespace(
        stats={"evaluations": 7, "fired": 2, "renotified": 1, "resolved": 1, "duplicates_suppressed": 3},
        dispatcher=SimpleNamespace(stats={"delivered": 4, "retries": 2}),
    )
    conn = SimpleNamespace(
        stats=SimpleNamespace(produced=10, deletions=1, bad=2, errors=3),
        connected=True,
        lag_ms=2500,
        reconnects=1,
    )
    reg = CollectorRegistry()
    reg.register(metrics.AlerterCollector(alerter))
    reg.register(metrics.ConnectorCollector(conn, "rss-news"))
    fams = _parse(metrics.render(reg)[0].decode())
    assert (
        _value(fams, "mood_monitor_alerter_notices", "mood_monitor_alerter_notices_total", action="fire") == 2
    )
    assert (
        _value(
            fams,
            "mood_monitor_alerter_deliveries",
            "mood_monitor_alerter_deliveries_total",
            outcome="retries",
        )
        == 2
    )
    assert _value(fams, "mood_monitor_alerter_evaluations", "mood_monitor_alerter_evaluations_total") == 7
    assert (
        _value(
            fams, "mood_monitor_connector_posts", "mood_monitor_connector_posts_total", connector="rss-news"
        )
        == 10
    )
    assert _value(fams, "mood_monitor_connector_lag_seconds", "mood_monitor_connector_lag_seconds") == 2.5
    assert _value(fams, "mood_monitor_connector_connected", "mood_monitor_connector_connected") == 1
    alerter.stats["fired"] = 3  # read at scrape time
    fams = _parse(metrics.render(reg)[0].decode())
    assert (
        _value(fams, "mood_monitor_alerter_notices", "mood_monitor_alerter_notices_total", action="fire") == 3
    )
