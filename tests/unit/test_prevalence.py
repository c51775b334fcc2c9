"""The share corrections (monitor.prevalence): exact on synthetic label shift, additive evidence,
intervals that widen with less data, a calibration file that round-trips and rejects garbage."""

import random

import pytest

from monitor.aggregates import Bucket, bucket_deltas, merge
from monitor.messages import Post, ScoredPost, decode_scored, encode_scored
from monitor.prevalence import (
    ADJUSTED,
    BINS,
    METHODS,
    Calibration,
    Corrector,
    Evidence,
    estimate,
    evidence_fields,
    simplex_least_squares,
)

# a model that calls 25 % of negative posts neutral and prefers positive on neutral ones
PROTOTYPES = {
    0: [(0.8, 0.15, 0.05), (0.3, 0.6, 0.1)],
    1: [(0.2, 0.6, 0.2), (0.1, 0.3, 0.6)],
    2: [(0.05, 0.15, 0.8), (0.1, 0.6, 0.3)],
}
WEIGHTS = {0: [0.75, 0.25], 1: [0.6, 0.4], 2: [0.8, 0.2]}


def posts(rng: random.Random, y: int, n: int) -> list[tuple[float, float, float]]:
    return [rng.choices(PROTOTYPES[y], WEIGHTS[y])[0] for _ in range(n)]


def sample(rng: random.Random, counts: tuple[int, int, int]) -> list[tuple[float, float, float]]:
    return [p for y, n in enumerate(counts) for p in posts(rng, y, n)]


@pytest.fixture(scope="module")
def cal() -> Calibration:
    rng = random.Random(1)
    probs, labels = [], []
    for y in range(3):
        probs += posts(rng, y, 4000)
        labels += [y] * 4000
    return Calibration.from_validation(probs, labels, "synthetic")


def test_adjusted_methods_recover_a_shifted_mix_that_counting_misses(cal: Calibration) -> None:
    ev = Evidence.of(sample(random.Random(2), (8000, 1500, 500)))  # 80 % negative
    cc = estimate("cc", ev, cal)
    assert cc.shares[0] < 0.66  # counting is far off
    for m in (m for m in ADJUSTED if m != "em"):  # em needs calibrated posteriors: below
        e = estimate(m, ev, cal, bootstrap_rounds=30)
        assert abs(e.shares[0] - 0.8) < 0.03, (m, e.shares)
        assert abs(sum(e.shares) - 1) < 1e-9 and min(e.shares) >= 0
        assert e.low[0] <= 0.8 <= e.high[0], (m, e.low, e.high)


def test_intervals_narrow_with_more_posts(cal: Calibration) -> None:
    rng = random.Random(3)
    small = Evidence.of(sample(rng, (30, 15, 5)))
    large = Evidence.of(sample(rng, (3000, 1500, 500)))
    for m in METHODS:
        ws = estimate(m, small, cal, bootstrap_rounds=30)
        wl = estimate(m, large, cal, bootstrap_rounds=30)
        assert wl.high[0] - wl.low[0] < ws.high[0] - ws.low[0], m


def test_simplex_least_squares_stays_on_the_simplex() -> None:
    c = ((0.8, 0.15, 0.05), (0.2, 0.6, 0.2), (0.05, 0.15, 0.8))
    # an observation no mix explains (more "negative" top labels than any mix gives)
    pi = simplex_least_squares(c, (0.95, 0.04, 0.01))
    assert pi[0] == pytest.approx(1.0) and min(pi) >= 0 and sum(pi) == pytest.approx(1.0)


def test_evidence_is_additive_through_buckets() -> None:
    rng = random.Random(4)
    a, b = sample(rng, (10, 5, 3)), sample(rng, (2, 7, 9))

    def bucket(probs: list[tuple[float, float, float]], start: int) -> Bucket:
        acc: dict[str, float] = {}
        for p in probs:
            for k, v in evidence_fields(p).items():
                acc[k] = acc.get(k, 0.0) + v
        return Bucket.from_hash(start, {k: str(v) for k, v in acc.items()})

    merged = merge([bucket(a, 0), bucket(b, 60_000)], 0).evidence
    direct = Evidence.of(a + b)
    assert merged.n == direct.n == 36
    assert merged.top == direct.top and merged.hist_neg == direct.hist_neg
    assert merged.post == pytest.approx(direct.post)
    assert sum(merged.hist_pos) == 36 and len(merged.hist_pos) == BINS
    assert merged.cells == direct.cells and sum(merged.cells) == 36
    assert merged.cell_neg == pytest.approx(direct.cell_neg)


