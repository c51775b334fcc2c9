"""The model's validation statistics for the share corrections (`monitor.prevalence`): written
as ``quantify.json`` next to a model by `mood-monitor train` (and, for a model trained
elsewhere, by ``mood-monitor evaluate --calibration-out``), read by the read side.

Reading (`calibration_for`) is torch-free: ``mood-monitor mood`` and the dashboard load a JSON
file, not the model. Writing scores the validation texts with the production scorer, so the
statistics describe exactly the posteriors the worker will write into the buckets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson

from monitor.errors import ConfigError
from monitor.model.settings import ModelSettings
from monitor.prevalence import Calibration
from monitor.taxonomy import SENTIMENTS

CALIBRATION_FILE = "quantify.json"
SHIPPED = Path(__file__).resolve().parent / "weights" / "default" / CALIBRATION_FILE


def calibration_path(cfg: ModelSettings) -> Path | None:
    """Where the configured sentiment model's calibration is: ``model.calibration`` if set, the
    shipped file for the default model, ``<dir>/quantify.json`` for a local directory; None for
    a hub model without one (the read side then falls back to raw counts and says so)."""
    if cfg.calibration:
        return Path(cfg.calibration)
    if cfg.sentiment == "default":
        return SHIPPED
    local = Path(cfg.sentiment) / CALIBRATION_FILE
    return local if local.is_file() else None


def load_calibration(path: Path, field: str = "model.calibration") -> Calibration:
    """ConfigError naming the file and what is wrong on a missing or malformed file."""
    try:
        obj = orjson.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise ConfigError(str(path), field, "no such file") from exc
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(str(path), field, f"unreadable ({type(exc).__name__})") from exc
    if not isinstance(obj, dict):
        raise ConfigError(str(path), field, "expected a JSON object")
    try:
        return Calibration.from_json(obj)
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(path), field, str(exc)) from exc


def calibration_for(cfg: ModelSettings) -> Calibration | None:
    path = calibration_path(cfg)
    return load_calibration(path) if path is not None else None


def write_calibration(
    model: str,
    texts: Sequence[str],
    labels: Sequence[Sequence[str]],
    out: Path,
    source: str,
    posterior_prior: Sequence[float] | None = None,
) -> Calibration:
    """Score labelled VALIDATION texts with ``model`` (as ``model.sentiment`` names it) and write
    their statistics to ``out``; ``posterior_prior``: the class prior the model's posteriors
    answer for, when known (its training mix; uniform for class-balanced training)."""
    from monitor.model.base import Scorer
    from monitor.model.default import MultiHeadScorer
    from monitor.model.scorers import load_scorer

    cfg = ModelSettings(sentiment=model, emotion=None)
    # a directory in the default model's own format (what `make train-default` writes)
    own = model != "default" and (Path(model) / "adapter.safetensors").is_file()
    scorer: Scorer = MultiHeadScorer.load(Path(model), cfg, with_emotion=False) if own else load_scorer(cfg)
    probs: list[tuple[float, float, float]] = []
    for s in range(0, len(texts), 256):
        for o in scorer.score(list(texts[s : s + 256])):
            if o is None:  # unreachable without language routes
                raise ConfigError(source, "text", "the model gave no output for a validation text")
            probs.append(o.sentiment)
    gold = [SENTIMENTS.index(lab[0]) for lab in labels]
    cal = Calibration.from_validation(probs, gold, source, posterior_prior)
    out.write_bytes(orjson.dumps(cal.as_json(), option=orjson.OPT_INDENT_2) + b"\n")
    return cal
