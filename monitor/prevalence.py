"""Sentiment shares that stay right when a topic's mix moves away from the training mix
(quantification under label shift). Pure (stdlib only).

Counting each post's top label (classify-and-count, what the ``s:<label>`` fields hold) is
biased whenever the mix differs from the one the model was trained on: a model that calls 20 %
of negative posts neutral reports 64 % for a topic whose posts are 80 % negative. The methods
here correct the count with what the model does on labelled validation data (`Calibration`,
shipped next to the model as ``quantify.json``), from what a bucket keeps (`Evidence`: additive
over minutes, hours and workers):

    t:<label>    posts whose top sentiment is <label> (whatever ``uncertain_below`` says)
    p:<label>    sum of the posts' P(<label>), in units of 1/SCALE (an integer)
    hn:<bin>     posts with P(negative) in bin <bin> of BINS equal bins of [0, 1]
    hp:<bin>     posts with P(positive) in bin <bin>
    c:<ij> cn:<ij> cp:<ij>
                 the joint histogram: posts whose P(negative) is in bin i and P(positive) in
                 bin j of CELLS equal bins, and the sums of their P(negative), P(positive)
                 (units of 1/SCALE)

Methods (`METHODS`):

    cc     classify-and-count: the share of top labels (no correction; biased under shift)
    pcc    probabilistic classify-and-count: the mean posterior (as biased)
    acc    adjusted count: solve  q_top = C^T pi  for the shares pi, C[y][j] = P(top = j | y)
    pacc   probabilistic adjusted count: the same with the mean posteriors given each class
    hdy    HDy: the shares whose mixture of the classes' validation histograms of P(negative)
           and P(positive) is closest (Hellinger distance) to the bucket's histograms
    hem    the maximum-likelihood mix of the same histograms (EM over the bins)
    em     Saerens' EM: the posteriors re-weighed from the prior they answer for (the
           calibration's ``posterior_prior``: uniform for the class-balanced default model)
           until they agree with the shares, on a joint histogram of (P(negative),
           P(positive)) that keeps each cell's mean posterior; needs no confusion matrix

What every correction assumes: *label shift*, i.e. what posts of one class look like to the
model, P(x | y), is the same in the topic as in the validation data; only the class mix
changes. Text from another domain (another platform, jargon, another language) breaks that,
and then a corrected share can be further off than the raw count.

Intervals (`Estimate.low` / ``high``, 90 % by default): cc and pcc get the binomial normal
interval of the counted share (an interval for what the model counts, not for the true share);
acc and pacc a delta-method interval with both the sample's noise and the calibration's (the
validation set's size per class; for pacc the posteriors' covariance within each class, shipped
in the calibration); hdy and hem a parametric bootstrap of the
histograms (deterministic seed). When the calibration carries a domain-shift term for the method
(``domain_shift_sd``, measured on validation data of other domains), the interval also covers
that error (`with_shift`). All are clipped to [0, 1].
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from typing import Any

from monitor.taxonomy import SENTIMENTS

BINS = 10
# probabilities are summed as integers in units of 1/SCALE (HINCRBY, a compact integer in Redis,
# about a third of the bytes of HINCRBYFLOAT's 17-digit strings); 1e-4 per post is far below
# anything a share shows
SCALE = 10_000
CELLS = 5  # the joint histogram of (P(negative), P(positive)): CELLS x CELLS cells, 15 reachable
METHODS = ("cc", "pcc", "acc", "pacc", "hdy", "hem", "em")
ADJUSTED = ("acc", "pacc", "hdy", "hem", "em")  # the methods that need a calibration
K = len(SENTIMENTS)  # negative, neutral, positive
_Z = {0.8: 1.2816, 0.9: 1.6449, 0.95: 1.9600, 0.99: 2.5758}
BOOTSTRAP_ROUNDS = 100

Vector = tuple[float, ...]
Matrix = tuple[Vector, ...]


def bin_of(p: float) -> int:
    return min(BINS - 1, max(0, int(p * BINS)))


# the field names, built once (evidence_fields runs for every scored post)
_TOP = tuple(f"t:{lab}" for lab in SENTIMENTS)
_POST = tuple(f"p:{lab}" for lab in SENTIMENTS)
_HN = tuple(f"hn:{b}" for b in range(BINS))
_HP = tuple(f"hp:{b}" for b in range(BINS))
_CELL = tuple(f"{i}{j}" for i in range(CELLS) for j in range(CELLS))
_C = tuple(f"c:{c}" for c in _CELL)
_CN = tuple(f"cn:{c}" for c in _CELL)
_CP = tuple(f"cp:{c}" for c in _CELL)


def cell_of(p_neg: float, p_pos: float) -> int:
    i = min(CELLS - 1, max(0, int(p_neg * CELLS)))
    j = min(CELLS - 1, max(0, int(p_pos * CELLS)))
    return i * CELLS + j


def evidence_fields(probs: Sequence[float]) -> dict[str, float]:
    """The quantification fields one post with sentiment probabilities ``probs`` (negative,
    neutral, positive) adds to a bucket; ValueError on anything but three finite
    probabilities (a model bug: the worker parks that post)."""
    if len(probs) != K or not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probs):
        raise ValueError("sentiment probabilities: expected 3 finite numbers in [0, 1]")
    top = max(range(K), key=probs.__getitem__)
    d: dict[str, float] = {_TOP[top]: 1}
    for k in range(K):
        d[_POST[k]] = round(probs[k] * SCALE)
    d[_HN[bin_of(probs[0])]] = 1
    d[_HP[bin_of(probs[2])]] = 1
    c = cell_of(probs[0], probs[2])
    d[_C[c]] = 1
    d[_CN[c]] = round(probs[0] * SCALE)
    d[_CP[c]] = round(probs[2] * SCALE)
    return d


def is_float_field(name: str) -> bool:
    """Whether a bucket field sums floats (HINCRBYFLOAT) rather than counts."""
    return name == "score_sum"


def is_evidence_field(name: str) -> bool:
    return name.startswith(("t:", "p:", "hn:", "hp:", "c:", "cn:", "cp:"))


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a bucket (or a sum of buckets) holds for quantification."""

    n: int  # posts with sentiment probabilities
    top: Vector  # top-label counts per class
    post: Vector  # posterior sums per class
    hist_neg: Vector  # BINS counts of P(negative)
    hist_pos: Vector  # BINS counts of P(positive)
    # the joint histogram (CELLS x CELLS, row-major by P(negative)): posts per cell and their
    # P(negative) and P(positive) sums, so that EM can re-weigh each cell's mean posterior
    cells: Vector = ()
    cell_neg: Vector = ()
    cell_pos: Vector = ()

    @classmethod
    def from_fields(cls, fields: Mapping[str, float]) -> Evidence:
        top = tuple(float(fields.get(f"t:{lab}", 0)) for lab in SENTIMENTS)
        return cls(
            int(sum(top)),
            top,
            tuple(float(fields.get(f"p:{lab}", 0)) / SCALE for lab in SENTIMENTS),
            tuple(float(fields.get(f"hn:{b}", 0)) for b in range(BINS)),
            tuple(float(fields.get(f"hp:{b}", 0)) for b in range(BINS)),
            tuple(float(fields.get(f, 0)) for f in _C),
            tuple(float(fields.get(f, 0)) / SCALE for f in _CN),
            tuple(float(fields.get(f, 0)) / SCALE for f in _CP),
        )

    @classmethod
    def of(cls, probs: Iterable[Sequence[float]]) -> Evidence:
        acc: dict[str, float] = {}
        for p in probs:
            for k, v in evidence_fields(p).items():
                acc[k] = acc.get(k, 0.0) + v
        return cls.from_fields(acc)


