"""`mood-monitor`: the command line. Commands parse their arguments, build what they run
through `monitor.app` (the composition root) and map errors to exit codes (`monitor.errors.EXIT_CODES`).
Nothing imports this module but the entry point.

    mood-monitor stack up|status|down|install|logs   the local Kafka + Redis stack
    mood-monitor worker                              the inference consumer (scale: run N)
    mood-monitor replay FILE [--rate N] [--now]      JSONL replay connector
    mood-monitor mood TOPIC [--window 15m]           live figures of a topic from Redis
    mood-monitor check [--process NAME]              exit 1 when a process heartbeat is stale
    mood-monitor dlq                                 what is in the dead-letter topic and why
    mood-monitor serve [--host H] [--port P]         the live dashboard, its read API and stream
    mood-monitor demo [--duration S]                 the whole pipeline, locally, bounded
    (+ the subcommands registered by models, connectors and alerts)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from connectors import cli as connectors_cli
from monitor import backfill, catalog_cli, rebuild
from monitor.aggregates import MINUTE_MS, Bucket, minute_start
from monitor.alerts.backtest import Transition, contiguous, read_jsonl, simulate
from monitor.alerts.settings import AlertSettings
from monitor.app import (
    build_alerter,
    build_corrector,
    build_store,
    build_worker,
    ensure_topics,
    mood_rows,
    parse_window,
    render_table,
    setup_logging,
)
from monitor.errors import ConfigError, MoodMonitorError, TransientError, exit_code
from monitor.model import cli as model_cli
from monitor.settings import Settings, load_settings

log = logging.getLogger(__name__)

# subcommands contributed by other packages: each has add_parsers(subparsers)
_PLUGINS = (model_cli, connectors_cli, rebuild, backfill, catalog_cli)


# ---- commands -------------------------------------------------------------------------------
def cmd_stack(args: argparse.Namespace) -> int:
    return int(_devstack("stack").cli(args.stack_args))


def _serve_metrics(s: Settings, port: int | None) -> None:
    """This process's Prometheus /metrics on metrics.host, if a port is set (0: off)."""
    from monitor import metrics

    metrics.serve_metrics(s.metrics.port if port is None else port, s.metrics.host)


def cmd_worker(args: argparse.Namespace) -> int:
    from monitor.model.memory import limit_growth

    limit_growth()  # before torch starts: bounded oneDNN primitive cache, fewer malloc arenas
    s = load_settings(args.config)
    if s.worker.host_processes > 1:
        from monitor.hosts import run_worker_hosts

        return run_worker_hosts(
            s,
            config_path=args.config,
            max_batches=args.max_batches,
            idle_timeout_s=args.idle_timeout_s,
            metrics_port=args.metrics_port,
        )
    worker = build_worker(s, config_path=args.config)
    _serve_metrics(s, args.metrics_port)
    return int(
        worker.run(max_batches=args.max_batches, idle_timeout_s=args.idle_timeout_s, install_signals=True)
    )


def cmd_replay(args: argparse.Namespace) -> int:
    from connectors.replay import ReplayConnector
    from monitor.kafka import post_producer

    s = load_settings(args.config)
    ensure_topics(s)
    if not os.path.exists(args.file):
        raise ConfigError(args.file, "(file)", "not found")
    conn = ReplayConnector(
        post_producer(s.kafka, s.kafka.raw_topic),
        args.file,
        rate_per_s=args.rate,
        now=args.now,
        progress=args.progress,
        loop=args.loop,
    )
    conn.install_signals()
    rc = conn.run(max_items=args.max)
    print(orjson.dumps({"produced": conn.stats.produced, "bad_lines": conn.stats.bad}).decode())
    return rc


def cmd_mood(args: argparse.Namespace) -> int:
    s = load_settings(args.config)
    store = build_store(s)
    parse_window(args.window)  # a bad window is a config error before Redis is read
    corrector = build_corrector(s)  # a bad calibration file is a config error before Redis is read
    rows = mood_rows(
        store, [args.topic] if args.topic else store.topics(), args.window, int(time.time() * 1000), corrector
    )
    if args.json:
        print(orjson.dumps(rows if not args.topic else rows[0]).decode())
    else:
        print(render_table(rows))
    return 0


def _heartbeats(s: Settings) -> dict[str, dict[str, Any]] | None:
    """Fresh heartbeats by process, or None (said on stdout) when Redis cannot be read."""
    try:
        return build_store(s).health()
    except TransientError as exc:
        print(f"unhealthy: redis unreachable: {exc}")
        return None


