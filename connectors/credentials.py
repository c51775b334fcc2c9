"""Connector credentials from the environment or from secret files, never from config or logs.

`secret("REDDIT_CLIENT_SECRET")` reads ``$REDDIT_CLIENT_SECRET``, else the file named by
``$REDDIT_CLIENT_SECRET_FILE`` (Docker/Kubernetes secrets), stripped of its trailing newline.
The value comes back as a `Secret`, whose ``repr``/``str`` hide it; ``.value`` is for the one
place that sends it.
"""

from __future__ import annotations

import os
from pathlib import Path

from monitor.errors import ConfigError


class Secret:
    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


def secret(name: str, *, required: bool = True) -> Secret | None:
    val = os.environ.get(name)
    if not val:
        file = os.environ.get(f"{name}_FILE")
        if file:
            try:
                val = Path(file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"${name}_FILE", file, f"cannot read: {exc.strerror}") from exc
    if not val:
        if required:
            raise ConfigError("environment", name, f"not set (set ${name} or ${name}_FILE)")
        return None
    return Secret(val)
