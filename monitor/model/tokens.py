"""Tokenizing for the model, without torch: the Rust backend called directly, input bounded,
and `Pretokenized` texts that carry their ids to the model. The worker's host processes
(`monitor.model.remote`) tokenize with this and never import torch."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

# A fast tokenizer mutates its truncation state on every call: one caller at a time.
_TOKENIZER_LOCK = threading.Lock()


# the tokenizer sees at most this many characters per token of ``max_length``: a text's first
# max_length tokens span more only when it holds long runs of characters the tokenizer drops
# (combining marks, zero-width and control characters) or 100+-letter words, i.e. hostile text,
# and the cut bounds a 20,000-character post's tokenizing cost (11 ms for "@-" x 10,000 uncut)
CHARS_PER_TOKEN = 32


def tokenize_ids(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids with special tokens, truncated to ``max_length``, unpadded. A fast tokenizer's
    Rust backend is called directly: the same ids at 26 instead of 67 us of CPU a post (the
    wrapper builds a dict of every field for each text), and that CPU is taken from the model."""
    cut = max_length * CHARS_PER_TOKEN
    texts = [t if len(t) <= cut else t[:cut] for t in texts]
    backend = rust_tokenizer(tokenizer)
    with _TOKENIZER_LOCK:
        if backend is not None:
            backend.enable_truncation(max_length)  # what the wrapper sets on every call too
            backend.no_padding()
            # encode_batch_fast (tokenizers >= 0.20): the same ids without character offsets,
            # which nothing here reads: 17 instead of 21 us of CPU a post (measured on this VM)
            encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
            return [e.ids for e in encode(texts, add_special_tokens=True)]
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


def rust_tokenizer(tok: Any) -> Any:
    """The Rust `tokenizers.Tokenizer` of a transformers fast tokenizer (or ``tok`` itself when
    it is one, as in a host process); None for a slow tokenizer or none."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None and tok is not None and hasattr(tok, "encode_batch"):
        backend = tok
    return backend


def tokens_key(tok: Any, max_length: int) -> tuple[int, int]:
    """The key `Pretokenized` texts carry: their ids are this tokenizer's, at this length."""
    return (id(tok), max_length)


def pretokenize_with(tok: Any, max_length: int) -> Callable[[Sequence[str]], tuple[list[str], list[int]]]:
    """texts -> (`Pretokenized` texts of (``tok``, ``max_length``), their token counts),
    tokenized by ``tok`` (a transformers fast tokenizer, or the `tokenizers.Tokenizer` behind one)."""
    key = tokens_key(tok, max_length)

    def run(texts: Sequence[str]) -> tuple[list[str], list[int]]:
        if not texts:
            return [], []
        ids = tokenize_ids(tok, list(texts), max_length)
        return [Pretokenized(t, i, key) for t, i in zip(texts, ids, strict=True)], [len(i) for i in ids]

    return run
