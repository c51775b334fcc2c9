"""Property-based tests (Hypothesis) at the worker's parser boundaries: whatever the bytes or the
text, the result is a valid value or the documented error, nothing else. `make test` runs the
derandomized "ci" profile; `make fuzz` the long random one (tests/conftest.py)."""

from __future__ import annotations

import contextlib
import math
import string

import orjson
from hypothesis import given
from hypothesis import strategies as st

from monitor.alerts.message import AlertEvent, block_kit, generic_json, redact
from monitor.errors import DecodeError
from monitor.messages import (
    LANGUAGES,
    SCHEMA_VERSION,
    Deletion,
    Post,
    ScoredPost,
    decode,
    decode_scored,
    encode_post,
    encode_scored,
)
from monitor.model.language import UNDETERMINED, post_language
from monitor.patterns import FIELD_CONTROL
from monitor.query import QuerySet, QuerySyntaxError, compile_query
from monitor.topics import TopicMatcher, TopicRule

# text a stranger can write: any code point but lone surrogates (JSON cannot carry them)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=400)
HOSTILE = st.one_of(
    TEXT,
    st.sampled_from(
        [
            "\ufdfa",
            "\u3300",
            "\ufb03",
            "ß",
            "\u0390",
            "\u0301",
            "\u202e",
            "\u200b",
            "@-",
            "a@",
            "x@y.",
            "#",
            "@a.",
            "\x00",
            "\n",
            "\u2028",
            "😡",
            "👩‍👩‍👧",
        ]
    ).map(lambda s: s * 300),
)
JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False), HOSTILE
)
JSON = st.recursive(
    JSON_LEAF,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(TEXT, c, max_size=4)),
    max_leaves=12,
)
FIELDS = [
    "v",
    "kind",
    "id",
    "source",
    "text",
    "created_ms",
    "ingested_ms",
    "author_id",
    "lang",
    "url",
    "topic_hints",
    "hashtags",
    "is_reply",
    "is_quote",
    "deleted_ms",
]


def _good() -> dict:
    return {
        "v": SCHEMA_VERSION,
        "kind": "post",
        "id": "p",
        "source": "s",
        "text": "kw hello",
        "created_ms": 1,
        "ingested_ms": 1,
    }


def _valid_post(p: Post) -> None:
    assert p.id.strip() and not FIELD_CONTROL.search(p.id + p.source + p.author_id + p.url)
    assert p.text.strip() and 0 <= p.created_ms <= 2**53 and 0 <= p.ingested_ms <= 2**53
    assert p.url == "" or p.url.startswith(("http://", "https://"))
    assert len(p.lang) <= 16 and len(p.topic_hints) <= 32 and len(p.hashtags) <= 64
    assert post_language(p.lang, "") in LANGUAGES | {UNDETERMINED}


@given(st.binary(max_size=300))
def test_decode_of_any_bytes_is_a_message_or_a_decode_error(raw):
    try:
        msg = decode(raw)
    except DecodeError as exc:
        assert exc.field and len(str(exc)) < 400
    else:
        assert isinstance(msg, Post | Deletion)


@given(st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6))
def test_decode_of_any_overridden_field_is_a_valid_post_or_names_the_field(over):
    raw = orjson.dumps({**_good(), **over})
    try:
        msg = decode(raw)
    except DecodeError as exc:
        assert exc.field in (*FIELDS, "value")
    else:
        if isinstance(msg, Post):
            _valid_post(msg)
            assert decode(encode_post(msg)) == msg  # what is accepted survives the wire


@given(st.integers(1, 1100), st.sampled_from(FIELDS))
def test_decode_of_deep_nesting_in_any_field_is_a_decode_error(depth, field):
    raw = orjson.dumps(_good())[:-1] + f',"{field}":'.encode() + b"[" * depth + b"1" + b"]" * depth + b"}"
    with contextlib.suppress(DecodeError):
        decode(raw)