def cmd_check(args: argparse.Namespace) -> int:
    health = _heartbeats(load_settings(args.config))
    if health is None:
        return 2
    wanted = [p for p in health if not args.process or p.startswith(args.process)]
    if not wanted:
        print(f"unhealthy: no fresh heartbeat for {args.process or 'any process'}")
        return 1
    for p in sorted(wanted):
        age = (time.time() * 1000 - health[p]["ts_ms"]) / 1000
        print(f"ok {p} age={age:.1f}s")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """One look at the whole daemon: process heartbeats, then every connector's state."""
    health = _heartbeats(load_settings(args.config))
    if health is None:
        return 2
    now = time.time() * 1000
    print("processes (heartbeats)")
    for p in sorted(health) or ["(none)"]:
        age = f"{(now - health[p]['ts_ms']) / 1000:.1f}s ago" if p in health else ""
        print(f"  {p:<40}{age}")
    print("connectors")
    from connectors.cli import cmd_status as connectors_status

    return connectors_status(argparse.Namespace(config=args.config, json=False))


def cmd_dlq(args: argparse.Namespace) -> int:
    from monitor.kafka import read_topic

    s = load_settings(args.config)
    recs = read_topic(s.kafka, s.kafka.dlq_topic, timeout_s=args.timeout_s)
    reasons: Counter[str] = Counter()
    for r in recs:
        try:
            reasons[orjson.loads(r.value or b"{}").get("reason", "?")] += 1
        except orjson.JSONDecodeError:
            reasons["unreadable"] += 1
    print(orjson.dumps({"total": len(recs), "by_reason": dict(reasons)}).decode())
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from monitor.alerts.alerter import run_alerter

    s = load_settings(args.config)
    alerter = build_alerter(s, config_path=args.config)
    from monitor import metrics

    metrics.watch(metrics.AlerterCollector(alerter))
    _serve_metrics(s, args.metrics_port)
    return run_alerter(alerter, install_signals=True, max_ticks=args.max_ticks)


