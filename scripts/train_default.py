"""Train the offline default model (monitor/model/weights/default) on ../shared/data.

.venv/bin/python scripts/train_default.py [--data ../shared/data] [--out monitor/model/weights/default]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from monitor.model.datasets import read_goemotions, read_tweeteval
from monitor.model.training import DefaultTrainConfig, train_default


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--out", default="monitor/model/weights/default")
    ap.add_argument("--epochs", type=int, default=2)  # the committed artifact: 2 epochs, best at step 2320
    ap.add_argument("--max-train", type=int, default=None)
    ap.add_argument("--lora-r", type=int, default=32)
    ap.add_argument("--bottom-layers", type=int, default=4)
    ap.add_argument("--lr", type=float, default=6e-4)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    d = Path(args.data)
    te = d / "tweeteval" / "sentiment"
    ge = d / "goemotions"
    cfg = DefaultTrainConfig(
        epochs=args.epochs,
        max_train=args.max_train,
        lora_r=args.lora_r,
        bottom_layers=args.bottom_layers,
        lr=args.lr,
    )
    meta = train_default(
        read_tweeteval(te, "train"),
        read_tweeteval(te, "val"),
        read_goemotions(ge / "train.tsv"),
        read_goemotions(ge / "dev.tsv"),
        Path(args.out),
        cfg,
    )
    print(json.dumps({"val": meta["val"], "seconds": meta["train"]["seconds"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
