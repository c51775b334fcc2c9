"""The ``model:`` section of the config. Pure (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ModelSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    # "default" (the offline MiniLM model shipped in monitor/model/weights/default), a local directory,
    # a Hugging Face hub id, or "builtin:tiny-untrained" (random weights, for plumbing checks)
    sentiment: str = "default"
    # same choices, or null for no emotion model
    emotion: str | None = "default"
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    # auto: bf16 on CUDA, and on CPUs with native bf16 (AVX512_BF16/AMX); fp32 elsewhere
    dtype: str = Field("auto", pattern=r"^(auto|fp32|bf16|fp16|int8)$")
    max_length: int = Field(128, ge=8, le=512)
    # tokens (padded) per forward pass; a batch is cut into sub-batches of about this size
    token_budget: int = Field(8192, ge=64)
    # a post whose top probability is below this counts as "uncertain" instead of a class
    uncertain_below: float = Field(0.0, ge=0.0, lt=1.0)
    # language routes: ISO 639-1 code -> sentiment model; "*" is the fallback for every other
    # language. Empty: every post goes to ``sentiment``. With routes and no "*", a post in an
    # uncovered language is counted as "unsupported".
    languages: dict[str, str] = {}
    # CPU threads for inference (default: one per core)
    threads: int | None = Field(None, ge=1)
    # on a CPU, how many single-threaded forward passes run side by side on the sub-batches of
    # a batch (default: one per thread; 1 = one pass over all threads)
    cpu_lanes: int | None = Field(None, ge=1)
    # the sentiment shares the read side reports besides the raw counts (monitor.prevalence):
    # cc, pcc (uncorrected), acc, pacc, hdy, hem, em (corrected for a topic mix unlike the training
    # mix); hdy was chosen by bench/quantify.py on validation data only, held-out halves and one
    # domain calibrating another (docs: MODEL_CARD.md)
    share_method: Literal["cc", "pcc", "acc", "pacc", "hdy", "hem", "em"] = "hdy"
    share_level: float = 0.9  # the intervals' coverage target: 0.8, 0.9, 0.95 or 0.99
    # the model's validation statistics (quantify.json); default: the shipped one for the
    # default model, <dir>/quantify.json for a local model; a hub model has none unless
    # `mood-monitor evaluate --calibration-out` wrote one (else raw counts, said so)
    calibration: str | None = None

    @field_validator("share_level")
    @classmethod
    def _level(cls, v: float) -> float:
        if v not in (0.8, 0.9, 0.95, 0.99):
            raise ValueError("share_level: one of 0.8, 0.9, 0.95, 0.99")
        return v
