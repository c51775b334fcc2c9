"""The scorer seam: what a model gives the worker, and how its output becomes labels. Pure (no
torch): the worker, the benchmarks and the fakes in the tests depend on this module, and the
model runtime (`monitor.model.scorers`, `monitor.model.default`) implements it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from monitor.messages import Post, ScoredPost
from monitor.taxonomy import EMOTIONS, SENTIMENTS, UNCERTAIN, UNSUPPORTED


@dataclass(frozen=True, slots=True)
class ModelOutput:
    sentiment: tuple[float, float, float]  # P(negative), P(neutral), P(positive)
    emotion: tuple[float, ...] | None  # 7 probabilities in EMOTIONS order


class Scorer(Protocol):
    """A model: one output per text (None where the model has nothing for that text's language)."""

    name: str
    trained: bool

    def score(self, texts: Sequence[str], langs: Sequence[str] | None = None) -> list[ModelOutput | None]: ...


class Labels(NamedTuple):
    sentiment: str  # one of SENTIMENTS, or UNCERTAIN / UNSUPPORTED
    score: float  # P(positive) - P(negative)
    confidence: float  # the top sentiment probability
    emotion: str  # one of EMOTIONS, or UNCERTAIN / UNSUPPORTED
    emotion_confidence: float


# (model output, uncertain_below) -> labels
LabelFn = Callable[[ModelOutput, float], Labels]
# texts -> (texts to hand to the scorer, e.g. pre-tokenized, and their token counts)
EncodeFn = Callable[[Sequence[str]], tuple[list[str], list[int]]]


def to_labels(out: ModelOutput, uncertain_below: float) -> Labels:
    s = out.sentiment
    i = max(range(3), key=s.__getitem__)
    sent = SENTIMENTS[i] if s[i] >= uncertain_below else UNCERTAIN
    score = float(s[2] - s[0])
    if out.emotion is None:
        return Labels(sent, score, float(s[i]), UNCERTAIN, 0.0)
    e = out.emotion
    j = max(range(len(e)), key=e.__getitem__)
    emo = EMOTIONS[j] if e[j] >= uncertain_below else UNCERTAIN
    return Labels(sent, score, float(s[i]), emo, float(e[j]))


def estimate_tokens(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """The encoder for a scorer whose tokenizer is unknown: about 4 characters a token."""
    return list(texts), [len(t) // 4 + 2 for t in texts]


def scored_post(
    post: Post,
    out: ModelOutput | None,
    label: LabelFn,
    uncertain_below: float,
    *,
    topics: tuple[str, ...],
    model: str,
    scored_ms: int,
    origin: str,
) -> ScoredPost:
    """A post with its model output as ``posts.scored`` carries it (the worker's and the
    backfill's one way to label a post): UNSUPPORTED where the model had nothing for it."""
    if out is None:
        sent, score, conf, emo, econf = UNSUPPORTED, 0.0, 0.0, UNSUPPORTED, 0.0
    else:
        sent, score, conf, emo, econf = label(out, uncertain_below)
    return ScoredPost(
        post=post,
        sentiment=sent,
        sentiment_score=score,
        confidence=conf,
        emotion=emo,
        emotion_confidence=econf,
        topics=topics,
        model=model,
        scored_ms=scored_ms,
        origin=origin,
        sentiment_probs=out.sentiment if out is not None else None,
    )
