"""A connector process serves its own /metrics on --metrics-port while it runs (the RSS connector
against a local feed, producing to the real Kafka): the posts it produced, parsed with
Prometheus' parser, equal what reached Kafka."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.kafka import read_topic
from tests.recorded import path

from .fake_http import Answer, FakeHTTP
from .pipeline_helpers import popen, wait_for, write_config

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _posts(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:  # noqa: S310
            text = resp.read().decode()
    except OSError:
        return -1.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "mood_monitor_connector_posts_total" and s.labels.get("connector") == "news":
                return float(s.value)
    return -1.0


def test_the_rss_connector_serves_its_counts(tmp_path, kafka_bootstrap, redis_url, unique):
    cfg = write_config(tmp_path, kafka_bootstrap, redis_url, unique, topics=[])
    body = path("rss/rss2_manton_2015-09-25.rss").read_bytes()
    port = _free_port()
    with FakeHTTP(lambda req: Answer(200, {"ETag": '"m1"'}, body)) as fake:
        proc = popen(
            "connectors", "run", "rss", "--config", str(cfg), "--feed", f"{fake.url}/feed.rss",
            "--instance", "news", "--poll-interval-s", "0.2", "--metrics-port", str(port),
            log=tmp_path / "rss.log",
        )  # fmt: skip
        try:
            assert wait_for(lambda: _posts(port) == 10, 60), (tmp_path / "rss.log").read_text()[-2000:]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert proc.returncode == 0
    assert len(read_topic(kafka_bootstrap, f"{unique}.raw", timeout_s=10)) == 10