def _normalised(v: Sequence[float]) -> Vector:
    s = sum(v)
    return tuple(x / s for x in v) if s > 0 else tuple(1.0 / len(v) for _ in v)


@dataclass(frozen=True, slots=True)
class Calibration:
    """A model's behaviour on labelled validation data, per true class (rows: negative,
    neutral, positive): what the adjusted methods invert."""

    support: tuple[int, ...]  # validation posts per true class
    top: Matrix  # P(top label = j | class y)
    post: Matrix  # mean posterior vector given class y
    hist_neg: Matrix  # histogram of P(negative) given y (fractions, BINS)
    hist_pos: Matrix
    source: str = ""
    bins: int = BINS
    # covariance of the posterior vector within each class (pacc's intervals; None: a bound)
    post_cov: tuple[Matrix, ...] | None = None
    # the class prior the posteriors answer for (EM re-weighs them from it): the training
    # prior, or uniform for a model trained with class-balanced weights; None: the validation
    # split's own mix
    posterior_prior: Vector | None = None
    # per adjusted method, the standard deviation of its negative-share error that comes from
    # the domain moving (P(x | y) not the validation data's), measured on validation data of
    # other domains (bench/quantify.py); widens that method's intervals (`with_shift`)
    shift_sd: tuple[tuple[str, float], ...] = ()

    @classmethod
    def from_validation(
        cls,
        probs: Sequence[Sequence[float]],
        labels: Sequence[int],
        source: str = "",
        posterior_prior: Sequence[float] | None = None,
    ) -> Calibration:
        """From the posteriors of a validation set and its gold class ids (0 negative, 1 neutral,
        2 positive)."""
        groups: list[list[Sequence[float]]] = [[] for _ in range(K)]
        for p, y in zip(probs, labels, strict=True):
            groups[y].append(p)
        if any(not g for g in groups):
            raise ValueError("calibration: every sentiment class needs validation examples")
        evs = [Evidence.of(g) for g in groups]
        return cls(
            tuple(len(g) for g in groups),
            tuple(_normalised(e.top) for e in evs),
            tuple(_normalised(e.post) for e in evs),
            tuple(_normalised(e.hist_neg) for e in evs),
            tuple(_normalised(e.hist_pos) for e in evs),
            source,
            post_cov=tuple(_covariance(g) for g in groups),
            posterior_prior=tuple(_normalised(posterior_prior)) if posterior_prior is not None else None,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "labels": list(SENTIMENTS),
            "bins": self.bins,
            "source": self.source,
            "support": list(self.support),
            "top_given_class": [list(r) for r in self.top],
            "posterior_given_class": [list(r) for r in self.post],
            "hist_negative_given_class": [list(r) for r in self.hist_neg],
            "hist_positive_given_class": [list(r) for r in self.hist_pos],
            **(
                {"posterior_cov_given_class": [[list(r) for r in m] for m in self.post_cov]}
                if self.post_cov is not None
                else {}
            ),
            **({"posterior_prior": list(self.posterior_prior)} if self.posterior_prior is not None else {}),
            **({"domain_shift_sd": dict(self.shift_sd)} if self.shift_sd else {}),
        }

    def shift_of(self, method: str) -> float:
        return dict(self.shift_sd).get(method, 0.0)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Calibration:
        """ValueError naming the field on anything malformed."""
        if list(obj.get("labels", [])) != list(SENTIMENTS):
            raise ValueError(f"labels: expected {list(SENTIMENTS)}")
        if obj.get("bins") != BINS:
            raise ValueError(f"bins: expected {BINS}")

        def matrix(name: str, width: int) -> Matrix:
            rows = obj.get(name)
            if not isinstance(rows, list) or len(rows) != K:
                raise ValueError(f"{name}: expected {K} rows")
            out = []
            for r in rows:
                if not isinstance(r, list) or len(r) != width:
                    raise ValueError(f"{name}: expected rows of {width} numbers")
                vals = [float(x) for x in r]
                if not all(math.isfinite(x) and 0.0 <= x <= 1.0 for x in vals):
                    raise ValueError(f"{name}: values must lie in [0, 1]")
                if abs(sum(vals) - 1.0) > 1e-3:
                    raise ValueError(f"{name}: a row must sum to 1")
                out.append(tuple(vals))
            return tuple(out)

        support = obj.get("support")
        if (
            not isinstance(support, list)
            or len(support) != K
            or not all(isinstance(s, int) and s > 0 for s in support)
        ):
            raise ValueError(f"support: expected {K} positive integers")
        return cls(
            tuple(support),
            matrix("top_given_class", K),
            matrix("posterior_given_class", K),
            matrix("hist_negative_given_class", BINS),
            matrix("hist_positive_given_class", BINS),
            str(obj.get("source", "")),
            post_cov=_covariances(obj.get("posterior_cov_given_class")),
            posterior_prior=_prior(obj.get("posterior_prior")),
            shift_sd=_shift_sd(obj.get("domain_shift_sd")),
        )


