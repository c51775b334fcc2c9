"""Evaluate one rule on one topic at one window end. Pure: minute buckets in, an `Evaluation` out.

    minutes  (contiguous minute buckets ending at end_ms, oldest first, empty ones included)
      |-- history: [end - window - lookback, window start)  -> baseline, phi
      '-- window:  [end - window, end)                      -> k, n, value
    -> Evaluation(status = breach | hold | clear | insufficient | warming_up, value, baseline, z ...)

``hold`` is the band between the resolve and the fire level: it neither counts towards firing
nor towards resolving (hysteresis). While an episode is open the caller passes
``baseline_end_ms`` = where the episode began, so a long spike never becomes its own baseline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from monitor.aggregates import MINUTE_MS, Bucket, merge
from monitor.alerts import detectors as d
from monitor.alerts.settings import RuleSettings
from monitor.prevalence import Corrector
from monitor.taxonomy import EMOTIONS

BREACH, HOLD, CLEAR, INSUFFICIENT, WARMING_UP = "breach", "hold", "clear", "insufficient", "warming_up"


@dataclass(frozen=True)
class Evaluation:
    rule: str
    kind: str
    metric: str
    end_ms: int
    window_min: int
    status: str
    severity: str
    posts: int = 0  # posts in the window
    hits: int = 0  # share rules: posts with the label; others: 0
    value: float = 0.0  # share (0..1), posts, or the metric's value
    baseline: float = 0.0  # baseline share, expected posts, or the threshold
    z: float | None = None
    phi: float = 1.0
    level: float = 0.0  # how bad: effect (share - baseline), ratio, or the value; for re-notify
    baseline_kind: str = ""  # "ewma", "seasonal", "threshold"
    reason: str = ""
    emotions: Mapping[str, float] = field(default_factory=dict)  # window's emotion mix

    @property
    def breaching(self) -> bool:
        return self.status == BREACH


class _Common(TypedDict):
    """The fields every evaluation of a rule shares."""

    rule: str
    kind: str
    metric: str
    end_ms: int
    window_min: int
    posts: int
    emotions: Mapping[str, float]


def corrected_counts(corrector: Corrector | None, metric: str) -> d.Counts:
    """(corrected hits, posts) of a sentiment share metric (`Corrector.counts`); without a
    corrector, the uncorrected counts of posts with probabilities (what cc counts)."""
    use = corrector or Corrector("cc", None)
    label = metric.removesuffix("_share")

    def counts(b: Bucket) -> tuple[float, int]:
        return use.counts(b.evidence, label)

    return counts


def _window_share(k: float, n: int) -> float:
    return min(1.0, max(0.0, k / n)) if n else 0.0


def metric_value(metric: str, b: Bucket) -> float:
    if metric == "volume":
        return float(b.n)
    if metric == "mean_score":
        return b.mean_score
    label = metric.removesuffix("_share")
    return b.emotion_share(label) if label in EMOTIONS else b.share(label)


def emotion_mix(b: Bucket) -> dict[str, float]:
    total = sum(b.emotions.get(e, 0) for e in EMOTIONS)
    return {e: b.emotions[e] / total for e in EMOTIONS if total and b.emotions.get(e)}


def evaluate(
    rule: RuleSettings,
    minutes: Sequence[Bucket],
    end_ms: int,
    *,
    baseline_end_ms: int | None = None,
    seasonal_hours: Sequence[Bucket] = (),
    corrector: Corrector | None = None,
) -> Evaluation:
    """Evaluate ``rule`` on the window ending at ``end_ms`` (a minute boundary); a rule with
    ``corrected: true`` reads its share through ``corrector`` (the model's calibration)."""
    w_start = end_ms - rule.window_min * MINUTE_MS
    in_window = [b for b in minutes if w_start <= b.start_ms < end_ms]
    h_end = min(w_start, baseline_end_ms) if baseline_end_ms is not None else w_start
    h_start = h_end - rule.baseline_lookback_min * MINUTE_MS
    history = [b for b in minutes if h_start <= b.start_ms < h_end]
    window = merge(in_window, w_start)
    base: _Common = {
        "rule": rule.name,
        "kind": rule.kind,
        "metric": rule.metric,
        "end_ms": end_ms,
        "window_min": rule.window_min,
        "posts": window.n,
        "emotions": emotion_mix(window),
    }
    counts = corrected_counts(corrector, rule.metric) if rule.corrected else None
    if rule.kind == "threshold":
        return _threshold(rule, window, base, counts)
    if rule.kind == "volume_spike":
        return _volume(rule, window, history, h_end, base)
    return _share(rule, window, history, h_end, seasonal_hours, base, counts)


def _severity(rule: RuleSettings, z: float) -> str:
    return "critical" if rule.escalate_z is not None and z >= rule.escalate_z else rule.severity


def _threshold(rule: RuleSettings, window: Bucket, base: _Common, counts: d.Counts | None) -> Evaluation:
    value = metric_value(rule.metric, window)
    basis = window.n if rule.metric == "volume" else window.scored
    if counts is not None:
        k, basis = counts(window)
        value = _window_share(k, basis)
    threshold = rule.above if rule.above is not None else rule.below
    assert threshold is not None
    if basis < rule.min_posts:
        return Evaluation(
            **base,
            status=INSUFFICIENT,
            severity=rule.severity,
            value=value,
            baseline=threshold,
            baseline_kind="threshold",
            reason=f"{basis} < {rule.min_posts} posts",
        )
    above = rule.above is not None
    hit = value > threshold if above else value < threshold
    return Evaluation(
        **base,
        status=BREACH if hit else CLEAR,
        severity=rule.severity,
        value=value,
        baseline=threshold,
        level=value if above else -value,
        baseline_kind="threshold",
        reason=f"{'above' if above else 'below'} {threshold:g}" if hit else "",
    )


def _share(
    rule: RuleSettings,
    window: Bucket,
    history: Sequence[Bucket],
    h_end: int,
    seasonal_hours: Sequence[Bucket],
    base: _Common,
    corrected: d.Counts | None = None,
) -> Evaluation:
    counts = corrected or d.counts_for(rule.metric)
    k, n = counts(window)
    value = k / n if n else 0.0
    if corrected is not None:  # the window's correction, clipped (its minutes are not)
        value = _window_share(k, n)
        k = value * n
    if n < rule.min_posts:
        return Evaluation(
            **base,
            hits=round(k),
            value=value,
            status=INSUFFICIENT,
            severity=rule.severity,
            reason=f"{n} < {rule.min_posts} posts",
        )
    kn = [counts(b) for b in history]
    p0, n_eff = d.ewma_share_kn(kn, rule.half_life_min)
    kind = "ewma"
    if rule.seasonal and seasonal_hours:
        s = d.seasonal_share(seasonal_hours, counts, rule.min_posts, rule.seasonal_min_weeks)
        if s is not None:
            p0, kind = s, "seasonal"
    if kind == "ewma" and (n_eff < rule.min_baseline_posts or len(history) < 3 * rule.window_min):
        return Evaluation(
            **base,
            hits=round(k),
            value=value,
            status=WARMING_UP,
            severity=rule.severity,
            baseline=p0,
            baseline_kind=kind,
            reason=f"baseline: {n_eff:.0f} posts in {len(history)} minutes",
        )
    phi = d.share_phi_kn(d.block_sums(kn, rule.window_min), p0, rule.phi_max, rule.min_posts)
    z = d.binomial_z(k, n, p0, phi)
    effect = value - p0
    if z >= rule.z_fire and effect * 100 >= rule.min_effect_pp and k >= rule.min_hits:
        status = BREACH
    elif z < rule.z_resolve or effect * 100 < rule.min_effect_pp / 2:
        status = CLEAR
    else:
        status = HOLD
    return Evaluation(
        **base,
        hits=round(k),
        value=value,
        status=status,
        severity=_severity(rule, z),
        baseline=p0,
        z=z,
        phi=phi,
        level=effect,
        baseline_kind=kind,
    )


def _volume(
    rule: RuleSettings, window: Bucket, history: Sequence[Bucket], h_end: int, base: _Common
) -> Evaluation:
    n = window.n
    counts = [b.n for b in history]
    rate, _m = d.ewma_rate_n(counts, rule.half_life_min)
    lam = rate * rule.window_min
    if len(history) < 2 * rule.window_min:
        return Evaluation(
            **base,
            value=float(n),
            baseline=lam,
            baseline_kind="ewma",
            status=WARMING_UP,
            severity=rule.severity,
            reason=f"{len(history)} < {2 * rule.window_min} minutes of history",
        )
    if n < rule.min_posts:
        return Evaluation(
            **base,
            value=float(n),
            baseline=lam,
            baseline_kind="ewma",
            status=INSUFFICIENT,
            severity=rule.severity,
            reason=f"{n} < {rule.min_posts} posts",
        )
    phi = d.volume_phi_n(
        [c for _, c in d.block_sums([(0, c) for c in counts], rule.window_min)], lam, rule.phi_max
    )
    z = d.poisson_z(n, lam, phi)
    ratio = n / max(lam, 0.5)
    if z >= rule.z_fire and ratio >= rule.min_ratio:
        status = BREACH
    elif z < rule.z_resolve or ratio < 1 + (rule.min_ratio - 1) / 2:
        status = CLEAR
    else:
        status = HOLD
    return Evaluation(
        **base,
        value=float(n),
        baseline=lam,
        baseline_kind="ewma",
        status=status,
        severity=_severity(rule, z),
        z=z,
        phi=phi,
        level=ratio,
    )
