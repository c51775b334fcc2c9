"""Worker RSS over batches, the model alone, run the way the worker runs it.

The 60-minute soak (docs/soak.md) saw the workers' RSS creep ~2 MB a minute after warm-up while
Python's own heap stayed flat (tracemalloc: +8.8 MB traced while RSS grew +110 MB), so the growth
is native. This isolates the model path: real tweets in batches of random size, tokenized by the
worker's pretokenizer on the calling thread and scored on a ``model`` thread pool with
``--in-model`` batches in flight (the worker keeps 2 with CPU lanes), ``malloc_trim`` after each
batch as the worker does. It prints RSS every ``--every`` batches and a JSON line at the end, so
settings (``MOOD_MODEL__CPU_LANES``, ``MOOD_MODEL__THREADS``) and allocators (``LD_PRELOAD``,
``MALLOC_*`` tunables) can be compared side by side.

    .venv/bin/python bench/rss_lanes.py --batches 1500 --in-model 1
    .venv/bin/python bench/rss_lanes.py --batches 1500 --in-model 2
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.model.memory import limit_growth, trim  # noqa: E402

limit_growth()  # as `mood-monitor worker` does, before torch starts

import orjson  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "tweeteval" / "sentiment"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--batches", type=int, default=1500)
    ap.add_argument("--in-model", type=int, default=2, choices=(1, 2), help="batches in flight")
    ap.add_argument("--max-batch", type=int, default=200)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from monitor.model.runtime import pretokenizer, scorer_lanes
    from monitor.model.scorers import load_scorer
    from monitor.settings import load_settings

    scorer = load_scorer(load_settings(None).model)
    encode = pretokenizer(scorer)
    texts = [t.strip() for t in (DATA / "train_text.txt").read_text().splitlines() if t.strip()]
    rng = random.Random(args.seed)
    pool = ThreadPoolExecutor(max_workers=args.in_model, thread_name_prefix="model")
    inflight: list[Future[Any]] = []
    samples: list[tuple[int, float]] = []
    t0 = time.monotonic()
    print(
        f"rss_lanes: {cpu_model()}, {os.cpu_count()} cores, lanes={scorer_lanes(scorer)}, "
        f"in_model={args.in_model}, LD_PRELOAD={os.environ.get('LD_PRELOAD', '-')}",
        flush=True,
    )
    for n in range(1, args.batches + 1):
        batch = [rng.choice(texts) for _ in range(rng.randint(5, args.max_batch))]
        ready, _ = encode(batch)
        inflight.append(pool.submit(scorer.score, ready))
        if len(inflight) >= args.in_model:
            inflight.pop(0).result()
            trim()
        if n % args.every == 0:
            samples.append((n, round(rss_mb(), 1)))
            dt = time.monotonic() - t0
            print(f"  batches={n:>6} t={dt:6.0f}s rss={samples[-1][1]:7.1f} MB", flush=True)
    for f in inflight:
        f.result()
    half = samples[len(samples) // 2][1] if samples else 0.0
    end = samples[-1][1] if samples else 0.0
    growth = 100.0 * (end - half) / half if half else 0.0
    out = {"in_model": args.in_model, "samples": samples, "second_half_growth_pct": round(growth, 2)}
    print(orjson.dumps(out).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
