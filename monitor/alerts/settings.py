"""The ``alerts:`` config section: rules, destinations and routing. Pure (pydantic only).

Rule kinds (the defaults of every parameter are in docs/alerts.md):

    share_shift    a share (negative_share, anger_share, ...) over the window against its own
                   EWMA baseline, with an over-dispersed binomial z, a minimum post count and a
                   minimum effect size in percentage points
    volume_spike   posts in the window against the EWMA rate, over-dispersed Poisson z and a
                   minimum ratio
    threshold      a plain ``above`` / ``below`` on any metric

``kind`` may be left out: ``above``/``below`` make a threshold, ``metric: volume`` a volume
spike, anything else a share shift. A rule whose ``topics`` names a topic replaces, for that
topic, the rule of the same name that applies to all topics (``"*"``).

Webhook URLs are secrets: give them by ``url_env`` (an environment variable) or ``url_file``
(a file, e.g. a docker secret), never in the YAML itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from monitor.taxonomy import EMOTIONS

Severity = Literal["info", "warning", "critical"]
SEVERITY = {"info": 0, "warning": 1, "critical": 2}
SHARE_METRICS = ("negative_share", "positive_share", *(f"{e}_share" for e in EMOTIONS if e != "neutral"))
METRICS = (*SHARE_METRICS, "mean_score", "volume")

# per-kind defaults of the parameters whose sensible value depends on the kind
_KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "share_shift": {
        "z_fire": 4.0,
        "z_resolve": 2.0,
        "fire_after": 2,
        "resolve_after": 5,
        "renotify_step": 0.10,
    },
    "volume_spike": {
        "z_fire": 4.0,
        "z_resolve": 2.0,
        "fire_after": 2,
        "resolve_after": 5,
        "renotify_step": 1.0,
    },
    "threshold": {"z_fire": 0.0, "z_resolve": 0.0, "fire_after": 1, "resolve_after": 3, "renotify_step": 0.0},
}


class _M(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuleSettings(_M):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["share_shift", "volume_spike", "threshold"] = "share_shift"
    metric: str = "negative_share"
    # negative_share / positive_share: use the share corrected for the topic's mix
    # (model.share_method, `monitor.prevalence`) instead of the count of top labels
    corrected: bool = False
    topics: list[str] = ["*"]
    severity: Severity = "warning"
    # the window and its guards
    window_min: int = Field(default=15, ge=1, le=7 * 24 * 60)
    min_posts: int = Field(default=30, ge=0)
    min_hits: int = Field(default=10, ge=0)  # share_shift: posts carrying the label
    min_effect_pp: float = Field(default=10.0, ge=0, le=100)  # share_shift: share - baseline, in points
    min_ratio: float = Field(default=2.0, ge=1)  # volume_spike: posts / expected posts
    # threshold
    above: float | None = None
    below: float | None = None
    # baseline and test
    z_fire: float = Field(default=4.0, ge=0)
    z_resolve: float = Field(default=2.0, ge=0)
    half_life_min: float = Field(default=120.0, gt=0)
    baseline_lookback_min: int = Field(default=720, ge=10, le=2 * 24 * 60)
    min_baseline_posts: int = Field(default=200, ge=1)  # share_shift: effective posts; volume: x window
    phi_max: float = Field(default=10.0, ge=1)
    seasonal: bool = False  # hour-of-week median baseline once `seasonal_min_weeks` exist
    seasonal_weeks: int = Field(default=4, ge=1, le=5)
    seasonal_min_weeks: int = Field(default=2, ge=1, le=5)
    # episode: hysteresis, cooldown, re-notification
    fire_after: int = Field(default=2, ge=1)
    resolve_after: int = Field(default=5, ge=1)
    cooldown_s: int = Field(default=1800, ge=0)
    escalate_z: float | None = 6.0  # at or above: severity critical (re-notifies)
    renotify_step: float = Field(default=0.10, ge=0)  # worsening that re-notifies; 0 = escalation only
    # evaluate only minutes whose lateness allowance has passed (no half-filled minutes)
    sealed_only: bool = True

    @model_validator(mode="before")
    @classmethod
    def _infer(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        d = dict(data)
        if "kind" not in d:
            if d.get("above") is not None or d.get("below") is not None:
                d["kind"] = "threshold"
            elif d.get("metric") == "volume":
                d["kind"] = "volume_spike"
            else:
                d["kind"] = "share_shift"
        if d["kind"] == "volume_spike":
            d.setdefault("metric", "volume")
        for k, v in _KIND_DEFAULTS.get(str(d["kind"]), {}).items():
            d.setdefault(k, v)
        return d

    @model_validator(mode="after")
    def _check(self) -> RuleSettings:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {list(METRICS)}")
        if self.kind == "threshold":
            if (self.above is None) == (self.below is None):
                raise ValueError("a threshold rule needs exactly one of above / below")
        elif self.above is not None or self.below is not None:
            raise ValueError(f"above / below belong to threshold rules, not {self.kind}")
        if self.corrected and self.metric not in ("negative_share", "positive_share"):
            raise ValueError("corrected applies to negative_share and positive_share only")
        if self.kind == "share_shift" and self.metric not in SHARE_METRICS:
            raise ValueError(f"share_shift needs a share metric, one of {list(SHARE_METRICS)}")
        if self.kind == "volume_spike" and self.metric != "volume":
            raise ValueError("volume_spike works on metric: volume")
        if self.kind != "threshold" and self.z_resolve > self.z_fire:
            raise ValueError("z_resolve must not exceed z_fire (hysteresis)")
        return self

    def applies_to(self, topic: str) -> bool:
        return "*" in self.topics or topic in self.topics

    @property
    def history_min(self) -> int:
        """Minutes of history the rule reads: its baseline lookback plus its window."""
        return self.baseline_lookback_min + self.window_min


def default_rules() -> list[RuleSettings]:
    emotions = [
        RuleSettings(name=f"{e}-shift", metric=f"{e}_share", severity="info")
        for e in EMOTIONS
        if e != "neutral"
    ]
    return [
        RuleSettings(name="negative-shift", metric="negative_share"),
        RuleSettings(name="volume-spike", metric="volume", severity="info"),
        *emotions,
    ]


class DestinationSettings(_M):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["slack", "webhook"] = "slack"
    url_env: str | None = None
    url_file: str | None = None
    topics: list[str] = ["*"]
    min_severity: Severity = "info"
    max_per_s: float = Field(default=1.0, gt=0)  # Slack: about one message per second per webhook

    @model_validator(mode="after")
    def _one_source(self) -> DestinationSettings:
        if self.url_env is None and self.url_file is None:
            raise ValueError("give url_env and/or url_file (webhook URLs are secrets, not config)")
        return self

    def wants(self, topic: str, severity: str) -> bool:
        in_scope = "*" in self.topics or topic in self.topics
        return in_scope and SEVERITY[severity] >= SEVERITY[self.min_severity]

    def url(self) -> SecretStr | None:
        """From the environment variable if set, else from the file (e.g. a docker secret)."""
        if self.url_env and os.environ.get(self.url_env):
            return SecretStr(os.environ[self.url_env].strip())
        if self.url_file and Path(self.url_file).is_file():
            v = Path(self.url_file).read_text().strip()
            return SecretStr(v) if v else None
        return None


class AlertSettings(_M):
    interval_s: float = Field(default=30.0, gt=0)
    lease_ttl_s: int = Field(default=60, ge=5)
    max_catchup_min: int = Field(default=15, ge=1)  # sealed minutes evaluated one by one after a pause
    backoff_base_s: float = Field(default=1.0, gt=0)  # 5xx / network: base * 2^attempt, capped
    backoff_max_s: float = Field(default=300.0, gt=0)
    give_up_after_s: int = Field(default=24 * 3600, ge=60)  # a message still undelivered then is dropped
    # linked from the message; {topic}, {from_ms}, {to_ms} are filled in (alerter.dashboard_link)
    dashboard_url: str | None = None
    # a quoted post's permalink is linked only on these hosts (and their subdomains), e.g. your
    # Mastodon instance; any other URL of a post is shown as text (docs/security.md)
    link_hosts: list[str] = Field(default_factory=lambda: ["bsky.app", "reddit.com"])
    log_max_len: int = Field(default=10_000, ge=100)  # the alert log (a Redis stream) keeps about this many
    rules: list[RuleSettings] = Field(default_factory=default_rules)
    destinations: list[DestinationSettings] = []

    @model_validator(mode="after")
    def _unique(self) -> AlertSettings:
        names = [d.name for d in self.destinations]
        if len(names) != len(set(names)):
            raise ValueError("destination names must be unique")
        return self

    def rules_for(self, topic: str) -> list[RuleSettings]:
        """The rules of a topic: a rule naming the topic replaces a ``"*"`` rule of the same name."""
        chosen: dict[str, RuleSettings] = {}
        for r in self.rules:
            if not r.applies_to(topic):
                continue
            if r.name not in chosen or (topic in r.topics and topic not in chosen[r.name].topics):
                chosen[r.name] = r
        return list(chosen.values())
