"""`mood-monitor train` and `mood-monitor evaluate`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError


def cmd_evaluate(args: argparse.Namespace) -> int:
    from monitor.model.datasets import read_any
    from monitor.model.evaluation import predict, score
    from monitor.model.scorers import _load_one
    from monitor.model.settings import ModelSettings

    data = read_any(args.data, args.task, args.text_column, args.label_column)
    cfg = ModelSettings(sentiment=args.model, emotion=None, dtype=args.dtype)
    classifier = _load_one(args.model, args.task, cfg)
    sets, tops, confs = predict(classifier, args.task, data.texts, progress=not args.quiet)
    report = score(args.task, data.labels, sets, tops, confs)
    print(f"model {args.model} on {data.source} ({args.task})")
    print(report.table())
    if args.calibration_out:
        if args.task != "sentiment":
            raise ConfigError("--calibration-out", "task", "share calibration is for --task sentiment")
        from monitor.model.calibration import write_calibration

        write_calibration(args.model, data.texts, data.labels, Path(args.calibration_out), data.source)
        print(f"wrote the share calibration to {args.calibration_out} (set model.calibration to it)")
    print(json.dumps({"model": args.model, "data": data.source, **report.as_json()}))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from monitor.model.datasets import read_any
    from monitor.model.training import FinetuneConfig, finetune

    train = read_any(args.data, args.task, args.text_column, args.label_column)
    val = read_any(args.val, args.task, args.text_column, args.label_column) if args.val else None
    cfg = FinetuneConfig(
        task=args.task,
        base=args.base,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        max_length=args.max_length,
        train_layers=None if args.train_layers < 0 else args.train_layers,
        seed=args.seed,
        patience=args.patience,
    )
    result = finetune(train, val, Path(args.out), cfg)
    print(json.dumps(result))
    return 0


def _data_args(sp: Any) -> None:
    sp.add_argument("--task", choices=["sentiment", "emotion"], required=True)
    sp.add_argument(
        "--data",
        required=True,
        help="CSV/TSV/JSONL with text and label columns, a GoEmotions TSV, or TWEETEVAL_DIR:split",
    )
    sp.add_argument("--text-column", default="text")
    sp.add_argument("--label-column", default="label")


def add_parsers(sub: Any) -> None:
    sp = sub.add_parser("evaluate", help="score a model on a labeled file (per-class P/R/F1, ECE, confusion)")
    _data_args(sp)
    sp.add_argument("--model", default="default", help="default, a local directory or a hub id")
    sp.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "int8", "auto"])
    sp.add_argument("--quiet", action="store_true")
    sp.add_argument(
        "--calibration-out",
        default=None,
        help="also write the share corrections' statistics (quantify.json) from --data: give it a "
        "VALIDATION file, never the test set you report",
    )
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("train", help="fine-tune a classifier on your labeled file")
    _data_args(sp)
    sp.add_argument("--val", default=None, help="validation file (default: a 10%% split of --data)")
    sp.add_argument("--base", default="", help="base model (default: the packaged MiniLM encoder)")
    sp.add_argument("--out", required=True, help="output directory (load it with model.sentiment: DIR)")
    sp.add_argument("--epochs", type=int, default=3)
    sp.add_argument("--lr", type=float, default=5e-5)
    sp.add_argument("--batch-size", type=int, default=32)
    sp.add_argument("--max-length", type=int, default=128)
    sp.add_argument("--train-layers", type=int, default=2, help="top encoder layers to train (-1: all)")
    sp.add_argument("--patience", type=int, default=2, help="epochs without validation gain before stopping")
    sp.add_argument("--seed", type=int, default=13)
    sp.set_defaults(func=cmd_train)
