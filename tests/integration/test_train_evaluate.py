"""`mood-monitor train` then `evaluate` on a few hundred rows with a tiny model, and the trained
directory loads through the worker's model loader."""

from __future__ import annotations

import csv
import json

import pytest

from devstack.synthetic import stream
from monitor.model.base import to_labels
from monitor.model.calibration import calibration_for
from monitor.model.scorers import load_scorer
from monitor.model.settings import ModelSettings

from .pipeline_helpers import cli

pytestmark = pytest.mark.integration


def _csv(path, n, seed):
    rows = list(stream(n, seed=seed, id_prefix="tr"))
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "sentiment"])
        for r in rows:
            w.writerow([r["text"], r["intended"]])
    return path


def test_train_then_evaluate_then_load_in_the_worker(tmp_path):
    train = _csv(tmp_path / "train.csv", 400, seed=1)
    test = _csv(tmp_path / "test.csv", 200, seed=2)
    out = tmp_path / "model"
    res = cli(
        "train",
        "--task",
        "sentiment",
        "--data",
        str(train),
        "--label-column",
        "sentiment",
        "--base",
        "builtin:tiny-untrained",
        "--train-layers",
        "-1",
        "--epochs",
        "15",
        "--patience",
        "4",
        "--lr",
        "3e-3",
        "--batch-size",
        "16",
        "--out",
        str(out),
        timeout=300,
    )
    trained = json.loads(res.stdout.strip().splitlines()[-1])
    assert trained["n_train"] == 360 and (out / "config.json").exists()
    assert len(trained["history"]) >= 1 and trained["best_val_macro_recall"] == max(
        h["val_macro_recall"] for h in trained["history"]
    )
    ev = cli(
        "evaluate",
        "--task",
        "sentiment",
        "--data",
        str(test),
        "--text-column",
        "text",
        "--label-column",
        "sentiment",
        "--model",
        str(out),
        "--quiet",
        timeout=300,
    )
    figures = json.loads(ev.stdout.strip().splitlines()[-1])
    assert {"macro_recall", "macro_f1", "accuracy", "ece", "confusion", "per_class"} <= set(figures)
    assert figures["n"] == 200
    # templated posts are easy: a trained model must beat chance (1/3) by far
    assert figures["macro_recall"] > 0.8, figures
    scorer = load_scorer(ModelSettings(sentiment=str(out), emotion=None))
    outs = scorer.score(
        [
            "I hate PhoneX, it is terrible and completely broken. So angry right now.",
            "I love the new PhoneX, it is absolutely wonderful and works perfectly!",
        ]
    )
    assert [to_labels(o, 0.0)[0] for o in outs] == ["negative", "positive"]

    # the share corrections' statistics: train wrote them from its validation split, next to the
    # model, where the read side finds them; evaluate --calibration-out writes them for any model
    cal = calibration_for(ModelSettings(sentiment=str(out)))
    assert cal is not None and sum(cal.support) == 40 and cal.post_cov is not None
    target = tmp_path / "quantify.json"
    cli(
        "evaluate",
        "--task",
        "sentiment",
        "--data",
        str(test),
        "--label-column",
        "sentiment",
        "--model",
        str(out),
        "--quiet",
        "--calibration-out",
        str(target),
        timeout=300,
    )
    again = calibration_for(ModelSettings(sentiment="cardiffnlp/some-hub-model", calibration=str(target)))
    assert again is not None and sum(again.support) == 200
    assert calibration_for(ModelSettings(sentiment="cardiffnlp/some-hub-model")) is None


def test_evaluate_rejects_unknown_labels_naming_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,sentiment\nfine,positive\nmeh,sorta\n")
    res = cli(
        "evaluate",
        "--task",
        "sentiment",
        "--data",
        str(bad),
        "--label-column",
        "sentiment",
        "--model",
        "builtin:tiny-untrained",
        check=False,
    )
    assert res.returncode == 2
    assert f"{bad}:3" in res.stderr and "label" in res.stderr
