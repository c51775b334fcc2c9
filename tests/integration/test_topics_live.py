"""Topics changed while a worker runs, on the real Kafka and Redis: `mood-monitor topics add`
counts a topic's posts from the next batch on, `topics remove` stops counting, a SIGHUP re-reads
the config file; no post is lost or counted twice. The worker's own /metrics (parsed with
Prometheus' parser) says which registry version it applies, and counts what it did."""

from __future__ import annotations

import re
import signal
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor.settings import load_settings
from monitor.store.buckets import RedisAggregateStore
from tests.buckets import bucketed

from .pipeline_helpers import cli, popen, wait_for, write_config, write_jsonl

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:  # noqa: S310
            text = resp.read().decode()
    except OSError:
        return {}
    return {f.name: f for f in text_string_to_metric_families(text)}


def _gauge(port: int, name: str) -> float:
    """The sum of the samples called ``name`` (a gauge, or a counter's ``_total``); -1 if none."""
    found = [s.value for f in _scrape(port).values() for s in f.samples if s.name == name]
    return sum(found) if found else -1.0


class Run:
    def __init__(self, tmp_path: Path, cfg: Path, port: int) -> None:
        self.tmp_path, self.cfg, self.port = tmp_path, cfg, port
        s = load_settings(cfg)
        self.store = RedisAggregateStore(s.redis.url.get_secret_value(), s.redis.prefix)
        self.sent = 0

    def send(self, n: int, text: str, tag: str) -> None:
        posts = [{"id": f"{tag}-{i}", "text": f"{text} #{i}"} for i in range(n)]
        cli(
            "replay",
            str(write_jsonl(self.tmp_path / f"{tag}.jsonl", posts)),
            "--config",
            str(self.cfg),
            "--now",
        )
        self.sent += n
        assert wait_for(lambda: self.store.stats("worker").get("records", 0) >= self.sent, 90), (
            self.store.stats("worker"),
            self.sent,
        )

    def topics(self, *args: str) -> int:
        out = cli("topics", *args, "--config", str(self.cfg)).stdout
        m = re.search(r"registry version (\d+)", out)
        assert m, out
        return int(m.group(1))

    def applied(self, version: int) -> None:
        """Wait until the worker says (its /metrics) that it applies registry ``version``."""
        assert wait_for(lambda: _gauge(self.port, "mood_monitor_topics_version") >= version, 60)

    def counts(self) -> dict[str, int]:
        now = int(time.time() * 1000)
        return {t: self.store.read_window(t, now - 3_600_000, now + 120_000).n for t in self.store.topics()}


def test_topics_added_removed_and_reloaded_while_a_worker_runs(tmp_path, kafka_bootstrap, redis_url, unique):
    port = _free_port()
    cfg = write_config(
        tmp_path, kafka_bootstrap, redis_url, unique, topics=[{"name": "alpha", "keywords": ["alpha"]}]
    )
    doc = yaml.safe_load(cfg.read_text())
    doc["topic_registry"] = {"poll_s": 0.5}
    cfg.write_text(yaml.safe_dump(doc))
    run = Run(tmp_path, cfg, port)
    worker = popen("worker", "--config", str(cfg), "--metrics-port", str(port), log=tmp_path / "worker.log")
    try:
        assert wait_for(lambda: _scrape(port) != {}, 90), (tmp_path / "worker.log").read_text()[-3000:]
        run.send(20, "alpha and beta", "p1")  # beta is not a topic yet
        assert run.counts() == {"alpha": 20}

        version = run.topics("add", "beta", "--keyword", "beta")
        run.applied(version)
        run.send(15, "alpha and beta", "p2")
        assert run.counts() == {"alpha": 35, "beta": 15}  # beta from its first batch on, alpha once each

        version = run.topics("remove", "alpha")  # a topic of the file: the registry wins
        run.applied(version)
        run.send(10, "alpha and beta", "p3")
        assert run.counts() == {"alpha": 35, "beta": 25}

        # the file changes: gamma added, alpha still removed by the registry; SIGHUP reloads it
        doc["topics"].append({"name": "gamma", "hashtags": ["gamma"]})
        cfg.write_text(yaml.safe_dump(doc))
        worker.send_signal(signal.SIGHUP)
        assert wait_for(lambda: _gauge(port, "mood_monitor_topics_tracked") == 2, 60)  # beta + gamma
        run.send(5, "alpha beta #gamma", "p4")
        assert run.counts() == {"alpha": 35, "beta": 30, "gamma": 5}

        listed = cli("topics", "list", "--json", "--config", str(cfg)).stdout
        assert '"name":"beta","source":"registry"' in listed and '"name":"gamma","source":"file"' in listed
        assert '"alpha"' not in listed

        fams = _scrape(port)
        records = sum(s.value for s in fams["mood_monitor_worker_records"].samples)
        assert records == run.sent == 50
        ages = fams["mood_monitor_worker_ingest_to_aggregate_seconds"]
        count = next(s.value for s in ages.samples if s.name.endswith("_count"))
        assert count == 50  # every post matched some topic
        batches = fams["mood_monitor_worker_batch_records"]
        assert next(s.value for s in batches.samples if s.name.endswith("_sum")) == 50
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert worker.returncode == 0
    assert "topics changed" in (tmp_path / "worker.log").read_text()


