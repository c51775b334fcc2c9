"""Hostile records at the worker's boundary: every finding of the security review (F1, F2, F8,
F11, F14) and the class behind it. A record that the code cannot handle goes to the DLQ with the
stage and the exception type; it never stops the worker, and the batch it was in is committed."""

from __future__ import annotations

import time

import orjson
import pytest

from monitor import query
from monitor.batcher import BatchLimits
from monitor.errors import DecodeError
from monitor.messages import LANGUAGES, SCHEMA_VERSION, Post, decode, decode_scored
from monitor.model import language
from monitor.query import QuerySyntaxError, compile_query
from monitor.rebuild import rebuild
from monitor.topics import TopicMatcher, TopicRule
from monitor.worker import Worker, WorkerConfig

from .test_worker_pipeline import FakeConsumer, FakeProducer, FakeStore, GatedScorer, Rec, labels

NOW = int(time.time() * 1000)


def body(**over):
    d = {
        "v": SCHEMA_VERSION,
        "kind": "post",
        "id": "p1",
        "source": "t",
        "text": "kw0 hello",
        "created_ms": NOW,
        "ingested_ms": NOW,
    }
    d.update(over)
    return d


def nested(depth, leaf=1):
    raw = b"[" * depth + orjson.dumps(leaf) + b"]" * depth
    return raw


# ---- F2: decode never raises anything but DecodeError ------------------------------------------
@pytest.mark.parametrize(
    "field",
    ["v", "kind", "text", "id", "source", "lang", "created_ms", "topic_hints", "hashtags", "is_reply"],
)
def test_a_list_nested_1000_deep_in_any_field_is_a_decode_error(field):
    base = orjson.dumps(body())
    raw = base[:-1] + b',"' + field.encode() + b'":' + nested(1000) + b"}"
    with pytest.raises(DecodeError) as e:
        decode(raw)
    assert e.value.field in (field, "value")
    assert "[[" not in str(e.value)  # the value itself is never echoed


@pytest.mark.parametrize(
    "value",
    [
        b"1" * 5000,
        b'"1"',
        b"1.0",
        b"null",
        b"[1]",
        b'{"a":1}',
        b"true",
        b"-9223372036854775808",
        b"1e400",
        b"NaN",
    ],
)
def test_bad_schema_versions_name_the_field_not_the_value(value):
    with pytest.raises(DecodeError) as e:
        decode(orjson.dumps(body())[:-1] + b',"v":' + value + b"}")
    assert e.value.field in ("v", "value")
    assert len(str(e.value)) < 200


# ---- F11: every field validated at the boundary ------------------------------------------------
@pytest.mark.parametrize("field", ["id", "source"])
@pytest.mark.parametrize("ch", ["\x00", "\n", "\r", "\x1b", "\x85", "\u2028", "\u202e"])
def test_control_characters_in_ids_and_sources_are_rejected(field, ch):
    with pytest.raises(DecodeError) as e:
        decode(orjson.dumps(body(**{field: f"a{ch}b"})))
    assert e.value.field == field


def test_control_characters_are_stripped_from_author_and_url_and_bad_urls_dropped():
    p = decode(orjson.dumps(body(author_id="did:x\x00\u202e:y", url="https://x.example/\n\x1bp")))
    assert isinstance(p, Post)
    assert p.author_id == "did:x:y" and p.url == "https://x.example/p"
    for bad in ("javascript:alert(1)", "ftp://x", "//x.example", "data:text/html,x"):
        assert decode(orjson.dumps(body(url=bad))).url == ""


@pytest.mark.parametrize(
    ("lang", "kept"),
    [
        ("en", "en"),
        ("pt-BR", "pt-BR"),
        ("zh_Hant_TW", "zh_Hant_TW"),
        ("en\n", ""),
        ("../../x", ""),
        ("x" * 16, ""),
        ("e", ""),
        ("12", ""),
        ("en-" + "a" * 9, ""),
        ("ें", ""),
    ],
)
def test_lang_keeps_only_the_shape_of_a_language_tag(lang, kept):
    assert decode(orjson.dumps(body(lang=lang))).lang == kept


def test_bucket_languages_are_a_bounded_set():
    # 10,000 distinct tags of the right shape reach at most the ISO 639-1 codes in the buckets
    seen = {
        language.post_language(f"{a}{b}{c}", "")
        for a in "abcdefghijklmnopqrstuvwxyz"
        for b in "abcdefghijklmnopqrstuvwxyz"
        for c in "abcdefghijklmno"
    }
    seen |= {
        language.post_language(f"{a}{b}", "")
        for a in "abcdefghijklmnopqrstuvwxyz"
        for b in "abcdefghijklmnopqrstuvwxyz"
    }
    assert seen <= LANGUAGES | {"und"}


