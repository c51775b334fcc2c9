"""Bucket maths: per-topic deltas from scored posts, window figures from buckets. Pure.

A bucket is one topic's figures for one minute or one hour, stored as a Redis hash whose
fields are named here (and documented in the README):

    n                   posts counted
    s:<label>           sentiment counts (negative, neutral, positive, uncertain, unsupported)
    score_sum           sum of sentiment scores (P(pos) - P(neg)), for the mean
    e:<label>           emotion counts (anger, disgust, fear, joy, sadness, surprise, neutral,
                        uncertain, unsupported)
    l:<lang>            language counts ("und" when unknown)
    src:<source>        source counts
    t:<label> p:<label> hn:<bin> hp:<bin>
                        what the share corrections need (`monitor.prevalence`): top-label
                        counts, posterior sums, histograms of P(negative) and P(positive); for
                        posts whose record carries the model's probabilities
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from monitor.messages import ScoredPost
from monitor.prevalence import Evidence, evidence_fields, is_evidence_field
from monitor.taxonomy import EMOTIONS, SENTIMENTS, UNCERTAIN

MINUTE_MS = 60_000
HOUR_MS = 3_600_000

Delta = dict[str, float]


def minute_start(ts_ms: int) -> int:
    return ts_ms - ts_ms % MINUTE_MS


def hour_start(ts_ms: int) -> int:
    return ts_ms - ts_ms % HOUR_MS


def event_time(created_ms: int, ingested_ms: int, future_skew_ms: int) -> int:
    """The post's own time, unless the source's clock is absurdly ahead: then ingest time."""
    return ingested_ms if created_ms > ingested_ms + future_skew_ms else created_ms


def post_delta(sp: ScoredPost) -> Delta:
    """The fields one scored post adds to each bucket it falls in."""
    lang = sp.post.lang or "und"
    d: Delta = {
        "n": 1,
        f"s:{sp.sentiment}": 1,
        f"e:{sp.emotion}": 1,
        f"l:{lang}": 1,
        f"src:{sp.post.source or 'unknown'}": 1,
    }
    if sp.sentiment in SENTIMENTS:
        d["score_sum"] = sp.sentiment_score
    if sp.sentiment_probs is not None:
        d.update(evidence_fields(sp.sentiment_probs))
    return d


def add_into(acc: Delta, d: Mapping[str, float]) -> None:
    for k, v in d.items():
        acc[k] = acc.get(k, 0) + v


def add_hours(deltas: dict[tuple[str, int], Delta]) -> None:
    """Add to minute-only ``deltas`` their hours, each the sum of its minutes: what `add_at`
    per post gives, with one sum per minute instead of one per post (a batch spans a few
    minutes of event time)."""
    for (kind, start), d in list(deltas.items()):
        if kind == "m":
            add_into(deltas.setdefault(("h", hour_start(start)), {}), d)


def add_at(deltas: dict[tuple[str, int], Delta], ts_ms: int, d: Mapping[str, float]) -> None:
    """Count ``d`` in the minute AND the hour bucket of ``ts_ms``: every writer keeps both, as
    the read side takes whole hours of a window from the hour buckets (``window_plan``)."""
    add_into(deltas.setdefault(("m", minute_start(ts_ms)), {}), d)
    add_into(deltas.setdefault(("h", hour_start(ts_ms)), {}), d)


def bucket_deltas(posts: Iterable[tuple[ScoredPost, int]]) -> dict[str, dict[tuple[str, int], Delta]]:
    """Group (scored post, event time ms) into per-topic deltas keyed by ("m"|"h", start_ms)."""
    out: dict[str, dict[tuple[str, int], Delta]] = defaultdict(dict)
    for sp, ts_ms in posts:
        d = post_delta(sp)
        for topic in sp.topics:
            add_at(out[topic], ts_ms, d)
    return dict(out)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One topic's figures over one bucket (or a sum of buckets: a window)."""

    start_ms: int
    n: int = 0
    sentiments: Mapping[str, int] = field(default_factory=dict)
    score_sum: float = 0.0
    emotions: Mapping[str, int] = field(default_factory=dict)
    langs: Mapping[str, int] = field(default_factory=dict)
    sources: Mapping[str, int] = field(default_factory=dict)
    quant: Mapping[str, float] = field(default_factory=dict)  # the t: p: hn: hp: fields

    @classmethod
    def from_hash(cls, start_ms: int, h: Mapping[str, str | bytes | float | int]) -> Bucket:
        sent: dict[str, int] = {}
        emo: dict[str, int] = {}
        langs: dict[str, int] = {}
        sources: dict[str, int] = {}
        quant: dict[str, float] = {}
        n = 0
        score_sum = 0.0
        for raw_k, raw_v in h.items():
            k = raw_k.decode() if isinstance(raw_k, bytes) else str(raw_k)
            v = float(raw_v.decode() if isinstance(raw_v, bytes) else raw_v)
            if k == "n":
                n = int(v)
            elif k == "score_sum":
                score_sum = v
            elif k.startswith("s:"):
                sent[k[2:]] = int(v)
            elif k.startswith("e:"):
                emo[k[2:]] = int(v)
            elif k.startswith("l:"):
                langs[k[2:]] = int(v)
            elif k.startswith("src:"):
                sources[k[4:]] = int(v)
            elif is_evidence_field(k):
                quant[k] = v
        return cls(start_ms, n, sent, score_sum, emo, langs, sources, quant)

    @property
    def scored(self) -> int:
        """Posts with a definite sentiment (not uncertain / unsupported)."""
        return sum(self.sentiments.get(s, 0) for s in SENTIMENTS)

    def share(self, label: str) -> float:
        """Share of a sentiment among definitely scored posts (0 when none)."""
        return self.sentiments.get(label, 0) / self.scored if self.scored else 0.0

    def emotion_share(self, label: str) -> float:
        total = sum(self.emotions.get(e, 0) for e in EMOTIONS)
        return self.emotions.get(label, 0) / total if total else 0.0

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.scored if self.scored else 0.0

    @property
    def uncertain(self) -> int:
        return self.sentiments.get(UNCERTAIN, 0)

    @property
    def evidence(self) -> Evidence:
        """What the share corrections read (n = 0 for buckets written before they existed)."""
        return Evidence.from_fields(self.quant)


