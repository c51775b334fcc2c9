"""The labelled sets of `bench/quantify.py` and their posteriors under a model, cached outside
the repository (``~/.cache/mood-monitor/quantify/<model fingerprint>/<set>.json``).

Each test set is paired with the validation split of the same source: the validation split
gives a method's calibration statistics, the test split only the samples that are scored.

    tweeteval     TweetEval sentiment: val (2,000) / test (12,284), the model's own domain
    umsab_en      UMSAB English: val (324) / test (870); a class-balanced SUBSET of TweetEval's
                  val / test (the same SemEval-2017 tweets), kept because the issue names it
    goemotions    GoEmotions Reddit comments, sentiment from ``sentiment_dict.json``: a comment
                  whose labels are all positive (all negative) emotions is positive (negative),
                  one labelled only ``neutral`` is neutral, mixed or ambiguous ones are left
                  out; dev / test. A domain the sentiment head never saw (P(x|y) shifts)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import orjson

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CACHE = Path(os.environ.get("MOOD_QUANTIFY_CACHE", Path.home() / ".cache" / "mood-monitor" / "quantify"))
SENT = ("negative", "neutral", "positive")
SETS = {"tweeteval": "tweeteval/sentiment", "umsab_en": "umsab/english", "goemotions": "goemotions"}


def _tweeteval(folder: Path, split: str) -> tuple[list[str], list[int]]:
    texts = (folder / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
    labels = [int(x) for x in (folder / f"{split}_labels.txt").read_text().split()]
    assert len(texts) == len(labels), folder
    return texts, labels


def _goemotions(split: str) -> tuple[list[str], list[int]]:
    d = DATA / "goemotions"
    names = (d / "emotions.txt").read_text().split()
    groups = json.loads((d / "sentiment_dict.json").read_text())
    polarity = {e: g for g, es in groups.items() for e in es}
    polarity["neutral"] = "neutral"
    texts: list[str] = []
    labels: list[int] = []
    for line in (d / f"{split}.tsv").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        pols = {polarity[names[int(i)]] for i in parts[1].split(",")}
        if len(pols) == 1 and (p := pols.pop()) in SENT:
            texts.append(parts[0])
            labels.append(SENT.index(p))
    return texts, labels


def read(name: str, split: str) -> tuple[list[str], list[int]]:
    """(texts, label ids: 0 negative, 1 neutral, 2 positive); ``split`` is "val" or "test"."""
    if name == "goemotions":
        return _goemotions("dev" if split == "val" else "test")
    return _tweeteval(DATA / SETS[name], split)


def fingerprint(model_dir: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(model_dir.iterdir()):
        if f.suffix in (".json", ".safetensors") and f.name != "quantify.json":
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def posteriors(name: str, split: str, model: str = "default") -> tuple[list[list[float]], list[int]]:
    """The model's P(negative, neutral, positive) for each text of a set, and the gold labels;
    computed once per model and cached."""
    from monitor.model.scorers import DEFAULT_DIR

    model_dir = DEFAULT_DIR if model == "default" else Path(model)
    path = CACHE / fingerprint(model_dir) / f"{name}-{split}.json"
    texts, labels = read(name, split)
    if path.exists():
        cached = orjson.loads(path.read_bytes())
        if cached["labels"] == labels:
            return cached["probs"], labels
    from monitor.model.scorers import load_scorer
    from monitor.model.settings import ModelSettings

    scorer = load_scorer(ModelSettings(sentiment=model, emotion=None))
    probs: list[list[float]] = []
    for s in range(0, len(texts), 256):
        for out in scorer.score(texts[s : s + 256]):
            assert out is not None
            probs.append([float(x) for x in out.sentiment])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        orjson.dumps({"model": model, "set": name, "split": split, "labels": labels, "probs": probs})
    )
    return probs, labels


if __name__ == "__main__":
    import sys
    import time

    for name in sys.argv[1:] or list(SETS):
        for split in ("val", "test"):
            t = time.time()
            p, y = posteriors(name, split)
            print(f"{name}-{split}: {len(y)} texts, {time.time() - t:.0f} s", flush=True)