@pytest.mark.parametrize("source", ["", "UPPER case", "a/b", "x" * 65, "é"])
def test_sources_must_look_like_a_connector_name(source):
    with pytest.raises(DecodeError) as e:
        decode(orjson.dumps(body(source=source)))
    assert e.value.field == "source"


def test_hints_and_hashtags_are_cut_and_cleaned():
    p = decode(orjson.dumps(body(topic_hints=["x" * 10**6, "a\x00b"], hashtags=["t" * 10**5] * 100)))
    assert [len(h) for h in p.topic_hints] == [100, 2] and p.topic_hints[1] == "ab"
    assert len(p.hashtags) == 64 and {len(t) for t in p.hashtags} == {256}


def test_numbers_are_range_checked():
    for bad in (-1, 2**53 + 1, 1.5, True, "1", None):
        with pytest.raises(DecodeError) as e:
            decode(orjson.dumps(body(created_ms=bad)))
        assert e.value.field == "created_ms"


# ---- F14: decode_scored and rebuild ---------------------------------------------------------
def scored(**over):
    d = {
        "v": SCHEMA_VERSION,
        "post": {k: v for k, v in body(text="").items() if k not in ("v", "kind")},
        "sentiment": "positive",
        "sentiment_score": 0.5,
        "confidence": 0.9,
        "emotion": "joy",
        "emotion_confidence": 0.8,
        "topics": ["t0"],
        "model": "m",
        "scored_ms": NOW,
        "origin": "raw:0:1",
    }
    d.update(over)
    return d


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sentiment_score", "nan"),
        ("sentiment_score", [1]),
        ("sentiment_score", 2.0),
        ("confidence", -0.1),
        ("emotion_confidence", {"a": 1}),
        ("sentiment_score", True),
        ("extra", {"k": "x"}),
        ("extra", [1]),
        ("topics", "t0"),
        ("post", nested),
    ],
)
def test_decode_scored_rejects_non_finite_and_out_of_range_numbers(field, value):
    if value is nested:
        raw = orjson.dumps(scored())[:-1] + b',"post":{"id":' + nested(1000) + b"}}"
    else:
        raw = orjson.dumps(scored(**{field: value}))
    with pytest.raises(DecodeError):
        decode_scored(raw)


def test_decode_scored_rejects_a_nan_token():
    raw = orjson.dumps(scored()).replace(b'"sentiment_score":0.5', b'"sentiment_score":NaN')
    with pytest.raises(DecodeError):
        decode_scored(raw)


class _RebuildStore:
    def __init__(self):
        self.replaced = {}

    def topics(self):
        return []

    def replace_buckets(self, topic, kind, starts, deltas):
        self.replaced[(topic, kind)] = deltas


class _R:
    def __init__(self, value):
        self.value = value


def test_one_bad_scored_record_does_not_abort_a_rebuild():
    good = [_R(orjson.dumps(scored(post={**scored()["post"], "id": f"p{i}"}))) for i in range(3)]
    bad = [
        _R(b'{"v":1,"post":{},"sentiment_score":"x"}'),
        _R(orjson.dumps(scored(confidence=7))),
        _R(orjson.dumps(scored(topics=["not-tracked"], post={**scored()["post"], "id": "q"}))),
    ]
    store = _RebuildStore()
    res = rebuild(
        [good[0], *bad, good[1], good[2]],
        store,
        NOW - 3_600_000,
        NOW + 60_000,
        lateness_ms=10**12,
        future_skew_ms=300_000,
        topics=frozenset({"t0"}),
    )
    assert res.posts == 3 and res.undecodable == 2 and res.untracked == 1
    assert sum(d["n"] for d in store.replaced[("t0", "h")].values()) == 3


# ---- F8: topics are matched on one normalisation of the post ------------------------------------
def test_a_post_is_normalised_once_for_all_topics(monkeypatch):
    rules = [TopicRule(f"k{i}", (f"kw{i}", f"brand {i}"), (f"tag{i}",)) for i in range(50)]
    rules += [TopicRule(f"q{i}", query=f"(a{i} OR b{i}*) AND NOT c{i}") for i in range(150)]
    m = TopicMatcher(rules)
    calls = []
    real = query.fold
    monkeypatch.setattr(query, "fold", lambda t: calls.append(len(t)) or real(t))
    post = decode(orjson.dumps(body(text="kw7 and b3xyz and #tag9 " + "\ufdfa" * 19_000)))
    assert m.match(post) == ("k7", "k9", "q3")
    big = [n for n in calls if n > 100]
    assert len(big) == 1 and big[0] <= query.MATCH_CHARS  # once, and on the bounded prefix