def _shift_sd(obj: object) -> tuple[tuple[str, float], ...]:
    """The optional ``domain_shift_sd``: adjusted method -> a standard deviation in [0, 1]."""
    if obj is None:
        return ()
    if not isinstance(obj, dict):
        raise ValueError("domain_shift_sd: expected an object of method -> number")
    out = []
    for m, v in sorted(obj.items()):
        if m not in ADJUSTED:
            raise ValueError(f"domain_shift_sd: {m!r} is not one of {list(ADJUSTED)}")
        if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and 0 <= v <= 1):
            raise ValueError(f"domain_shift_sd.{m}: a number in [0, 1]")
        out.append((m, float(v)))
    return tuple(out)


def _prior(obj: object) -> Vector | None:
    if obj is None:
        return None
    if not isinstance(obj, list) or len(obj) != K:
        raise ValueError(f"posterior_prior: expected {K} numbers")
    vals = tuple(float(x) for x in obj)
    if not all(math.isfinite(x) and 0 < x < 1 for x in vals) or abs(sum(vals) - 1) > 1e-3:
        raise ValueError("posterior_prior: probabilities in (0, 1) summing to 1")
    return vals


def _covariance(rows: Sequence[Sequence[float]]) -> Matrix:
    n = len(rows)
    mean = [sum(r[k] for r in rows) / n for k in range(K)]
    return tuple(
        tuple(sum((r[i] - mean[i]) * (r[j] - mean[j]) for r in rows) / max(1, n - 1) for j in range(K))
        for i in range(K)
    )


