"""The statistics behind the alert rules. Pure: minute buckets in, numbers out.

    ewma_share     n-weighted EWMA of a share (k/n) over past minutes: the baseline p0
    ewma_rate      EWMA of posts per minute over past minutes: the volume baseline
    share_phi      over-dispersion of a share over past non-overlapping windows (>= 1)
    volume_phi_n   over-dispersion of counts over past non-overlapping windows (>= 1)
    binomial_z     z = (k - n p0) / sqrt(phi n p0 (1 - p0))      volume-aware share test
    poisson_z      z = (n - lam) / sqrt(phi lam)                 count test
    seasonal_share median share of the same hour of week in past weeks (None without history)

Why volume-aware: with 10 posts a minute a 15-point swing of the negative share is noise, with
1,000 a 3-point move is real; a z that knows n works for quiet and busy topics alike, and phi
absorbs the burstiness of social data (reply storms, bots) that a pure binomial test ignores.
See docs/alerts.md.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from statistics import NormalDist

from monitor.aggregates import HOUR_MS, MINUTE_MS, Bucket, merge
from monitor.patterns import TERM, TERM_NOISE
from monitor.taxonomy import EMOTIONS

WEEK_MS = 7 * 24 * HOUR_MS

# bucket -> (hits k, trials n); a corrected share's k is fractional (`monitor.prevalence`)
Counts = Callable[[Bucket], tuple[float, int]]


def counts_for(metric: str) -> Counts:
    """(k, n) of a share metric: sentiments over definitely scored posts, emotions over posts
    with a definite emotion."""
    label = metric.removesuffix("_share")
    if label in EMOTIONS:

        def emo(b: Bucket) -> tuple[int, int]:
            return b.emotions.get(label, 0), sum(b.emotions.get(e, 0) for e in EMOTIONS)

        return emo

    def sent(b: Bucket) -> tuple[int, int]:
        return b.sentiments.get(label, 0), b.scored

    return sent


def _weight(age_ms: float, half_life_min: float) -> float:
    return float(0.5 ** (age_ms / (half_life_min * MINUTE_MS)))


def ewma_share(
    minutes: Sequence[Bucket], end_ms: int, half_life_min: float, counts: Counts
) -> tuple[float, float]:
    """(p0, effective n) of the n-weighted EWMA ``K/N`` over ``minutes`` (all before ``end_ms``)."""
    k_sum = n_sum = 0.0
    for b in minutes:
        k, n = counts(b)
        if n:
            w = _weight(end_ms - (b.start_ms + MINUTE_MS / 2), half_life_min)
            k_sum += w * k
            n_sum += w * n
    return (k_sum / n_sum if n_sum else 0.0), n_sum


def ewma_rate(minutes: Sequence[Bucket], end_ms: int, half_life_min: float) -> tuple[float, float]:
    """(posts per minute, effective minutes) of the EWMA over ``minutes`` (empty ones count)."""
    c = m = 0.0
    for b in minutes:
        w = _weight(end_ms - (b.start_ms + MINUTE_MS / 2), half_life_min)
        c += w * b.n
        m += w
    return (c / m if m else 0.0), m


def _decays(length: int, half_life_min: float) -> list[float]:
    """Weights of minutes oldest..newest whose midpoints lie 0.5 .. length - 0.5 minutes back."""
    step = 0.5 ** (1.0 / half_life_min)
    w = 0.5 ** (0.5 / half_life_min)
    out = [0.0] * length
    for i in range(length - 1, -1, -1):
        out[i] = w
        w *= step
    return out


def ewma_share_kn(kn: Sequence[tuple[float, int]], half_life_min: float) -> tuple[float, float]:
    """`ewma_share` over consecutive minutes given as (k, n), the newest last and ending now."""
    ws = _decays(len(kn), half_life_min)
    k_sum = sum(w * k for w, (k, _n) in zip(ws, kn, strict=True))
    n_sum = sum(w * n for w, (_k, n) in zip(ws, kn, strict=True))
    return (k_sum / n_sum if n_sum else 0.0), n_sum


def ewma_rate_n(counts: Sequence[int], half_life_min: float) -> tuple[float, float]:
    """`ewma_rate` over consecutive minutes' post counts, the newest last and ending now."""
    ws = _decays(len(counts), half_life_min)
    m = sum(ws)
    return (sum(w * c for w, c in zip(ws, counts, strict=True)) / m if m else 0.0), m


