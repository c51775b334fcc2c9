"""1,000 topic queries matched per post vs. the worker's per-post scoring time.

    .venv/bin/python bench/query.py [--topics 1000] [--posts 2000] [--model default]

Builds N boolean topic queries (words, prefixes, phrases, hashtags, mentions, lang:, NOT) over a
synthetic post stream, times `QuerySet.match` (the indexed path) and, for comparison, each
`CompiledQuery.matches` one by one; then times the configured model's batched scoring of the same
posts (batches of 64, as the worker does). Prints a table and, last, one JSON line. The issue's
target: matching 1,000 topics costs less than 10% of the worker's time per post.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import orjson

from devstack.synthetic import stream
from monitor.messages import Post
from monitor.query import QuerySet, compile_query

WORDS = [
    "phone",
    "battery",
    "screen",
    "camera",
    "update",
    "price",
    "delivery",
    "service",
    "bank",
    "train",
    "coffee",
    "game",
    "music",
    "weather",
    "store",
    "app",
    "login",
    "refund",
    "support",
    "laptop",
    "tablet",
    "charger",
    "ticket",
    "flight",
    "hotel",
    "pizza",
]


def make_queries(n: int, seed: int = 11) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b, c = rng.sample(WORDS, 3)
        brand = f"brand{i}"
        shapes = [
            f'("{a} {b}" OR #{brand}) AND NOT giveaway lang:en',
            f"{brand} AND ({a} OR {b}*) -spam",
            f'#{brand} OR @{brand} OR "{brand} {c}"',
            f"({a} AND {b}) OR ({brand} AND NOT {c}) lang:en",
        ]
        out.append((f"t{i}", shapes[i % len(shapes)]))
    return out


def posts(n: int) -> list[Post]:
    rng = random.Random(3)
    out = []
    for d in stream(n, seed=5):
        extra = " ".join(rng.sample(WORDS, 3)) + f" #brand{rng.randrange(1000)} @brand{rng.randrange(1000)}"
        out.append(
            Post(
                id=str(d["id"]),
                source="bench",
                text=f"{d['text']} {extra}",
                created_ms=1,
                ingested_ms=1,
                lang="en",
            )
        )
    return out


def per_post_us(fn, items, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for it in items:
            fn(it)
        best = min(best, time.perf_counter() - t0)
    return best / len(items) * 1e6


def scoring_us(model: str, ps: list[Post], batch: int = 64) -> float:
    from monitor.model.scorers import load_scorer
    from monitor.model.settings import ModelSettings

    emotion = None if model.startswith("builtin:") else "default"
    scorer = load_scorer(ModelSettings(sentiment=model, emotion=emotion))
    texts = [p.text for p in ps]
    scorer.score(texts[:batch], ["en"] * batch)  # warm-up
    times = []
    for i in range(0, len(texts) - batch + 1, batch):
        t0 = time.perf_counter()
        scorer.score(texts[i : i + batch], ["en"] * batch)
        times.append((time.perf_counter() - t0) / batch)
    return statistics.median(times) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--topics", type=int, default=1000)
    ap.add_argument("--posts", type=int, default=2000)
    ap.add_argument("--model", default="default", help="default, builtin:tiny-untrained, a path")
    ap.add_argument("--score-posts", type=int, default=512)
    args = ap.parse_args()

    qs = make_queries(args.topics)
    t0 = time.perf_counter()
    qset = QuerySet(qs)
    compile_ms = (time.perf_counter() - t0) * 1000
    ps = posts(args.posts)
    matched = [len(qset.match(p)) for p in ps]
    indexed = per_post_us(qset.match, ps)
    compiled = [compile_query(q, source=n) for n, q in qs]
    naive = per_post_us(lambda p: [c.matches(p) for c in compiled], ps[:200], repeat=1)
    score = scoring_us(args.model, ps[: args.score_posts])
    share = indexed / score * 100

    print(f"{'what':<44}{'per post':>14}")
    print("-" * 58)
    print(f"{f'parse+index {args.topics} queries (once)':<44}{compile_ms:>11.1f} ms")
    print(f"{f'QuerySet.match, {args.topics} topics':<44}{indexed:>11.1f} us")
    print(f"{f'each query on its own, {args.topics} topics':<44}{naive:>11.1f} us")
    print(f"{f'model scoring ({args.model}), batches of 64':<44}{score:>11.1f} us")
    print(f"{'matching / scoring':<44}{share:>12.2f} %")
    print(f"{'topics matched per post (mean)':<44}{statistics.mean(matched):>13.2f}")
    print(
        orjson.dumps(
            {
                "topics": args.topics,
                "posts": args.posts,
                "compile_ms": round(compile_ms, 1),
                "match_us_per_post": round(indexed, 1),
                "naive_us_per_post": round(naive, 1),
                "score_us_per_post": round(score, 1),
                "model": args.model,
                "match_share_pct": round(share, 2),
                "target_pct": 10,
                "mean_topics_matched": round(statistics.mean(matched), 2),
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
