"""bench/hostile.py's corpus generator: every class, records that can travel through Kafka, the
same corpus for the same seed. No timing: the benchmark itself measures."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import orjson

from bench.hostile import CLASSES, MAX_RECORD_BYTES, hostile_corpus, ordinary_posts

NOW = 1_700_000_000_000


def _text(value: bytes) -> str | None:
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return obj.get("text") if isinstance(obj, dict) and isinstance(obj.get("text"), str) else None


def test_every_class_with_per_class_records_of_bytes_under_the_kafka_limit():
    corpus = hostile_corpus(seed=7, per_class=3, now_ms=NOW)
    counts = Counter(cls for cls, _ in corpus)
    assert set(counts) == set(CLASSES)
    assert all(n == 3 for n in counts.values()), counts
    for cls, value in corpus:
        assert isinstance(value, bytes), cls
        assert len(value) <= MAX_RECORD_BYTES, (cls, len(value))


def test_deterministic_for_a_seed_and_lang_codes_distinct():
    a = hostile_corpus(seed=3, per_class=2, lang_codes=500, now_ms=NOW)
    assert a == hostile_corpus(seed=3, per_class=2, lang_codes=500, now_ms=NOW)
    langs = [orjson.loads(v)["lang"] for cls, v in a if cls == "lang_distinct"]
    assert len(langs) == 500 == len(set(langs))
    assert all(re.fullmatch("[a-z]{3}", lang) for lang in langs)


def test_the_classes_are_what_they_say():
    corpus = hostile_corpus(seed=7, per_class=8, now_ms=NOW)
    by = {}
    for cls, value in corpus:
        by.setdefault(cls, []).append(value)

    def not_utf8(v: bytes) -> bool:
        try:
            v.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False

    assert all(not_utf8(v) for v in by["invalid_utf8"] + by["overlong_utf8"])
    assert all(b"\\ud8" in v or b"\\udc" in v or b"\\udf" in v for v in by["lone_surrogates"])
    assert all(
        b"[" * 998 in v or b'{"a":' * 998 in v or b'[{"a":' * 499 in v
        for cls in CLASSES
        if cls.startswith("json_deep_")
        for v in by[cls]
    )
    # text classes: the longest text the worker accepts, and their NFKC/casefold really expands
    assert max(len(_text(v) or "") for v in by["nfkc_fdfa"]) == 20_000
    fdfa = _text(by["nfkc_fdfa"][0])
    assert len(unicodedata.normalize("NFKC", fdfa)) > 10 * len(fdfa)
    zalgo = _text(by["combining_zalgo"][0])
    assert sum(unicodedata.combining(c) > 0 for c in zalgo) > 10_000
    assert _text(by["re_lang_at_dash"][0]).startswith("@-@-@-")
    # no hostile text names the fault suite's topics, so none is ever counted there
    for cls, value in corpus:
        text = _text(value)
        if text is not None:
            folded = unicodedata.normalize("NFKC", text).casefold()
            assert not re.search(r"(?<!\w)kw[0-3](?!\w)", folded), cls


def test_ordinary_posts_are_280_characters():
    posts = [orjson.loads(v) for v in ordinary_posts(20, now_ms=NOW)]
    assert all(len(p["text"]) == 280 for p in posts)
    assert len({p["id"] for p in posts}) == 20