def test_a_scored_post_carries_its_probabilities_into_the_deltas() -> None:
    p = Post(id="x", source="src", text="t", created_ms=0, ingested_ms=0, lang="en")
    sp = ScoredPost(p, "negative", -0.6, 0.7, "anger", 0.9, ("a",), "m", 0, sentiment_probs=(0.7, 0.2, 0.1))
    back = decode_scored(encode_scored(sp))
    assert back.sentiment_probs == (0.7, 0.2, 0.1)
    d = bucket_deltas([(back, 0)])["a"][("m", 0)]
    assert d["t:negative"] == 1 and d["hn:7"] == 1 and d["hp:1"] == 1
    assert d["p:negative"] == 7000 and d["p:positive"] == 1000  # units of 1/SCALE


@pytest.mark.parametrize(
    "bad", [[0.5, 0.5], [0.5, 0.5, 0.5], [-0.1, 0.6, 0.5], ["a", 0.5, 0.5], "x", [2, 0, -1]]
)
def test_bad_probabilities_in_a_scored_record_name_the_field(bad: object) -> None:
    import orjson

    from monitor.errors import DecodeError

    p = Post(id="x", source="src", text="t", created_ms=0, ingested_ms=0)
    sp = ScoredPost(p, "negative", -0.6, 0.7, "anger", 0.9, ("a",), "m", 0)
    obj = orjson.loads(encode_scored(sp))
    obj["sentiment_probs"] = bad
    with pytest.raises(DecodeError, match="sentiment_probs"):
        decode_scored(orjson.dumps(obj))


def test_non_finite_model_output_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        evidence_fields((float("nan"), 0.5, 0.5))


def test_calibration_round_trips_and_rejects_garbage(cal: Calibration) -> None:
    assert Calibration.from_json(cal.as_json()) == cal
    broken = cal.as_json()
    broken["top_given_class"] = [[0.5, 0.5, 0.5]] * 3
    with pytest.raises(ValueError, match="top_given_class"):
        Calibration.from_json(broken)
    with pytest.raises(ValueError, match="support"):
        Calibration.from_json({**cal.as_json(), "support": [0, 1, 2]})


def test_corrector_row_keeps_raw_counts_and_falls_back_without_calibration(cal: Calibration) -> None:
    ev = Evidence.of(sample(random.Random(5), (80, 15, 5)))
    row = Corrector("pacc", cal).row(ev)
    assert row["method"] == "pacc" and row["n"] == 100
    assert row["negative"]["low"] <= row["negative"]["share"] <= row["negative"]["high"]
    fallback = Corrector("pacc", None).row(ev)
    assert fallback["method"] == "cc" and "no calibration" in fallback["note"]
    empty = Corrector("pacc", cal).row(Evidence.of([]))
    assert empty["n"] == 0 and empty["negative"]["share"] is None and "no post" in empty["note"]
    with pytest.raises(ValueError, match="method"):
        Corrector("nope", cal)


def test_adjusted_intervals_cover_the_truth_about_90_percent_under_label_shift(cal: Calibration) -> None:
    rng = random.Random(11)
    hits = {"acc": 0, "pacc": 0}
    rounds = 200
    for _ in range(rounds):
        neg = rng.uniform(0.05, 0.95)
        counts = (round(400 * neg), round(400 * (1 - neg) / 2), 0)
        counts = (counts[0], counts[1], 400 - counts[0] - counts[1])
        ev = Evidence.of(sample(rng, counts))
        truth = counts[0] / 400
        for m in hits:
            e = estimate(m, ev, cal)
            hits[m] += e.low[0] <= truth <= e.high[0]
    for m, h in hits.items():
        assert 0.85 <= h / rounds <= 0.99, (m, h / rounds)