NUMBER = st.one_of(
    st.floats(), st.integers(-(2**63), 2**63), TEXT, st.none(), st.booleans(), st.lists(st.floats())
)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "sentiment_score",
                "confidence",
                "emotion_confidence",
                "sentiment",
                "emotion",
                "topics",
                "extra",
                "scored_ms",
                "post",
                "origin",
            ]
        ),
        st.one_of(NUMBER, JSON),
        max_size=4,
    )
)
def test_decode_scored_is_a_finite_scored_post_or_a_decode_error(over):
    base = orjson.loads(
        encode_scored(
            ScoredPost(
                post=Post("p", "s", "", 1, 1),
                sentiment="positive",
                sentiment_score=0.5,
                confidence=0.9,
                emotion="joy",
                emotion_confidence=0.8,
                topics=("t",),
                model="m",
                scored_ms=1,
            )
        )
    )
    try:
        raw = orjson.dumps({**base, **over})
    except orjson.JSONEncodeError:  # NaN/inf are written as null by orjson; nothing to test
        return
    try:
        sp = decode_scored(raw)
    except DecodeError:
        return
    assert all(math.isfinite(x) for x in (sp.sentiment_score, sp.confidence, sp.emotion_confidence))
    assert -1 <= sp.sentiment_score <= 1 and 0 <= sp.confidence <= 1
    assert all(isinstance(t, str) for t in sp.topics)


QUERY_CHARS = st.sampled_from(list('()"-#@*: ') + ["AND", "OR", "NOT", "lang:", "phone", "x", "é", "😡"])


@given(
    st.one_of(
        st.lists(QUERY_CHARS, max_size=60).map(" ".join),
        st.lists(QUERY_CHARS, max_size=60).map("".join),
        TEXT,
    )
)
def test_the_query_parser_compiles_or_raises_a_syntax_error_naming_the_column(q):
    try:
        cq = compile_query(q)
    except QuerySyntaxError as exc:
        assert 1 <= exc.column <= len(q) + 1
    else:
        assert cq.matches(Post("p", "s", q or "x", 1, 1)) in (True, False)


@given(HOSTILE, st.lists(HOSTILE, max_size=3))
def test_topic_matching_of_any_text_names_only_configured_topics(text, hints):
    m = TopicMatcher(
        [
            TopicRule("phone", ("phone x", "phonex")),
            TopicRule("tag", hashtags=("coffee",)),
            TopicRule("q", query='("new phone" OR #phonex) AND NOT giveaway'),
        ]
    )
    qs = QuerySet([("a", "phon* OR @acme"), ("b", "NOT spam")])
    post = Post("p", "s", text or "x", 1, 1, topic_hints=tuple(hints))
    assert set(m.match(post)) <= {"phone", "tag", "q"}
    assert set(qs.match(post)) <= {"a", "b"}


EXAMPLE = st.fixed_dictionaries(
    {"text": HOSTILE, "url": st.one_of(HOSTILE, st.just("https://x.example/<a|b>"))}
)


@given(
    st.lists(EXAMPLE, max_size=4),
    st.lists(st.tuples(HOSTILE, st.floats(-10, 10)), max_size=3),
    st.text(string.ascii_letters + "-_", min_size=1, max_size=30),
)
def test_slack_and_json_bodies_of_hostile_posts_stay_valid_and_inert(examples, terms, topic):
    ev = AlertEvent(
        topic=topic,
        rule="r",
        kind="share_shift",
        metric="negative_share",
        action="fire",
        severity="critical",
        value=0.5,
        baseline=0.1,
        posts=10,
        hits=5,
        window_min=15,
        window_end_ms=1_767_276_000_000,
        episode_started_ms=1_767_275_000_000,
        z=3.0,
        phi=1.0,
        emotions={"anger": 0.5},
        examples=examples,
        terms=terms,
        dashboard_url="https://d.example",
    )
    for body in (block_kit(ev), generic_json(ev)):
        dumped = orjson.dumps(body)  # serialisable, whatever the post said
        assert orjson.loads(dumped) == body
    for block in block_kit(ev)["blocks"]:
        for txt in _texts(block):
            # no Slack control sequence can come from a post: <!channel>, <@U1>, <url|label>
            inner = txt.replace("&lt;", "").replace("&gt;", "")
            for seg in inner.split("<")[1:]:
                assert seg.startswith(("http://", "https://")), txt


def _texts(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "text" and isinstance(v, str):
                yield v
            else:
                yield from _texts(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _texts(v)


@given(HOSTILE)
def test_redaction_of_any_text_is_a_string_no_longer_than_needed(text):
    out = redact(text)
    assert isinstance(out, str) and len(out) <= len(text) + 7 * max(1, text.count("@") + text.count(" ") + 1)
