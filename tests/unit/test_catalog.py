"""monitor.catalog without servers: how the file and the registry combine (the registry wins),
when a process re-reads them, and that bad input is refused with a clear message, never a crash."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.catalog import FILE, REGISTRY, TopicCatalog, merge, validate
from monitor.errors import ConfigError, StoreUnavailable
from monitor.messages import Post
from monitor.settings import TopicSettings

FILE_TOPICS = [
    TopicSettings(name="coffee", hashtags=["coffee"]),
    TopicSettings(name="metro", keywords=["metro"]),
]


class FakeRegistry:
    def __init__(self) -> None:
        self.v = 0
        self.entries: dict[str, dict[str, Any]] = {}
        self.reads = 0
        self.down = False

    def version(self) -> int:
        if self.down:
            raise StoreUnavailable("redis: ConnectionError")
        return self.v

    def snapshot(self) -> tuple[int, dict[str, dict[str, Any]]]:
        self.reads += 1
        return self.v, dict(self.entries)

    def put(self, name: str, spec: dict[str, Any]) -> None:
        self.entries[name] = spec
        self.v += 1


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _post(text: str) -> Post:
    return Post(id="p1", source="test", text=text, created_ms=1, ingested_ms=1)


def test_the_registry_wins_by_name_and_a_removal_hides_a_file_topic():
    entries = {
        "metro": {"keywords": ["subway"]},  # replaces the file's metro
        "coffee": {"removed": True},  # hides the file's coffee
        "phonex": {"hashtags": ["phonex"]},  # new
    }
    got = {t.topic.name: t for t in merge(FILE_TOPICS, entries)}
    assert set(got) == {"metro", "phonex"}
    assert got["metro"].source == REGISTRY and got["metro"].topic.keywords == ["subway"]
    assert [t.source for t in merge(FILE_TOPICS, {})] == [FILE, FILE]


def test_a_bad_registry_entry_is_skipped_and_the_rest_applies(caplog):
    entries = {
        "bad query": {"query": "(unclosed"},  # a name with a space: refused by the name pattern too
        "broken": {"query": "(unclosed AND"},
        "empty": {"keywords": []},
        "junk": {"invalid": "not a JSON object"},
        "ok": {"keywords": ["fine"]},
    }
    names = [t.topic.name for t in merge([], entries)]
    assert names == ["ok"]
    text = caplog.text
    assert "'broken'" in text and "'empty'" in text and "'junk'" in text


def test_validate_names_topic_and_field():
    with pytest.raises(ConfigError, match=r"topic 'x': query"):
        validate("x", {"query": "(a OR"})
    with pytest.raises(ConfigError, match=r"topic 'a:b': name"):
        validate("a:b", {"keywords": ["k"]})
    with pytest.raises(ConfigError, match=r"keywords"):
        validate("x", {"keywords": ["!!!"]})
    assert validate("x", {"keywords": ["new phone"], "unknown": 1}).keywords == ["new phone"]


def test_refresh_polls_the_version_at_most_every_poll_s_and_reads_the_registry_only_when_it_moved():
    reg, clock = FakeRegistry(), Clock()
    cat = TopicCatalog(FILE_TOPICS, reg, poll_s=10, clock_s=clock)
    assert cat.load() is False  # version 0, nothing in it: the file's topics
    assert cat.names() == ["coffee", "metro"] and reg.reads == 1
    reg.put("phonex", {"hashtags": ["phonex"]})
    clock.t += 5
    assert cat.poll() is None  # not yet: polled 5 s ago
    clock.t += 5
    m = cat.poll()
    assert m is not None and m.match(_post("my #phonex")) == ("phonex",)
    assert cat.version == 1 and reg.reads == 2
    clock.t += 10
    assert cat.poll() is None and reg.reads == 2  # version unchanged: the registry is not read


def test_redis_down_keeps_the_topics_in_use():
    reg, clock = FakeRegistry(), Clock()
    cat = TopicCatalog(FILE_TOPICS, reg, poll_s=1, clock_s=clock)
    cat.load()
    reg.down = True
    clock.t += 2
    assert cat.poll() is None
    assert cat.names() == ["coffee", "metro"]
    with pytest.raises(StoreUnavailable):
        clock.t += 2
        cat.refresh()  # the raw call says so; poll() logs it


def test_sighup_reloads_the_file_and_a_bad_file_keeps_the_old_topics():
    files: list[Any] = [[*FILE_TOPICS, TopicSettings(name="weather", keywords=["rain"])]]

    def reload() -> list[TopicSettings]:
        nxt = files.pop(0)
        if isinstance(nxt, Exception):
            raise nxt
        return list(nxt)

    reg, clock = FakeRegistry(), Clock()
    reg.put("metro", {"removed": True})  # the registry removed metro: a file reload does not bring it back
    cat = TopicCatalog(FILE_TOPICS, reg, reload_file=reload, poll_s=60, clock_s=clock)
    cat.load()
    assert cat.names() == ["coffee"]
    cat.request_reload()  # no wait for poll_s: the next poll reads the file
    m = cat.poll()
    assert m is not None and cat.names() == ["coffee", "weather"]
    files.append(ConfigError("monitor.yaml", "topics.0.name", "String should match pattern"))
    cat.request_reload()
    assert cat.poll() is None and cat.names() == ["coffee", "weather"]


def test_a_file_change_is_not_lost_when_redis_fails_in_the_same_poll():
    reg, clock = FakeRegistry(), Clock()
    new_file = [TopicSettings(name="tea", keywords=["tea"])]
    cat = TopicCatalog(FILE_TOPICS, reg, reload_file=lambda: new_file, poll_s=1, clock_s=clock)
    cat.load()
    reg.down = True
    cat.request_reload()
    assert cat.poll() is None  # the file was read, Redis failed: nothing applied yet
    reg.down = False
    clock.t += 2
    assert cat.poll() is not None and cat.names() == ["tea"]


def test_an_unexpected_failure_while_changing_topics_keeps_the_topics_in_use():
    class Broken(FakeRegistry):
        def snapshot(self) -> tuple[int, dict[str, dict[str, Any]]]:
            raise RuntimeError("a bug")

    reg, clock = Broken(), Clock()
    cat = TopicCatalog(FILE_TOPICS, reg, poll_s=1, clock_s=clock)
    reg.v = 3
    assert cat.poll() is None  # logged and counted, not raised into the worker's loop
    assert cat.names() == ["coffee", "metro"]
