"""The null model, for benchmarks only: fixed outputs without computing, but the default model's
tokenizer, so that tokenization stays in the measured path (`bench/pipeline.py --model null`).
It measures what a worker's host path (Kafka, decode, match, language, tokenize, labels,
aggregates, Redis, posts.scored) can do with a model that costs nothing: the ceiling of one
worker whatever the accelerator.

    .venv/bin/python bench/null_model.py worker --config FILE   # `mood-monitor worker`, null model
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from monitor.model.base import ModelOutput  # noqa: E402

NAME = "null"
_OUT = ModelOutput((0.2, 0.3, 0.5), (0.05, 0.05, 0.05, 0.5, 0.2, 0.1, 0.05))


class NullScorer:
    """A scorer that returns one fixed output per text. ``tok`` and ``cfg`` are what
    `monitor.model.runtime.find_tokenizer` looks for: the worker pre-tokenizes every batch with
    the default model's (Rust) tokenizer, as it does for the real model."""

    name = NAME
    trained = True

    def __init__(self, tok: Any, cfg: Any) -> None:
        self.tok = tok
        self.cfg = cfg

    def score(self, texts: Sequence[str], langs: Sequence[str] | None = None) -> list[ModelOutput | None]:
        return [_OUT] * len(texts)


def load_null(cfg: Any) -> NullScorer:
    """The null scorer with the default model's tokenizer (its weights are never loaded)."""
    from transformers import AutoTokenizer

    from monitor.model.runtime import minilm_dir

    return NullScorer(AutoTokenizer.from_pretrained(str(minilm_dir())), cfg)


def main(argv: list[str]) -> int:
    """`mood-monitor` with the null model in place of the configured one."""
    import monitor.app
    from monitor.cli import main as cli_main
    from monitor.model.base import to_labels

    def build_scorer(s: Any) -> tuple[Any, Any, float]:
        return load_null(s.model), to_labels, float(getattr(s.model, "uncertain_below", 0.0))

    monitor.app.build_scorer = build_scorer  # type: ignore[assignment]
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
