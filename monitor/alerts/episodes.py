"""One (topic, rule)'s alert episode as a pure state machine: hysteresis, cooldown, re-notify.

    ok --breach--> pending --fire_after breaches in a row--> firing --resolve_after clears--> ok
         (a hold or clear in pending goes back to ok)        |  breach worse than notified:
                                                             |  "renotify" (severity up, or
                                                             |  level up by renotify_step)
    after a resolve a new episode may not notify before cooldown_until_ms (data time), it stays
    pending and fires as soon as the cooldown is over if it still breaches.

Times are window ends (epoch ms of the data), not wall clock, so a backtest and the live
alerter take the same decisions. `step` returns the new state and the action to notify.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from monitor.alerts.rules import HOLD, WARMING_UP, Evaluation
from monitor.alerts.settings import SEVERITY, RuleSettings

OK, PENDING, FIRING = "ok", "pending", "firing"
FIRE, RENOTIFY, RESOLVE = "fire", "renotify", "resolve"


@dataclass(frozen=True)
class Episode:
    status: str = OK
    breaches: int = 0  # consecutive breaching evaluations
    clears: int = 0  # consecutive clear evaluations while firing
    started_ms: int = 0  # window end of the episode's first breach
    baseline_end_ms: int = 0  # window start of the first breach: the baseline stops there
    notices: int = 0  # notifications of this episode (fire + re-notifications)
    notified_level: float = 0.0
    notified_severity: str = ""
    peak_level: float = 0.0
    cooldown_until_ms: int = 0
    last_end_ms: int = 0  # the last window end evaluated (a restart goes on after it)

    @property
    def open(self) -> bool:
        return self.status in (PENDING, FIRING)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> Episode:
        if not d:
            return cls()
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def step(ep: Episode, ev: Evaluation, rule: RuleSettings) -> tuple[Episode, str | None]:
    """Advance ``ep`` by one evaluation; returns (new state, FIRE | RENOTIFY | RESOLVE | None)."""
    ep = replace(ep, last_end_ms=max(ep.last_end_ms, ev.end_ms))
    if ep.status == FIRING:
        return _firing(ep, ev, rule)
    if not ev.breaching:
        return replace(ep, status=OK, breaches=0, clears=0), None
    first = ep.status == OK
    ep = replace(
        ep,
        status=PENDING,
        breaches=ep.breaches + 1,
        started_ms=ev.end_ms if first else ep.started_ms,
        baseline_end_ms=ev.end_ms - ev.window_min * 60_000 if first else ep.baseline_end_ms,
        peak_level=ev.level if first else max(ep.peak_level, ev.level),
    )
    if ep.breaches < rule.fire_after or ev.end_ms < ep.cooldown_until_ms:
        return ep, None
    return replace(
        ep, status=FIRING, clears=0, notices=1, notified_level=ev.level, notified_severity=ev.severity
    ), FIRE


def _firing(ep: Episode, ev: Evaluation, rule: RuleSettings) -> tuple[Episode, str | None]:
    if ev.breaching:
        ep = replace(ep, clears=0, peak_level=max(ep.peak_level, ev.level))
        worse_sev = SEVERITY.get(ev.severity, 0) > SEVERITY.get(ep.notified_severity, 0)
        worse_level = rule.renotify_step > 0 and ev.level >= ep.notified_level + rule.renotify_step
        if worse_sev or worse_level:
            sev = max(ev.severity, ep.notified_severity, key=lambda s: SEVERITY.get(s, 0))
            ep = replace(ep, notices=ep.notices + 1, notified_level=ev.level, notified_severity=sev)
            return ep, RENOTIFY
        return ep, None
    if ev.status in (HOLD, WARMING_UP):
        return replace(ep, clears=0), None
    ep = replace(ep, clears=ep.clears + 1)
    if ep.clears < rule.resolve_after:
        return ep, None
    return Episode(
        cooldown_until_ms=ev.end_ms + rule.cooldown_s * 1000,
        last_end_ms=ep.last_end_ms,
        started_ms=ep.started_ms,
        notices=ep.notices,
        peak_level=ep.peak_level,
        notified_severity=ep.notified_severity,
    ), RESOLVE
