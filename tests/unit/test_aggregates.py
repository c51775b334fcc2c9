import pytest

from monitor.aggregates import HOUR_MS, MINUTE_MS, Bucket, bucket_deltas, merge, window_plan
from monitor.messages import Post, ScoredPost


def sp(sent, emo, topics, score=0.5, lang="en"):
    p = Post(id="x", source="src", text="t", created_ms=0, ingested_ms=0, lang=lang)
    return ScoredPost(
        post=p,
        sentiment=sent,
        sentiment_score=score,
        confidence=0.9,
        emotion=emo,
        emotion_confidence=0.9,
        topics=topics,
        model="m",
        scored_ms=0,
    )


def test_bucket_deltas_split_by_topic_minute_and_hour():
    t0 = 10 * HOUR_MS + 5 * MINUTE_MS + 1234
    d = bucket_deltas(
        [
            (sp("negative", "anger", ("a", "b"), -0.8), t0),
            (sp("positive", "joy", ("a",), 0.6), t0 + MINUTE_MS),
        ]
    )
    a = d["a"]
    assert a[("m", 10 * HOUR_MS + 5 * MINUTE_MS)] == {
        "n": 1,
        "s:negative": 1,
        "e:anger": 1,
        "l:en": 1,
        "src:src": 1,
        "score_sum": -0.8,
    }
    assert a[("h", 10 * HOUR_MS)]["n"] == 2
    assert abs(a[("h", 10 * HOUR_MS)]["score_sum"] - (-0.2)) < 1e-9
    assert d["b"][("h", 10 * HOUR_MS)]["n"] == 1


def test_uncertain_posts_do_not_move_the_mean():
    d = bucket_deltas([(sp("uncertain", "uncertain", ("a",), 0.9), 0)])
    assert "score_sum" not in d["a"][("m", 0)]


def test_bucket_shares_and_merge():
    b1 = Bucket.from_hash(
        0,
        {
            "n": "3",
            "s:negative": "2",
            "s:positive": "1",
            "score_sum": "-0.5",
            "e:anger": "2",
            "e:joy": "1",
            "s:uncertain": "1",
        },
    )
    b2 = Bucket.from_hash(60_000, {"n": "1", "s:neutral": "1", "e:neutral": "1"})
    m = merge([b1, b2], 0)
    assert m.n == 4 and m.scored == 4 and m.uncertain == 1
    assert m.share("negative") == 0.5
    assert abs(m.mean_score - (-0.125)) < 1e-9
    assert m.emotion_share("anger") == 0.5


def test_window_plan_uses_hours_where_whole():
    start = 2 * HOUR_MS - 3 * MINUTE_MS
    end = 4 * HOUR_MS + 2 * MINUTE_MS
    minutes, hours = window_plan(start, end)
    assert hours == [2 * HOUR_MS, 3 * HOUR_MS]
    assert len(minutes) == 5
    covered = len(minutes) * MINUTE_MS + len(hours) * HOUR_MS
    assert covered == end - start


def test_hours_summed_from_minutes_equal_adding_each_post_to_both():
    import random

    from monitor.aggregates import add_at, add_hours, add_into, minute_start

    rng = random.Random(3)
    per_post, minutes_first = {}, {}
    for _ in range(500):
        ts = 10 * HOUR_MS + rng.randrange(3 * HOUR_MS)  # three hours, many minutes
        d = {"n": 1, f"s:{rng.choice('abc')}": 1, "score_sum": rng.uniform(-1, 1)}
        add_at(per_post, ts, d)
        add_into(minutes_first.setdefault(("m", minute_start(ts)), {}), d)
    add_hours(minutes_first)
    assert per_post.keys() == minutes_first.keys()
    for k, d in per_post.items():
        assert d.keys() == minutes_first[k].keys()
        for f, v in d.items():
            assert minutes_first[k][f] == pytest.approx(v, abs=1e-9), (k, f)
