"""`make soak`: the daemon as it runs for months, for a bounded time, on the local stack.

Starts a replay connector looping over real tweets (TweetEval's sentiment texts from
../shared/data, each pass with fresh ids and times) at a steady rate, two workers and the
alerter, and every ``--sample-s`` (30 s) records each process's RSS and CPU, Redis's memory and
key count, the group's consumer lag and the throughput. At the end it stops the stream, waits
for the lag to reach zero, stops the processes, and checks:

- nothing lost or doubled: every topic's minute buckets hold exactly the posts that match it
  (the expected count is computed by matching the stream's texts with the same `TopicMatcher`);
- the consumer lag came back to zero, and no process exited before it was stopped;
- the targets: worker RSS <= 1.5 GB, and under 5 % growth over the last 40 minutes (the last
  two thirds of a shorter run).

It writes ``docs/soak.md`` (command, CPU model, date, the samples, the checks) and
``docs/soak.png`` (RSS, Redis memory, throughput and lag against time). The last line printed is
one JSON object.

    .venv/bin/python bench/soak.py --duration-s 3600 --rate 350
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "tweeteval" / "sentiment"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
# topics on everyday words, so that a real stream matches several of them
TOPICS = [
    {"name": "people", "keywords": ["people", "friends", "family"]},
    {"name": "work", "keywords": ["work", "job", "office", "boss"]},
    {"name": "tech", "keywords": ["phone", "app", "apple", "google", "iphone", "twitter"]},
    {"name": "sport", "keywords": ["game", "match", "team", "football", "win"]},
    {"name": "music", "keywords": ["music", "song", "album", "concert"]},
    {"name": "politics", "keywords": ["trump", "obama", "vote", "election", "president"]},
    {"name": "today", "keywords": ["today", "tomorrow", "tonight"]},
    {"name": "love", "keywords": ["love", "happy", "hate"]},
]


@dataclass
class Sample:
    t_s: float
    rss_mb: dict[str, float]
    cpu: dict[str, float]  # cores used since the last sample
    redis_mb: float  # the soak's own keys (MEMORY USAGE), not the whole instance
    redis_keys: int
    lag: int
    posts_per_s: float
    records: int


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def write_stream(path: Path, limit: int | None = None) -> list[str]:
    texts = []
    for name in ("train_text.txt", "test_text.txt", "val_text.txt"):
        texts += [t.strip() for t in (DATA / name).read_text().splitlines() if t.strip()]
    from monitor.patterns import CONTROL

    texts = [t for t in texts if not CONTROL.search(t)]  # what the worker would park in the DLQ
    texts = texts[:limit] if limit else texts
    with path.open("wb") as fh:
        for i, t in enumerate(texts):
            fh.write(orjson.dumps({"id": f"tw-{i}", "text": t, "source": "soak", "lang": "en"}) + b"\n")
    return texts


def expected_counts(texts: list[str], produced: int) -> int:
    """Bucket increments the stream's first ``produced`` posts must leave (one per matching
    topic), with the matcher the workers use."""
    from monitor.messages import Post
    from monitor.topics import TopicMatcher

    m = TopicMatcher.from_config(
        [argparse.Namespace(**{"keywords": [], "hashtags": [], **t}) for t in TOPICS]
    )
    per = [len(m.match(Post("x", "soak", t, 0, 0, lang="en"))) for t in texts]
    full, rest = divmod(produced, len(per))
    return full * sum(per) + sum(per[:rest])


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run = time.strftime("%Y%m%d%H%M%S")
        self.dir = REPO / ".bench" / f"soak-{self.run}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.samples: list[Sample] = []
        self.exits: dict[str, int | None] = {}

    def config(self) -> Path:
        import yaml

        from monitor.settings import load_settings

        base = load_settings(None)
        cfg = {
            "kafka": {
                "bootstrap_servers": base.kafka.bootstrap_servers,
                "raw_topic": f"soak-{self.run}.raw",
                "scored_topic": f"soak-{self.run}.scored",
                "dlq_topic": f"soak-{self.run}.dlq",
                "partitions": 4,
                "group_id": f"soak-{self.run}",
            },
            "redis": {"url": base.redis.url.get_secret_value(), "prefix": f"soak-{self.run}"},
            "worker": {"lateness_s": 600},
            "topics": TOPICS,
            "alerts": {"interval_s": 30, "destinations": []},
        }
        path = self.dir / "monitor.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def start(self, cfg: Path, stream: Path) -> None:
        env = {**os.environ, "MOOD_LOG_LEVEL": "INFO", "HF_HUB_OFFLINE": "1"}
        cli = [sys.executable, "-m", "monitor"]
        # the documented layout of N workers on a CPU host: each gets cores / N model threads
        # (docs/benchmarks.md, Scale-out), not N x all cores fighting over the same ones
        threads = model_threads(self.args)
        wenv = {**env, "MOOD_MODEL__THREADS": str(threads)} if threads else env
        for i in range(self.args.workers):
            self._popen(f"worker-{i}", [*cli, "worker", "--config", str(cfg)], wenv)
        self._popen("alerter", [*cli, "alerts", "--config", str(cfg)], env)
        self.wait_assigned(cfg)
        rate = ["--rate", str(self.args.rate)]
        self._popen(
            "connector", [*cli, "replay", str(stream), *rate, "--loop", "--now", "--config", str(cfg)], env
        )

    def _popen(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = (self.dir / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_assigned(self, cfg: Path) -> None:
        from monitor.app import build_store, process_name
        from monitor.settings import load_settings
        from monitor.worker import holds_partitions

        store = build_store(load_settings(cfg))
        deadline = time.time() + 300
        workers = [p for n, p in self.procs.items() if n.startswith("worker")]
        while time.time() < deadline:
            health = store.health()
            if all(holds_partitions(health.get(process_name("worker", p.pid))) for p in workers):
                return
            self.check_alive()
            time.sleep(1)
        raise SystemExit("soak: the workers did not join their group")

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None and name not in self.exits:
                self.exits[name] = p.returncode
                raise SystemExit(f"soak: {name} exited with {p.returncode}; see {self.dir / name}.log")

    def sample_loop(self, cfg: Path) -> None:
        from monitor.app import build_store
        from monitor.kafka import GroupProgress
        from monitor.settings import load_settings

        s = load_settings(cfg)
        store = build_store(s)
        progress = GroupProgress(s.kafka, s.kafka.group_id, s.kafka.raw_topic)
        t0 = time.monotonic()
        last_cpu = {n: cpu_s(p.pid) for n, p in self.procs.items()}
        last_records, last_t = 0, t0
        end = t0 + self.args.duration_s
        while True:
            time.sleep(max(0.0, min(self.args.sample_s, end - time.monotonic())))
            now = time.monotonic()
            self.check_alive()
            cpu = {n: cpu_s(p.pid) for n, p in self.procs.items()}
            records = store.stats("worker").get("records", 0)
            done, ends = progress.offsets()
            own = list(store.client.scan_iter(f"{store.prefix}:*", count=1000))
            pipe = store.client.pipeline(transaction=False)
            for k in own:
                pipe.memory_usage(k, samples=0)
            own_bytes = sum(int(v or 0) for v in pipe.execute())
            sample = Sample(
                t_s=round(now - t0, 1),
                rss_mb={n: round(rss_mb(p.pid), 1) for n, p in self.procs.items()},
                cpu={n: round((cpu[n] - last_cpu[n]) / max(1e-6, now - last_t), 2) for n in cpu},
                redis_mb=round(own_bytes / 2**20, 2),
                redis_keys=len(own),
                lag=sum(max(0, e - done.get(p, 0)) for p, e in ends.items()),
                posts_per_s=round((records - last_records) / max(1e-6, now - last_t), 1),
                records=records,
            )
            self.samples.append(sample)
            print(
                f"soak t={sample.t_s:>6.0f}s {sample.posts_per_s:>6.1f} posts/s lag={sample.lag:<6} "
                f"redis={sample.redis_mb:.1f} MB keys={sample.redis_keys} "
                + " ".join(f"{n}={v:.0f}MB" for n, v in sample.rss_mb.items()),
                flush=True,
            )
            last_cpu, last_records, last_t = cpu, records, now
            if now >= end:
                break
        progress.close()

    def finish(self, cfg: Path, texts: list[str]) -> dict[str, Any]:
        from monitor.app import build_store
        from monitor.kafka import GroupProgress
        from monitor.settings import load_settings

        conn = self.procs.pop("connector")
        conn.send_signal(signal.SIGTERM)
        conn.wait(timeout=60)
        produced = int(
            orjson.loads((self.dir / "connector.log").read_text().strip().splitlines()[-1])["produced"]
        )
        s = load_settings(cfg)
        progress = GroupProgress(s.kafka, s.kafka.group_id, s.kafka.raw_topic)
        deadline = time.time() + 600
        while time.time() < deadline and not progress.caught_up():
            self.check_alive()
            time.sleep(2)
        caught_up = progress.caught_up()
        progress.close()
        alive_at_end = all(p.poll() is None for p in self.procs.values())
        for p in self.procs.values():
            p.send_signal(signal.SIGTERM)
        codes = {n: p.wait(timeout=120) for n, p in self.procs.items()}
        store = build_store(s)
        now = int(time.time() * 1000)
        counted = sum(
            b.n for t in store.topics() for b in store.read_minutes(t, now - 48 * 3_600_000, now + 60_000)
        )
        expected = expected_counts(texts, produced)
        stats = store.stats("worker")
        return {
            "produced": produced,
            "records": stats.get("records", 0),
            "dlq": sum(v for k, v in stats.items() if k.startswith("dlq:")),
            "counted": counted,
            "expected": expected,
            "caught_up": caught_up,
            "alive_at_end": alive_at_end,
            "exit_codes": codes,
        }


def model_threads(args: argparse.Namespace) -> int:
    """Model threads per worker: ``--model-threads``, else cores / workers; 0: the model's default."""
    if args.model_threads is not None:
        return int(args.model_threads)
    return max(1, (os.cpu_count() or 1) // max(1, args.workers))


def targets(samples: list[Sample], duration_s: float) -> dict[str, Any]:
    workers = sorted(n for n in samples[0].rss_mb if n.startswith("worker"))
    tail_from = duration_s - min(2400.0, duration_s * 2 / 3)  # the last 40 minutes (or 2/3 of a short run)
    out: dict[str, Any] = {"rss_max_mb": max(s.rss_mb[w] for s in samples for w in workers)}
    growth = {}
    for w in workers:
        tail = [s.rss_mb[w] for s in samples if s.t_s >= tail_from]
        growth[w] = round(100 * (tail[-1] - tail[0]) / tail[0], 1) if len(tail) > 1 and tail[0] else 0.0
    out["rss_growth_pct_last_part"] = growth
    out["rss_ok"] = out["rss_max_mb"] <= 1536 and all(g < 5 for g in growth.values())
    return out


def plot(samples: list[Sample], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t_s / 60 for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    ax = axes[0][0]
    for name in samples[0].rss_mb:
        ax.plot(t, [s.rss_mb[name] for s in samples], label=name)
    ax.axhline(1536, color="red", linestyle="--", linewidth=0.8, label="1.5 GB target")
    ax.set_ylabel("RSS (MB)")
    ax.legend(fontsize=7)
    axes[0][1].plot(t, [s.redis_mb for s in samples], color="tab:purple")
    axes[0][1].set_ylabel("Redis: the soak's keys (MB)")
    axes[1][0].plot(t, [s.posts_per_s for s in samples], color="tab:green")
    axes[1][0].set_ylabel("posts/s scored")
    axes[1][1].plot(t, [s.lag for s in samples], color="tab:orange")
    axes[1][1].set_ylabel("consumer lag (records)")
    for a in axes[1]:
        a.set_xlabel("minutes")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def report(args: argparse.Namespace, samples: list[Sample], end: dict[str, Any], tg: dict[str, Any]) -> str:
    cmd = f".venv/bin/python bench/soak.py --duration-s {args.duration_s:.0f} --rate {args.rate:g}"
    threads = model_threads(args)
    layout = (
        f"{threads} model thread{'s' if threads > 1 else ''} each (`MOOD_MODEL__THREADS`, cores / workers)"
        if threads
        else "the model's default threads each"
    )
    lines = [
        "# Soak: the daemon for an hour",
        "",
        f"`{cmd}` (`make soak`), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPU: {cpu_model()}, "
        f"{os.cpu_count()} cores. A replay connector looping over TweetEval's {end['stream_posts']:,} "
        f"real tweets (fresh ids and times each pass) at {args.rate:g} posts/s, {args.workers} workers "
        f"(default model, {layout}) and the alerter, on the local Kafka + Redis stack.",
        "",
        "![soak](soak.png)",
        "",
        "## Checks",
        "",
        f"- produced {end['produced']:,} posts; the workers read {end['records']:,} records "
        f"({end['dlq']} to the DLQ); the buckets hold {end['counted']:,} topic counts, "
        f"expected {end['expected']:,}: "
        + ("**nothing lost or doubled**" if end["counted"] == end["expected"] else "**MISMATCH**"),
        f"- consumer lag back to zero: {'yes' if end['caught_up'] else '**no**'}; every process alive "
        f"until stopped: {'yes' if end['alive_at_end'] else '**no**'}; exit codes {end['exit_codes']}",
        f"- worker RSS at most {tg['rss_max_mb']:.0f} MB (target 1,536), growth over the last part "
        f"{tg['rss_growth_pct_last_part']} % (target < 5 %): {'**met**' if tg['rss_ok'] else '**missed**'}",
        f"- Redis: {samples[0].redis_mb:.1f} MB after the first sample, {samples[-1].redis_mb:.1f} MB at "
        f"the end, {samples[-1].redis_keys:,} keys: the buckets and the text sample grow with topics and "
        "minutes, the duplicate-id guard with posts for its 1-2 h window and then no more (the "
        "README's memory formula); an hour is shorter than every window, so it grows all along.",
        "",
        "## Samples",
        "",
        "| min | posts/s | lag | Redis MB | keys | "
        + " | ".join(f"{n} MB" for n in samples[0].rss_mb)
        + " |",
        "|---:|---:|---:|---:|---:|" + "---:|" * len(samples[0].rss_mb),
    ]
    step = max(1, len(samples) // 40)
    for s in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        lines.append(
            f"| {s.t_s / 60:.1f} | {s.posts_per_s:.0f} | {s.lag} | {s.redis_mb:.1f} | {s.redis_keys:,} | "
            + " | ".join(f"{v:.0f}" for v in s.rss_mb.values())
            + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--duration-s", type=float, default=3600.0)
    ap.add_argument(
        "--rate", type=float, default=350.0, help="posts per second (default: about half of one worker)"
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--model-threads",
        type=int,
        default=None,
        help="model threads per worker (default: cores / workers, the documented layout; 0: model default)",
    )
    ap.add_argument("--sample-s", type=float, default=30.0)
    ap.add_argument("--stream-posts", type=int, default=None, help="use only the first N tweets")
    ap.add_argument("--out", default=str(REPO / "docs" / "soak.md"))
    args = ap.parse_args()
    soak = Soak(args)
    stream = soak.dir / "stream.jsonl"
    texts = write_stream(stream, args.stream_posts)
    cfg = soak.config()
    try:
        soak.start(cfg, stream)
        soak.sample_loop(cfg)
        end = soak.finish(cfg, texts)
    finally:
        for p in soak.procs.values():
            if p.poll() is None:
                p.kill()
    end["stream_posts"] = len(texts)
    tg = targets(soak.samples, args.duration_s)
    out = Path(args.out)
    plot(
        soak.samples, out.with_suffix(".png"), f"soak {args.duration_s / 60:.0f} min at {args.rate:g} posts/s"
    )
    out.write_text(report(args, soak.samples, end, tg))
    ok = end["counted"] == end["expected"] and end["caught_up"] and end["alive_at_end"] and tg["rss_ok"]
    summary = {**end, **tg, "ok": ok, "samples": [asdict(s) for s in soak.samples[-1:]]}
    print(orjson.dumps(summary).decode())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
