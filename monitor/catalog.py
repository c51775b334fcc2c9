"""The topic catalog: which topics are tracked now, from the config file and the topic registry
in Redis, picked up by running workers and the alerter without a restart.

    effective topics = the file's ``topics:``            (reloaded on SIGHUP)
                       overlaid by the registry's entries (``mood-monitor topics add|remove``):
                       a registry entry replaces the file's topic of that name, a removal hides it

So **the registry wins** over the file for every name it has an entry for; ``topics forget NAME``
drops that entry and the file's definition applies again.

A process polls the registry's version every ``topic_registry.poll_s`` (a GET), and reads the
whole registry only when it moved; a SIGHUP makes it re-read the file at its next poll. The
worker polls between batches (`Worker.run`), so a change applies from a batch boundary: every
post is matched once, against one topic set, and counted once (the per-topic watermarks guard
redeliveries). A registry entry or a file that fails validation is logged (naming the topic and
field) and skipped; the rest of the catalog goes on.

``mood-monitor topics list|show|add|remove|forget`` is `monitor.catalog_cli`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from monitor import metrics
from monitor.errors import ConfigError, TransientError
from monitor.settings import TopicSettings
from monitor.store.topics import TopicRegistry
from monitor.topics import TopicMatcher, TopicRule, rule_tree

log = logging.getLogger(__name__)

FILE, REGISTRY = "file", "registry"


class TopicSource(Protocol):
    """What a worker or the alerter asks of the catalog (`TopicCatalog`)."""

    def poll(self) -> TopicMatcher | None: ...
    def names(self) -> list[str]: ...
    def request_reload(self) -> None: ...


@dataclass(frozen=True)
class Tracked:
    topic: TopicSettings
    source: str  # FILE | REGISTRY


def to_rule(t: TopicSettings) -> TopicRule:
    return TopicRule(t.name, tuple(t.keywords), tuple(t.hashtags), t.query)


def validate(name: str, spec: Mapping[str, Any]) -> TopicSettings:
    """A topic definition as the worker will use it, or a `ConfigError` naming the topic and field."""
    fields = {k: v for k, v in spec.items() if k in ("keywords", "hashtags", "query")}
    try:
        topic = TopicSettings(name=name, **fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(topic)"
        raise ConfigError(f"topic {name!r}", field, err["msg"]) from exc
    rule_tree(to_rule(topic))  # raises ConfigError on a bad keyword or query
    if not (topic.keywords or topic.hashtags or topic.query):
        raise ConfigError(f"topic {name!r}", "keywords", "give keywords, hashtags or a query")
    return topic


def merge(file_topics: Sequence[TopicSettings], entries: Mapping[str, Mapping[str, Any]]) -> list[Tracked]:
    """The effective topics, in the file's order then the registry's (by name); a registry
    entry wins over the file's topic of the same name; a bad entry is logged and skipped."""
    out: dict[str, Tracked] = {t.name: Tracked(t, FILE) for t in file_topics}
    for name in sorted(entries):
        spec = entries[name]
        if spec.get("removed"):
            out.pop(name, None)
            continue
        try:
            out[name] = Tracked(validate(name, spec), REGISTRY)
        except ConfigError as exc:
            log.error("topic registry: entry skipped: %s", exc)
            metrics.TOPICS_RELOADS.labels("invalid_entry").inc()
    return list(out.values())


class TopicCatalog:
    """The tracked topics of one process, refreshed from the registry and the file."""

    def __init__(
        self,
        file_topics: Sequence[TopicSettings],
        registry: TopicRegistry | None,
        *,
        reload_file: Callable[[], Sequence[TopicSettings]] | None = None,
        poll_s: float = 10.0,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.reload_file = reload_file
        self.poll_s = poll_s
        self.clock_s = clock_s
        self._file = list(file_topics)
        self._entries: dict[str, dict[str, Any]] = {}
        self._reload = threading.Event()  # set by a signal handler: only a flag, no I/O there
        self._lock = threading.Lock()  # the alerter's jobs and the main thread
        self.version = -1
        self._next_s = 0.0
        self._dirty = False  # the file or the registry changed and is not merged yet
        self._tracked = merge(self._file, {})

    # ---- reads ---------------------------------------------------------------------------------
    def tracked(self) -> list[Tracked]:
        return list(self._tracked)

    def names(self) -> list[str]:
        return [t.topic.name for t in self._tracked]

    def matcher(self) -> TopicMatcher:
        return TopicMatcher([to_rule(t.topic) for t in self._tracked])

    def current_names(self) -> list[str]:
        """The tracked names after a poll (at most every ``poll_s``); Redis down: those in use."""
        try:
            self.refresh()
        except TransientError as exc:
            log.warning("topic registry unreadable (%s): keeping the topics in use", exc)
        return self.names()

    # ---- refresh -------------------------------------------------------------------------------
    def request_reload(self) -> None:
        """Re-read the config file at the next poll (the SIGHUP handler calls this)."""
        self._reload.set()
        self._next_s = 0.0

    def load(self) -> bool:
        """Read the registry now (at start-up); True when the topics changed."""
        self._next_s = 0.0
        return self.refresh()

    def refresh(self) -> bool:
        """Poll (at most every ``poll_s``): re-read the file after a SIGHUP, the registry when its
        version moved. True when the effective topics changed. Redis down: `TransientError`
        (the caller logs it and goes on with the topics it has)."""
        with self._lock:
            now = self.clock_s()
            if now < self._next_s:
                return False
            self._next_s = now + self.poll_s
            if self._reload_file():
                self._dirty = True
            if self.registry is not None and self.registry.version() != self.version:
                self.version, self._entries = self.registry.snapshot()
                self._dirty = True
                metrics.TOPICS_VERSION.set(self.version)
            if not self._dirty:
                return False
            self._dirty = False
            new = merge(self._file, self._entries)
            before = {t.topic.name: t.topic for t in self._tracked}
            after = {t.topic.name: t.topic for t in new}
            self._tracked = new
            metrics.TOPICS_TRACKED.set(len(new))
            if before == after:
                return False
            added = sorted(set(after) - set(before))
            removed = sorted(set(before) - set(after))
            changed = sorted(n for n in set(after) & set(before) if after[n] != before[n])
            log.info(
                "topics now %d (registry version %d): added=%s removed=%s changed=%s",
                len(new),
                self.version,
                ",".join(added) or "-",
                ",".join(removed) or "-",
                ",".join(changed) or "-",
            )
            metrics.TOPICS_RELOADS.labels("applied").inc()
            return True

    def _reload_file(self) -> bool:
        if not self._reload.is_set() or self.reload_file is None:
            return False
        self._reload.clear()
        try:
            topics = list(self.reload_file())
        except ConfigError as exc:
            log.error("config reload (SIGHUP) refused, keeping the topics in use: %s", exc)
            metrics.TOPICS_RELOADS.labels("invalid_file").inc()
            return False
        changed = topics != self._file
        self._file = topics
        log.info("config file reloaded (SIGHUP): %d topics in the file", len(topics))
        return changed

    def poll(self) -> TopicMatcher | None:
        """For the worker: a new matcher when the topics changed, else None. Redis down: None
        (logged); the worker goes on with the topics it has."""
        try:
            changed = self.refresh()
            return self.matcher() if changed else None
        except TransientError as exc:
            log.warning("topic registry unreadable (%s): keeping the topics in use", exc)
        except Exception as exc:  # noqa: BLE001 - a topic change must never stop a worker
            log.error("topic change not applied (%s), keeping the topics in use", type(exc).__name__)
            metrics.TOPICS_RELOADS.labels("failed").inc()
        return None