def _covariances(obj: object) -> tuple[Matrix, ...] | None:
    """The optional ``posterior_cov_given_class``: K symmetric K x K matrices of finite numbers
    with a non-negative diagonal (ValueError otherwise)."""
    if obj is None:
        return None
    name = "posterior_cov_given_class"
    if not isinstance(obj, list) or len(obj) != K:
        raise ValueError(f"{name}: expected {K} matrices")
    out = []
    for m in obj:
        if not isinstance(m, list) or len(m) != K or not all(isinstance(r, list) and len(r) == K for r in m):
            raise ValueError(f"{name}: expected {K} x {K} matrices")
        vals = tuple(tuple(float(x) for x in r) for r in m)
        if not all(math.isfinite(x) and abs(x) <= 1 for r in vals for x in r):
            raise ValueError(f"{name}: values must be finite, in [-1, 1]")
        if any(vals[i][i] < 0 or abs(vals[i][j] - vals[j][i]) > 1e-9 for i in range(K) for j in range(K)):
            raise ValueError(f"{name}: a matrix must be symmetric with a non-negative diagonal")
        out.append(vals)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Estimate:
    method: str
    shares: Vector  # negative, neutral, positive; sums to 1
    low: Vector
    high: Vector
    n: int
    level: float = 0.9

    def as_json(self, digits: int = 3) -> dict[str, Any]:
        """Rounded; with no posts to go on (n = 0) every share and bound is None."""
        if self.n <= 0:
            empty = {"share": None, "low": None, "high": None}
            return {"method": self.method, "level": self.level, "n": 0, **{lab: empty for lab in SENTIMENTS}}
        return {
            "method": self.method,
            "level": self.level,
            "n": self.n,
            **{
                lab: {
                    "share": round(self.shares[k], digits),
                    "low": round(self.low[k], digits),
                    "high": round(self.high[k], digits),
                }
                for k, lab in enumerate(SENTIMENTS)
            },
        }


# ---- small linear algebra -------------------------------------------------------------------
def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when singular."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        piv = max(range(c, n), key=lambda r: abs(m[r][c]))
        if abs(m[piv][c]) < 1e-12:
            return None
        m[c], m[piv] = m[piv], m[c]
        for r in range(n):
            if r != c:
                f = m[r][c] / m[c][c]
                for j in range(c, n + 1):
                    m[r][j] -= f * m[c][j]
    return [m[i][n] / m[i][i] for i in range(n)]


def _inverse(a: list[list[float]]) -> list[list[float]] | None:
    n = len(a)
    cols = []
    for j in range(n):
        c = _solve(a, [1.0 if i == j else 0.0 for i in range(n)])
        if c is None:
            return None
        cols.append(c)
    return [[cols[j][i] for j in range(n)] for i in range(n)]


