"""`mood-monitor`: the composition root. The only module that installs signal handlers and
builds processes from `Settings`.

    mood-monitor stack up|status|down|install|logs   the local Kafka + Redis stack
    mood-monitor worker                              the inference consumer (scale: run N)
    mood-monitor replay FILE [--rate N] [--now]      JSONL replay connector
    mood-monitor mood TOPIC [--window 15m]           live figures of a topic from Redis
    mood-monitor check [--process NAME]              exit 1 when a process heartbeat is stale
    mood-monitor dlq                                 what is in the dead-letter topic and why
    mood-monitor demo [--duration S]                 the whole pipeline, locally, bounded
    (+ the subcommands registered by models, connectors and alerts)
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import socket
import sys
import time
from collections import Counter
from typing import Any

import orjson

from monitor.errors import ConfigError, ModelError, MoodMonitorError, StackError, TransientError
from monitor.settings import Settings, load_settings

log = logging.getLogger("monitor")

# subcommands contributed by other packages: module -> add_parsers(subparsers)
_PLUGINS = ("monitor.cli_models", "connectors.registry", "monitor.backtest", "monitor.rebuild")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("kafka", "urllib3", "httpx", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def parse_window(text: str) -> int:
    """'90s', '15m', '1h', '7d' -> milliseconds; ConfigError on anything else."""
    units = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
    t = text.strip().lower()
    if len(t) < 2 or t[-1] not in units or not t[:-1].isdigit() or int(t[:-1]) <= 0:
        raise ConfigError("--window", "window", f"{text!r} is not like 90s, 15m, 1h or 7d")
    return int(t[:-1]) * units[t[-1]]


def process_name(role: str) -> str:
    return f"{role}-{socket.gethostname()}-{os.getpid()}"


# ---- builders -------------------------------------------------------------------------------
def build_store(s: Settings, prefix: str | None = None) -> Any:
    from monitor.store import RedisAggregateStore

    r = s.redis
    return RedisAggregateStore(
        r.url.get_secret_value(),
        prefix or r.prefix,
        minute_ttl_s=r.minute_ttl_s,
        hour_ttl_s=r.hour_ttl_s,
        text_ttl_s=r.text_ttl_s,
    )


def ensure_topics(s: Settings) -> None:
    from monitor.kafka import ensure_topics as _ensure

    k = s.kafka
    _ensure(
        k.bootstrap_servers,
        {k.raw_topic: k.partitions, k.scored_topic: k.partitions, k.dlq_topic: 1},
        configs={k.scored_topic: {"retention.ms": str(k.scored_retention_ms)}},
    )


def build_scorer(s: Settings) -> tuple[Any, Any, float]:
    from monitor.inference import load_scorer, to_labels

    cfg = s.model
    scorer = load_scorer(cfg)
    if not getattr(scorer, "trained", True):
        log.warning("model %s is UNTRAINED: its labels are random, for plumbing checks only", scorer.name)
    return scorer, to_labels, float(getattr(cfg, "uncertain_below", 0.0))


def build_worker(s: Settings, *, name: str | None = None) -> Any:
    from monitor.batcher import BatchLimits
    from monitor.inference import pretokenizer, scorer_lanes
    from monitor.kafka import KafkaBatchConsumer, KafkaPostProducer
    from monitor.topics import TopicMatcher
    from monitor.worker import Worker, WorkerConfig

    ensure_topics(s)
    scorer, to_labels, floor = build_scorer(s)
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
        process_name=name or process_name("worker"),
        batches_in_model=2 if scorer_lanes(scorer) > 1 else 1,
    )
    producer = KafkaPostProducer(s.kafka.bootstrap_servers, s.kafka.scored_topic)
    worker: Any = None

    def revoked(parts: list[tuple[str, int]]) -> None:
        worker.on_revoked(parts)

    def assigned(parts: list[tuple[str, int]]) -> None:
        worker.on_assigned(parts)

    consumer = KafkaBatchConsumer(
        s.kafka.bootstrap_servers,
        s.kafka.raw_topic,
        s.kafka.group_id,
        max_batch=w.max_batch,
        max_wait_ms=w.max_wait_ms,
        on_revoked=revoked,
        on_assigned=assigned,
        client_id=cfg.process_name,
    )
    worker = Worker(
        cfg,
        consumer,
        producer,
        scorer,
        to_labels,
        build_store(s),
        TopicMatcher.from_config(s.topics),
        encode=pretokenizer(scorer),
        limits=BatchLimits(max_posts=w.max_batch, max_tokens=w.batch_tokens, max_wait_ms=w.max_wait_ms),
    )
    return worker


# ---- commands -------------------------------------------------------------------------------
def cmd_stack(args: argparse.Namespace) -> int:
    from monitor import stack

    return int(stack.cli(args.stack_args))


def cmd_worker(args: argparse.Namespace) -> int:
    from monitor.memory import limit_growth

    limit_growth()  # before torch starts: bounded oneDNN primitive cache, fewer malloc arenas
    s = load_settings(args.config)
    worker = build_worker(s)
    return int(
        worker.run(max_batches=args.max_batches, idle_timeout_s=args.idle_timeout_s, install_signals=True)
    )


def cmd_replay(args: argparse.Namespace) -> int:
    from connectors.replay import ReplayConnector
    from monitor.kafka import KafkaPostProducer

    s = load_settings(args.config)
    ensure_topics(s)
    if not os.path.exists(args.file):
        raise ConfigError(args.file, "(file)", "not found")
    conn = ReplayConnector(
        KafkaPostProducer(s.kafka.bootstrap_servers, s.kafka.raw_topic),
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
    window_ms = parse_window(args.window)
    now = int(time.time() * 1000)
    topics = [args.topic] if args.topic else store.topics()
    rows = []
    for t in topics:
        b = store.read_window(t, now - window_ms, now + 60_000)
        top_emo = max(
            (e for e in b.emotions if e not in ("uncertain", "unsupported")),
            key=lambda e: b.emotions[e],
            default="-",
        )
        rows.append(
            {
                "topic": t,
                "window": args.window,
                "posts": b.n,
                "negative": round(b.share("negative"), 3),
                "neutral": round(b.share("neutral"), 3),
                "positive": round(b.share("positive"), 3),
                "mean_score": round(b.mean_score, 3),
                "uncertain": b.uncertain,
                "top_emotion": top_emo,
                "emotions": dict(b.emotions),
            }
        )
    if args.json:
        print(orjson.dumps(rows if not args.topic else rows[0]).decode())
    else:
        print(render_table(rows))
    return 0


def render_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'topic':<14}{'posts':>7}{'neg%':>7}{'neu%':>7}{'pos%':>7}{'score':>8}  top emotion"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['topic']:<14}{r['posts']:>7}{r['negative'] * 100:>6.0f}%{r['neutral'] * 100:>6.0f}%"
            f"{r['positive'] * 100:>6.0f}%{r['mean_score']:>+8.2f}  {r['top_emotion']}"
        )
    return "\n".join(lines)


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
    from connectors.registry import cmd_status as connectors_status

    return connectors_status(argparse.Namespace(config=args.config, json=False))


def cmd_dlq(args: argparse.Namespace) -> int:
    from monitor.kafka import read_topic

    s = load_settings(args.config)
    recs = read_topic(s.kafka.bootstrap_servers, s.kafka.dlq_topic, timeout_s=args.timeout_s)
    reasons: Counter[str] = Counter()
    for r in recs:
        try:
            reasons[orjson.loads(r.value or b"{}").get("reason", "?")] += 1
        except orjson.JSONDecodeError:
            reasons["unreadable"] += 1
    print(orjson.dumps({"total": len(recs), "by_reason": dict(reasons)}).decode())
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from monitor.alerter import Alerter, run_alerter
    from monitor.store import RedisAlertState

    s = load_settings(args.config)
    store = build_store(s)
    alerter = Alerter(s.alerts, store, RedisAlertState(store), owner=process_name("alerter"))
    return run_alerter(alerter, install_signals=True, max_ticks=args.max_ticks)


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    return run_demo(duration_s=args.duration, rate_per_s=args.rate, config=args.config)


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
    sp.set_defaults(func=cmd_alerts)

    sp = with_config(sub.add_parser("demo", help="run the whole pipeline locally for a while"))
    sp.add_argument("--duration", type=float, default=120.0)
    sp.add_argument(
        "--rate", type=float, default=None, help="posts per second (default: from the model speed)"
    )
    sp.set_defaults(func=cmd_demo)

    for mod in _PLUGINS:
        try:
            plugin = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        plugin.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_level)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"mood-monitor: config error: {exc}", file=sys.stderr)
        return 2
    except ModelError as exc:
        print(f"mood-monitor: model error: {exc}", file=sys.stderr)
        return 3
    except StackError as exc:
        print(f"mood-monitor: stack error: {exc}", file=sys.stderr)
        return 4
    except TransientError as exc:
        print(f"mood-monitor: unavailable: {exc}", file=sys.stderr)
        return 5
    except MoodMonitorError as exc:
        print(f"mood-monitor: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
