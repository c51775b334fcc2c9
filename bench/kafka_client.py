"""CPU per Kafka record of the worker's client, against librdkafka's, on the local broker.

    .venv/bin/python bench/kafka_client.py [--records 20000] [--rounds 2]

On a CPU-only machine the model and everything else share the cores, so each microsecond of
host CPU per post is taken from the model (see docs/benchmarks.md). The worker consumes one
record and produces one (posts.scored) per post, and the load generator produces one. This
measures what that costs, in process CPU (every thread of the client included) per record:

    kafka-python   the project's default clients: `monitor.kafka.KafkaPostProducer` (as the
                   worker and the connectors configure it) and `monitor.kafka.KafkaBatchConsumer`
                   (a group member, the worker's fetch settings), on the same records
    librdkafka     ``kafka.client: librdkafka``: `monitor.kafka.RdPostProducer` and
                   `RdBatchConsumer` (confluent-kafka), configured alike (idempotent producer,
                   5 ms linger; a group consumer, 64 KiB / 100 ms fetches)

The two take turns, ``--rounds`` times, each on a fresh 4-partition topic of ``--records``
records shaped like the synthetic posts; each figure is its best round. It prints a table and,
as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import uuid
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack.synthetic import stream  # noqa: E402
from monitor.messages import Post, encode_post  # noqa: E402


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def records(n: int) -> list[tuple[bytes, bytes]]:
    """What a connector produces for the synthetic posts (`encode_post`), keyed by post id."""
    out = []
    for p in stream(n, id_prefix="k"):
        post = Post(
            id=str(p["id"]),
            source="bench",
            text=str(p["text"]),
            created_ms=1,
            ingested_ms=1,
            author_id=str(p["author_id"]),
            lang="en",
            url=str(p["url"]),
        )
        out.append((post.id.encode(), encode_post(post)))
    return out


def measure(client: str, bootstrap: str, topic: str, recs: list[tuple[bytes, bytes]]) -> tuple[float, float]:
    """(produce, consume) CPU seconds of the project's producer and batch consumer of ``client``."""
    from monitor.kafka import batch_consumer, post_producer
    from monitor.transport import KafkaSettings

    kafka = KafkaSettings(bootstrap_servers=bootstrap, client=client)
    producer = post_producer(kafka, topic)
    c0 = cpu_s()
    for key, value in recs:
        producer.send(key, value)
    producer.flush(60)
    produce = cpu_s() - c0
    producer.close()
    consumer = batch_consumer(kafka, topic, f"kc-{topic}", max_batch=512, max_wait_ms=250)
    n = 0
    c0 = cpu_s()
    deadline = time.monotonic() + 120
    while n < len(recs) and time.monotonic() < deadline:
        n += len(consumer.poll(200, 512))
    consume = cpu_s() - c0
    consumer.close()
    if n < len(recs):
        raise SystemExit(f"{client} consumer got {n} of {len(recs)} records in 120 s")
    return produce, consume


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    from devstack import stack
    from monitor.kafka import ensure_topics
    from monitor.settings import load_settings

    if stack.cli(["up"]) != 0:
        return 4
    bootstrap = load_settings(None).kafka.bootstrap_servers
    clients = ["kafka-python", "librdkafka"]
    recs = records(args.records)
    best: dict[str, dict[str, float]] = {}
    for r in range(1, args.rounds + 1):
        for name in clients:
            topic = f"bench-kc-{uuid.uuid4().hex[:8]}"
            ensure_topics(bootstrap, {topic: 4})
            produce, consume = measure(name, bootstrap, topic, recs)
            us = {"produce": produce / len(recs) * 1e6, "consume": consume / len(recs) * 1e6}
            print(
                f"bench: round {r}: {name}: produce {us['produce']:.1f} us, consume {us['consume']:.1f} us "
                f"of CPU per record",
                flush=True,
            )
            b = best.setdefault(name, {"produce": float("inf"), "consume": float("inf")})
            for k, v in us.items():
                b[k] = min(b[k], v)
    print()
    print(f"  {'client':<16} {'produce us/record':>18} {'consume us/record':>18}")
    for name, b in best.items():
        print(f"  {name:<16} {b['produce']:>18.1f} {b['consume']:>18.1f}")
    per_record = {k: {m: round(v, 1) for m, v in b.items()} for k, b in best.items()}
    figures = {"records": args.records, "rounds": args.rounds, "cpu_us_per_record": per_record}
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
