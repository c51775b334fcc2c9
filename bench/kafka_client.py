"""CPU per Kafka record of the worker's client, against librdkafka's, on the local broker.

    .venv/bin/python bench/kafka_client.py [--records 20000] [--rounds 2]

On a CPU-only machine the model and everything else share the cores, so each microsecond of
host CPU per post is taken from the model (see docs/benchmarks.md). The worker consumes one
record and produces one (posts.scored) per post, and the load generator produces one. This
measures what that costs, in process CPU (every thread of the client included) per record:

    kafka-python   the project's clients: `monitor.kafka.KafkaPostProducer` (as the worker and
                   the connectors configure it) and `monitor.kafka.KafkaBatchConsumer` (a group
                   member, the worker's fetch settings), on the same records
    confluent-kafka  librdkafka through the `confluent_kafka` package, configured alike
                   (idempotent producer, 5 ms linger; a group consumer, 64 KiB / 100 ms
                   fetches), when that package is installed; it is not a dependency of
                   mood-monitor: `pip install confluent-kafka` into the venv to compare

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
from typing import Any

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


def kafka_python(bootstrap: str, topic: str, recs: list[tuple[bytes, bytes]]) -> tuple[float, float]:
    from monitor.kafka import KafkaBatchConsumer, KafkaPostProducer

    producer = KafkaPostProducer(bootstrap, topic)
    c0 = cpu_s()
    for key, value in recs:
        producer.send(key, value)
    producer.flush(60)
    produce = cpu_s() - c0
    producer.close()
    consumer = KafkaBatchConsumer(bootstrap, topic, f"kc-{topic}", max_batch=512, max_wait_ms=250)
    n = 0
    c0 = cpu_s()
    deadline = time.monotonic() + 120
    while n < len(recs) and time.monotonic() < deadline:
        n += len(consumer.poll(200, 512))
    consume = cpu_s() - c0
    consumer.close()
    if n < len(recs):
        raise SystemExit(f"kafka-python consumer got {n} of {len(recs)} records in 120 s")
    return produce, consume


def confluent(bootstrap: str, topic: str, recs: list[tuple[bytes, bytes]]) -> tuple[float, float]:
    import confluent_kafka as ck

    producer = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    c0 = cpu_s()
    for key, value in recs:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.01)
        producer.poll(0)
    if producer.flush(60) != 0:
        raise SystemExit("confluent-kafka producer could not deliver every record in 60 s")
    produce = cpu_s() - c0
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"kc-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.min.bytes": 64 * 1024,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.subscribe([topic])
    n = 0
    c0 = cpu_s()
    deadline = time.monotonic() + 120
    while n < len(recs) and time.monotonic() < deadline:
        for m in consumer.consume(512, 0.2):
            if m.error() is None:
                n += 1
                _ = m.value()
    consume = cpu_s() - c0
    consumer.close()
    if n < len(recs):
        raise SystemExit(f"confluent-kafka consumer got {n} of {len(recs)} records in 120 s")
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
    clients: dict[str, Any] = {"kafka-python": kafka_python}
    try:
        import confluent_kafka  # noqa: F401

        clients["confluent-kafka"] = confluent
    except ImportError:
        print("bench: confluent-kafka is not installed: measuring kafka-python only", flush=True)
    recs = records(args.records)
    best: dict[str, dict[str, float]] = {}
    for r in range(1, args.rounds + 1):
        for name, run in clients.items():
            topic = f"bench-kc-{uuid.uuid4().hex[:8]}"
            ensure_topics(bootstrap, {topic: 4})
            produce, consume = run(bootstrap, topic, recs)
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
