import orjson
import pytest

from monitor.errors import DecodeError
from monitor.messages import (
    SCHEMA_VERSION,
    Deletion,
    Post,
    ScoredPost,
    decode,
    decode_scored,
    encode_deletion,
    encode_post,
    encode_scored,
)

POST = Post(
    id="bluesky:1",
    source="bluesky",
    text="hello #world",
    created_ms=1_700_000_000_000,
    ingested_ms=1_700_000_000_500,
    author_id="did:plc:x",
    lang="en",
    url="https://x",
    topic_hints=("phonex",),
)


def test_post_round_trip():
    assert decode(encode_post(POST)) == POST


def test_deletion_round_trip():
    d = Deletion(id="bluesky:1", source="bluesky", deleted_ms=5)
    assert decode(encode_deletion(d)) == d


def test_scored_round_trip():
    sp = ScoredPost(
        post=POST,
        sentiment="negative",
        sentiment_score=-0.8,
        confidence=0.9,
        emotion="anger",
        emotion_confidence=0.7,
        topics=("phonex",),
        model="m",
        scored_ms=9,
        origin="posts.raw:0:5",
    )
    assert decode_scored(encode_scored(sp)) == sp
    # what posts.scored keeps: the same record, byte for byte, with the text and url left out
    from dataclasses import replace

    assert POST.url
    without = replace(sp, post=replace(POST, text="", url=""))
    assert encode_scored(sp, with_text=False) == encode_scored(without)
    assert decode_scored(encode_scored(sp, with_text=False)) == without


def _raw(**over):
    d = {"v": SCHEMA_VERSION, "id": "a", "source": "s", "text": "t", "created_ms": 1, "ingested_ms": 2}
    d.update(over)
    return orjson.dumps({k: v for k, v in d.items() if v is not ...})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{not json", "value"),
        (b"\xff\xfe\x00garbage", "value"),
        (b"[1,2]", "value"),
        (_raw(v=99), "v"),
        (_raw(v=...), "v"),
        (_raw(text=...), "text"),
        (_raw(text="   "), "text"),
        (_raw(text=5), "text"),
        (_raw(id=...), "id"),
        (_raw(created_ms="yesterday"), "created_ms"),
        (_raw(created_ms=True), "created_ms"),
        (_raw(created_ms=-5), "created_ms"),
        (_raw(topic_hints="x"), "topic_hints"),
        (_raw(kind="edit"), "kind"),
        (_raw(text="x" * 1_000_001), "text"),
        (_raw(text="nul\x00byte"), "text"),
        (_raw(text="bell\x07"), "text"),
    ],
)
def test_bad_records_name_the_field(raw, field):
    with pytest.raises(DecodeError) as ei:
        decode(raw)
    assert ei.value.field == field
    assert field in str(ei.value)


def test_text_limit_is_configurable():
    with pytest.raises(DecodeError, match="too long"):
        decode(_raw(text="abcdef"), max_text_chars=5)
    assert decode(_raw(text="abcde"), max_text_chars=5).text == "abcde"


def test_ordinary_whitespace_and_emoji_are_fine():
    assert decode(_raw(text="line one\nline\ttwo \U0001f600 \u200d")).text.startswith("line one")


def test_source_markup_round_trips_and_is_optional():
    p = Post(
        id="b:1",
        source="bluesky",
        text="so good",
        created_ms=1,
        ingested_ms=2,
        hashtags=("phonex",),
        is_reply=True,
        is_quote=True,
    )
    assert decode(encode_post(p)) == p
    assert decode(_raw()).hashtags == () and decode(_raw()).is_reply is False  # older records


@pytest.mark.parametrize(
    "over, field",
    [
        ({"hashtags": "phonex"}, "hashtags"),
        ({"hashtags": [1]}, "hashtags"),
        ({"is_reply": 1}, "is_reply"),
        ({"is_quote": "yes"}, "is_quote"),
    ],
)
def test_bad_source_markup_names_the_field(over, field):
    with pytest.raises(DecodeError) as ei:
        decode(_raw(**over))
    assert ei.value.field == field


def test_scored_posts_travel_without_their_text_and_still_decode():
    import dataclasses

    from monitor.messages import Post, ScoredPost, decode_scored, encode_scored

    p = Post(id="a", source="s", text="secret words", created_ms=1, ingested_ms=2, lang="en")
    sp = ScoredPost(
        post=dataclasses.replace(p, text=""),
        sentiment="negative",
        sentiment_score=-0.5,
        confidence=0.9,
        emotion="anger",
        emotion_confidence=0.8,
        topics=("t",),
        model="m",
        scored_ms=3,
        origin="raw:0:1",
    )
    raw = encode_scored(sp)
    assert b"secret" not in raw
    back = decode_scored(raw)
    assert back.post.text == "" and back.topics == ("t",) and back.sentiment == "negative"


def test_with_lang_is_replace_for_every_field():
    import dataclasses

    from monitor.messages import Post

    kinds = {"str": lambda i: f"v{i}", "int": lambda i: 1000 + i, "bool": lambda i: i % 2 == 0}
    values = {
        f.name: kinds.get(f.type, lambda i: (f"t{i}",))(i) for i, f in enumerate(dataclasses.fields(Post))
    }
    p = Post(**values)  # every field differs from the others and its default: one out of place shows
    assert p.with_lang("xx") == dataclasses.replace(p, lang="xx")
    assert p.with_lang("xx", "h:1") == dataclasses.replace(p, lang="xx", author_id="h:1")
    assert {f.type for f in dataclasses.fields(Post)} <= {"str", "int", "bool", "tuple[str, ...]"}