def block_sums(kn: Sequence[tuple[float, int]], size: int) -> list[tuple[float, int]]:
    """(k, n) of non-overlapping blocks of ``size`` minutes aligned to the END of ``kn``."""
    out = []
    i = len(kn)
    while i - size >= 0:
        block = kn[i - size : i]
        out.append((sum(k for k, _ in block), sum(n for _, n in block)))
        i -= size
    return out[::-1]


def share_phi_kn(blocks: Sequence[tuple[float, int]], p0: float, phi_max: float, min_n: int = 1) -> float:
    """`share_phi` over windows given as (k, n)."""
    if not 0.0 < p0 < 1.0:
        return 1.0
    r = [(k - n * p0) ** 2 / (n * p0 * (1 - p0)) for k, n in blocks if n >= max(1, min_n)]
    return min(phi_max, max(1.0, statistics.fmean(r))) if len(r) >= 3 else 1.0


def volume_phi_n(counts: Sequence[int], lam: float, phi_max: float) -> float:
    """Over-dispersion of windows' post counts against their mean ``lam`` (>= 1, capped)."""
    if lam <= 0:
        return 1.0
    r = [(c - lam) ** 2 / lam for c in counts]
    return min(phi_max, max(1.0, statistics.fmean(r))) if len(r) >= 3 else 1.0


def windows(minutes: Sequence[Bucket], size: int) -> list[Bucket]:
    """Non-overlapping windows of ``size`` minutes, aligned to the END of ``minutes``."""
    out = []
    i = len(minutes)
    while i - size >= 0:
        out.append(merge(minutes[i - size : i], minutes[i - size].start_ms))
        i -= size
    return out[::-1]


def share_phi(past: Sequence[Bucket], p0: float, counts: Counts, phi_max: float, min_n: int = 1) -> float:
    """Mean squared Pearson residual of past windows' shares against ``p0``, in [1, phi_max]
    (1 = binomial). Windows with fewer than ``min_n`` trials are left out."""
    if not 0.0 < p0 < 1.0:
        return 1.0
    r = []
    for w in past:
        k, n = counts(w)
        if n >= max(1, min_n):
            r.append((k - n * p0) ** 2 / (n * p0 * (1 - p0)))
    return min(phi_max, max(1.0, statistics.fmean(r))) if len(r) >= 3 else 1.0


_EXACT_BELOW = 200.0  # variance under which the exact tail replaces the normal approximation
_Z = NormalDist()


def _tail_z(log_tail: float) -> float:
    """The normal quantile of an upper-tail probability given as its logarithm."""
    tail = math.exp(log_tail) if log_tail > -700 else 0.0
    if tail <= 1e-300:
        return 37.5
    return -_Z.inv_cdf(tail) if tail < 1.0 else -37.5