def merge(buckets: Iterable[Bucket], start_ms: int) -> Bucket:
    """Sum buckets into one window figure starting at ``start_ms``."""
    n = 0
    score_sum = 0.0
    sent: dict[str, int] = defaultdict(int)
    emo: dict[str, int] = defaultdict(int)
    langs: dict[str, int] = defaultdict(int)
    sources: dict[str, int] = defaultdict(int)
    quant: dict[str, float] = defaultdict(float)
    for b in buckets:
        n += b.n
        score_sum += b.score_sum
        for src_map, dst in (
            (b.sentiments, sent),
            (b.emotions, emo),
            (b.langs, langs),
            (b.sources, sources),
        ):
            for k, v in src_map.items():
                dst[k] += v
        for k, x in b.quant.items():
            quant[k] += x
    return Bucket(start_ms, n, dict(sent), score_sum, dict(emo), dict(langs), dict(sources), dict(quant))


def window_plan(start_ms: int, end_ms: int) -> tuple[list[int], list[int]]:
    """Which minute and hour buckets cover [start_ms, end_ms): whole hours from hour buckets,
    the ragged ends from minute buckets. Both bounds are rounded down to minutes."""
    start = minute_start(start_ms)
    end = minute_start(end_ms)
    minutes: list[int] = []
    hours: list[int] = []
    t = start
    while t < end:
        if t % HOUR_MS == 0 and t + HOUR_MS <= end:
            hours.append(t)
            t += HOUR_MS
        else:
            minutes.append(t)
            t += MINUTE_MS
    return minutes, hours
