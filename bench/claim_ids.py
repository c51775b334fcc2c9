"""The duplicate-id claim of one worker batch, the script the worker runs against the per-id
script it replaced (`bench/claim_ids_per_id.lua`), side by side on the local Redis.

    .venv/bin/python bench/claim_ids.py [--batch 2048] [--batches 30] [--rounds 2]

Each batch claims ``--batch`` fresh ids (shaped like the worker's: a post id and its record's
origin). Printed per script: wall time per batch and the CPU it took in this process (packing
the arguments, parsing the answer: the worker's main thread, under the GIL). The two take
turns, ``--rounds`` times; each figure is its best round. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from soak import cpu_model  # noqa: E402

PER_ID = (REPO / "bench" / "claim_ids_per_id.lua").read_text()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    from devstack import stack
    from monitor.settings import load_settings
    from monitor.store import keys
    from monitor.store.buckets import RedisAggregateStore, id_digest

    if stack.cli(["up"]) != 0:
        return 4
    s = load_settings(None)
    prefix = f"bench-claim-{time.time_ns()}"
    store = RedisAggregateStore(s.redis.url.get_secret_value(), prefix)
    per_id = store.client.register_script(PER_ID)

    def per_id_claim(items: list[tuple[str, str]]) -> list[str | None]:
        slice_no = int(time.time()) // store.dedup_slice_s
        args_: list[object] = [(slice_no + 2) * store.dedup_slice_s]
        for post_id, origin in items:
            args_ += [id_digest(post_id), origin]
        ks = [keys.seen_slice(f"{prefix}-per-id", n) for n in (slice_no, slice_no - 1)]
        return [r or None for r in per_id(keys=ks, args=args_)]

    scripts = {"per_id (before)": per_id_claim, "batched (worker)": store.claim_ids}
    best: dict[str, dict[str, float]] = {}
    try:
        for r in range(1, args.rounds + 1):
            for name, claim in scripts.items():
                n = args.batch
                batches = [
                    [(f"{name[:5]}-{r}-{b}-{i}", f"posts.raw:{i % 4}:{b * n + i}") for i in range(n)]
                    for b in range(args.batches)
                ]
                c0, w0 = time.process_time(), time.perf_counter()
                for items in batches:
                    assert claim(items) == [None] * len(items)
                wall = (time.perf_counter() - w0) / args.batches * 1000
                cpu = (time.process_time() - c0) / args.batches * 1000
                print(f"bench: round {r}: {name}: {wall:.2f} ms wall, {cpu:.2f} ms CPU a batch", flush=True)
                b_ = best.setdefault(name, {"wall_ms": float("inf"), "cpu_ms": float("inf")})
                b_["wall_ms"], b_["cpu_ms"] = min(b_["wall_ms"], wall), min(b_["cpu_ms"], cpu)
    finally:
        for k in store.client.scan_iter(match=f"{prefix}*"):
            store.client.delete(k)
    print(f"\n  {args.batch} ids a batch, {cpu_model()}")
    print(f"  {'script':<18} {'wall ms/batch':>14} {'CPU ms/batch':>13}")
    for name, b_ in best.items():
        print(f"  {name:<18} {b_['wall_ms']:>14.2f} {b_['cpu_ms']:>13.2f}")
    rounded = {k: {m: round(v, 2) for m, v in b_.items()} for k, b_ in best.items()}
    figures = {"batch": args.batch, "batches": args.batches, "cpu": cpu_model(), "best": rounded}
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
