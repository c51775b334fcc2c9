"""Topics are matched before the model (issue 20), on in-memory fakes of Kafka and Redis: only
posts that match a topic (or fall in the sampled baseline) are tokenized, scored, claimed and
written to posts.scored; every post, matched or not, is counted once in the volume hashes."""

from __future__ import annotations

import orjson

from monitor.batcher import BatchLimits
from monitor.kafka import Record
from monitor.messages import SCHEMA_VERSION
from monitor.model.base import ModelOutput
from monitor.topics import TopicMatcher, TopicRule
from monitor.worker import Worker, WorkerConfig

from .test_worker_pipeline import FakeConsumer, FakeProducer, FakeStore, labels

NOW = 1_767_276_000_000


class RecordingScorer:
    name = "recording"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def score(self, texts, langs=None):
        self.texts += list(texts)
        return [ModelOutput((0.1, 0.2, 0.7), None)] * len(texts)


class ClaimStore(FakeStore):
    def __init__(self, log):
        super().__init__(log)
        self.claimed: list[str] = []

    def claim_ids(self, items):
        self.claimed += [pid for pid, _ in items]
        return super().claim_ids(items)


class FakeVolume:
    """`monitor.store.volume.VolumeStore` in memory, with the Lua script's guard."""

    def __init__(self) -> None:
        self.wm: dict[str, int] = {}
        self.fields: dict[tuple[int, str], int] = {}

    def volume_watermarks(self, parts):
        return {p: self.wm.get(p, -1) for p in parts}

    def apply_volume(self, writes):
        applied = skipped = 0
        for pw in writes:
            if self.wm.get(pw.partition, -1) >= pw.first_offset:
                skipped += 1
                continue
            for (_kind, start), delta in pw.deltas.items():
                for f, v in delta.items():
                    self.fields[(start, f)] = self.fields.get((start, f), 0) + int(v)
            self.wm[pw.partition] = pw.last_offset
            applied += 1
        return applied, skipped

    def total(self, prefix: str) -> int:
        return sum(v for (_s, f), v in self.fields.items() if f.startswith(prefix))


def raw(
    offset: int, text: str, *, lang: str = "en", source: str = "bluesky", pid: str | None = None
) -> Record:
    body = {
        "v": SCHEMA_VERSION,
        "kind": "post",
        "id": pid or f"post-{offset}",
        "source": source,
        "text": text,
        "lang": lang,
        "created_ms": NOW,
        "ingested_ms": NOW,
    }
    return Record("raw", 0, offset, b"k", orjson.dumps(body), 0)


def run(chunks, rules=None, max_posts=64, **cfg):
    log: list = []
    consumer, store, producer = FakeConsumer(chunks, log), ClaimStore(log), FakeProducer()
    scorer, volume = RecordingScorer(), FakeVolume()
    encoded: list[str] = []

    def encode(texts):
        encoded.extend(texts)
        return list(texts), [3] * len(texts)

    w = Worker(
        WorkerConfig(lateness_ms=10**12, backoff_max_s=0.01, **cfg),
        consumer,
        producer,
        scorer,
        labels,
        store,
        TopicMatcher(rules or [TopicRule("t0", ("kw0",), ())]),
        encode=encode,
        limits=BatchLimits(max_posts=max_posts, max_tokens=10_000, max_wait_ms=1),
        volume=volume,
    )
    assert w.run(idle_timeout_s=0.05) == 0
    return w, consumer, store, producer, scorer, volume, encoded


def scored_ids(producer):
    return [orjson.loads(v)["post"]["id"] for t, v in producer.sent if t == "posts.scored"]


def test_only_matched_posts_are_tokenized_scored_claimed_and_written():
    recs = [raw(i, "kw0 is great" if i % 5 == 0 else f"nothing to see {i}") for i in range(20)]
    w, consumer, store, producer, scorer, volume, encoded = run([recs])
    matched = [f"post-{i}" for i in range(0, 20, 5)]
    assert len(scorer.texts) == len(encoded) == 4
    assert store.claimed == matched
    assert scored_ids(producer) == matched
    assert store.counts["t0"] == 4
    assert w.totals.unmatched == 16 and w.totals.scored == 4 and w.totals.aggregated == 4
    # every record is committed, the unmatched ones too
    assert consumer.committed == {("raw", 0): 20}


