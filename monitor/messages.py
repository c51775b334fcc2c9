"""Messages on the wire: `Post`, `ScoredPost`, `Deletion`, and their orjson encoding. Pure.

Every record carries a schema version ``v``. Decoding never trusts its input: each field is
checked for presence and type, and a bad record raises `DecodeError` naming the field, so the
worker can park it in the DLQ with that reason.

Every field is validated here, at the boundary, so that nothing downstream has to trust it:
one-line fields (``id``, ``source``, ``author_id``, ``url``) carry no control, line-separator or
bidi-override character (`monitor.patterns.FIELD_CONTROL`): an ``id`` or ``source`` with one is
rejected, an ``author_id`` or ``url`` loses it; ``source`` has the shape of a connector name;
``lang`` has the shape of a BCP 47 tag or is dropped, and what buckets count is its primary
subtag when that is a known ISO 639-1 code (`lang_tag`; an unknown one is treated as no tag and
the language detected), so a source cannot grow the ``l:<lang>`` bucket fields without
bound; ``url`` is http(s) or nothing; topic hints and hashtags are cut to the length of a
topic name or tag. Scores in ``posts.scored`` must be finite numbers in their range. Error
messages name the field and the type of a bad value, never the value itself (a ``repr`` of a
list nested 1,000 deep raises RecursionError; a 5,000-digit number raises ValueError).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from monitor.errors import DecodeError
from monitor.patterns import CONTROL, FIELD_CONTROL
from monitor.taxonomy import EMOTIONS, SENTIMENTS, UNCERTAIN, UNSUPPORTED

SCHEMA_VERSION = 1
MAX_ID_CHARS = 512
DEFAULT_MAX_TEXT_CHARS = 20_000
MAX_HINT_CHARS = 100  # the longest topic name
MAX_TAG_CHARS = 256
# ISO 639-1: the language tags a bucket may count (anything else is "no tag", then detected)
_ISO_639_1 = """
aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da
de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz
ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln
lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi
pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti
tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
"""
LANGUAGES = frozenset(_ISO_639_1.split())
_SOURCE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
MAX_SOURCE_CHARS = 64


@lru_cache(maxsize=4096)  # a handful of tags, asked for several times a post on the hot path
def lang_tag(value: str) -> str:
    """The primary subtag of a language tag when it is a known ISO 639-1 code (``en-US`` and
    ``EN_gb`` -> ``en``), else ``""``."""
    primary = value[:16].split("-", 1)[0].split("_", 1)[0].strip().lower()
    return primary if primary in LANGUAGES else ""


def _tag_shaped(value: str) -> bool:
    """``en``, ``pt-BR``, ``zh_Hant_TW``: ASCII letters first, then letters or digits, <= 16."""
    parts = value.replace("_", "-").split("-")
    return (
        len(value) <= 16
        and 2 <= len(parts[0]) <= 3
        and parts[0].isascii()
        and parts[0].isalpha()
        and all(0 < len(p) <= 8 and p.isascii() and p.isalnum() for p in parts[1:])
    )


def describe(value: object) -> str:
    """A bad value in an error message: its type, never its content."""
    return type(value).__name__


@dataclass(frozen=True, slots=True)
class Post:
    id: str
    source: str
    text: str
    created_ms: int
    ingested_ms: int
    author_id: str = ""
    lang: str = ""
    url: str = ""
    topic_hints: tuple[str, ...] = ()
    # hashtags the source marked up (facets, tag lists), case-folded, without '#'; they need not
    # appear in ``text`` (Bluesky record tags do not)
    hashtags: tuple[str, ...] = ()
    is_reply: bool = False
    is_quote: bool = False

    def with_lang(self, lang: str, author_id: str | None = None) -> Post:
        """This post with another language (and author id): what ``dataclasses.replace`` gives,
        at 0.9 instead of 2.2 us, once for every post that matched (the worker's main thread).
        tests/unit/test_messages.py checks it against ``replace`` field by field."""
        return Post(
            self.id,
            self.source,
            self.text,
            self.created_ms,
            self.ingested_ms,
            self.author_id if author_id is None else author_id,
            lang,
            self.url,
            self.topic_hints,
            self.hashtags,
            self.is_reply,
            self.is_quote,
        )


@dataclass(frozen=True, slots=True)
class Deletion:
    """A source said this post was deleted: forget its text (the aggregates stay counts)."""

    id: str
    source: str
    deleted_ms: int


@dataclass(frozen=True, slots=True)
class ScoredPost:
    post: Post
    sentiment: str  # one of SENTIMENTS, or UNCERTAIN / UNSUPPORTED
    sentiment_score: float  # P(positive) - P(negative), in [-1, 1]
    confidence: float  # top sentiment probability
    emotion: str  # one of EMOTIONS, or UNCERTAIN / UNSUPPORTED
    emotion_confidence: float
    topics: tuple[str, ...]
    model: str
    scored_ms: int
    # where the raw record came from, so a rebuild from posts.scored can drop redeliveries
    origin: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    # the model's P(negative), P(neutral), P(positive): what the buckets' share corrections
    # keep (None when the post had no model output, or in records written before)
    sentiment_probs: tuple[float, float, float] | None = None


_SCORED_FIELDS = dataclasses.fields(ScoredPost)
_POST_FIELDS = dataclasses.fields(Post)


def encode_post(post: Post) -> bytes:
    d = dataclasses.asdict(post)
    d["topic_hints"] = list(post.topic_hints)
    d["hashtags"] = list(post.hashtags)
    d["v"] = SCHEMA_VERSION
    d["kind"] = "post"
    return orjson.dumps(d)


def encode_deletion(deletion: Deletion) -> bytes:
    d = dataclasses.asdict(deletion)
    d["v"] = SCHEMA_VERSION
    d["kind"] = "delete"
    return orjson.dumps(d)


def encode_scored(sp: ScoredPost, *, with_text: bool = True) -> bytes:
    """``with_text=False`` writes the post's text and url as "" (what posts.scored keeps: a
    rebuild needs neither, and a link can name its author) without copying the dataclasses
    first."""
    # orjson serializes the nested Post dataclass (tuples as arrays) natively: the same JSON
    # as dataclasses.asdict, at a fraction of the cost (asdict deep-copies every field)
    d: dict[str, Any] = {f.name: getattr(sp, f.name) for f in _SCORED_FIELDS}
    if not with_text:
        d["post"] = {f.name: getattr(sp.post, f.name) for f in _POST_FIELDS}
        d["post"]["text"] = d["post"]["url"] = ""
    d["v"] = SCHEMA_VERSION
    return orjson.dumps(d)


def _load(raw: bytes) -> dict[str, Any]:
    if raw is None:
        raise DecodeError("value", "record has no value")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson rejects invalid UTF-8 too; say which it was
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("value", "not valid UTF-8") from exc
        raise DecodeError("value", f"malformed JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise DecodeError("value", f"expected a JSON object, got {type(obj).__name__}")
    v = obj.get("v")
    if type(v) is not int or v != SCHEMA_VERSION:
        shown = v if type(v) is int and abs(v) < 1 << 32 else describe(v)
        raise DecodeError("v", f"unsupported schema version {shown} (expected {SCHEMA_VERSION})")
    return obj


def _str(obj: dict[str, Any], name: str, *, required: bool = True, max_chars: int = 2048) -> str:
    val = obj.get(name)
    if val is None:
        if required:
            raise DecodeError(name, "missing")
        return ""
    if not isinstance(val, str):
        raise DecodeError(name, f"expected a string, got {describe(val)}")
    if len(val) > max_chars:
        raise DecodeError(name, f"too long ({len(val)} chars, limit {max_chars})")
    return val


def _line(
    obj: dict[str, Any], name: str, *, required: bool = True, max_chars: int = 2048, strip: bool = False
) -> str:
    """A one-line field: a control, separator or bidi character rejects it (``strip``: drops
    the character instead)."""
    val = _str(obj, name, required=required, max_chars=max_chars)
    bad = FIELD_CONTROL.search(val)
    if bad is None:
        return val
    if strip:
        return FIELD_CONTROL.sub("", val)
    raise DecodeError(name, f"control character U+{ord(bad.group()):04X} at {bad.start()}")


def _source(obj: dict[str, Any]) -> str:
    val = _str(obj, "source", max_chars=MAX_SOURCE_CHARS).lower()
    if not val or not _SOURCE_CHARS.issuperset(val):
        raise DecodeError("source", "expected a name of letters, digits, '_', '.' or '-'")
    return val


def _url(obj: dict[str, Any]) -> str:
    val = _line(obj, "url", required=False, max_chars=4096, strip=True)
    return val if val.startswith(("https://", "http://")) else ""


def _strings(obj: dict[str, Any], name: str, *, max_items: int, max_chars: int) -> tuple[str, ...]:
    val = obj.get(name, [])
    if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
        raise DecodeError(name, "expected a list of strings")
    return tuple(FIELD_CONTROL.sub("", x[:max_chars]) for x in val[:max_items])


def _int(obj: dict[str, Any], name: str) -> int:
    val = obj.get(name)
    if val is None:
        raise DecodeError(name, "missing")
    if isinstance(val, bool) or not isinstance(val, int):
        raise DecodeError(name, f"expected an integer, got {describe(val)}")
    if val < 0 or val > 1 << 53:
        raise DecodeError(name, "out of range (0 to 2**53)")
    return val


def _float(obj: dict[str, Any], name: str, lo: float, hi: float) -> float:
    val = obj.get(name, 0.0)
    if isinstance(val, bool) or not isinstance(val, int | float):
        raise DecodeError(name, f"expected a number, got {describe(val)}")
    out = float(val)
    if not (math.isfinite(out) and lo <= out <= hi):
        raise DecodeError(name, f"out of range ({lo:g} to {hi:g})")
    return out


def _bool(obj: dict[str, Any], name: str) -> bool:
    val = obj.get(name, False)
    if not isinstance(val, bool):
        raise DecodeError(name, f"expected a boolean, got {describe(val)}")
    return val


def decode(
    raw: bytes, *, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS, require_text: bool = True
) -> Post | Deletion:
    """Decode a record of ``posts.raw``; raise `DecodeError` naming the bad field.
    ``require_text=False`` accepts an empty text (``posts.scored`` records carry none)."""
    return _message(_load(raw), max_text_chars=max_text_chars, require_text=require_text)


def _message(obj: dict[str, Any], *, max_text_chars: int, require_text: bool) -> Post | Deletion:
    kind = obj.get("kind", "post")
    if kind == "delete":
        return Deletion(
            id=_id(obj),
            source=_source(obj),
            deleted_ms=_int(obj, "deleted_ms"),
        )
    if kind != "post":
        raise DecodeError(
            "kind", "unknown kind" if isinstance(kind, str) else f"expected a string, got {describe(kind)}"
        )
    post_id = _id(obj)
    text = _str(obj, "text", max_chars=max_text_chars)
    if require_text and not text.strip():
        raise DecodeError("text", "empty")
    bad = CONTROL.search(text)
    if bad:
        raise DecodeError("text", f"control character U+{ord(bad.group()):04X} at {bad.start()}")
    return Post(
        id=post_id,
        source=_source(obj),
        text=text,
        created_ms=_int(obj, "created_ms"),
        ingested_ms=_int(obj, "ingested_ms"),
        author_id=_line(obj, "author_id", required=False, max_chars=MAX_ID_CHARS, strip=True),
        lang=lang if _tag_shaped(lang := _str(obj, "lang", required=False, max_chars=64)) else "",
        url=_url(obj),
        topic_hints=_strings(obj, "topic_hints", max_items=32, max_chars=MAX_HINT_CHARS),
        hashtags=_strings(obj, "hashtags", max_items=64, max_chars=MAX_TAG_CHARS),
        is_reply=_bool(obj, "is_reply"),
        is_quote=_bool(obj, "is_quote"),
    )


def _id(obj: dict[str, Any]) -> str:
    post_id = _line(obj, "id", max_chars=MAX_ID_CHARS)
    if not post_id.strip():
        raise DecodeError("id", "empty")
    return post_id


_LABELS_OK = frozenset(SENTIMENTS) | frozenset(EMOTIONS) | {UNCERTAIN, UNSUPPORTED}


def decode_scored(raw: bytes) -> ScoredPost:
    obj = _load(raw)
    post_obj = obj.get("post")
    if not isinstance(post_obj, dict):
        raise DecodeError("post", "expected an object")
    post = _message({**post_obj, "kind": "post"}, max_text_chars=DEFAULT_MAX_TEXT_CHARS, require_text=False)
    if not isinstance(post, Post):  # unreachable: kind is "post"
        raise DecodeError("post", "not a post")
    sentiment = _str(obj, "sentiment", max_chars=32)
    emotion = _str(obj, "emotion", max_chars=32)
    for name, lab in (("sentiment", sentiment), ("emotion", emotion)):
        if lab not in _LABELS_OK:
            raise DecodeError(name, "unknown label")
    topics = _strings(obj, "topics", max_items=1024, max_chars=MAX_HINT_CHARS)
    extra = obj.get("extra") or {}
    if not isinstance(extra, dict) or len(extra) > 64:
        raise DecodeError("extra", "expected an object of at most 64 numbers")
    return ScoredPost(
        post=post,
        sentiment=sentiment,
        sentiment_score=_float(obj, "sentiment_score", -1.0, 1.0),
        confidence=_float(obj, "confidence", 0.0, 1.0),
        emotion=emotion,
        emotion_confidence=_float(obj, "emotion_confidence", 0.0, 1.0),
        topics=topics,
        model=_line(obj, "model", required=False, max_chars=512, strip=True),
        scored_ms=_int(obj, "scored_ms"),
        origin=_line(obj, "origin", required=False, max_chars=512, strip=True),
        extra={str(k)[:64]: _float({"extra": v}, "extra", -math.inf, math.inf) for k, v in extra.items()},
        sentiment_probs=_probs(obj, "sentiment_probs"),
    )


def _probs(obj: dict[str, Any], name: str) -> tuple[float, float, float] | None:
    """Three probabilities in [0, 1] summing to 1 (within 1e-3), or None when absent."""
    val = obj.get(name)
    if val is None:
        return None
    if not isinstance(val, list) or len(val) != 3:
        raise DecodeError(name, "expected a list of 3 numbers")
    a, b, c = (_float({name: v}, name, 0.0, 1.0) for v in val)
    if abs(a + b + c - 1.0) > 1e-3:
        raise DecodeError(name, "the probabilities do not sum to 1")
    return (a, b, c)