def test_deeply_nested_queries_are_syntax_errors_naming_the_column():
    for q in ("(" * 400 + "a" + ")" * 400, "NOT " * 900 + "a", "-" * 990 + "a"):
        with pytest.raises(QuerySyntaxError) as e:
            compile_query(q)
        assert "column" in str(e.value)
    assert compile_query("(" * 60 + "a" + ")" * 60).matches(decode(orjson.dumps(body(text="a b"))))


# ---- the class: whatever fails for one record parks that record, the batch goes on ------------
def _worker(matcher=None, to_labels=labels, encode=None):
    log = []
    recs = [Rec("raw", 0, i, b"k", orjson.dumps(body(id=f"p{i}", text=f"kw0 post {i}"))) for i in range(6)]
    consumer, store, producer = FakeConsumer([recs], log), FakeStore(log), FakeProducer()
    kw = {"encode": encode} if encode else {}
    w = Worker(
        WorkerConfig(lateness_ms=10**12, backoff_max_s=0.01),
        consumer,
        producer,
        GatedScorer(),
        to_labels,
        store,
        matcher or TopicMatcher([TopicRule("t0", ("kw0",), ())]),
        limits=BatchLimits(max_posts=6, max_tokens=10_000, max_wait_ms=1),
        **kw,
    )
    return w, consumer, store, producer


def _dlq(producer):
    return [orjson.loads(v) for t, v in producer.sent if t == "posts.dlq"]


class _Boom(TopicMatcher):
    def match(self, post):
        if post.text.endswith(" 3"):
            raise RecursionError("maximum recursion depth exceeded")
        return super().match(post)


def test_a_matching_failure_parks_the_record_and_the_batch_is_committed():
    w, consumer, store, producer = _worker(matcher=_Boom([TopicRule("t0", ("kw0",), ())]))
    assert w.run(max_batches=1, idle_timeout_s=0.2) == 0
    assert consumer.committed == {("raw", 0): 6}
    (d,) = _dlq(producer)
    assert d["reason"] == "internal_error:stage=match:RecursionError" and d["origin"].endswith(":3")
    assert store.counts["t0"] == 5
    assert w.totals.dlq == {"internal_error": 1}


def test_a_labelling_failure_parks_only_that_post():
    def to_labels(out, floor):
        if getattr(out, "bad", False):
            raise ValueError("bad output")
        return labels(out, floor)

    class Out:
        sentiment = (0.2, 0.3, 0.5)  # what every ModelOutput carries into the buckets

        def __init__(self, bad):
            self.bad = bad

    w, consumer, store, producer = _worker(to_labels=to_labels)
    w.scorer.score = lambda texts, langs=None: [Out("post 2" in t) for t in texts]
    assert w.run(max_batches=1, idle_timeout_s=0.2) == 0
    (d,) = _dlq(producer)
    assert d["reason"] == "internal_error:stage=label:ValueError"
    assert store.counts["t0"] == 5 and consumer.committed == {("raw", 0): 6}


def test_a_tokenizer_failure_on_one_text_parks_only_that_post():
    def encode(texts):
        if any("post 4" in t for t in texts):
            raise UnicodeError("tokenizer")
        return list(texts), [3] * len(texts)

    w, consumer, store, producer = _worker(encode=encode)
    assert w.run(max_batches=1, idle_timeout_s=0.2) == 0
    (d,) = _dlq(producer)
    assert d["reason"] == "internal_error:stage=tokenize:UnicodeError"
    assert store.counts["t0"] == 5 and consumer.committed == {("raw", 0): 6}


def test_a_language_failure_parks_the_record(monkeypatch):
    import monitor.worker as worker_mod

    def boom(declared, text):
        if text.endswith(" 1"):
            raise MemoryError
        return "en"

    monkeypatch.setattr(worker_mod, "post_language", boom)
    w, consumer, store, producer = _worker()
    assert w.run(max_batches=1, idle_timeout_s=0.2) == 0
    (d,) = _dlq(producer)
    assert d["reason"] == "internal_error:stage=language:MemoryError"
    assert "post 1" not in d["detail"]
    assert store.counts["t0"] == 5


def test_the_old_language_noise_shapes_are_handled_by_the_linear_engine():
    # F1: "@-" * n made the old pattern backtrack cubically; the result is still "und"
    for text in ("@-" * 10_000, "a@" * 10_000, "x@y." * 5_000, "a" * 20_000 + "@"):
        assert language.detect(text) in LANGUAGES | {"und"}
    assert all(type(p).__module__.startswith("re2") for p in language.LANGUAGE_NOISE)
