"""`mood-monitor demo`: the whole pipeline on the local real stack, for a bounded time.

It starts (or reuses) the local Kafka + Redis stack, writes a synthetic stream in which one
topic turns sharply negative halfway through, and runs the real processes as subprocesses:
the JSONL replay connector, an inference worker, the alerter and the dashboard
(`mood-monitor serve`, its address printed at the start), with a local HTTP sink standing in
for Slack. While it runs it shows a live per-topic table; at the end it stops the
processes gracefully (SIGTERM), prints the Slack message the alerter sent, and, as its last
line, one JSON object with the figures, each counted from a different place:

    posts_produced    lines the connector produced to Kafka
    dlq               distinct records in the dead-letter topic
    posts_scored      distinct records in posts.scored
    posts_aggregated  posts counted in the Redis minute buckets
    alerts_sent       messages the webhook sink received
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import yaml

from devstack.synthetic import DEMO_TOPICS, demo_topics_config, stream
from devstack.webhook_sink import WebhookSink
from monitor.transport import KafkaSettings

BAD_LINES = [
    b'{"id": "bad-1", "text": ',  # malformed JSON
    b'{"v": 7, "id": "bad-2", "text": "from the future"}',  # unknown schema version
    b'{"id": "bad-3", "source": "demo"}',  # missing text
    b"\xff\xfe not utf-8 at all",  # not UTF-8
]


def _write_stream(path: Path, n: int, run: str) -> int:
    bad_every = max(1, n // len(BAD_LINES))
    written = 0
    with path.open("wb") as fh:
        for i, post in enumerate(stream(n, id_prefix=f"demo-{run}")):
            post.pop("intended")
            post.pop("topic")
            fh.write(orjson.dumps(post) + b"\n")
            written += 1
            if i % bad_every == bad_every // 2 and (i // bad_every) < len(BAD_LINES):
                fh.write(BAD_LINES[i // bad_every] + b"\n")
                written += 1
    return written


def _config(base: Any, run: str, model: dict[str, Any], lateness_s: int) -> dict[str, Any]:
    return {
        "kafka": {
            "bootstrap_servers": base.kafka.bootstrap_servers,
            "raw_topic": f"demo-{run}.posts.raw",
            "scored_topic": f"demo-{run}.posts.scored",
            "dlq_topic": f"demo-{run}.posts.dlq",
            "partitions": 2,
            "group_id": f"demo-{run}",
        },
        "redis": {"url": base.redis.url.get_secret_value(), "prefix": f"demo-{run}"},
        "worker": {"max_batch": 32, "max_wait_ms": 200, "lateness_s": lateness_s},
        "model": model,
        "topics": demo_topics_config(),
        "alerts": {
            "interval_s": 5,
            "rules": [
                {
                    "name": "negative-share",
                    "kind": "threshold",
                    "metric": "negative_share",
                    "above": 0.5,
                    "window_min": 1,
                    "min_posts": 25,
                    "cooldown_s": 600,
                    "sealed_only": False,
                }
            ],
            "destinations": [{"name": "demo-slack", "kind": "slack", "url_env": "MOOD_DEMO_WEBHOOK_URL"}],
        },
    }


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "monitor", *args]


def _stop(proc: subprocess.Popen[bytes], name: str, timeout_s: float = 60.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            print(f"demo: {name} did not stop in {timeout_s:.0f}s; killing it", file=sys.stderr)
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def _distinct_origins(kafka: KafkaSettings, topic: str, field: str) -> int:
    from monitor.kafka import read_topic

    seen = set()
    for r in read_topic(kafka, topic, timeout_s=10):
        try:
            seen.add(orjson.loads(r.value or b"{}").get(field) or f"{r.partition}:{r.offset}")
        except orjson.JSONDecodeError:
            seen.add(f"{r.partition}:{r.offset}")
    return len(seen)


def _free_port(preferred: int) -> int:
    """``preferred`` when it is free on loopback, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 - our own loopback URL
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def _start_dashboard(cfg_path: Path, port: int, env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    """`mood-monitor serve` on the demo's Redis prefix; says where once it answers."""
    proc = subprocess.Popen(
        _cli("serve", "--config", str(cfg_path), "--port", str(port)),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    if _wait_http(url + "healthz", proc, timeout_s=30):
        print(f"demo: dashboard at {url}?topic=phonex&range=15m (it updates live while the demo runs)")
    else:
        print(f"demo: the dashboard did not start; see {cfg_path.parent}/dashboard.log")
    return proc


def screenshot(url: str, path: Path) -> None:
    """A full-page PNG of the dashboard at ``url`` from Debian's chromium (Playwright, no browser
    download), once its live stream is connected."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    path.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url)
        page.wait_for_selector('[data-testid="live-status"][data-state="live"]', timeout=20_000)
        page.wait_for_timeout(2_000)  # the first live tick and the charts' redraw
        page.screenshot(path=str(path), full_page=True)
        browser.close()


def run_demo(
    duration_s: float = 120.0,
    rate_per_s: float | None = None,
    config: str | None = None,
    screenshot_to: str | None = None,
) -> int:
    from devstack import stack
    from monitor.app import build_corrector, build_store, render_table
    from monitor.settings import load_settings

    base = load_settings(config)
    if stack.cli(["up"]) != 0:
        return 4
    run = time.strftime("%Y%m%d%H%M%S")
    workdir = Path(".demo") / run
    workdir.mkdir(parents=True, exist_ok=True)
    model = base.model.model_dump()
    cfg = _config(base, run, model, lateness_s=10)
    dash_port = _free_port(base.dashboard.port)
    dash_url = f"http://127.0.0.1:{dash_port}/"
    # the Slack message's link opens the dashboard on the topic and the episode
    cfg["alerts"]["dashboard_url"] = dash_url + "?topic={topic}&from={from_ms}&to={to_ms}"
    cfg_path = workdir / "monitor.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    settings = load_settings(cfg_path)

    rate = rate_per_s or 12.0
    feed_s = max(10.0, duration_s * 0.75)
    n = int(rate * feed_s)
    jsonl = workdir / "stream.jsonl"
    lines = _write_stream(jsonl, n, run)
    print(
        f"demo: run {run}: {n} synthetic posts (+{lines - n} bad records) over {feed_s:.0f}s "
        f"on topics {', '.join(t.name for t in DEMO_TOPICS)}; 'phonex' turns negative halfway"
    )
    print(f"demo: config {cfg_path}; logs in {workdir}/")

    env = {**os.environ, "MOOD_LOG_LEVEL": "INFO"}
    with WebhookSink() as sink:
        env["MOOD_DEMO_WEBHOOK_URL"] = sink.url("/services/demo")
        names = ("worker", "alerter", "connector", "dashboard")
        logs = {name: (workdir / f"{name}.log").open("wb") for name in names}
        dashboard = _start_dashboard(cfg_path, dash_port, env, logs["dashboard"])
        worker = subprocess.Popen(
            _cli("worker", "--config", str(cfg_path)),
            env=env,
            stdout=logs["worker"],
            stderr=subprocess.STDOUT,
        )
        alerter = subprocess.Popen(
            _cli("alerts", "--config", str(cfg_path)),
            env=env,
            stdout=logs["alerter"],
            stderr=subprocess.STDOUT,
        )
        # the stream starts once the worker has loaded its model and joined its group: posts
        # older than the demo's 10 s lateness when scored would not be counted (a cold first
        # start, with torch not yet in the page cache, took 25 s)
        store = build_store(settings)
        corrector = build_corrector(settings)
        beat = _wait_assigned(store, worker, timeout_s=180)
        if beat is None:
            print(f"demo: the worker did not join its group; see {workdir}/worker.log")
            _stop(worker, "worker")
            _stop(alerter, "alerter")
            _stop(dashboard, "dashboard")
            for fh in logs.values():
                fh.close()
            return 1
        connector = subprocess.Popen(
            _cli("replay", str(jsonl), "--config", str(cfg_path), "--now", "--rate", str(rate)),
            env=env,
            stdout=subprocess.PIPE,
            stderr=logs["connector"],
        )
        t0 = time.time()
        started_ms = int(t0 * 1000) - 60_000
        last_table = 0.0
        produced = None
        try:
            while time.time() - t0 < duration_s:
                time.sleep(0.5)
                if connector.poll() is not None and produced is None:
                    out = (connector.stdout.read() if connector.stdout else b"").strip().splitlines()
                    produced = orjson.loads(out[-1])["produced"] if out else 0
                if time.time() - last_table >= 5:
                    last_table = time.time()
                    _print_table(store, started_ms, time.time() - t0, render_table, sink, corrector)
                if screenshot_to and time.time() - t0 >= duration_s * 0.8 and dashboard.poll() is None:
                    screenshot(f"{dash_url}?topic=phonex&range=15m", Path(screenshot_to))
                    print(f"demo: screenshot of the dashboard in {screenshot_to}")
                    screenshot_to = None
                for name, proc in (("worker", worker), ("alerter", alerter)):
                    if proc.poll() is not None:
                        print(f"demo: {name} exited early with {proc.returncode}; see {workdir}/{name}.log")
                        return 1
        finally:
            rc_conn = _stop(connector, "connector")
            if produced is None:
                out = (connector.stdout.read() if connector.stdout else b"").strip().splitlines()
                produced = orjson.loads(out[-1])["produced"] if out else 0
            # give the worker the time to drain what was produced, then stop it gracefully
            _drain(store, settings, produced, timeout_s=60)
            rc_worker = _stop(worker, "worker")
            rc_alerter = _stop(alerter, "alerter")
            _stop(dashboard, "dashboard")
            for fh in logs.values():
                fh.close()
        _print_table(store, started_ms, time.time() - t0, render_table, sink, corrector)
        messages = list(sink.received)
    dlq = _distinct_origins(settings.kafka, settings.kafka.dlq_topic, "origin")
    scored = _distinct_origins(settings.kafka, settings.kafka.scored_topic, "origin")
    aggregated = _aggregated(store, started_ms)
    for m in messages[:3]:
        print("demo: Slack message received by the local webhook:")
        print(orjson.dumps(m.json(), option=orjson.OPT_INDENT_2).decode())
    if not messages:
        print("demo: no alert was sent (is the run long enough for the turn to show? try DURATION=120)")
    result = {
        "posts_produced": produced,
        "posts_scored": scored,
        "posts_aggregated": aggregated,
        "dlq": dlq,
        "alerts_sent": len(messages),
        "model": _model_name(beat),
        "exit_codes": {"connector": rc_conn, "worker": rc_worker, "alerter": rc_alerter},
        "run": run,
    }
    print(orjson.dumps(result).decode())
    ok = scored == aggregated == produced - dlq and rc_worker == 0
    return 0 if ok else 1


def _wait_assigned(store: Any, proc: subprocess.Popen[bytes], timeout_s: float) -> dict[str, Any] | None:
    """The worker's heartbeat once it says it holds partitions; None if it exits or times out."""
    from monitor.app import process_name
    from monitor.worker import holds_partitions

    name = process_name("worker", proc.pid)
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        beat = store.health().get(name)
        if holds_partitions(beat):
            return dict(beat)
        time.sleep(0.2)
    return None


def _aggregated(store: Any, since_ms: int) -> int:
    now = int(time.time() * 1000)
    return sum(store.read_window(t, since_ms, now + 120_000).n for t in store.topics())


def _drain(store: Any, settings: Any, produced: int, timeout_s: float) -> None:
    from monitor.kafka import read_topic

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        stats = store.stats("worker")
        if stats.get("records", 0) >= produced:
            return
        time.sleep(1.0)
    print(
        f"demo: worker had not drained after {timeout_s:.0f}s "
        f"({len(read_topic(settings.kafka, settings.kafka.raw_topic, timeout_s=5))} raw)"
    )


def _model_name(heartbeat: dict[str, Any]) -> str:
    """The worker's model, from its heartbeat."""
    name = str(heartbeat.get("model", "default"))
    return name if heartbeat.get("trained", True) else f"{name} (UNTRAINED: labels are random)"


def _print_table(
    store: Any, since_ms: int, elapsed_s: float, render: Any, sink: WebhookSink, corrector: Any = None
) -> None:
    """The last minute's mood per topic (the same row code as `mood-monitor mood`, corrected
    shares included) beside the posts counted since the demo started."""
    from monitor.web.readmodel import mood_row

    now = int(time.time() * 1000)
    rows = []
    for t in store.topics():
        row = mood_row(t, "1m", store.read_window(t, now - 60_000, now + 60_000), corrector)
        row["posts"] = store.read_window(t, since_ms, now + 60_000).n
        rows.append(row)
    print(f"\n[{elapsed_s:5.0f}s] posts so far, mood over the last minute; alerts sent: {len(sink.received)}")
    print(render(rows), flush=True)
