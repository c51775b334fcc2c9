"""Map a model's own labels onto the project's taxonomy. Pure.

Built-in mappings cover the hub models users reach for; any other model maps by label name
(``negative``/``neg``, ``Joy`` ...). A model whose labels cannot be mapped fails at start-up with a
message listing its labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from monitor.errors import ModelError
from monitor.taxonomy import EMOTIONS, SENTIMENTS

# Google's GoEmotions -> Ekman mapping (ekman_mapping.json of the GoEmotions release), plus neutral
GOEMOTIONS_EKMAN: Mapping[str, str] = {
    **{e: "anger" for e in ("anger", "annoyance", "disapproval")},
    "disgust": "disgust",
    **{e: "fear" for e in ("fear", "nervousness")},
    **{
        e: "joy"
        for e in (
            "joy",
            "amusement",
            "approval",
            "excitement",
            "gratitude",
            "love",
            "optimism",
            "relief",
            "pride",
            "admiration",
            "desire",
            "caring",
        )
    },
    **{e: "sadness" for e in ("sadness", "disappointment", "embarrassment", "grief", "remorse")},
    **{e: "surprise" for e in ("surprise", "realization", "confusion", "curiosity")},
    "neutral": "neutral",
}

_SENTIMENT_SYNONYMS = {
    "negative": "negative",
    "neg": "negative",
    "label_negative": "negative",
    "neutral": "neutral",
    "neu": "neutral",
    "label_neutral": "neutral",
    "positive": "positive",
    "pos": "positive",
    "label_positive": "positive",
}
_EMOTION_SYNONYMS = {
    **{e: e for e in EMOTIONS},
    "happiness": "joy",
    "sad": "sadness",
    "angry": "anger",
    "fearful": "fear",
    "surprised": "surprise",
    "disgusted": "disgust",
    "others": "neutral",
}

# hub models whose configs carry only LABEL_i names
BUILTIN: Mapping[str, Mapping[str, str]] = {
    "cardiffnlp/twitter-roberta-base-sentiment": {
        "LABEL_0": "negative",
        "LABEL_1": "neutral",
        "LABEL_2": "positive",
    },
    "cardiffnlp/twitter-roberta-base-sentiment-latest": {
        "negative": "negative",
        "neutral": "neutral",
        "positive": "positive",
    },
    "cardiffnlp/twitter-xlm-roberta-base-sentiment": {
        "negative": "negative",
        "neutral": "neutral",
        "positive": "positive",
    },
    "j-hartmann/emotion-english-distilroberta-base": {e: e for e in EMOTIONS},
    "SamLowe/roberta-base-go_emotions": dict(GOEMOTIONS_EKMAN),
}
MULTI_LABEL = {"SamLowe/roberta-base-go_emotions"}


def _builtin_for_path(model_id: str) -> Mapping[str, str] | None:
    """A local copy of a known hub model: a directory named like it (``.../twitter-roberta-base-
    sentiment``) or the hub cache's ``models--<org>--<name>/snapshots/<rev>``."""
    parts = [p for p in model_id.replace("\\", "/").split("/") if p]
    for part in reversed(parts):
        if part.startswith("models--"):
            return BUILTIN.get(part[len("models--") :].replace("--", "/"))
    if parts:
        hits = [v for k, v in BUILTIN.items() if k.split("/", 1)[1] == parts[-1]]
        return hits[0] if len(hits) == 1 else None
    return None


@dataclass(frozen=True)
class LabelMap:
    """For each of the model's output indices, the taxonomy label it feeds (None: ignored)."""

    task: str
    targets: tuple[str | None, ...]
    multi_label: bool = False

    def project(self, probs: Sequence[float]) -> tuple[float, ...]:
        """Model probabilities -> a distribution over the task's taxonomy labels.

        Several model labels feeding one taxonomy label are summed (single-label softmax) or
        max-pooled (multi-label sigmoids), then renormalised."""
        labels = SENTIMENTS if self.task == "sentiment" else EMOTIONS
        acc = dict.fromkeys(labels, 0.0)
        for p, t in zip(probs, self.targets, strict=True):
            if t is None:
                continue
            acc[t] = max(acc[t], p) if self.multi_label else acc[t] + p
        total = sum(acc.values())
        if total <= 0:
            return tuple(1.0 / len(labels) for _ in labels)
        return tuple(acc[label] / total for label in labels)


def build(
    task: str, id2label: Mapping[int, str], model_id: str = "", problem_type: str | None = None
) -> LabelMap:
    if task not in ("sentiment", "emotion"):
        raise ModelError(f"unknown task {task!r}")
    labels = [id2label[i] for i in sorted(id2label)]
    builtin = BUILTIN.get(model_id.rstrip("/")) or _builtin_for_path(model_id)
    synonyms = _SENTIMENT_SYNONYMS if task == "sentiment" else {**_EMOTION_SYNONYMS, **GOEMOTIONS_EKMAN}
    targets: list[str | None] = []
    for lab in labels:
        if builtin and lab in builtin:
            targets.append(builtin[lab])
        else:
            targets.append(synonyms.get(lab.strip().lower().replace(" ", "_")))
    # an emotion model may lack "neutral" (it then only ever says one of the six)
    wanted = set(SENTIMENTS) if task == "sentiment" else set(EMOTIONS) - {"neutral"}
    mapped = {t for t in targets if t}
    if not wanted <= mapped:
        raise ModelError(
            f"{task} model {model_id or '(local)'}: cannot map its labels {labels} onto "
            f"{sorted(wanted)}; missing {sorted(wanted - mapped)}. Use a model with these labels or "
            f"rename its id2label in config.json."
        )
    multi = (
        problem_type == "multi_label_classification"
        or model_id.rstrip("/") in MULTI_LABEL
        or (builtin is not None and builtin == BUILTIN["SamLowe/roberta-base-go_emotions"])
    )
    return LabelMap(task, tuple(targets), multi)
