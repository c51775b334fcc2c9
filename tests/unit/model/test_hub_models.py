"""The hub models users reach for, loaded through the real loading path from local directories:
tiny models built here from a config, with those models' exact label configurations (no hub)."""

from __future__ import annotations

import pytest
from transformers import (
    AutoTokenizer,
    RobertaConfig,
    RobertaForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

from monitor.errors import ModelError
from monitor.model.base import to_labels
from monitor.model.runtime import minilm_dir
from monitor.model.scorers import load_scorer
from monitor.model.settings import ModelSettings
from monitor.taxonomy import EMOTIONS, SENTIMENTS

GOEMOTIONS = [
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "desire",
    "disappointment",
    "disapproval",
    "disgust",
    "embarrassment",
    "excitement",
    "fear",
    "gratitude",
    "grief",
    "joy",
    "love",
    "nervousness",
    "optimism",
    "pride",
    "realization",
    "relief",
    "remorse",
    "sadness",
    "surprise",
    "neutral",
]
HUB = {
    "twitter-roberta-base-sentiment-latest": (
        RobertaConfig,
        RobertaForSequenceClassification,
        ["negative", "neutral", "positive"],
        None,
    ),
    "twitter-roberta-base-sentiment": (
        RobertaConfig,
        RobertaForSequenceClassification,
        ["LABEL_0", "LABEL_1", "LABEL_2"],
        None,
    ),
    "twitter-xlm-roberta-base-sentiment": (
        XLMRobertaConfig,
        XLMRobertaForSequenceClassification,
        ["negative", "neutral", "positive"],
        None,
    ),
    "emotion-english-distilroberta-base": (
        RobertaConfig,
        RobertaForSequenceClassification,
        ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"],
        None,
    ),
    "roberta-base-go_emotions": (
        RobertaConfig,
        RobertaForSequenceClassification,
        GOEMOTIONS,
        "multi_label_classification",
    ),
}


def save_tiny(root, name: str, labels: list[str] | None = None, problem: str | None = None):
    cfg_cls, model_cls, hub_labels, hub_problem = HUB.get(name, HUB["twitter-roberta-base-sentiment-latest"])
    labels = labels or hub_labels
    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    config = cfg_cls(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=tok.pad_token_id,
        id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)},
        problem_type=problem or hub_problem,
    )
    out = root / name
    model_cls(config).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.mark.parametrize(
    "name",
    [
        "twitter-roberta-base-sentiment-latest",
        "twitter-roberta-base-sentiment",
        "twitter-xlm-roberta-base-sentiment",
    ],
)
def test_sentiment_models_map_onto_the_taxonomy(tmp_path, name):
    d = save_tiny(tmp_path, name)
    sc = load_scorer(ModelSettings(sentiment=str(d), emotion=None))
    outs = sc.score(["what a day", "terrible service"], ["en", "en"])
    for o in outs:
        assert len(o.sentiment) == len(SENTIMENTS) and abs(sum(o.sentiment) - 1) < 1e-5
        assert to_labels(o, 0.0)[0] in SENTIMENTS


@pytest.mark.parametrize("name", ["emotion-english-distilroberta-base", "roberta-base-go_emotions"])
def test_emotion_models_map_onto_ekman(tmp_path, name):
    s = save_tiny(tmp_path, "twitter-roberta-base-sentiment-latest")
    e = save_tiny(tmp_path, name)
    sc = load_scorer(ModelSettings(sentiment=str(s), emotion=str(e)))
    (o,) = sc.score(["I am so scared and angry"], ["en"])
    assert len(o.emotion) == len(EMOTIONS) and abs(sum(o.emotion) - 1) < 1e-5


def test_goemotions_is_multi_label_and_max_pools_into_ekman(tmp_path):
    from monitor.model.labels import build

    m = build("emotion", dict(enumerate(GOEMOTIONS)), str(tmp_path / "roberta-base-go_emotions"))
    assert m.multi_label
    probs = [0.0] * len(GOEMOTIONS)
    probs[GOEMOTIONS.index("annoyance")] = 0.9  # -> anger
    probs[GOEMOTIONS.index("anger")] = 0.2
    probs[GOEMOTIONS.index("gratitude")] = 0.1  # -> joy
    out = dict(zip(EMOTIONS, m.project(probs), strict=True))
    assert out["anger"] == pytest.approx(0.9 / 1.0) and out["joy"] == pytest.approx(0.1 / 1.0)


def test_hub_cache_layout_is_recognised(tmp_path):
    from monitor.model.labels import build

    snap = tmp_path / "models--cardiffnlp--twitter-roberta-base-sentiment" / "snapshots" / "abc123"
    m = build("sentiment", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, str(snap))
    assert m.targets == ("negative", "neutral", "positive")


def test_unmappable_labels_fail_at_start_up_listing_them(tmp_path):
    d = save_tiny(tmp_path, "my-odd-model", labels=["spam", "ham", "eggs"])
    with pytest.raises(ModelError) as err:
        load_scorer(ModelSettings(sentiment=str(d), emotion=None))
    msg = str(err.value)
    assert "['spam', 'ham', 'eggs']" in msg and "missing" in msg
