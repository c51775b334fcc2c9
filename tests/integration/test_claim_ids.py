"""The duplicate-id guard's script on the real Redis, against the one-call-per-id script it
replaced (`bench/claim_ids_per_id.lua`, the reference): the same answers and the same hash contents
on random workloads with redeliveries, duplicates inside one call, ids already in the previous
slice and calls larger than the script's 1,000-id chunks."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import redis

from monitor.store import keys
from monitor.store.buckets import RedisAggregateStore, id_digest

pytestmark = pytest.mark.integration

REFERENCE = (Path(__file__).resolve().parents[2] / "bench" / "claim_ids_per_id.lua").read_text()


def _call(store: RedisAggregateStore, script, prefix: str, items: list[tuple[str, str]]) -> list[str]:
    slice_no = int(time.time()) // store.dedup_slice_s
    ks = [keys.seen_slice(prefix, n) for n in (slice_no, slice_no - 1)]
    args: list[object] = [(slice_no + 2) * store.dedup_slice_s]
    for post_id, origin in items:
        args += [id_digest(post_id), origin]
    return script(keys=ks, args=args)


def test_batched_claims_answer_as_the_per_id_script_did(redis_url, unique):
    store = RedisAggregateStore(redis_url, f"cl-{unique}")
    ref_prefix = f"clref-{unique}"
    reference = store.client.register_script(REFERENCE)
    slice_no = int(time.time()) // store.dedup_slice_s
    rng = random.Random(17)
    # ids the previous slice already holds, in both guards
    earlier = [(f"old-{i}", f"raw:9:{i}") for i in range(300)]
    for prefix in (store.prefix, ref_prefix):
        store.client.hset(
            keys.seen_slice(prefix, slice_no - 1), mapping={id_digest(p): o for p, o in earlier}
        )
    pool = [f"id-{i}" for i in range(4000)] + [p for p, _ in earlier]
    first: dict[str, str] = {}
    for size in (1, 999, 1000, 1001, 2500, 40, 3100):
        items = []
        for n in range(size):
            post_id = rng.choice(pool)
            # a redelivery (the origin that claimed it), a duplicate (a new origin) or a new id
            origin = first.get(post_id) if rng.random() < 0.3 else f"raw:{rng.randrange(4)}:{size}-{n}"
            items.append((post_id, origin or f"raw:0:{size}-{n}"))
            first.setdefault(post_id, items[-1][1])
        got = store.claim_ids(items)
        want = [r or None for r in _call(store, reference, ref_prefix, items)]  # decoded responses
        assert got == want, size
    # and both guards hold the same claims (digests are bytes: read without decoding)
    raw = redis.Redis.from_url(redis_url)
    for n in (slice_no, slice_no - 1):
        held = raw.hgetall(keys.seen_slice(store.prefix, n))
        assert held and held == raw.hgetall(keys.seen_slice(ref_prefix, n))
    assert store.client.ttl(keys.seen_slice(store.prefix, slice_no)) > 0


def test_an_id_twice_in_one_call_across_a_chunk_boundary(redis_url, unique):
    store = RedisAggregateStore(redis_url, f"cc-{unique}")
    items = [(f"p-{i}", f"raw:0:{i}") for i in range(1500)]
    items[1200] = ("p-3", "raw:1:77")  # the same id as item 3, in the second chunk
    got = store.claim_ids(items)
    assert got[1200] == "raw:0:3" and got.count(None) == 1499
