"""The dynamic batcher on a scripted consumer and a fake clock: which limit closes a batch, and
that a batch keeps filling while the model is busy. No wall time anywhere."""

from __future__ import annotations

from monitor.batcher import BatchLimits, gather


class Script:
    """A consumer whose every poll advances a fake clock by the poll's timeout when it has
    nothing, or by 1 ms when it hands out the next scripted chunk."""

    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.now = 0
        self.polls = 0

    def clock(self):
        return self.now

    def poll(self, timeout_ms, max_records):
        self.polls += 1
        assert timeout_ms >= 1 and max_records >= 1
        if self.chunks and self.chunks[0] is not None:
            chunk = self.chunks.pop(0)
            self.now += 1
            return chunk[:max_records]
        if self.chunks:
            self.chunks.pop(0)  # None: an empty poll
        self.now += timeout_ms
        return []


def tokens_of(records):
    return [(r, r["tokens"]) for r in records]


def recs(n, tokens=10, start=0):
    return [{"i": start + i, "tokens": tokens} for i in range(n)]


def test_a_batch_closes_at_the_token_budget_not_at_a_post_count():
    s = Script([recs(4, tokens=30), recs(4, tokens=30, start=4), recs(4, start=8)])
    b = gather(
        s.poll, tokens_of, BatchLimits(max_posts=100, max_tokens=200), clock_ms=s.clock, model=lambda: "busy"
    )
    assert b.reason == "full"
    assert [r["i"] for r in b.items] == list(range(8))  # 240 tokens >= 200 after the second chunk
    assert b.tokens == 240


def test_a_batch_closes_at_max_posts_and_polls_no_more_than_it_can_take():
    asked = []
    s = Script([recs(5), recs(5, start=5)])

    def poll(timeout_ms, max_records):
        asked.append(max_records)
        return s.poll(timeout_ms, max_records)

    b = gather(
        poll, tokens_of, BatchLimits(max_posts=7, max_tokens=10_000), clock_ms=s.clock, model=lambda: "busy"
    )
    assert (b.reason, len(b)) == ("full", 7)
    assert asked == [7, 2]


def test_with_the_model_idle_a_batch_waits_at_most_max_wait_ms_after_its_first_record():
    s = Script([None, None, recs(2)] + [None] * 100)
    limits = BatchLimits(max_posts=100, max_tokens=10_000, max_wait_ms=100, slice_ms=10)
    b = gather(s.poll, tokens_of, limits, clock_ms=s.clock, model=lambda: "idle")
    assert b.reason == "wait" and len(b) == 2
    assert b.first_ms is not None and 100 <= s.now - b.first_ms < 100 + limits.slice_ms


def test_while_the_model_is_busy_the_batch_keeps_filling_past_max_wait_ms():
    state = {"model": "busy"}
    chunks = [recs(1, start=i) for i in range(30)]
    s = Script(chunks)

    def poll(timeout_ms, max_records):
        out = s.poll(timeout_ms, max_records)
        if s.now >= 500:  # the model finishes long after max_wait_ms
            state["model"] = "done"
        s.now += 20
        return out

    b = gather(
        poll,
        tokens_of,
        BatchLimits(max_posts=1000, max_tokens=10_000, max_wait_ms=50),
        clock_ms=s.clock,
        model=lambda: state["model"],
    )
    assert b.reason == "model-done"
    assert len(b) > 3  # well past what 50 ms of arrivals would have given


def test_a_finished_model_ends_the_wait_even_with_nothing_gathered():
    s = Script([None] * 10)
    b = gather(s.poll, tokens_of, BatchLimits(), clock_ms=s.clock, model=lambda: "done")
    assert (b.reason, len(b)) == ("model-done", 0)
    assert s.polls == 0


def test_stop_ships_what_was_gathered():
    stop = {"now": False}
    s = Script([recs(3)] + [None] * 10)

    def poll(timeout_ms, max_records):
        out = s.poll(timeout_ms, max_records)
        stop["now"] = True
        return out

    b = gather(
        poll,
        tokens_of,
        BatchLimits(max_wait_ms=10_000),
        clock_ms=s.clock,
        model=lambda: "busy",
        stopping=lambda: stop["now"],
    )
    assert (b.reason, len(b)) == ("stop", 3)


