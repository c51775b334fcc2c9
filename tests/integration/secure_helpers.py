"""The secured stack for tests: started on free ports in a temporary directory, and one config
file per process role (each role its own Redis ACL user, the Kafka SCRAM user ``mood``)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import yaml

from devstack.stack.secure import SecureStack

# the tests' key prefixes are "t<hex>" (the `unique` fixture): the ACL users get "t*"
PREFIX_PATTERN = "t*"
STARTED_S: list[float] = []  # how long the stack took to start (the report prints it)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_secure_stack(directory: Path) -> SecureStack:
    st = SecureStack(
        dir=directory,
        kafka_port=_free_port(),
        controller_port=_free_port(),
        mtls_port=_free_port(),
        redis_port=_free_port(),
        prefix=PREFIX_PATTERN,
        kafka_heap="512m",
    )
    t0 = time.monotonic()
    st.up()
    STARTED_S.append(time.monotonic() - t0)
    return st


def secure_config(
    tmp_path: Path,
    st: SecureStack,
    unique: str,
    role: str,
    *,
    topics: list[dict[str, Any]],
    kafka: dict[str, Any] | None = None,
    redis: dict[str, Any] | None = None,
    alerts: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """``monitor-<role>.yaml``: the secured Kafka and Redis sections (``kafka``/``redis``
    replace keys), the test's topics, prefix and the untrained tiny model."""
    cfg: dict[str, Any] = {
        "kafka": st.kafka_section(
            raw_topic=f"{unique}.raw",
            scored_topic=f"{unique}.scored",
            dlq_topic=f"{unique}.dlq",
            partitions=2,
            group_id=f"{unique}-g",
            **(kafka or {}),
        ),
        "redis": st.redis_section(role, prefix=unique, **(redis or {})),
        "worker": {"max_batch": 16, "max_wait_ms": 100, "lateness_s": 600},
        "model": {"sentiment": "builtin:tiny-untrained", "emotion": None},
        "topics": topics,
        **(extra or {}),
    }
    if alerts is not None:
        cfg["alerts"] = alerts
    path = tmp_path / f"monitor-{role}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
