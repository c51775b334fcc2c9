"""The ``alerts:`` config section: rules and destinations. Pure (pydantic only).

Webhook URLs are secrets: give them by ``url_env`` (an environment variable) or ``url_file``
(a file, e.g. a docker secret), never in the YAML itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from monitor.taxonomy import EMOTIONS

METRICS = ("negative_share", "positive_share", "mean_score", "volume",
           *(f"{e}_share" for e in EMOTIONS if e != "neutral"))


class _M(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuleSettings(_M):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["threshold"] = "threshold"
    metric: str = "negative_share"
    above: float | None = None
    below: float | None = None
    window_min: int = Field(15, ge=1, le=7 * 24 * 60)
    min_posts: int = Field(20, ge=0)
    cooldown_s: int = Field(3600, ge=0)
    topics: list[str] = ["*"]
    severity: Literal["info", "warning", "critical"] = "warning"
    # evaluate only minutes whose lateness allowance has passed (no half-filled minutes)
    sealed_only: bool = True

    @model_validator(mode="after")
    def _check(self) -> RuleSettings:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {list(METRICS)}")
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above / below")
        return self

    def applies_to(self, topic: str) -> bool:
        return "*" in self.topics or topic in self.topics


class DestinationSettings(_M):
    name: str = Field(min_length=1)
    kind: Literal["slack", "webhook"] = "slack"
    url_env: str | None = None
    url_file: str | None = None
    topics: list[str] = ["*"]
    min_severity: Literal["info", "warning", "critical"] = "info"

    @model_validator(mode="after")
    def _one_source(self) -> DestinationSettings:
        if self.url_env is None and self.url_file is None:
            raise ValueError("give url_env and/or url_file (webhook URLs are secrets, not config)")
        return self

    def url(self) -> SecretStr | None:
        """From the environment variable if set, else from the file (e.g. a docker secret)."""
        if self.url_env and os.environ.get(self.url_env):
            return SecretStr(os.environ[self.url_env].strip())
        if self.url_file and Path(self.url_file).is_file():
            v = Path(self.url_file).read_text().strip()
            return SecretStr(v) if v else None
        return None


class AlertSettings(_M):
    interval_s: float = Field(30.0, gt=0)
    lease_ttl_s: int = Field(60, ge=5)
    max_per_s_per_destination: float = Field(1.0, gt=0)
    rules: list[RuleSettings] = [
        RuleSettings(name="negative-share", metric="negative_share", above=0.5, window_min=15, min_posts=30),
    ]
    destinations: list[DestinationSettings] = []
