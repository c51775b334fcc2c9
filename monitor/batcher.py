"""Dynamic batching for the inference worker. Pure: the poll function, the preparation step
and the clock are injected, so tests drive it without a broker and without wall time.

A batch is filled from the consumer, record chunk by record chunk, each chunk decoded and
tokenized as it arrives (`prepare`), until one of these holds:

* ``full``: it reached ``max_tokens`` tokens or ``max_posts`` records (batches are sized by
  tokens, not posts: the cost of a forward pass is about proportional to its tokens);
* ``model-done``: the batch that is running through the model has finished: it must be written
  and committed now, and the model should not sit idle, so what was gathered goes next;
* ``wait``: the model is idle and the oldest record has waited ``max_wait_ms`` (the latency
  budget: with the model idle, a batch is only held back to let it grow a little);
* ``stop``: the worker was asked to stop;
* ``idle``: nothing came for ``idle_ms`` and nothing is running.

While the model is busy the batch keeps filling: it could not start earlier anyway, and a
bigger batch costs less per post. The worker then sorts each batch by length and cuts it into
sub-batches of about the model's token budget (`monitor.model.scorers.length_batches`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

R = TypeVar("R")
T = TypeVar("T")

ModelState = Literal["idle", "busy", "done"]


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_posts: int = 512
    max_tokens: int = 8192
    max_wait_ms: int = 250
    # longest single poll while waiting, so that a finished model or a stop is noticed quickly
    # (the consumer lengthens polls by itself while it re-joins its group: see monitor.kafka)
    slice_ms: int = 20
    # longest single poll while nothing is in hand and the model is idle: only a stop must be
    # noticed then, and every poll of an idle consumer costs CPU (20 ms polls kept an idle
    # worker at 7 % of a core)
    idle_slice_ms: int = 200
    min_poll_ms: int = 5
    # the records a batch may hold when only some go to the model (a post that matches no
    # topic is prepared with 0 tokens): then ``max_posts`` counts the posts with tokens, and a
    # finished model does not end a batch of fewer than max_posts / 4 of them before
    # ``max_wait_ms`` (ten posts a pass cost the model almost twice as much a post). None: every
    # record counts as a post and a finished model ends the batch at once
    max_records: int | None = None


@dataclass(slots=True)
class Batch(Generic[T]):
    items: list[T] = field(default_factory=list)
    tokens: int = 0
    posts: int = 0  # the items that count against max_posts
    first_ms: int | None = None  # when the first record of the batch arrived
    reason: str = "empty"

    def __len__(self) -> int:
        return len(self.items)


def gather(
    poll: Callable[[int, int], Sequence[R]],
    prepare: Callable[[Sequence[R]], Sequence[tuple[T, int]]],
    limits: BatchLimits,
    *,
    clock_ms: Callable[[], int],
    model: Callable[[], ModelState] = lambda: "idle",
    stopping: Callable[[], bool] = lambda: False,
    idle_ms: int = 500,
) -> Batch[T]:
    """Fill one batch; see the module docstring for when it stops. ``poll(timeout_ms,
    max_records)`` returns records, ``prepare(records)`` turns them into (item, tokens)."""
    batch: Batch[T] = Batch()
    start = clock_ms()
    while True:
        now = clock_ms()
        state = model()
        reason = _stop_reason(batch, limits, state, stopping(), now - start, idle_ms, now)
        if reason:
            batch.reason = reason
            return batch
        until = start + idle_ms if batch.first_ms is None else batch.first_ms + limits.max_wait_ms
        longest = limits.idle_slice_ms if state == "idle" and batch.first_ms is None else limits.slice_ms
        timeout = max(limits.min_poll_ms, min(longest, until - now))
        room = (limits.max_records or limits.max_posts) - len(batch.items)
        records = poll(timeout, max(1, room))
        if not records:
            continue
        if batch.first_ms is None:
            batch.first_ms = clock_ms()
        for item, tokens in prepare(records):
            batch.items.append(item)
            batch.tokens += tokens
            batch.posts += 1 if limits.max_records is None or tokens > 0 else 0


def _stop_reason(
    batch: Batch[T],
    limits: BatchLimits,
    model: ModelState,
    stopping: bool,
    waited_ms: int,
    idle_ms: int,
    now: int,
) -> str | None:
    records_full = limits.max_records is not None and len(batch.items) >= limits.max_records
    if batch.posts >= limits.max_posts or records_full or batch.tokens >= limits.max_tokens:
        return "full"
    if stopping:
        return "stop"
    if model == "done":
        few = limits.max_records is not None and batch.posts < limits.max_posts // 4
        if few and batch.first_ms is not None and now - batch.first_ms < limits.max_wait_ms:
            return None  # a handful of posts: let the batch fill, the written one waits a little
        return "model-done"
    if model == "busy":
        return None
    if batch.first_ms is not None:
        return "wait" if now - batch.first_ms >= limits.max_wait_ms else None
    return "idle" if waited_ms >= idle_ms else None
