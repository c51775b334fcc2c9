"""Detectors and rules on synthetic minute buckets: the statistics, and planted shifts on a busy
and a quiet topic replayed through `backtest.simulate` (the live alerter's decisions)."""

from __future__ import annotations

import math
import random
from statistics import NormalDist

import pytest

from monitor.aggregates import MINUTE_MS, Bucket
from monitor.alerts import detectors as d
from monitor.alerts.backtest import simulate
from monitor.alerts.rules import BREACH, INSUFFICIENT, WARMING_UP, evaluate
from monitor.alerts.settings import AlertSettings, RuleSettings

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def synth_minutes(
    count: int,
    rate: float,
    p_neg: float,
    seed: int,
    *,
    start_ms: int = T0,
    shift: tuple[int, int, float] | None = None,
    volume_x: tuple[int, int, float] | None = None,
) -> list[Bucket]:
    """``count`` minute buckets: Poisson(rate) posts, each negative with p_neg (shift =
    (first minute, end minute, p) plants another share; volume_x multiplies the rate).
    Negative posts carry the emotion anger, the others joy or neutral."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        p = shift[2] if shift and shift[0] <= i < shift[1] else p_neg
        lam = rate * (volume_x[2] if volume_x and volume_x[0] <= i < volume_x[1] else 1.0)
        n = _poisson(rng, lam)
        k = sum(rng.random() < p for _ in range(n))
        joy = sum(rng.random() < 0.5 for _ in range(n - k))
        out.append(
            Bucket(
                start_ms + i * MINUTE_MS,
                n,
                {"negative": k, "neutral": n - k},
                -0.8 * k,
                {"anger": k, "joy": joy, "neutral": n - k - joy},
            )
        )
    return out


NEG = RuleSettings(name="neg", metric="negative_share")


# ---- statistics -------------------------------------------------------------------------------
def _exact_tail(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def test_binomial_z_grows_with_volume_for_the_same_share():
    quiet = d.binomial_z(k=4, n=10, p0=0.2)
    busy = d.binomial_z(k=800, n=2000, p0=0.2)
    # few posts: the exact binomial tail (the normal approximation would say 1.58 and over-fire)
    assert quiet == pytest.approx(-NormalDist().inv_cdf(_exact_tail(4, 10, 0.2)))
    assert 1.0 < quiet < (4 - 2) / math.sqrt(10 * 0.16)
    assert busy == pytest.approx(400 / math.sqrt(320))  # many posts: the z of the issue
    assert d.binomial_z(27, 68, 0.2) < d.binomial_z(270, 680, 0.2)
    assert d.binomial_z(5, 100, 0.2) < 0 and d.binomial_z(0, 0, 0.2) == 0


def test_overdispersion_shrinks_z_and_is_estimated_from_history():
    assert d.binomial_z(4000, 10000, 0.2, phi=4.0) == pytest.approx(d.binomial_z(4000, 10000, 0.2) / 2)
    assert d.binomial_z(40, 100, 0.2, phi=4.0) < d.binomial_z(40, 100, 0.2)
    steady = [Bucket(i, 100, {"negative": 20, "neutral": 80}) for i in range(10)]
    swinging = [
        Bucket(i, 100, {"negative": 5 if i % 2 else 35, "neutral": 95 if i % 2 else 65}) for i in range(10)
    ]
    counts = d.counts_for("negative_share")
    assert d.share_phi(steady, 0.2, counts, 10) == 1.0
    phi = d.share_phi(swinging, 0.2, counts, 10)
    assert phi == pytest.approx(225 / 16) or phi == 10  # capped at phi_max
    assert d.share_phi(swinging, 0.2, counts, 5.0) == 5.0


def test_ewma_baseline_weights_recent_minutes_and_counts_posts():
    old = [Bucket(T0 + i * MINUTE_MS, 100, {"negative": 10, "neutral": 90}) for i in range(60)]
    new = [Bucket(T0 + (60 + i) * MINUTE_MS, 100, {"negative": 50, "neutral": 50}) for i in range(60)]
    p0, n_eff = d.ewma_share(old + new, T0 + 120 * MINUTE_MS, 60, d.counts_for("negative_share"))
    assert 0.3 < p0 < 0.5  # the recent hour weighs twice the older one
    assert p0 == pytest.approx((0.5 * 2 + 0.1) / 3, abs=0.02)
    assert 100 * 60 < n_eff < 100 * 120
    rate, _ = d.ewma_rate(old, T0 + 60 * MINUTE_MS, 30)
    assert rate == pytest.approx(100)


def test_poisson_z_and_windows_alignment():
    assert d.poisson_z(1500, 1000) == pytest.approx(500 / math.sqrt(1000))
    assert d.poisson_z(1500, 1000, phi=4) == pytest.approx(250 / math.sqrt(1000))
    tail = 1 - sum(math.exp(-100) * 100**i / math.factorial(i) for i in range(150))
    assert d.poisson_z(150, 100) == pytest.approx(-NormalDist().inv_cdf(tail), rel=1e-6)
    assert d.poisson_z(150, 100, phi=4) < d.poisson_z(150, 100)
    ms = [Bucket(T0 + i * MINUTE_MS, i) for i in range(10)]
    ws = d.windows(ms, 3)
    assert [w.start_ms for w in ws] == [T0 + i * MINUTE_MS for i in (1, 4, 7)]
    assert [w.n for w in ws] == [1 + 2 + 3, 4 + 5 + 6, 7 + 8 + 9]


def test_seasonal_share_needs_enough_weeks():
    counts = d.counts_for("negative_share")
    hours = [
        Bucket(0, 300, {"negative": 30, "neutral": 270}),
        Bucket(0, 300, {"negative": 90, "neutral": 210}),
        Bucket(0, 300, {"negative": 60, "neutral": 240}),
        Bucket(0, 5, {"negative": 5}),
    ]
    assert d.seasonal_share(hours, counts, min_n=30) == pytest.approx(0.2)
    assert d.seasonal_share(hours[:1], counts, min_n=30) is None
    starts = d.same_hour_of_week(T0 + 90 * MINUTE_MS, 2)
    assert starts == [T0 + 3_600_000 - 7 * 86_400_000, T0 + 3_600_000 - 14 * 86_400_000]


def test_moved_terms_never_name_an_account():
    window = ["@jane_doe says outage again", "outage, cc @jane_doe @brand.bsky.social"] * 3
    terms = [t for t, _ in d.moved_terms(window, ["all fine here"] * 6)]
    assert "outage" in terms and not any("jane" in t or "brand" in t for t in terms)


def test_moved_terms_finds_what_the_window_talks_about():
    before = ["lovely weather today", "coffee is great", "weather again", "nice coffee"] * 5
    window = ["the outage broke checkout", "checkout outage again", "outage outage", "coffee fine"]
    terms = [t for t, _ in d.moved_terms(window, before)]
    assert terms[:2] == ["outage", "checkout"] and "coffee" not in terms and "the" not in terms


# ---- rules ------------------------------------------------------------------------------------
def test_rule_guards_minimum_posts_and_warm_up():
    ms = synth_minutes(40, 1, 0.2, seed=1)
    assert evaluate(NEG, ms, T0 + 40 * MINUTE_MS).status == INSUFFICIENT  # ~15 posts < 30
    busy = synth_minutes(20, 50, 0.2, seed=1)
    assert evaluate(NEG, busy, T0 + 20 * MINUTE_MS).status == WARMING_UP  # 5 min of baseline


def test_effect_size_floor_stops_significant_but_boring_shifts():
    hist = synth_minutes(735, 2000, 0.20, seed=2, shift=(720, 735, 0.24))
    ev = evaluate(NEG, hist, T0 + 735 * MINUTE_MS)
    assert ev.z is not None and ev.z > NEG.z_fire  # statistically clear ...
    assert ev.status != BREACH  # ... but only ~3.5 points: no alert


def test_kind_is_inferred_and_per_topic_rules_replace_global_ones():
    s = AlertSettings(
        rules=[
            {"name": "neg", "metric": "negative_share"},
            {"name": "neg", "metric": "negative_share", "topics": ["acme"], "min_effect_pp": 20},
            {"name": "loud", "metric": "volume"},
            {"name": "t", "above": 0.5},
        ]
    )
    kinds = {r.name: r.kind for r in s.rules}
    assert kinds == {"neg": "share_shift", "loud": "volume_spike", "t": "threshold"}
    assert {r.name: r.min_effect_pp for r in s.rules_for("acme")}["neg"] == 20
    assert {r.name: r.min_effect_pp for r in s.rules_for("other")}["neg"] == 10
    assert s.rules[2].z_fire == 4.0 and s.rules[3].z_fire == 0 and s.rules[3].fire_after == 1
    with pytest.raises(ValueError, match="share metric"):
        RuleSettings(name="x", kind="share_shift", metric="volume")
    with pytest.raises(ValueError, match="threshold"):
        RuleSettings(name="x", metric="negative_share", above=0.5, kind="share_shift")


# ---- planted shifts through simulate ----------------------------------------------------------
HIST = NEG.history_min


def _ideal_end(rule: RuleSettings, rate: float, p0: float, p1: float, start: int) -> int:
    """The first window end at which the EXPECTED figures of the planted shift meet every
    guard of the rule (n, hits, effect, z with phi = 1 against the true p0)."""
    for m in range(1, rule.window_min + 1):
        n = rate * rule.window_min
        k = rate * (p0 * (rule.window_min - m) + p1 * m)
        z = (k - n * p0) / math.sqrt(n * p0 * (1 - p0))
        if (
            n >= rule.min_posts
            and k >= rule.min_hits
            and z >= rule.z_fire
            and (k / n - p0) * 100 >= rule.min_effect_pp
        ):
            return T0 + (start + m) * MINUTE_MS
    raise AssertionError("the planted shift is too small to ever fire")


@pytest.mark.parametrize(("rate", "p1"), [(200, 0.40), (5, 0.80)], ids=["busy", "quiet"])
def test_planted_shift_fires_once_promptly_and_resolves(rate, p1):
    start, length, total = HIST + 60, 45, HIST + 240
    ms = synth_minutes(total, rate, 0.2, seed=7, shift=(start, start + length, p1))
    got = simulate([NEG], "t", ms, T0 + HIST * MINUTE_MS, T0 + total * MINUTE_MS)
    fires = [t for t in got if t.action == "fire"]
    resolves = [t for t in got if t.action == "resolve"]
    assert len(fires) == 1 and len(resolves) == 1
    ideal = _ideal_end(NEG, rate, 0.2, p1, start)
    # M = 2 consecutive breaches: the earliest possible fire is ideal + 1 minute
    assert T0 + start * MINUTE_MS < fires[0].end_ms <= ideal + 2 * MINUTE_MS, (
        fires[0].end_ms - ideal
    ) / MINUTE_MS
    shift_end = T0 + (start + length) * MINUTE_MS
    assert shift_end < resolves[0].end_ms <= shift_end + (NEG.window_min + NEG.resolve_after + 2) * MINUTE_MS
    assert all(t.action == "renotify" for t in got if t not in fires + resolves)


def test_quiet_topic_without_a_shift_never_fires_over_a_day():
    total = HIST + 24 * 60
    ms = synth_minutes(total, 5, 0.2, seed=11)
    rules = AlertSettings().rules  # the default rules: negative, volume and the six emotions
    got = simulate(rules, "quiet", ms, T0 + HIST * MINUTE_MS, T0 + total * MINUTE_MS)
    assert got == []


def test_volume_spike_fires_and_steady_volume_does_not():
    rule = RuleSettings(name="vol", metric="volume")
    start, total = rule.history_min + 30, rule.history_min + 120
    ms = synth_minutes(total, 20, 0.2, seed=3, volume_x=(start, start + 30, 4.0))
    got = simulate([rule], "t", ms, T0 + rule.history_min * MINUTE_MS, T0 + total * MINUTE_MS)
    assert [t.action for t in got][:1] == ["fire"] and [t.action for t in got][-1] == "resolve"
    assert got[0].end_ms <= T0 + (start + 7) * MINUTE_MS  # ratio 2 is reached at 5 minutes in
    steady = synth_minutes(total, 20, 0.2, seed=3)
    assert simulate([rule], "t", steady, T0 + rule.history_min * MINUTE_MS, T0 + total * MINUTE_MS) == []