def simplex_least_squares(c: Matrix, q: Sequence[float]) -> Vector:
    """The shares pi >= 0, sum 1, minimising || C^T pi - q ||^2 (C: rows per class, columns per
    observed feature). Tries every support of classes (7 for 3 classes): exact and cheap."""
    best: tuple[float, Vector] | None = None
    for size in range(K, 0, -1):
        for support in combinations(range(K), size):
            # minimise || sum_{y in S} pi_y c_y - q ||^2 s.t. sum pi_y = 1 (a Lagrange system)
            s = len(support)
            a = [
                [2 * sum(c[i][f] * c[j][f] for f in range(len(q))) for j in support] + [1.0] for i in support
            ]
            a.append([1.0] * s + [0.0])
            rhs = [2 * sum(c[i][f] * q[f] for f in range(len(q))) for i in support] + [1.0]
            sol = _solve(a, rhs)
            if sol is None or any(x < -1e-12 for x in sol[:s]):
                continue
            pi = [0.0] * K
            for i, x in zip(support, sol[:s], strict=True):
                pi[i] = max(0.0, x)
            resid = sum((sum(pi[y] * c[y][f] for y in range(K)) - q[f]) ** 2 for f in range(len(q)))
            if best is None or resid < best[0] - 1e-15:
                best = (resid, tuple(_normalised(pi)))
    return best[1] if best is not None else tuple(1.0 / K for _ in range(K))


# ---- the methods ----------------------------------------------------------------------------
def _z(level: float) -> float:
    if level not in _Z:
        raise ValueError(f"level: one of {sorted(_Z)}")
    return _Z[level]


def _clip_interval(shares: Sequence[float], sd: Sequence[float], z: float) -> tuple[Vector, Vector]:
    return (
        tuple(max(0.0, s - z * d) for s, d in zip(shares, sd, strict=True)),
        tuple(min(1.0, s + z * d) for s, d in zip(shares, sd, strict=True)),
    )


def _counted(method: str, ev: Evidence, level: float) -> Estimate:
    q = _normalised(ev.top if method == "cc" else ev.post)
    n = max(ev.n, 1)
    sd = [math.sqrt(x * (1 - x) / n) for x in q]
    low, high = _clip_interval(q, sd, _z(level))
    return Estimate(method, q, low, high, ev.n, level)


def _adjusted(method: str, ev: Evidence, cal: Calibration, level: float) -> Estimate:
    c = cal.top if method == "acc" else cal.post
    q = _normalised(ev.top if method == "acc" else ev.post)
    pi = simplex_least_squares(c, q)
    # delta method around the unconstrained solution pi = A q, A = (C^T)^-1, for the share of
    # the posts in the bucket (their classes given; the error comes from what the model does
    # to each post and from the calibration's own sampling):
    #   Cov = A S_q A^T / n  +  sum_y pi_y^2 A S_y A^T / n_y,   S_q = sum_y pi_y S_y
    # with S_y the covariance of one post's observation given class y: for acc the multinomial
    # diag(c_y) - c_y c_y^T (exact), for pacc the validation posteriors' covariance within class
    # y (shipped in the calibration; without it the multinomial form, an upper bound)
    a = _inverse([[c[y][f] for y in range(K)] for f in range(K)])
    if a is None:
        return Estimate(method, pi, (0.0,) * K, (1.0,) * K, ev.n, level)
    n = max(ev.n, 1)

    def multinomial(v: Sequence[float]) -> list[list[float]]:
        return [[(v[i] if i == j else 0.0) - v[i] * v[j] for j in range(K)] for i in range(K)]

    def sandwich(s: Sequence[Sequence[float]], w: float) -> list[list[float]]:
        return [
            [w * sum(a[i][f] * s[f][g] * a[j][g] for f in range(K) for g in range(K)) for j in range(K)]
            for i in range(K)
        ]

    within = cal.post_cov if method == "pacc" else None
    s_y: Sequence[Sequence[Sequence[float]]] = (
        within if within is not None else [multinomial(c[y]) for y in range(K)]
    )
    s_q = [[sum(pi[y] * s_y[y][i][j] for y in range(K)) for j in range(K)] for i in range(K)]
    cov = sandwich(s_q, 1.0 / n)
    for y in range(K):
        extra = sandwich(s_y[y], pi[y] ** 2 / cal.support[y])
        cov = [[cov[i][j] + extra[i][j] for j in range(K)] for i in range(K)]
    sd = [math.sqrt(max(0.0, cov[i][i])) for i in range(K)]
    low, high = _clip_interval(pi, sd, _z(level))
    return Estimate(method, pi, low, high, ev.n, level)


def _mixture(pi: Sequence[float], hists: Matrix) -> list[float]:
    return [sum(pi[y] * hists[y][b] for y in range(K)) for b in range(BINS)]


