"""A worker whose host path runs in several processes (``worker.host_processes``, issue 17), on
the real broker and Redis: the model is loaded once, in the main process (the host processes
never load torch), each host process is a member of the group with its own partitions, every
post is counted once, SIGTERM stops them all cleanly, and a host process or a main process that
dies takes the worker down for a restart that loses and doubles nothing."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from devstack.synthetic import demo_topics_config, stream
from monitor.settings import load_settings
from monitor.store.buckets import RedisAggregateStore
from monitor.worker import holds_partitions

from .pipeline_helpers import cli, popen, wait_for, write_config, write_jsonl

pytestmark = pytest.mark.integration

ENV = {"MOOD_MODEL__THREADS": "1"}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _hosts(store: RedisAggregateStore, main_pid: int) -> dict[int, dict[str, Any]]:
    """pid -> heartbeat of the worker's host processes that hold partitions now."""
    out = {}
    for name, h in store.health().items():
        pid = int(name.rsplit("-", 1)[1])
        if holds_partitions(h) and pid != main_pid and _alive(pid):
            out[pid] = h
    return out


def _setup(tmp_path: Path, kafka_bootstrap: str, redis_url: str, unique: str, n: int):
    cfg = write_config(
        tmp_path,
        kafka_bootstrap,
        redis_url,
        unique,
        topics=demo_topics_config(),
        partitions=4,
        worker={"host_processes": 2},
    )
    store = RedisAggregateStore(load_settings(cfg).redis.url.get_secret_value(), f"t-{unique}")
    posts = list(stream(n, id_prefix=unique))
    truth = Counter(p["topic"] for p in posts)
    for p in posts:
        p.pop("intended"), p.pop("topic")
    return cfg, store, write_jsonl(tmp_path / "in.jsonl", posts), dict(truth)


def _start(cfg: Path, store: RedisAggregateStore, log: Path) -> Any:
    """A worker with two host processes, once both hold their partitions."""
    worker = popen("worker", "--config", str(cfg), env=ENV, log=log)
    if not wait_for(lambda: len(_hosts(store, worker.pid)) == 2, 120):
        worker.kill()
        raise AssertionError(log.read_text()[-3000:])
    return worker


def _counts(store: RedisAggregateStore, truth: dict[str, int], now: int) -> dict[str, int]:
    return {t: store.read_window(t, now - 3_600_000, now + 120_000).n for t in truth}


def test_two_host_processes_share_one_model_and_count_each_post_once(
    tmp_path, kafka_bootstrap, redis_url, unique
):
    cfg, store, posts, truth = _setup(tmp_path, kafka_bootstrap, redis_url, unique, 400)
    log = tmp_path / "worker.log"
    worker = _start(cfg, store, log)
    try:
        hosts = _hosts(store, worker.pid)
        assert sorted(len(h["partitions"]) for h in hosts.values()) == [2, 2]
        # one model: loaded in the main process; the host processes never map torch
        assert "libtorch" in Path(f"/proc/{worker.pid}/maps").read_text()
        for pid in hosts:
            assert "libtorch" not in Path(f"/proc/{pid}/maps").read_text()
            assert Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(worker.pid)
        cli("replay", str(posts), "--config", str(cfg))
        now = int(time.time() * 1000)
        assert wait_for(lambda: _counts(store, truth, now) == truth, 120), _counts(store, truth, now)
        per_host = [int(h.get("records", 0)) for h in _hosts(store, worker.pid).values()]
        assert all(n > 0 for n in per_host) and sum(per_host) >= 400
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=90)
    assert code == 0, log.read_text()[-3000:]
    assert not any(_alive(pid) for pid in hosts)  # every host process left with the worker
    assert _counts(store, truth, now) == truth
    text = log.read_text()
    assert "loaded once, 2 host processes" in text and text.count("worker stopped:") == 2


def test_a_host_process_killed_takes_the_worker_down_and_a_restart_loses_nothing(
    tmp_path, kafka_bootstrap, redis_url, unique
):
    cfg, store, posts, truth = _setup(tmp_path, kafka_bootstrap, redis_url, unique, 600)
    log = tmp_path / "worker.log"
    worker = _start(cfg, store, log)
    restarted = None
    try:
        victim, other = sorted(_hosts(store, worker.pid))
        cli("replay", str(posts), "--config", str(cfg))
        now = int(time.time() * 1000)
        assert wait_for(lambda: sum(_counts(store, truth, now).values()) > 0, 60)
        os.kill(victim, signal.SIGKILL)  # mid-stream, or just after
        assert worker.wait(timeout=120) == 1  # the worker exits for a restart...
        assert not _alive(other)  # ...with its other host process
        assert "exited with -9" in log.read_text()
        restarted = popen("worker", "--config", str(cfg), env=ENV, log=tmp_path / "restarted.log")
        assert wait_for(lambda: _counts(store, truth, now) == truth, 180), _counts(store, truth, now)
    finally:
        for w in (worker, restarted):
            if w is not None and w.poll() is None:
                w.send_signal(signal.SIGTERM)
                w.wait(timeout=90)
    assert restarted is not None and restarted.returncode == 0
    assert _counts(store, truth, now) == truth  # nothing doubled either


def test_host_processes_whose_main_process_is_killed_stop_by_themselves(
    tmp_path, kafka_bootstrap, redis_url, unique
):
    cfg, store, _posts, _truth = _setup(tmp_path, kafka_bootstrap, redis_url, unique, 10)
    log = tmp_path / "worker.log"
    worker = _start(cfg, store, log)
    try:
        hosts = list(_hosts(store, worker.pid))
        worker.kill()
        worker.wait(timeout=30)
        assert wait_for(lambda: not any(_alive(p) for p in hosts), 60), log.read_text()[-3000:]
    finally:
        for p in hosts:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
    assert log.read_text().count("is gone: stopping") == 2