def cmd_serve(args: argparse.Namespace) -> int:
    """The dashboard: the page, the read API and the live stream, on Redis only (no model)."""
    from monitor.app import build_dashboard
    from monitor.web.server import build_server, serve

    s = load_settings(args.config)
    over = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if over:
        s = s.model_copy(update={"dashboard": s.dashboard.model_copy(update=over)})
    app, hub, host, port = build_dashboard(s)
    server = build_server(app, host, port, max_clients=s.dashboard.max_clients)
    auth = "read token required" if s.dashboard.token or s.dashboard.token_file else "no token (loopback)"
    return serve(
        server,
        install_signals=True,
        on_ready=lambda url: print(f"serve: dashboard at {url} ({auth})", flush=True),
        on_stop=hub.shutdown,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    demo = _devstack("demo")
    return int(
        demo.run_demo(
            duration_s=args.duration, rate_per_s=args.rate, config=args.config, screenshot_to=args.screenshot
        )
    )


def _backtest_range(args: argparse.Namespace, default_end_ms: int) -> tuple[int, int]:
    end = int(args.end_ms) if args.end_ms else default_end_ms
    start = int(args.start_ms) if args.start_ms else end - parse_window(args.since)
    if start >= end:
        raise ConfigError("backtest", "--start-ms", "start must be before end")
    return minute_start(start), minute_start(end)


def cmd_backtest(args: argparse.Namespace) -> int:
    s = load_settings(args.config)
    settings: AlertSettings = s.alerts
    series: dict[str, list[Bucket]] = {}
    bad = 0
    if args.jsonl:
        series, bad = read_jsonl(Path(args.jsonl))
        if not series:
            print(f"backtest: no buckets in {args.jsonl}", file=sys.stderr)
            return 1
        last = max(b.start_ms for bs in series.values() for b in bs) + MINUTE_MS
        first = min(b.start_ms for bs in series.values() for b in bs)
        start, end = _backtest_range(args, last) if (args.start_ms or args.end_ms) else (first, last)
    else:
        store = build_store(s)
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        start, end = _backtest_range(args, store.sealed_until_ms() or minute_start(now_ms))
    topics = args.topic or (sorted(series) if args.jsonl else store.topics())
    found: list[Transition] = []
    for topic in topics:
        rules = settings.rules_for(topic)
        if not rules:
            continue
        back = max(r.history_min for r in rules) * MINUTE_MS
        raw = series.get(topic, []) if args.jsonl else store.read_minutes(topic, start - back, end)
        found += simulate(rules, topic, contiguous(raw, start - back, end), start, end)
    found.sort(key=lambda t: (t.end_ms, t.topic, t.rule))
    for t in found:
        print(orjson.dumps(asdict(t)).decode() if args.json else t.line())
    fired = sum(t.action == "fire" for t in found)
    summary = {
        "topics": len(topics),
        "minutes": (end - start) // MINUTE_MS,
        "fired": fired,
        "renotified": sum(t.action == "renotify" for t in found),
        "resolved": sum(t.action == "resolve" for t in found),
        "bad_lines": bad,
    }
    print(("" if args.json else "backtest: ") + orjson.dumps(summary).decode(), file=sys.stderr)
    return 0


def _add_backtest(sub: Any) -> None:
    sp = sub.add_parser("backtest", help="replay stored buckets (or a JSONL file) through the alert rules")
    sp.add_argument("--config", default=None)
    sp.add_argument("--topic", action="append", default=None, help="only this topic (repeatable)")
    sp.add_argument("--since", default="24h", help="how far back from the end (default 24h)")
    sp.add_argument("--start-ms", default=None)
    sp.add_argument("--end-ms", default=None, help="default: the sealed minute (or the file's last)")
    sp.add_argument("--jsonl", default=None, help="buckets or scored posts from this file instead of Redis")
    sp.add_argument("--json", action="store_true", help="one JSON object per transition")
    sp.set_defaults(func=cmd_backtest)


def _devstack(name: str) -> Any:
    """A module of the development harness, which a source checkout has and an image does not."""
    import importlib

    try:
        return importlib.import_module(f"devstack.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("devstack", f"devstack.{name}"):
            raise
        reason = "the local stack and the demo run from a source checkout"
        raise ConfigError("devstack", name, reason) from exc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mood-monitor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--log-level", default=os.environ.get("MOOD_LOG_LEVEL", "INFO"))
    sub = p.add_subparsers(dest="cmd", required=True)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument(
            "--config", default=None, help="YAML config (default: $MOOD_CONFIG or config/monitor.yaml)"
        )
        return sp

    sp = sub.add_parser("stack", help="start, check and stop the local Kafka + Redis stack")
    sp.add_argument("stack_args", nargs=argparse.REMAINDER)
    sp.set_defaults(func=cmd_stack)

    sp = with_config(sub.add_parser("worker", help="run an inference worker"))
    sp.add_argument("--max-batches", type=int, default=None)
    sp.add_argument("--idle-timeout-s", type=float, default=None, help="stop after this long with no input")
    sp.add_argument("--metrics-port", type=int, default=None, help="serve /metrics (default: metrics.port)")
    sp.set_defaults(func=cmd_worker)

    sp = with_config(sub.add_parser("replay", help="replay a JSONL file of posts into Kafka"))
    sp.add_argument("file")
    sp.add_argument(
        "--rate", type=float, default=None, help="posts per second (default: as fast as possible)"
    )
    sp.add_argument("--now", action="store_true", help="stamp posts with the current time")
    sp.add_argument("--loop", action="store_true")
    sp.add_argument("--max", type=int, default=None)
    sp.add_argument("--progress", action="store_true")
    sp.set_defaults(func=cmd_replay)

    sp = with_config(sub.add_parser("mood", help="live mood figures of a topic (all topics if none)"))
    sp.add_argument("topic", nargs="?")
    sp.add_argument("--window", default="15m")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_mood)

    sp = with_config(sub.add_parser("check", help="health check: exit 1 when no fresh heartbeat"))
    sp.add_argument("--process", default=None, help="name prefix, e.g. worker or alerter")
    sp.set_defaults(func=cmd_check)

    sp = with_config(sub.add_parser("status", help="process heartbeats and connector states"))
    sp.set_defaults(func=cmd_status)

    sp = with_config(sub.add_parser("dlq", help="summarise the dead-letter topic"))
    sp.add_argument("--timeout-s", type=float, default=5.0)
    sp.set_defaults(func=cmd_dlq)

    sp = with_config(sub.add_parser("alerts", help="run the alerter (rules -> Slack/webhooks)"))
    sp.add_argument("--max-ticks", type=int, default=None, help="stop after this many evaluations")
    sp.add_argument("--metrics-port", type=int, default=None, help="serve /metrics (default: metrics.port)")
    sp.set_defaults(func=cmd_alerts)

    sp = with_config(sub.add_parser("serve", help="the live dashboard and its read API (reads Redis only)"))
    sp.add_argument("--host", default=None, help="bind address (default: dashboard.host, 127.0.0.1)")
    sp.add_argument("--port", type=int, default=None, help="port (default: dashboard.port, 8089; 0: any)")
    sp.set_defaults(func=cmd_serve)

    sp = with_config(sub.add_parser("demo", help="run the whole pipeline locally for a while"))
    sp.add_argument("--duration", type=float, default=120.0)
    sp.add_argument("--screenshot", default=None, help="save a PNG of the dashboard here (chromium)")
    sp.add_argument(
        "--rate", type=float, default=None, help="posts per second (default: from the model speed)"
    )
    sp.set_defaults(func=cmd_demo)

    _add_backtest(sub)
    for plugin in _PLUGINS:
        plugin.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        return int(args.func(args))
    except MoodMonitorError as exc:
        code, label = exit_code(exc)
        print(f"mood-monitor: {label}{exc}", file=sys.stderr)
        return code
