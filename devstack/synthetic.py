"""A synthetic post stream written by the project: demos, benchmarks and tests. Pure.

Each topic gets posts built from templates with a known intended sentiment, so the ground truth
of a stream is known. A topic can "turn": from ``turn_at`` (a fraction of the stream) on, its
negative share jumps to ``turned_negative_share``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

POSITIVE = [
    "I love the new {x}, it is absolutely wonderful and works perfectly!",
    "Great news about {x} today, really happy with it :)",
    "{x} made my day, fantastic experience, thank you!",
    "So impressed with {x}. Best decision I made this year.",
    "Honestly {x} is brilliant, everyone should try it.",
]
NEUTRAL = [
    "Reading about {x} this morning, there is an article on it.",
    "Does anyone know what time the {x} update comes out?",
    "{x} was mentioned in the meeting today.",
    "Here is a link about {x} for later.",
    "Just checked {x}, will look again tomorrow.",
]
NEGATIVE = [
    "I hate {x}, it is terrible and completely broken. So angry right now.",
    "{x} is a disaster, worst experience ever, never again.",
    "Really disappointed and upset with {x}, what a waste of money.",
    "{x} failed again today. Awful, I am furious.",
    "This {x} situation is horrible and frightening, nobody is fixing it.",
]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    phrase: str  # text that the topic's keywords match
    negative_share: float = 0.15
    positive_share: float = 0.45
    turns: bool = False
    turned_negative_share: float = 0.85


DEMO_TOPICS: Sequence[TopicSpec] = (
    TopicSpec("phonex", "PhoneX", turns=True),
    TopicSpec("coffee", "#coffee", negative_share=0.10, positive_share=0.60),
    TopicSpec("metro", "the metro", negative_share=0.30, positive_share=0.25),
    TopicSpec("weather", "the weather", negative_share=0.20, positive_share=0.40),
)


def _pick(rng: random.Random, spec: TopicSpec, turned: bool) -> tuple[str, str]:
    neg = spec.turned_negative_share if turned else spec.negative_share
    pos = (1 - neg) * (spec.positive_share / (1 - spec.negative_share)) if turned else spec.positive_share
    u = rng.random()
    if u < neg:
        return "negative", rng.choice(NEGATIVE)
    if u < neg + pos:
        return "positive", rng.choice(POSITIVE)
    return "neutral", rng.choice(NEUTRAL)


def stream(
    n: int,
    topics: Sequence[TopicSpec] = DEMO_TOPICS,
    *,
    seed: int = 7,
    turn_at: float = 0.5,
    id_prefix: str = "syn",
) -> Iterator[dict[str, object]]:
    """Yield ``n`` post dicts (replay format) with an ``intended`` sentiment field."""
    rng = random.Random(seed)
    for i in range(n):
        spec = topics[i % len(topics)]
        turned = spec.turns and i >= n * turn_at
        label, template = _pick(rng, spec, turned)
        yield {
            "id": f"{id_prefix}-{i}",
            "source": "synthetic",
            "author_id": f"user{rng.randrange(5000)}",
            "text": template.format(x=spec.phrase),
            "lang": "en",
            "url": f"https://example.org/{id_prefix}/{i}",
            "intended": label,
            "topic": spec.name,
        }


def demo_topics_config(topics: Sequence[TopicSpec] = DEMO_TOPICS) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for t in topics:
        if t.phrase.startswith("#"):
            out.append({"name": t.name, "hashtags": [t.phrase[1:]]})
        else:
            out.append({"name": t.name, "keywords": [t.phrase.removeprefix("the ")]})
    return out