def test_a_calibration_with_a_broken_covariance_is_refused(cal: Calibration) -> None:
    assert cal.post_cov is not None
    obj = cal.as_json()
    obj["posterior_cov_given_class"][0][0][1] = 0.5  # no longer symmetric
    with pytest.raises(ValueError, match="symmetric"):
        Calibration.from_json(obj)
    del obj["posterior_cov_given_class"]  # optional: the bound is used instead
    assert Calibration.from_json(obj).post_cov is None


def test_em_on_the_joint_histogram_recovers_the_mix_from_calibrated_posteriors() -> None:
    # four kinds of post, each with a likelihood per class; a post's posterior is the Bayes
    # posterior of its kind under a uniform prior (what a class-balanced model learns)
    like = {"a": (0.6, 0.1, 0.05), "b": (0.3, 0.5, 0.15), "c": (0.05, 0.3, 0.2), "d": (0.05, 0.1, 0.6)}
    post = {k: tuple(v / sum(ls) for v in ls) for k, ls in like.items()}
    rng = random.Random(12)
    kinds = list(like)

    def draw(y: int, n: int) -> list[tuple[float, ...]]:
        return [post[rng.choices(kinds, [like[k][y] for k in kinds])[0]] for _ in range(n)]

    val = [draw(y, 3000) for y in range(3)]
    cal = Calibration.from_validation(
        [p for g in val for p in g], [y for y in range(3) for _ in range(3000)], "synthetic", (1, 1, 1)
    )
    assert cal.posterior_prior == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    ev = Evidence.of(draw(0, 7000) + draw(1, 2000) + draw(2, 1000))
    e = estimate("em", ev, cal, bootstrap_rounds=40)
    assert e.shares == pytest.approx((0.7, 0.2, 0.1), abs=0.03)
    assert e.low[0] <= 0.7 <= e.high[0] and e.n == 10_000
    assert abs(estimate("cc", ev, cal).shares[0] - 0.7) > 0.05  # counting is off
    # buckets written before the joint histogram existed: no estimate, said by n = 0
    old = Evidence(ev.n, ev.top, ev.post, ev.hist_neg, ev.hist_pos)
    assert estimate("em", old, cal).n == 0
    assert Calibration.from_json(cal.as_json()) == cal


def test_a_domain_shift_term_widens_the_intervals_of_its_method_only(cal: Calibration) -> None:
    """A calibration that carries a domain-shift standard deviation for a method widens that
    method's intervals by it (half-widths add in variance), keeps its shares, leaves other
    methods alone, and round-trips through quantify.json."""
    from dataclasses import replace

    shifted = replace(cal, shift_sd=(("hdy", 0.05), ("pacc", 0.1)))
    assert Calibration.from_json(shifted.as_json()) == shifted
    ev = Evidence.of(sample(random.Random(9), (300, 150, 50)))
    for m, sd in (("pacc", 0.1), ("hdy", 0.05)):
        plain, wide = estimate(m, ev, cal), estimate(m, ev, shifted)
        assert wide.shares == plain.shares
        for k in range(3):
            h = plain.shares[k] - plain.low[k]
            want = max(0.0, plain.shares[k] - (h * h + (1.6449 * sd) ** 2) ** 0.5)
            assert wide.low[k] == pytest.approx(want)
            assert wide.high[k] >= plain.high[k] and wide.high[k] <= 1.0
    assert estimate("acc", ev, shifted) == estimate("acc", ev, cal)  # no term for acc
    assert estimate("cc", ev, shifted) == estimate("cc", ev, cal)  # raw counts are never widened
    for bad, match in (
        ({"cc": 0.1}, "not one of"),
        ({"hdy": 1.5}, r"domain_shift_sd\.hdy"),
        ({"hdy": "x"}, r"domain_shift_sd\.hdy"),
        ([0.1], "expected an object"),
    ):
        with pytest.raises(ValueError, match=match):
            Calibration.from_json({**cal.as_json(), "domain_shift_sd": bad})