def _hellinger(p: Sequence[float], q: Sequence[float]) -> float:
    return math.sqrt(max(0.0, 1.0 - sum(math.sqrt(a * b) for a, b in zip(p, q, strict=True))))


def _grid(step: float, centre: Sequence[float] | None, radius: float) -> Iterable[Vector]:
    m = round(1 / step)
    for i in range(m + 1):
        for j in range(m + 1 - i):
            pi = (i * step, j * step, max(0.0, 1 - (i + j) * step))
            if centre is None or all(abs(a - b) <= radius + 1e-9 for a, b in zip(pi, centre, strict=True)):
                yield pi


def hdy_shares(hn: Sequence[float], hp: Sequence[float], cal: Calibration) -> Vector:
    """HDy on the two histograms (mean Hellinger distance), coarse-to-fine search of the simplex."""
    # the bins the sample has posts in, each with the classes' shares of it: an empty bin adds
    # sqrt(0 * q) = 0 to the Bhattacharyya sum, so skipping it changes no bit of the loss
    # (the same sum as _hellinger of _mixture, at about a third of its cost: this runs a few
    # hundred times per fit and once more per bootstrap round)
    terms = [
        [(a, given[0][b], given[1][b], given[2][b]) for b, a in enumerate(_normalised(h)) if a > 0]
        for h, given in ((hn, cal.hist_neg), (hp, cal.hist_pos))
    ]

    def loss(pi: Vector) -> float:
        p0, p1, p2 = pi
        out = 0.0
        for hist in terms:
            bc = 0.0
            for a, h0, h1, h2 in hist:
                bc += math.sqrt(a * (p0 * h0 + p1 * h1 + p2 * h2))
            out += math.sqrt(max(0.0, 1.0 - bc))
        return out

    best: Vector = min(_grid(0.05, None, 1.0), key=loss)
    for step, radius in ((0.01, 0.05), (0.002, 0.01)):
        # a finer grid restricted to a box around the best point so far
        cand = [p for p in _grid_box(best, step, radius)]
        best = min([best, *cand], key=loss)
    return best


def _grid_box(centre: Vector, step: float, radius: float) -> Iterable[Vector]:
    r = round(radius / step)
    for di in range(-r, r + 1):
        for dj in range(-r, r + 1):
            a, b = centre[0] + di * step, centre[1] + dj * step
            c = 1 - a - b
            if a >= -1e-12 and b >= -1e-12 and c >= -1e-12:
                yield (max(0.0, a), max(0.0, b), max(0.0, c))


def hem_shares(hn: Sequence[float], hp: Sequence[float], cal: Calibration, iters: int = 500) -> Vector:
    """The maximum-likelihood mix of the classes' histograms (both histograms' likelihoods
    multiplied: a composite likelihood), by EM over the bins."""
    hn, hp = _normalised(hn), _normalised(hp)
    pi = [1.0 / K] * K
    for _ in range(iters):
        new = [0.0] * K
        for hist, given in ((hn, cal.hist_neg), (hp, cal.hist_pos)):
            for b in range(BINS):
                if hist[b] <= 0:
                    continue
                f = sum(pi[y] * given[y][b] for y in range(K))
                if f <= 0:
                    continue
                for y in range(K):
                    new[y] += hist[b] * pi[y] * given[y][b] / f / 2
        done = max(abs(a - b) for a, b in zip(new, pi, strict=True)) < 1e-7
        pi = new
        if done:
            break
    return _normalised(pi)


def em_shares(
    counts: Sequence[float], points: Sequence[Vector], prior: Sequence[float], iters: int = 1000
) -> Vector:
    """Saerens, Latinne and Decaestecker (2002) on the joint histogram: each cell's mean
    posterior, weighted by its posts, re-weighed by (shares / prior) until the mean re-weighed
    posterior is the shares."""
    total = sum(counts)
    pi = list(prior)
    for _ in range(iters):
        r = [pi[k] / prior[k] for k in range(K)]
        new = [0.0] * K
        for c, pt in zip(counts, points, strict=True):
            if c <= 0:
                continue
            w = [pt[k] * r[k] for k in range(K)]
            z = sum(w)
            if z <= 0:
                continue
            for k in range(K):
                new[k] += c * w[k] / z / total
        done = max(abs(a - b) for a, b in zip(new, pi, strict=True)) < 1e-9
        pi = new
        if done:
            break
    return _normalised(pi)


