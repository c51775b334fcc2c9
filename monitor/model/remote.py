"""One model, several host processes (issue 17): the host path of a worker (Kafka, decoding,
matching, tokenizing, labels, Redis) is split over processes, so that it is not bounded by one
process's GIL, while the model stays loaded once, on its device, in the worker's main process.

A host process hands its tokenized batch to the model process over a pipe (`RemoteScorer`) and
gets the outputs back; the model process answers every host from one `ModelServer`, running at
most ``concurrency`` batches at once (2 where the model runs in parallel CPU lanes, else 1).
What crosses the pipe is small: the texts, their token ids (the model does not tokenize again)
and the languages one way, two tuples of probabilities a post the other. No torch here: a host
process never imports it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from monitor.errors import ModelError
from monitor.model.base import LabelFn, ModelOutput, Scorer
from monitor.model.tokens import Pretokenized, rust_tokenizer

log = logging.getLogger(__name__)

_Wire = tuple[tuple[float, float, float], tuple[float, ...] | None] | None


@dataclass(frozen=True)
class HostModel:
    """What a host process needs of the model, sent to it once at start: the model's name and
    state for its heartbeat, how outputs become labels, and the tokenizer (the Rust
    `tokenizers.Tokenizer` behind the model's, picklable and without transformers; None when the
    model has no fast tokenizer: the model process then tokenizes)."""

    name: str
    trained: bool
    to_labels: LabelFn
    uncertain_below: float
    tokenizer: Any = None
    max_length: int = 0


class ModelServer:
    """The model process's side: answers each host process's connection in its own thread."""

    def __init__(
        self,
        scorer: Scorer,
        *,
        concurrency: int = 1,
        key: tuple[int, int] | None = None,
        after_batch: Callable[[], Any] = lambda: None,
    ) -> None:
        self.scorer = scorer
        self.key = key  # the model's own `Pretokenized` key: ids that arrive are used as they are
        self.after_batch = after_batch  # e.g. give the activations' pages back
        self._slots = threading.Semaphore(max(1, concurrency))
        self.batches = 0

    def serve(self, conn: Connection) -> None:
        """Answer ``conn`` until the host process closes it (it stopped, or died)."""
        while True:
            try:
                texts, ids, langs = conn.recv()
            except (EOFError, OSError):
                return
            try:
                if ids is not None and self.key is not None:
                    texts = [Pretokenized(t, i, self.key) for t, i in zip(texts, ids, strict=True)]
                with self._slots:
                    try:
                        outs = self.scorer.score(texts, langs)
                    finally:
                        self.after_batch()
                self.batches += 1
                reply: tuple[Any, ...] = (
                    "ok",
                    [None if o is None else (o.sentiment, o.emotion) for o in outs],
                )
            except Exception as exc:  # noqa: BLE001 - the host process decides what a failure means
                log.exception("the model failed on a batch of %d posts", len(texts))
                reply = ("error", type(exc).__name__, str(exc)[:500])
            try:
                conn.send(reply)
            except (BrokenPipeError, EOFError, OSError):
                return


class RemoteScorer:
    """A host process's scorer: the batch goes to the model process and back. One batch at a
    time per host process (the model process runs several hosts' batches side by side)."""

    def __init__(self, conn: Connection, model: HostModel) -> None:
        self.conn = conn
        self.name = model.name
        self.trained = model.trained
        self._lock = threading.Lock()

    def score(self, texts: Sequence[str], langs: Sequence[str] | None = None) -> list[ModelOutput | None]:
        pre = [t for t in texts if isinstance(t, Pretokenized)]
        ids = [t.ids for t in pre] if texts and len(pre) == len(texts) else None
        request = ([str(t) for t in texts], ids, list(langs) if langs is not None else None)
        with self._lock:
            try:
                self.conn.send(request)
                reply = self.conn.recv()
            except (EOFError, OSError) as exc:
                raise ModelError(f"the model process is gone ({type(exc).__name__})") from exc
        if reply[0] != "ok":
            raise ModelError(f"the model process failed on the batch: {reply[1]}: {reply[2]}")
        outs: list[_Wire] = reply[1]
        if len(outs) != len(texts):
            raise ModelError(f"the model process answered {len(outs)} outputs for {len(texts)} posts")
        return [None if o is None else ModelOutput(o[0], o[1]) for o in outs]


def host_model(
    scorer: Scorer, to_labels: LabelFn, uncertain_below: float, found: tuple[Any, int] | None
) -> HostModel:
    """The `HostModel` of a loaded scorer whose tokenizer `monitor.model.runtime.find_tokenizer`
    found (``found``)."""
    tok, max_length = found if found is not None else (None, 0)
    backend = rust_tokenizer(tok)
    return HostModel(
        name=scorer.name,
        trained=bool(getattr(scorer, "trained", True)),
        to_labels=to_labels,
        uncertain_below=uncertain_below,
        tokenizer=backend,
        max_length=max_length if backend is not None else 0,
    )
