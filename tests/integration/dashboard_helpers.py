"""Posts written the way the worker writes them (bucket deltas through `store.apply`, the
sample through `store.remember`), and `mood-monitor serve` as a real subprocess."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from monitor.aggregates import bucket_deltas
from monitor.messages import Post, ScoredPost
from monitor.store.buckets import PartitionWrite, RecentPost, RedisAggregateStore

_offsets = itertools.count(int(time.time() * 1000) * 1000)  # above any earlier run's watermark
EMOTION = {"negative": "anger", "neutral": "neutral", "positive": "joy"}
SCORE = {"negative": -0.8, "neutral": 0.0, "positive": 0.7}


def write_posts(
    store: RedisAggregateStore, topic: str, sentiments: list[str], ts_ms: int | None = None
) -> None:
    """One batch of posts of ``topic`` applied through the real aggregate path."""
    ts = ts_ms or int(time.time() * 1000)
    scored = []
    for i, s in enumerate(sentiments):
        n = next(_offsets)
        post = Post(
            f"{topic}-{n}",
            "test",
            f"post {n} of {topic}: <b>{s}</b> & more",
            ts + i,
            ts + i,
            url=f"https://example.test/{n}",
        )
        scored.append(
            (
                ScoredPost(post, s, SCORE[s], 0.9, EMOTION[s], 0.8, (topic,), "test", ts, origin=f"p:0:{n}"),
                ts + i,
            )
        )
    first = next(_offsets)
    last = next(_offsets)
    deltas = bucket_deltas(scored)[topic]
    applied, _ = store.apply({topic: [PartitionWrite(f"test-{topic}:0", first, last, deltas)]})
    assert applied == 1
    store.remember(
        [RecentPost(topic, sp.post.id, t, sp.post.text, sp.post.url, sp.sentiment) for sp, t in scored]
    )


def write_config(tmp: Path, redis_url: str, prefix: str, extra: str = "") -> Path:
    cfg = tmp / "monitor.yaml"
    cfg.write_text(f"redis:\n  url: {redis_url}\n  prefix: {prefix}\n{extra}")
    return cfg


class Served:
    """`mood-monitor serve` in a subprocess; ``url`` once it says where it listens."""

    def __init__(self, config: Path, *, port: int = 0, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.port = port
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.output = ""  # what it printed (stdout and stderr), complete once stopped

    def start(self, timeout_s: float = 30.0) -> Served:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor",
                "serve",
                "--config",
                str(self.config),
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        deadline = time.time() + timeout_s
        assert self.proc.stdout is not None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            self.output += line
            if not line:
                raise AssertionError(f"serve exited with {self.proc.wait()}")
            if line.startswith("serve: dashboard at "):
                self.url = line.split(" at ", 1)[1].split(" ", 1)[0]
                self.port = int(self.url.rstrip("/").rsplit(":", 1)[1])
                break
        else:
            raise AssertionError("serve did not say where it listens")
        while time.time() < deadline:  # listening: wait until it answers
            try:
                if httpx.get(self.url + "healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("serve did not answer /healthz")

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout and not self.proc.stdout.closed:
            self.output += self.proc.stdout.read()
            self.proc.stdout.close()
        return int(self.proc.returncode)

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
