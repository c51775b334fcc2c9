"""Shared helpers for the pipeline integration tests: a config per test, subprocess runners."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

from monitor.kafka import read_topic

REPO = Path(__file__).resolve().parents[2]


def write_config(
    tmp_path: Path,
    kafka_bootstrap: str,
    redis_url: str,
    unique: str,
    *,
    topics: list[dict[str, Any]],
    partitions: int = 2,
    alerts: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    worker: dict[str, Any] | None = None,
    kafka: dict[str, Any] | None = None,
) -> Path:
    cfg = {
        "kafka": {
            "bootstrap_servers": kafka_bootstrap,
            "raw_topic": f"{unique}.raw",
            "scored_topic": f"{unique}.scored",
            "dlq_topic": f"{unique}.dlq",
            "partitions": partitions,
            "group_id": f"{unique}-g",
            **(kafka or {}),
        },
        "redis": {"url": redis_url, "prefix": f"t-{unique}"},
        "worker": {"max_batch": 16, "max_wait_ms": 100, "lateness_s": 600, **(worker or {})},
        "model": model if model is not None else {"sentiment": "builtin:tiny-untrained", "emotion": None},
        "topics": topics,
    }
    if alerts is not None:
        cfg["alerts"] = alerts
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"mood-monitor {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def popen(*args: str, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen[bytes]:
    out = log.open("wb") if log else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", *args],
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )


def write_jsonl(path: Path, posts: list[dict[str, Any]], bad: list[bytes] = ()) -> Path:
    with path.open("wb") as fh:
        for p in posts:
            fh.write(orjson.dumps(p) + b"\n")
        for b in bad:
            fh.write(b + b"\n")
    return path


def dlq_records(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    """origin -> DLQ body (distinct)."""
    return {
        b["origin"]: b for b in (orjson.loads(r.value) for r in read_topic(bootstrap, topic, timeout_s=10))
    }


def wait_for(pred: Any, timeout_s: float = 60, every_s: float = 0.5) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(every_s)
    return bool(pred())
