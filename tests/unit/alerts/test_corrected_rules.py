"""Alert rules on the corrected share (`corrected: true`): a topic whose posts are 80 %
negative, seen by a model that calls a third of negative posts neutral, breaches a 70 %
threshold only through the correction; the share-shift rule sees the true jump."""

from __future__ import annotations

import random

import pytest

from monitor.aggregates import MINUTE_MS, Bucket
from monitor.alerts.rules import BREACH, CLEAR, evaluate
from monitor.alerts.settings import RuleSettings
from monitor.prevalence import Calibration, Corrector, evidence_fields
from monitor.taxonomy import SENTIMENTS

# the model: negative posts look neutral a third of the time
LOOKS = {
    0: ([(0.8, 0.15, 0.05), (0.3, 0.6, 0.1)], [2, 1]),
    1: ([(0.15, 0.7, 0.15), (0.1, 0.3, 0.6)], [4, 1]),
    2: ([(0.05, 0.15, 0.8), (0.1, 0.6, 0.3)], [4, 1]),
}


def _post(rng: random.Random, y: int) -> tuple[float, float, float]:
    protos, weights = LOOKS[y]
    return rng.choices(protos, weights)[0]


@pytest.fixture(scope="module")
def corrector() -> Corrector:
    rng = random.Random(7)
    probs = [_post(rng, y) for y in range(3) for _ in range(3000)]
    labels = [y for y in range(3) for _ in range(3000)]
    return Corrector("pacc", Calibration.from_validation(probs, labels, "synthetic"))


def _minute(rng: random.Random, start: int, n: int, neg: float) -> Bucket:
    fields: dict[str, float] = {"n": n}
    for _ in range(n):
        r = rng.random()
        y = 0 if r < neg else (1 if r < neg + (1 - neg) / 2 else 2)
        p = _post(rng, y)
        top = SENTIMENTS[max(range(3), key=lambda k: p[k])]
        fields[f"s:{top}"] = fields.get(f"s:{top}", 0) + 1
        for k, v in evidence_fields(p).items():
            fields[k] = fields.get(k, 0.0) + v
    return Bucket.from_hash(start, {k: str(v) for k, v in fields.items()})


def test_threshold_on_the_corrected_share_sees_what_counting_misses(corrector: Corrector) -> None:
    rng = random.Random(8)
    end = 100 * MINUTE_MS
    minutes = [_minute(rng, end - (15 - i) * MINUTE_MS, 40, 0.8) for i in range(15)]
    raw = RuleSettings(name="t", metric="negative_share", above=0.7, min_posts=30)
    fixed = RuleSettings(name="t", metric="negative_share", above=0.7, min_posts=30, corrected=True)
    ev_raw = evaluate(raw, minutes, end, corrector=corrector)
    ev_fixed = evaluate(fixed, minutes, end, corrector=corrector)
    assert ev_raw.status == CLEAR and ev_raw.value < 0.65
    assert ev_fixed.status == BREACH and abs(ev_fixed.value - 0.8) < 0.06
    assert ev_fixed.posts == 600


def test_share_shift_on_the_corrected_share_fires_on_the_true_jump(corrector: Corrector) -> None:
    rng = random.Random(9)
    end = 800 * MINUTE_MS
    minutes = [_minute(rng, end - (760 - i) * MINUTE_MS, 20, 0.2 if i < 745 else 0.8) for i in range(760)]
    rule = RuleSettings(name="s", metric="negative_share", corrected=True, min_effect_pp=50)
    ev = evaluate(rule, minutes, end, corrector=corrector)
    assert ev.status == BREACH, ev
    assert abs(ev.value - 0.8) < 0.06 and abs(ev.baseline - 0.2) < 0.05
    # the count of top labels sees a jump of about 40 points, under the 50-point floor
    raw = evaluate(rule.model_copy(update={"corrected": False}), minutes, end, corrector=corrector)
    assert raw.status != BREACH and raw.value - raw.baseline < 0.5


def test_corrected_is_for_sentiment_shares_only() -> None:
    with pytest.raises(ValueError, match="corrected"):
        RuleSettings(name="x", metric="anger_share", corrected=True)