def test_nothing_arriving_and_nothing_running_returns_an_empty_batch_after_idle_ms():
    s = Script([])
    b = gather(s.poll, tokens_of, BatchLimits(slice_ms=20), clock_ms=s.clock, idle_ms=300)
    assert (b.reason, len(b)) == ("idle", 0)
    assert 300 <= s.now < 320


def test_records_without_tokens_count_as_posts():
    s = Script([recs(6, tokens=0)])
    b = gather(s.poll, tokens_of, BatchLimits(max_posts=6), clock_ms=s.clock)
    assert (b.reason, len(b), b.tokens) == ("full", 6, 0)


def test_an_idle_consumer_is_polled_in_long_slices_a_running_model_or_a_started_batch_in_short_ones():
    def timeouts(script, **kw):
        seen = []

        def poll(timeout_ms, max_records):
            seen.append(timeout_ms)
            return script.poll(timeout_ms, max_records)

        b = gather(
            poll,
            tokens_of,
            BatchLimits(max_wait_ms=100, slice_ms=20, idle_slice_ms=200),
            clock_ms=script.clock,
            idle_ms=1000,
            **kw,
        )
        return b, seen

    b, seen = timeouts(Script([]))  # nothing in hand, nothing running: only a stop to notice
    assert b.reason == "idle" and seen == [200] * 5
    state = {"n": 0}

    def busy_then_done():
        state["n"] += 1
        return "busy" if state["n"] < 4 else "done"

    b, seen = timeouts(Script([]), model=busy_then_done)  # the model's end must be noticed soon
    assert b.reason == "model-done" and seen == [20, 20, 20]
    b, seen = timeouts(Script([recs(1)]))  # a batch has started: it closes within max_wait_ms
    assert b.reason == "wait" and seen[0] == 200 and max(seen[1:]) <= 20


def test_with_max_records_only_posts_with_tokens_count_and_a_finished_model_waits_for_more():
    # 2 % of the records go to the model: 3 posts in 150 records, then 3 more
    chunk = recs(49, tokens=0) + recs(1, tokens=10)
    s = Script([chunk, chunk, chunk, None, chunk, chunk, chunk])
    limits = BatchLimits(max_posts=64, max_tokens=10_000, max_wait_ms=50, max_records=1000)
    b = gather(s.poll, tokens_of, limits, clock_ms=s.clock, model=lambda: "done" if s.polls else "busy")
    # the model finished after the first poll, but a few posts (fewer than 64 / 4) are not worth
    # a pass: the batch fills until its first record waited max_wait_ms
    assert b.reason == "model-done" and b.posts == 6 and len(b) == 300
    assert s.now - b.first_ms >= 50
    # without max_records the same finished model ends the batch at once, every record a post
    s2 = Script([chunk, chunk])
    b2 = gather(
        s2.poll,
        tokens_of,
        BatchLimits(max_posts=64, max_tokens=10_000, max_wait_ms=50),
        clock_ms=s2.clock,
        model=lambda: "done" if s2.polls else "busy",
    )
    assert (b2.reason, b2.posts, len(b2)) == ("model-done", 50, 50)


def test_with_max_records_a_batch_closes_at_max_posts_posts_or_max_records_records():
    posts = gather(
        Script([recs(3, tokens=0) + recs(2)] * 5).poll,
        tokens_of,
        BatchLimits(max_posts=4, max_tokens=10_000, max_records=100),
        clock_ms=lambda: 0,
        model=lambda: "busy",
    )
    assert (posts.reason, posts.posts, len(posts)) == ("full", 4, 10)
    records = gather(
        Script([recs(30, tokens=0)] * 5).poll,
        tokens_of,
        BatchLimits(max_posts=4, max_tokens=10_000, max_records=70),
        clock_ms=lambda: 0,
        model=lambda: "busy",
    )
    assert (records.reason, records.posts, len(records)) == ("full", 0, 70)
