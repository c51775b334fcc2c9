"""The stream-volume hash read back (`monitor.store.volume`) and the live-offset scan of
`monitor.backfill`, both pure."""

from __future__ import annotations

import orjson

from monitor.backfill import first_live_offsets
from monitor.kafka import Record
from monitor.messages import Post, ScoredPost, encode_scored
from monitor.store.volume import VolumeMinute, volume_field


def test_a_volume_hash_reads_back_as_totals_and_per_source_and_language():
    h = {
        volume_field("n", "bluesky", "en"): "7",
        volume_field("m", "bluesky", "en"): "2",
        volume_field("n", "rss:feed|x", "und"): "3",  # a source with the separator in it
        "junk": "9",
    }
    m = VolumeMinute.from_hash(60_000, h)
    assert (m.posts, m.matched) == (10, 2)
    assert m.by_source == {"bluesky|en": (7, 2), "rss:feed|x|und": (3, 0)}


def _scored(origin: str, topics: tuple[str, ...]) -> Record:
    sp = ScoredPost(
        post=Post(id=origin, source="s", text="", created_ms=1, ingested_ms=1),
        sentiment="neutral",
        sentiment_score=0.0,
        confidence=0.5,
        emotion="neutral",
        emotion_confidence=0.5,
        topics=topics,
        model="m",
        scored_ms=1,
        origin=origin,
    )
    return Record("posts.scored", 0, 0, b"k", encode_scored(sp, with_text=False), 0)


def test_the_first_live_offset_of_a_topic_per_raw_partition():
    recs = [
        _scored("raw:0:40", ("coffee",)),
        _scored("raw:0:12", ("phonex", "coffee")),
        _scored("raw:1:7", ("phonex",)),
        _scored("raw:1:9", ("coffee",)),
        Record("posts.scored", 0, 1, b"k", orjson.dumps({"not": "scored"}), 0),
    ]
    assert first_live_offsets(recs, "coffee") == {"raw:0": 12, "raw:1": 9}
    assert first_live_offsets(recs, "metro") == {}