def test_every_post_is_counted_in_the_volume_per_source_and_language_once():
    recs = [raw(i, "kw0" if i < 3 else "other", lang="en" if i % 2 else "", source="s") for i in range(10)]
    recs.append(Record("raw", 0, 10, b"k", b"not json", 0))  # to the DLQ, not a post
    *_, volume, _ = run([recs])
    by_field: dict[str, int] = {}
    for (_start, f), v in volume.fields.items():
        by_field[f] = by_field.get(f, 0) + v
    # the language is the source's tag ("und" when it gave none: no detection for the volume)
    assert by_field == {"n|s|en": 5, "n|s|und": 5, "m|s|en": 1, "m|s|und": 2}
    assert volume.wm == {"raw:0": 10}


def test_a_redelivered_batch_changes_no_volume_count():
    recs = [raw(i, "kw0" if i == 0 else "other") for i in range(6)]
    # the same records again (a redelivery after a crash before the commit), then two new ones
    again = [*recs[3:], raw(6, "kw0 again", pid="post-6"), raw(7, "new")]
    *_, volume, _ = run([recs, again], max_posts=6)  # one batch each
    assert volume.total("n|") == 8 and volume.total("m|") == 2


def test_a_lang_query_matches_a_post_whose_source_gave_no_language():
    rules = [TopicRule("fr", query="bonjour lang:fr")]
    text = "bonjour tout le monde, comment allez-vous aujourd'hui ? très bien merci"
    recs = [raw(0, text, lang=""), raw(1, text, lang="fr"), raw(2, "bonjour")]
    *_, store, producer, _scorer, _volume, _ = run([recs], rules)
    assert scored_ids(producer) == ["post-0", "post-1"]


def test_the_baseline_scores_a_stable_sample_of_all_posts_into_its_own_series():
    recs = [raw(i, "kw0" if i < 10 else "other") for i in range(400)]
    w, _c, store, producer, _s, _v, _e = run([recs], baseline_rate=0.25, baseline_topic="everything")
    ids = scored_ids(producer)
    sampled = store.counts["everything"]
    assert 50 <= sampled <= 150  # about a quarter of 400, chosen by the post ids' hashes
    assert store.counts["t0"] == 10
    # every matched post is scored; an unmatched one only if it fell in the sample
    assert {f"post-{i}" for i in range(10)} <= set(ids)
    assert len(ids) == 10 + sum(1 for i in ids if int(i.split("-")[1]) >= 10)
    # the same ids are chosen again (a redelivery makes the same choice)
    _w2, _c2, store2, producer2, *_ = run([recs], baseline_rate=0.25, baseline_topic="everything")
    assert scored_ids(producer2) == ids and store2.counts["everything"] == sampled


def test_no_baseline_by_default():
    recs = [raw(i, "other") for i in range(50)]
    w, _c, store, producer, scorer, volume, _e = run([recs])
    assert scorer.texts == [] and scored_ids(producer) == [] and not store.counts
    assert volume.total("n|") == 50


def test_a_batch_offers_the_store_at_most_texts_per_minute_samples_a_topic_a_minute():
    class SampleStore(ClaimStore):
        def __init__(self, log):
            super().__init__(log)
            self.sampled = []

        def remember(self, posts):
            self.sampled += list(posts)

    log: list = []
    store = SampleStore(log)
    recs = [raw(i, "kw0 and more") for i in range(30)]
    w = Worker(
        WorkerConfig(lateness_ms=10**12, texts_per_minute=3),
        FakeConsumer([recs], log),
        FakeProducer(),
        RecordingScorer(),
        labels,
        store,
        TopicMatcher([TopicRule("t0", ("kw0",), ())]),
        encode=lambda texts: (list(texts), [3] * len(texts)),
        limits=BatchLimits(max_posts=64, max_tokens=10_000, max_wait_ms=1),
    )
    assert w.run(idle_timeout_s=0.05) == 0
    # the first three of the minute (the ones the store would keep), all 30 counted
    assert [p.post_id for p in store.sampled] == ["post-0", "post-1", "post-2"]
    assert store.counts["t0"] == 30