def _logsumexp(xs: list[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def binomial_z(k: float, n: int, p0: float, phi: float = 1.0) -> float:
    """Over-dispersed binomial z of ``k`` hits in ``n`` trials against ``p0``:
    (k - n p0) / sqrt(phi n p0 (1 - p0)). For small counts the normal approximation over-fires
    (the tail of a skewed binomial is heavier), so there z is the normal quantile of the exact
    upper tail P(X >= k/phi) with X ~ Bin(n/phi, p0). p0 is kept off 0 and 1 by half a post."""
    if n <= 0:
        return 0.0
    phi = max(phi, 1.0)
    eps = 0.5 / n
    p = min(1 - eps, max(eps, p0))
    if k <= n * p or n * p * (1 - p) / phi >= _EXACT_BELOW:
        return (k - n * p) / math.sqrt(phi * n * p * (1 - p))
    ne, ke = round(n / phi), math.ceil(k / phi - 1e-9)
    if ke > ne:
        return 37.5
    lp, lq = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(ne + 1) - math.lgamma(i + 1) - math.lgamma(ne - i + 1) + i * lp + (ne - i) * lq
        for i in range(ke, ne + 1)
    ]
    return _tail_z(_logsumexp(terms))


def poisson_z(n: int, lam: float, phi: float = 1.0) -> float:
    """Over-dispersed Poisson z of ``n`` events against an expected ``lam``: (n - lam) / sqrt(phi lam);
    for small counts the normal quantile of the exact upper tail P(X >= n/phi), X ~ Poisson(lam/phi)."""
    lam = max(lam, 0.5)
    phi = max(phi, 1.0)
    if n <= lam or lam / phi >= _EXACT_BELOW:
        return (n - lam) / math.sqrt(phi * lam)
    le, ne = lam / phi, math.ceil(n / phi - 1e-9)
    # P(X >= ne) = 1 - P(X < ne); sum the upper terms directly (they are the small ones)
    top = ne + 400 + int(10 * math.sqrt(le))
    terms = [i * math.log(le) - le - math.lgamma(i + 1) for i in range(ne, top)]
    return _tail_z(_logsumexp(terms))


def seasonal_share(hours: Sequence[Bucket], counts: Counts, min_n: int, min_weeks: int = 2) -> float | None:
    """Median share of the same hour of week over past weeks (``hours`` are those hour
    buckets); None when fewer than ``min_weeks`` of them have ``min_n`` trials."""
    shares = [k / n for k, n in map(counts, hours) if n >= max(1, min_n)]
    return statistics.median(shares) if len(shares) >= min_weeks else None


def same_hour_of_week(end_ms: int, weeks: int) -> list[int]:
    """Starts of the hour buckets one, two, ... ``weeks`` weeks before the hour holding ``end_ms - 1``."""
    h = (end_ms - 1) - (end_ms - 1) % HOUR_MS
    return [h - i * WEEK_MS for i in range(1, weeks + 1)]


# ---- terms that moved (for the message, from the stored sample of recent posts) ----------------
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "i",
        "im",
        "in",
        "is",
        "it",
        "its",
        "just",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "them",
        "they",
        "this",
        "to",
        "too",
        "was",
        "we",
        "were",
        "what",
        "when",
        "with",
        "you",
        "your",
        "rt",
        "amp",
        "http",
        "https",
        "www",
        "com",
    ]
)


def tokens(text: str) -> set[str]:
    """Distinct lower-case words of a post (3+ letters, no stop words, no links or addresses,
    no @handles: an account name is a person's, and "terms that moved" would show it)."""
    text = TERM_NOISE.sub(" ", text.lower())
    return {t.strip("'-") for t in TERM.findall(text) if not t.startswith("@")} - _STOP


def moved_terms(
    window_texts: Sequence[str], before_texts: Sequence[str], top: int = 5, min_count: int = 2
) -> list[tuple[str, float]]:
    """Terms whose share of posts rose most in the window against the posts before it:
    (term, smoothed log ratio of document frequencies), best first."""
    if not window_texts:
        return []
    win: Counter[str] = Counter()
    bef: Counter[str] = Counter()
    for t in window_texts:
        win.update(tokens(t))
    for t in before_texts:
        bef.update(tokens(t))
    nw, nb = len(window_texts), max(1, len(before_texts))
    scored = [
        (term, math.log(((c + 0.5) / (nw + 1)) / ((bef[term] + 0.5) / (nb + 1))))
        for term, c in win.items()
        if c >= min_count
    ]
    scored = [s for s in scored if s[1] > 0]
    scored.sort(key=lambda s: (-s[1], s[0]))
    return scored[:top]
