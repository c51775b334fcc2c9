"""Labeled data readers for training and evaluation. Pure (stdlib only).

* CSV / TSV / JSONL with a text column and a label column (label names, or for emotion a
  comma-separated list of names: multi-label);
* TweetEval-style pairs: ``<split>_text.txt`` + ``<split>_labels.txt`` (+ ``mapping.txt``);
* GoEmotions TSV (text, comma-separated label ids, id) mapped to Ekman + neutral.
Every reader raises ConfigError naming the file, line and column on bad input.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import ConfigError
from monitor.model.labels import GOEMOTIONS_EKMAN
from monitor.taxonomy import EMOTIONS, SENTIMENTS


@dataclass
class Labeled:
    texts: list[str]
    labels: list[tuple[str, ...]]  # one or more taxonomy labels per text
    source: str

    def __len__(self) -> int:
        return len(self.texts)


def _norm_labels(raw: str, task: str, where: str) -> tuple[str, ...]:
    allowed = SENTIMENTS if task == "sentiment" else EMOTIONS
    parts = [p.strip().lower() for p in str(raw).replace(";", ",").split(",") if p.strip()]
    if task == "emotion":
        parts = [GOEMOTIONS_EKMAN.get(p, p) for p in parts]
    bad = [p for p in parts if p not in allowed]
    if not parts or bad:
        raise ConfigError(where, "label", f"{raw!r} is not one of {list(allowed)}")
    if task == "sentiment" and len(set(parts)) > 1:
        raise ConfigError(where, "label", f"sentiment takes one label, got {raw!r}")
    return tuple(dict.fromkeys(parts))


def read_table(
    path: str | Path, task: str, text_column: str = "text", label_column: str = "label"
) -> Labeled:
    p = Path(path)
    if not p.exists():
        raise ConfigError(str(p), "(file)", "not found")
    texts: list[str] = []
    labels: list[tuple[str, ...]] = []
    if p.suffix.lower() in (".jsonl", ".json"):
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{p}:{n}", "(line)", f"invalid JSON: {exc.msg}") from exc
            for col in (text_column, label_column):
                if col not in obj:
                    raise ConfigError(f"{p}:{n}", col, "missing")
            lab = obj[label_column]
            texts.append(str(obj[text_column]))
            labels.append(_norm_labels(",".join(lab) if isinstance(lab, list) else lab, task, f"{p}:{n}"))
        return Labeled(texts, labels, str(p))
    delim = "\t" if p.suffix.lower() == ".tsv" else ","
    with p.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delim)
        cols = reader.fieldnames or []
        for col in (text_column, label_column):
            if col not in cols:
                raise ConfigError(str(p), col, f"no such column (columns: {cols})")
        for n, row in enumerate(reader, start=2):
            texts.append(row[text_column] or "")
            labels.append(_norm_labels(row[label_column] or "", task, f"{p}:{n}"))
    return Labeled(texts, labels, str(p))


def read_tweeteval(folder: str | Path, split: str) -> Labeled:
    """TweetEval-format folder: ``<split>_text.txt`` + ``<split>_labels.txt`` (one per line) and a
    ``mapping.txt`` (``id<TAB>name``); without one (UMSAB) ids are 0 negative, 1 neutral, 2 positive."""
    d = Path(folder)
    mapping = {"0": "negative", "1": "neutral", "2": "positive"}
    if (d / "mapping.txt").exists():
        mapping = {}
        for line in (d / "mapping.txt").read_text().splitlines():
            if line.strip():
                i, name = line.split("\t")
                mapping[i.strip()] = name.strip()
    for name in (f"{split}_text.txt", f"{split}_labels.txt"):
        if not (d / name).is_file():
            raise ConfigError(str(d), name, f"no such file (split {split!r})")
    texts = (d / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
    labs = (d / f"{split}_labels.txt").read_text().splitlines()
    if len(texts) != len(labs):
        raise ConfigError(str(d), split, f"{len(texts)} texts but {len(labs)} labels")
    out: list[tuple[str, ...]] = []
    for n, x in enumerate(labs, start=1):
        if x.strip() not in mapping:
            raise ConfigError(f"{d / f'{split}_labels.txt'}:{n}", "label", f"unknown label id {x.strip()!r}")
        out.append((mapping[x.strip()],))
    return Labeled(texts, out, f"{d}/{split}")


def read_goemotions(path: str | Path, names_file: str | Path | None = None) -> Labeled:
    p = Path(path)
    names = Path(names_file or p.with_name("emotions.txt")).read_text().split()
    texts: list[str] = []
    labels: list[tuple[str, ...]] = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split("\t")
        if len(parts) < 2:
            raise ConfigError(f"{p}:{n}", "(line)", "expected text<TAB>label ids")
        ek = tuple(dict.fromkeys(GOEMOTIONS_EKMAN[names[int(i)]] for i in parts[1].split(",")))
        texts.append(parts[0])
        labels.append(ek)
    return Labeled(texts, labels, str(p))


def read_any(path: str | Path, task: str, text_column: str = "text", label_column: str = "label") -> Labeled:
    """A file by its form: a TweetEval folder (``folder:split``), a GoEmotions TSV, or a table."""
    s = str(path)
    if ":" in s and Path(s.rsplit(":", 1)[0]).is_dir():
        folder, split = s.rsplit(":", 1)
        return read_tweeteval(folder, split)
    p = Path(s)
    if p.suffix == ".tsv" and (p.with_name("emotions.txt")).exists() and task == "emotion":
        return read_goemotions(p)
    return read_table(p, task, text_column, label_column)
