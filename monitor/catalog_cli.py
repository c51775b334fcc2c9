"""`mood-monitor topics list|show|add|remove|forget`: the topic registry from the command line
(`monitor.catalog` says how the registry and the config file combine: the registry wins).
Registered as a subcommand plugin by `monitor.cli`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import orjson

from monitor.catalog import merge, validate
from monitor.settings import TopicSettings, load_settings
from monitor.store.topics import RedisTopicRegistry


def _registry(args: argparse.Namespace) -> tuple[list[TopicSettings], RedisTopicRegistry]:
    from monitor.app import build_store

    s = load_settings(args.config)
    return list(s.topics), RedisTopicRegistry(build_store(s))


def _rows(file_topics: list[TopicSettings], reg: RedisTopicRegistry) -> tuple[int, list[dict[str, Any]]]:
    version, entries = reg.snapshot()
    rows = [
        {"name": t.topic.name, "source": t.source, **t.topic.model_dump(exclude={"name"})}
        for t in merge(file_topics, entries)
    ]
    return version, rows


def cmd_list(args: argparse.Namespace) -> int:
    file_topics, reg = _registry(args)
    version, rows = _rows(file_topics, reg)
    if args.json:
        print(orjson.dumps({"version": version, "topics": rows}).decode())
        return 0
    print(f"{'topic':<24}{'source':<10}definition  (registry version {version})")
    for r in rows:
        parts = [f"keywords={r['keywords']}" if r["keywords"] else ""]
        parts += [
            f"hashtags={r['hashtags']}" if r["hashtags"] else "",
            f"query={r['query']!r}" if r["query"] else "",
        ]
        print(f"{r['name']:<24}{r['source']:<10}{' '.join(p for p in parts if p)}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    file_topics, reg = _registry(args)
    version, rows = _rows(file_topics, reg)
    row = next((r for r in rows if r["name"] == args.name), None)
    if row is None:
        print(f"topic {args.name!r} is not tracked (registry version {version})")
        return 1
    print(orjson.dumps({"version": version, **row}, option=orjson.OPT_INDENT_2).decode())
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    spec = {"keywords": args.keyword or [], "hashtags": args.hashtag or [], "query": args.query}
    validate(args.name, spec)  # ConfigError (exit 2) before anything is written
    file_topics, reg = _registry(args)
    existed = args.name in {r["name"] for r in _rows(file_topics, reg)[1]}
    version = reg.put(args.name, spec)
    print(f"topic {args.name!r} {'replaced' if existed else 'added'}: registry version {version}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    file_topics, reg = _registry(args)
    if args.name not in {r["name"] for r in _rows(file_topics, reg)[1]}:
        print(f"topic {args.name!r} is not tracked: nothing removed")
        return 1
    version = reg.remove(args.name)
    print(f"topic {args.name!r} removed: registry version {version} (its buckets stay until they expire)")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    _file, reg = _registry(args)
    version = reg.forget(args.name)
    print(f"registry entry of {args.name!r} dropped (the config file decides again): version {version}")
    return 0


def add_parsers(sub: Any) -> None:
    tp = sub.add_parser("topics", help="list, add or remove tracked topics at run time (no restart)")
    tsub = tp.add_subparsers(dest="topics_cmd", required=True)

    def cmd(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = tsub.add_parser(name, help=help_)
        sp.add_argument(
            "--config", default=None, help="YAML config (default: $MOOD_CONFIG or config/monitor.yaml)"
        )
        sp.set_defaults(func=fn)
        return sp

    cmd("list", cmd_list, "the tracked topics (file + registry) and where each comes from").add_argument(
        "--json", action="store_true"
    )
    cmd("show", cmd_show, "one topic's definition (JSON)").add_argument("name")
    sp = cmd("add", cmd_add, "add or replace a topic (running workers pick it up within a minute)")
    sp.add_argument("name")
    sp.add_argument("--keyword", action="append", help="a word or phrase (repeatable)")
    sp.add_argument("--hashtag", action="append", help="a hashtag without # (repeatable)")
    sp.add_argument(
        "--query", default=None, help="a boolean query, e.g. '(\"new phone\" OR #phonex) AND NOT ad'"
    )
    cmd("remove", cmd_remove, "stop tracking a topic (also one of the config file)").add_argument("name")
    cmd(
        "forget", cmd_forget, "drop the registry's entry of a topic: the file's definition applies again"
    ).add_argument("name")