def _cell_points(ev: Evidence) -> tuple[list[float], list[Vector]]:
    counts: list[float] = []
    points: list[Vector] = []
    for c, sn, sp in zip(ev.cells, ev.cell_neg, ev.cell_pos, strict=True):
        if c > 0:
            neg, pos = min(1.0, max(0.0, sn / c)), min(1.0, max(0.0, sp / c))
            counts.append(c)
            points.append((neg, max(0.0, 1.0 - neg - pos), pos))
    return counts, points


def _em(ev: Evidence, cal: Calibration, level: float, rounds: int) -> Estimate:
    prior = cal.posterior_prior or _normalised([float(x) for x in cal.support])
    counts, points = _cell_points(ev)
    if not counts:  # buckets written before the joint histogram existed
        return Estimate("em", (1.0 / K,) * K, (0.0,) * K, (1.0,) * K, 0, level)
    pi = em_shares(counts, points, prior)
    rng = random.Random(0x52)
    n = int(sum(counts))
    draws = [em_shares(_multinomial(rng, n, _normalised(counts)), points, prior) for _ in range(rounds)]
    tail = (1 - level) / 2
    low = tuple(sorted(d[k] for d in draws)[int(tail * (rounds - 1))] for k in range(K))
    high = tuple(sorted(d[k] for d in draws)[math.ceil((1 - tail) * (rounds - 1))] for k in range(K))
    return Estimate("em", pi, low, high, n, level)


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's Poisson draw (``mean`` is small here: at most about 50)."""
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _multinomial(rng: random.Random, n: int, probs: Sequence[float]) -> list[float]:
    """A multinomial draw by a chain of binomials (each a normal approximation when large)."""
    out: list[float] = []
    left, rest = n, 1.0
    for p in probs[:-1]:
        share = min(1.0, p / rest) if rest > 1e-12 else 0.0
        mean = left * share
        if left * share * (1 - share) > 25:
            x = round(rng.gauss(mean, math.sqrt(left * share * (1 - share))))
        elif left > 64:  # a rare (or a near-certain) outcome of many trials: Poisson on the rare side
            x = _poisson(rng, mean) if share <= 0.5 else left - _poisson(rng, left - mean)
        else:
            x = sum(1 for _ in range(left) if rng.random() < share)
        x = min(left, max(0, x))
        out.append(float(x))
        left -= x
        rest -= p
    out.append(float(left))
    return out


def _histogram(method: str, ev: Evidence, cal: Calibration, level: float, rounds: int) -> Estimate:
    fit = hdy_shares if method == "hdy" else hem_shares
    pi = fit(ev.hist_neg, ev.hist_pos, cal)
    n = max(ev.n, 1)
    rng = random.Random(0x51)
    draws: list[Vector] = []
    for _ in range(rounds):
        # the sample's noise, and the calibration's: each class's histograms redrawn from its
        # validation support
        hists = [
            tuple(tuple(_normalised(_multinomial(rng, cal.support[y], h[y]))) for y in range(K))
            for h in (cal.hist_neg, cal.hist_pos)
        ]
        boot = Calibration(cal.support, cal.top, cal.post, hists[0], hists[1], cal.source)
        draws.append(
            fit(
                _multinomial(rng, n, _normalised(ev.hist_neg)),
                _multinomial(rng, n, _normalised(ev.hist_pos)),
                boot,
            )
        )
    tail = (1 - level) / 2
    low = tuple(sorted(d[k] for d in draws)[int(tail * (rounds - 1))] for k in range(K))
    high = tuple(sorted(d[k] for d in draws)[math.ceil((1 - tail) * (rounds - 1))] for k in range(K))
    return Estimate(method, pi, low, high, ev.n, level)


def estimate(
    method: str,
    ev: Evidence,
    cal: Calibration | None,
    *,
    level: float = 0.9,
    bootstrap_rounds: int = BOOTSTRAP_ROUNDS,
) -> Estimate:
    """The shares of ``ev`` by ``method`` with a ``level`` interval. An adjusted method without a
    calibration raises ValueError; a bucket with no evidence gives uniform shares and [0, 1].
    Answers are remembered (a sealed window's evidence never changes, and a bootstrapped
    interval costs tens of milliseconds: the dashboard and `mood` ask for the same ones again)."""
    try:
        return _estimate(method, ev, cal, level, bootstrap_rounds)
    except TypeError:  # evidence built from lists (unhashable): not remembered
        return _estimate.__wrapped__(method, ev, cal, level, bootstrap_rounds)


