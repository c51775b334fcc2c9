"""`mood-monitor connectors list|status|run NAME`: every connector, built from flags and secrets.

    mood-monitor connectors list                      every connector and what it needs
    mood-monitor connectors status [--json]           connected, lag, last event, counts (Redis)
    mood-monitor connectors run bluesky [--url U]     Jetstream
    ... run bluesky|mastodon --only-matching          produce only the posts a topic matches
    mood-monitor connectors run mastodon --base-url U --stream hashtag:TAG|public|public:local
    mood-monitor connectors run reddit --subreddit S [--subreddit S2] [--kinds new,comments]
    mood-monitor connectors run rss --feed URL [--feed URL2]
    mood-monitor connectors run push [--host H] [--port P] [--max-connections N] [--ssl-certfile F ...]

Secrets come only from the environment or ``*_FILE`` files (`connectors.credentials`):
``MASTODON_TOKEN`` (optional), ``REDDIT_CLIENT_ID`` + ``REDDIT_CLIENT_SECRET``,
``PUSH_WEBHOOK_SECRET`` (``whsec_...``). Kafka and Redis come from the usual config file.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import orjson

from connectors.base import Connector

# name -> (what it is, credentials it reads)
CONNECTORS: dict[str, tuple[str, str]] = {
    "bluesky": ("Bluesky Jetstream websocket (app.bsky.feed.post creates and deletes)", "-"),
    "mastodon": ("Mastodon SSE hashtag/public stream with REST min_id backfill", "MASTODON_TOKEN (optional)"),
    "reddit": (
        "Reddit new posts and comments, app-only OAuth polling with before=",
        "REDDIT_CLIENT_ID, REDDIT_CLIENT_SECRET",
    ),
    "rss": ("RSS/Atom feeds polled with conditional GET", "-"),
    "push": ("signed HTTP push endpoint (Standard Webhooks HMAC), POST /ingest", "PUSH_WEBHOOK_SECRET"),
    "replay": ("JSONL file replay for demos and backfills (mood-monitor replay FILE --rate N)", "-"),
}


def _state(s: Any, instance: str) -> Any:
    from monitor.store.connectors import RedisConnectorState

    return RedisConnectorState(s.redis, instance, prefix=f"{s.redis.prefix}:conn:")


def _build(name: str, args: argparse.Namespace, s: Any, sink: Any) -> Connector:
    from connectors.credentials import secret

    state = _state(s, args.instance or name)
    if name == "bluesky":
        from connectors.bluesky import JetstreamConnector

        return JetstreamConnector(sink, state, url=args.url, rewind_s=args.rewind_s)
    if name == "mastodon":
        from connectors.mastodon import MastodonConnector

        return MastodonConnector(
            sink,
            state,
            base_url=args.base_url,
            stream=args.stream,
            token=secret("MASTODON_TOKEN", required=False),
            streaming_url=args.streaming_url,
            trust_language=args.trust_language,
        )
    if name == "reddit":
        from connectors.reddit import RedditConnector

        cid, csecret = secret("REDDIT_CLIENT_ID"), secret("REDDIT_CLIENT_SECRET")
        assert cid is not None and csecret is not None
        return RedditConnector(
            sink,
            state,
            client_id=cid,
            client_secret=csecret,
            subreddits=args.subreddit,
            kinds=args.kinds.split(","),
            poll_interval_s=args.poll_interval_s,
        )
    if name == "rss":
        from connectors.rss import FeedConnector

        return FeedConnector(sink, state, feeds=args.feed, poll_interval_s=args.poll_interval_s)
    from connectors.push import PushConnector
    from monitor.asgi import ServerLimits

    key = secret("PUSH_WEBHOOK_SECRET")
    assert key is not None
    limits = ServerLimits(
        http=args.http,
        header_timeout_s=args.header_timeout_s,
        body_timeout_s=args.body_timeout_s,
        keep_alive_s=args.keep_alive_s,
        max_connections=args.max_connections,
        max_in_flight=args.max_in_flight,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    return PushConnector(
        sink,
        state,
        secret=key,
        host=args.host,
        port=args.port,
        max_body_bytes=args.max_body_bytes,
        limits=limits,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.app import ensure_topics
    from monitor.kafka import post_producer
    from monitor.settings import load_settings

    s = load_settings(args.config)
    ensure_topics(s)
    sink = post_producer(s.kafka, s.kafka.raw_topic)
    try:
        conn = _build(args.connector, args, s, sink)
        if getattr(args, "only_matching", False):
            conn.keep = only_matching(s, args.config)
    except BaseException:
        sink.close()
        raise
    conn.install_signals()
    from monitor import metrics

    metrics.watch(metrics.ConnectorCollector(conn, args.instance or args.connector))
    metrics.serve_metrics(s.metrics.port if args.metrics_port is None else args.metrics_port, s.metrics.host)
    kw: dict[str, Any] = {}
    if args.connector != "push":
        kw = {"max_items": args.max_items, "idle_timeout_s": args.idle_timeout_s}
    rc = conn.run(**kw)
    print(
        orjson.dumps(
            {
                "connector": args.connector,
                "produced": conn.stats.produced,
                "deletions": conn.stats.deletions,
                "bad": conn.stats.bad,
                "bad_by_reason": conn.stats.by_reason,
                "skipped": conn.stats.skipped,
            }
        ).decode()
    )
    return rc


def only_matching(s: Any, config_path: str | None) -> Callable[[Any], bool]:
    """The pre-filter of ``--only-matching``: whether a post matches a tracked topic (the file's
    and the registry's, followed as they change, every ``topic_registry.poll_s``). A post
    dropped here never reaches posts.raw: it cannot be backfilled for a topic added later."""
    from monitor.app import build_catalog, build_store

    catalog = build_catalog(s, build_store(s), config_path)
    current = [catalog.matcher()]

    def keep(post: Any) -> bool:
        fresh = catalog.poll()
        if fresh is not None:
            current[0] = fresh
        return bool(current[0].match(post))

    return keep


def cmd_list(args: argparse.Namespace) -> int:
    for name, (what, creds) in CONNECTORS.items():
        print(f"{name:<10}{what}  [credentials: {creds}]")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from monitor.settings import load_settings
    from monitor.store.connectors import read_statuses

    s = load_settings(args.config)
    st = read_statuses(s.redis, prefix=f"{s.redis.prefix}:conn:")
    if args.json:
        print(orjson.dumps(st).decode())
        return 0
    now = time.time() * 1000
    print(
        f"{'connector':<14}{'state':<10}{'last event':>12}{'lag':>9}{'produced':>10}{'deleted':>9}"
        f"{'bad':>6}{'errors':>8}"
    )
    for name, h in st.items():
        if not h:
            print(f"{name:<14}{'stale':<10}")
            continue
        last = int(h.get("last_event_ms", "0") or 0)
        ago = f"{(now - last) / 1000:.0f}s ago" if last else "-"
        print(
            f"{name:<14}{'connected' if h.get('connected') == '1' else 'down':<10}{ago:>12}"
            f"{int(h.get('lag_ms', '0') or 0) / 1000:>8.1f}s{h.get('produced', '0'):>10}"
            f"{h.get('deletions', '0'):>9}{h.get('bad', '0'):>6}{h.get('errors', '0'):>8}"
        )
    return 0


def add_parsers(sub: Any) -> None:
    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument(
            "--config", default=None, help="YAML config (default: $MOOD_CONFIG or config/monitor.yaml)"
        )
        return sp

    top = sub.add_parser("connectors", help="list, inspect and run the live source connectors")
    csub = top.add_subparsers(dest="connectors_cmd", required=True)
    sp = csub.add_parser("list", help="name every connector")
    sp.set_defaults(func=cmd_list)
    sp = with_config(csub.add_parser("status", help="each connector's last reported state"))
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_status)
    run = csub.add_parser("run", help="run one connector, producing to posts.raw")
    rsub = run.add_subparsers(dest="connector", required=True)

    def connector(name: str, extra: Callable[[argparse.ArgumentParser], None]) -> None:
        sp = with_config(rsub.add_parser(name, help=CONNECTORS[name][0]))
        sp.add_argument("--instance", default=None, help="state name in Redis (default: the connector name)")
        sp.add_argument("--max-items", type=int, default=None, help="stop after this many records")
        sp.add_argument("--metrics-port", type=int, default=None, help="/metrics port (metrics.port)")
        sp.add_argument(
            "--idle-timeout-s", type=float, default=None, help="stop after this long with nothing new"
        )
        extra(sp)
        sp.set_defaults(func=cmd_run)

    def only_matching(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--only-matching",
            action="store_true",
            help="drop posts that match no tracked topic before producing them (no backfill for them)",
        )

    def bluesky(sp: argparse.ArgumentParser) -> None:
        only_matching(sp)
        sp.add_argument("--url", default="wss://jetstream2.us-east.bsky.network/subscribe")
        sp.add_argument("--rewind-s", type=float, default=5.0, help="resume this far before the cursor")

    def mastodon(sp: argparse.ArgumentParser) -> None:
        only_matching(sp)
        sp.add_argument("--base-url", required=True, help="https://mastodon.social")
        sp.add_argument("--stream", required=True, help="hashtag:TAG, public or public:local")
        sp.add_argument(
            "--streaming-url",
            default=None,
            help="default: discovered (with a token: its own https host only)",
        )
        sp.add_argument("--trust-language", action="store_true", help="use the client-set language")

    def reddit(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--subreddit", action="append", required=True)
        sp.add_argument("--kinds", default="new,comments")
        sp.add_argument("--poll-interval-s", type=float, default=30.0)

    def rss(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--feed", action="append", required=True)
        sp.add_argument("--poll-interval-s", type=float, default=300.0)

    def push(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--host", default="127.0.0.1", help="listen address (0.0.0.0: every interface)")
        sp.add_argument("--port", type=int, default=8088)
        sp.add_argument("--http", choices=["h11", "httptools"], default="h11", help="HTTP/1.1 parser")
        sp.add_argument("--header-timeout-s", type=float, default=10.0, help="request line + headers (408)")
        sp.add_argument("--body-timeout-s", type=float, default=30.0, help="the whole body (408)")
        sp.add_argument("--keep-alive-s", type=int, default=5, help="idle time between requests")
        sp.add_argument("--max-connections", type=int, default=256, help="open connections (503 past it)")
        sp.add_argument("--max-in-flight", type=int, default=32, help="requests handled at once (503)")
        sp.add_argument("--max-body-bytes", type=int, default=1 << 20, help="413 past it, before reading")
        sp.add_argument("--ssl-certfile", default=None, help="terminate TLS here (PEM; else a proxy does)")
        sp.add_argument("--ssl-keyfile", default=None, help="the certificate's key (PEM)")

    for name, extra in (
        ("bluesky", bluesky),
        ("mastodon", mastodon),
        ("reddit", reddit),
        ("rss", rss),
        ("push", push),
    ):
        connector(name, extra)
