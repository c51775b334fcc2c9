"""`mood-monitor evaluate`: per-class precision / recall / F1, macro-recall, macro-F1, accuracy,
a confusion matrix and the expected calibration error of a model on a labeled file. The last
line printed is one JSON object with those figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monitor.taxonomy import EMOTIONS, SENTIMENTS


@dataclass
class Report:
    task: str
    labels: tuple[str, ...]
    per_class: dict[str, dict[str, float]]
    macro_recall: float
    macro_f1: float
    accuracy: float
    ece: float
    confusion: list[list[int]]
    n: int
    multi_label: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "n": self.n,
            "macro_recall": round(self.macro_recall, 4),
            "macro_f1": round(self.macro_f1, 4),
            "accuracy": round(self.accuracy, 4),
            "ece": round(self.ece, 4),
            "multi_label": self.multi_label,
            "per_class": {k: {m: round(v, 4) for m, v in d.items()} for k, d in self.per_class.items()},
            "confusion": {"labels": list(self.labels), "rows_gold_cols_pred": self.confusion},
        }

    def table(self) -> str:
        lines = [f"{'class':<10}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}"]
        for lab in self.labels:
            d = self.per_class[lab]
            lines.append(
                f"{lab:<10}{d['precision']:>10.3f}{d['recall']:>8.3f}{d['f1']:>8.3f}{int(d['support']):>9}"
            )
        lines.append(
            f"macro-recall {self.macro_recall:.4f}  macro-F1 {self.macro_f1:.4f}  "
            f"accuracy {self.accuracy:.4f}  ECE {self.ece:.4f}  n={self.n}"
        )
        lines.append("confusion (rows: gold, columns: predicted)")
        lines.append(" " * 10 + "".join(f"{lab[:8]:>9}" for lab in self.labels))
        for lab, row in zip(self.labels, self.confusion, strict=True):
            lines.append(f"{lab:<10}" + "".join(f"{v:>9}" for v in row))
        return "\n".join(lines)


def expected_calibration_error(conf: Sequence[float], correct: Sequence[bool], bins: int = 15) -> float:
    total = len(conf)
    if not total:
        return 0.0
    ece = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, c in enumerate(conf) if (lo < c <= hi) or (b == 0 and c == 0)]
        if idx:
            acc = sum(1 for i in idx if correct[i]) / len(idx)
            avg = sum(conf[i] for i in idx) / len(idx)
            ece += len(idx) / total * abs(acc - avg)
    return ece


def score(
    task: str,
    gold: Sequence[Sequence[str]],
    pred_sets: Sequence[Sequence[str]],
    top: Sequence[str],
    conf: Sequence[float],
) -> Report:
    """gold / predicted label sets per item (singletons for single-label), the top prediction and
    its probability (for the confusion matrix and calibration)."""
    labels = SENTIMENTS if task == "sentiment" else EMOTIONS
    multi = any(len(g) > 1 for g in gold) or any(len(p) > 1 for p in pred_sets)
    per: dict[str, dict[str, float]] = {}
    for lab in labels:
        tp = sum(1 for g, p in zip(gold, pred_sets, strict=True) if lab in g and lab in p)
        fp = sum(1 for g, p in zip(gold, pred_sets, strict=True) if lab not in g and lab in p)
        fn = sum(1 for g, p in zip(gold, pred_sets, strict=True) if lab in g and lab not in p)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[lab] = {"precision": prec, "recall": rec, "f1": f1, "support": float(tp + fn)}
    present = [lab for lab in labels if per[lab]["support"] > 0]
    macro_recall = sum(per[lab]["recall"] for lab in present) / len(present) if present else 0.0
    macro_f1 = sum(per[lab]["f1"] for lab in labels) / len(labels)
    accuracy = sum(1 for g, p in zip(gold, pred_sets, strict=True) if set(g) == set(p)) / max(1, len(gold))
    index = {lab: i for i, lab in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    for g, t in zip(gold, top, strict=True):
        confusion[index[g[0]]][index[t]] += 1
    correct = [t in g for g, t in zip(gold, top, strict=True)]
    return Report(
        task,
        tuple(labels),
        per,
        macro_recall,
        macro_f1,
        accuracy,
        expected_calibration_error(conf, correct),
        confusion,
        len(gold),
        multi,
    )


def predict(
    classifier: Any, task: str, texts: Sequence[str], batch: int = 512, progress: bool = True
) -> tuple[list[list[str]], list[str], list[float]]:
    """Predicted label sets, top labels and their probabilities, from any loaded classifier."""
    labels = SENTIMENTS if task == "sentiment" else EMOTIONS
    sets: list[list[str]] = []
    tops: list[str] = []
    confs: list[float] = []
    rng: Any = range(0, len(texts), batch)
    if progress:
        from tqdm import tqdm

        rng = tqdm(rng, desc=f"evaluate {task}", unit="batch", mininterval=5.0)
    for s in rng:
        chunk = list(texts[s : s + batch])
        probs = classifier.probs(chunk)
        multi = task == "emotion" and hasattr(classifier, "predict_sets")
        label_sets = classifier.predict_sets(chunk) if multi else None
        for k, p in enumerate(probs):
            j = max(range(len(p)), key=lambda i: p[i])
            tops.append(labels[j])
            confs.append(float(p[j]))
            sets.append(label_sets[k] if label_sets is not None else [labels[j]])
    return sets, tops, confs