@lru_cache(maxsize=4096)
def _estimate(
    method: str, ev: Evidence, cal: Calibration | None, level: float, bootstrap_rounds: int
) -> Estimate:
    if method not in METHODS:
        raise ValueError(f"method: one of {list(METHODS)}, got {method!r}")
    if ev.n <= 0:
        return Estimate(method, (1.0 / K,) * K, (0.0,) * K, (1.0,) * K, 0, level)
    if method in ("cc", "pcc"):
        return _counted(method, ev, level)
    if cal is None:
        raise ValueError(f"method {method!r} needs the model's calibration (quantify.json)")
    if method in ("acc", "pacc"):
        est = _adjusted(method, ev, cal, level)
    elif method == "em":
        est = _em(ev, cal, level, bootstrap_rounds)
    else:
        est = _histogram(method, ev, cal, level, bootstrap_rounds)
    return with_shift(est, cal.shift_of(method))


def with_shift(est: Estimate, shift_sd: float) -> Estimate:
    """``est`` with each bound moved out to cover the domain-shift error too: a half-width h of
    the sample's and the calibration's noise becomes sqrt(h^2 + (z * shift_sd)^2), clipped to
    [0, 1] (independent errors add in variance)."""
    if shift_sd <= 0:
        return est
    extra = (_z(est.level) * shift_sd) ** 2
    low = tuple(
        max(0.0, s - math.sqrt((s - lo) ** 2 + extra)) for s, lo in zip(est.shares, est.low, strict=True)
    )
    high = tuple(
        min(1.0, s + math.sqrt((hi - s) ** 2 + extra)) for s, hi in zip(est.shares, est.high, strict=True)
    )
    return Estimate(est.method, est.shares, low, high, est.n, est.level)


@dataclass(frozen=True, slots=True)
class Corrector:
    """The read side's choice: a method, the model's calibration (None when the model ships
    none: the adjusted methods then fall back to cc, and the row says so) and a level."""

    method: str
    calibration: Calibration | None
    level: float = 0.9

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: one of {list(METHODS)}, got {self.method!r}")
        _z(self.level)

    def estimate(self, ev: Evidence) -> Estimate:
        method = self.method if self.calibration is not None or self.method not in ADJUSTED else "cc"
        return estimate(method, ev, self.calibration, level=self.level)

    def counts(self, ev: Evidence, label: str) -> tuple[float, int]:
        """(corrected posts with ``label``, posts) for the alert rules' share statistics.
        cc, pcc, acc and pacc are linear in the bucket's sums, so these "hits" add up over
        minutes: they are not clipped (a minute may count -0.3 posts), the caller clips the
        window's share; hdy and hem give their share of the bucket times n."""
        if ev.n <= 0:
            return 0.0, 0
        i = SENTIMENTS.index(label)
        method = self.method if self.calibration is not None or self.method not in ADJUSTED else "cc"
        if method in ("cc", "pcc"):
            return (ev.top if method == "cc" else ev.post)[i], ev.n
        assert self.calibration is not None
        if method in ("acc", "pacc"):
            c = self.calibration.top if method == "acc" else self.calibration.post
            a = _inverse([[c[y][f] for y in range(K)] for f in range(K)])
            if a is not None:
                obs = ev.top if method == "acc" else ev.post
                return sum(a[i][f] * obs[f] for f in range(K)), ev.n
        if method in ("hdy", "hem"):  # the point estimate only: a rule sums hits, not intervals
            fit = hdy_shares if method == "hdy" else hem_shares
            return fit(ev.hist_neg, ev.hist_pos, self.calibration)[i] * ev.n, ev.n
        return self.estimate(ev).shares[i] * ev.n, ev.n

    def row(self, ev: Evidence) -> dict[str, Any]:
        """The corrected shares as `mood-monitor mood --json` shows them."""
        out = self.estimate(ev).as_json()
        if not out["n"]:
            out["note"] = "no post in the window carries model probabilities (buckets written before them)"
        elif out["method"] != self.method:
            out["note"] = f"no calibration for this model: {self.method} fell back to cc (raw counts)"
        elif self.method in ("cc", "pcc"):
            out["note"] = "uncorrected: the interval is the counting noise only"
        return out