def test_topics_cli_refuses_bad_input_before_writing(tmp_path, kafka_bootstrap, redis_url, unique):
    cfg = write_config(
        tmp_path, kafka_bootstrap, redis_url, unique, topics=[{"name": "alpha", "keywords": ["a"]}]
    )
    bad = cli("topics", "add", "x", "--query", "(unclosed OR", "--config", str(cfg), check=False)
    assert bad.returncode == 2 and "topic 'x'" in bad.stderr and "query" in bad.stderr
    empty = cli("topics", "add", "y", "--config", str(cfg), check=False)
    assert empty.returncode == 2 and "keywords" in empty.stderr
    missing = cli("topics", "remove", "nope", "--config", str(cfg), check=False)
    assert missing.returncode == 1 and "not tracked" in missing.stdout
    listed = cli("topics", "list", "--json", "--config", str(cfg)).stdout
    assert (
        listed.strip()
        == '{"version":0,"topics":[{"name":"alpha","source":"file","keywords":["a"],"hashtags":[],"query":null}]}'
    )
    cli("topics", "add", "alpha", "--hashtag", "alpha", "--config", str(cfg))
    shown = cli("topics", "show", "alpha", "--config", str(cfg)).stdout
    assert '"source": "registry"' in shown and '"hashtags": [\n    "alpha"\n  ]' in shown
    cli("topics", "forget", "alpha", "--config", str(cfg))
    assert '"source": "file"' in cli("topics", "show", "alpha", "--config", str(cfg)).stdout


def test_the_alerter_evaluates_only_tracked_topics_and_picks_up_a_change(redis_url, unique):
    from monitor.alerts.alerter import Alerter
    from monitor.alerts.settings import AlertSettings
    from monitor.catalog import TopicCatalog
    from monitor.settings import TopicSettings
    from monitor.store.alerts import RedisAlertLedger, RedisAlertLog
    from monitor.store.buckets import PartitionWrite
    from monitor.store.topics import RedisTopicRegistry

    store = RedisAggregateStore(redis_url, f"al-{unique}")
    now = int(time.time() * 1000)
    m = now - now % 60_000
    store.apply(
        {
            t: [PartitionWrite("p:0", 0, 0, bucketed([(m, {"n": 40, "s:negative": 30, "s:neutral": 10})]))]
            for t in ("acme", "other")
        }
    )
    rule = {"name": "neg", "above": 0.5, "window_min": 5, "min_posts": 10, "sealed_only": False}
    registry = RedisTopicRegistry(store)
    catalog = TopicCatalog([TopicSettings(name="acme", keywords=["acme"])], registry, poll_s=0.01)
    catalog.load()
    alerter = Alerter(
        AlertSettings(rules=[rule], destinations=[]), store, RedisAlertLedger(store), catalog=catalog
    )
    assert alerter.holds_lease()
    assert [a.topic for a in alerter.evaluate()] == ["acme"]  # "other" has data but is not tracked
    registry.put("other", {"keywords": ["other"]})
    time.sleep(0.05)
    assert [a.topic for a in alerter.evaluate(now + 60_000)] == ["other"]
    assert {e["topic"] for e in RedisAlertLog(store).last(10)} == {"acme", "other"}


def test_the_alerter_process_serves_its_metrics_and_reloads_its_file_on_sighup(
    tmp_path, kafka_bootstrap, redis_url, unique
):
    port = _free_port()
    cfg = write_config(
        tmp_path, kafka_bootstrap, redis_url, unique, topics=[{"name": "alpha", "keywords": ["a"]}]
    )
    doc = yaml.safe_load(cfg.read_text())
    doc["alerts"] = {"interval_s": 0.5, "destinations": []}
    doc["topic_registry"] = {"poll_s": 0.5}
    cfg.write_text(yaml.safe_dump(doc))
    alerter = popen("alerts", "--config", str(cfg), "--metrics-port", str(port), log=tmp_path / "alerter.log")
    try:
        assert wait_for(lambda: _gauge(port, "mood_monitor_alerter_evaluations_total") >= 2, 60), (
            tmp_path / "alerter.log"
        ).read_text()[-3000:]
        assert _gauge(port, "mood_monitor_alerter_lease_held") == 1
        assert _gauge(port, "mood_monitor_topics_tracked") == 1
        fams = _scrape(port)
        assert fams["mood_monitor_alerter_evaluation_seconds"].type == "histogram"
        assert "process_cpu_seconds" in fams
        doc["topics"].append({"name": "beta", "keywords": ["b"]})
        cfg.write_text(yaml.safe_dump(doc))
        alerter.send_signal(signal.SIGHUP)
        assert wait_for(lambda: _gauge(port, "mood_monitor_topics_tracked") == 2, 30)
        assert alerter.poll() is None  # SIGHUP reloads, it does not stop the process
    finally:
        alerter.send_signal(signal.SIGTERM)
        alerter.wait(timeout=60)
    assert alerter.returncode == 0
