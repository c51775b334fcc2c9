"""Messages on the wire: `Post`, `ScoredPost`, `Deletion`, and their orjson encoding. Pure.

Every record carries a schema version ``v``. Decoding never trusts its input: each field is
checked for presence and type, and a bad record raises `DecodeError` naming the field, so the
worker can park it in the DLQ with that reason.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from monitor.errors import DecodeError
from monitor.taxonomy import EMOTIONS, SENTIMENTS, UNCERTAIN, UNSUPPORTED

SCHEMA_VERSION = 1
# C0 controls other than tab/newline/carriage return, and DEL: never in a real post
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_ID_CHARS = 512
DEFAULT_MAX_TEXT_CHARS = 20_000


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
    """``with_text=False`` writes the post's text as "" (what posts.scored keeps) without
    copying the dataclasses first."""
    # orjson serializes the nested Post dataclass (tuples as arrays) natively: the same JSON
    # as dataclasses.asdict, at a fraction of the cost (asdict deep-copies every field)
    d: dict[str, Any] = {f.name: getattr(sp, f.name) for f in _SCORED_FIELDS}
    if not with_text:
        d["post"] = {f.name: getattr(sp.post, f.name) for f in _POST_FIELDS}
        d["post"]["text"] = ""
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
    if v != SCHEMA_VERSION:
        raise DecodeError("v", f"unsupported schema version {v!r} (expected {SCHEMA_VERSION})")
    return obj


def _str(obj: dict[str, Any], name: str, *, required: bool = True, max_chars: int = 2048) -> str:
    val = obj.get(name)
    if val is None:
        if required:
            raise DecodeError(name, "missing")
        return ""
    if not isinstance(val, str):
        raise DecodeError(name, f"expected a string, got {type(val).__name__}")
    if len(val) > max_chars:
        raise DecodeError(name, f"too long ({len(val)} chars, limit {max_chars})")
    return val


def _int(obj: dict[str, Any], name: str) -> int:
    val = obj.get(name)
    if val is None:
        raise DecodeError(name, "missing")
    if isinstance(val, bool) or not isinstance(val, int):
        raise DecodeError(name, f"expected an integer, got {type(val).__name__}")
    if val < 0 or val > 1 << 53:
        raise DecodeError(name, f"out of range ({val})")
    return val


def _bool(obj: dict[str, Any], name: str) -> bool:
    val = obj.get(name, False)
    if not isinstance(val, bool):
        raise DecodeError(name, f"expected a boolean, got {type(val).__name__}")
    return val


def decode(raw: bytes, *, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
           require_text: bool = True) -> Post | Deletion:
    """Decode a record of ``posts.raw``; raise `DecodeError` naming the bad field.
    ``require_text=False`` accepts an empty text (``posts.scored`` records carry none)."""
    obj = _load(raw)
    kind = obj.get("kind", "post")
    if kind == "delete":
        return Deletion(
            id=_str(obj, "id", max_chars=MAX_ID_CHARS),
            source=_str(obj, "source", max_chars=64),
            deleted_ms=_int(obj, "deleted_ms"),
        )
    if kind != "post":
        raise DecodeError("kind", f"unknown kind {kind!r}")
    post_id = _str(obj, "id", max_chars=MAX_ID_CHARS)
    if not post_id.strip():
        raise DecodeError("id", "empty")
    text = _str(obj, "text", max_chars=max_text_chars)
    if require_text and not text.strip():
        raise DecodeError("text", "empty")
    bad = _CONTROL.search(text)
    if bad:
        raise DecodeError("text", f"control character U+{ord(bad.group()):04X} at {bad.start()}")
    hints = obj.get("topic_hints", [])
    if not isinstance(hints, list) or not all(isinstance(h, str) for h in hints):
        raise DecodeError("topic_hints", "expected a list of strings")
    tags = obj.get("hashtags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise DecodeError("hashtags", "expected a list of strings")
    return Post(
        id=post_id,
        source=_str(obj, "source", max_chars=64),
        text=text,
        created_ms=_int(obj, "created_ms"),
        ingested_ms=_int(obj, "ingested_ms"),
        author_id=_str(obj, "author_id", required=False, max_chars=MAX_ID_CHARS),
        lang=_str(obj, "lang", required=False, max_chars=16),
        url=_str(obj, "url", required=False, max_chars=4096),
        topic_hints=tuple(hints[:32]),
        hashtags=tuple(t[:256] for t in tags[:64]),
        is_reply=_bool(obj, "is_reply"),
        is_quote=_bool(obj, "is_quote"),
    )


_LABELS_OK = frozenset(SENTIMENTS) | frozenset(EMOTIONS) | {UNCERTAIN, UNSUPPORTED}


def decode_scored(raw: bytes) -> ScoredPost:
    obj = _load(raw)
    post_obj = obj.get("post")
    if not isinstance(post_obj, dict):
        raise DecodeError("post", "expected an object")
    post_obj = {**post_obj, "v": SCHEMA_VERSION, "kind": "post"}
    post = decode(orjson.dumps(post_obj), max_text_chars=10_000_000, require_text=False)
    assert isinstance(post, Post)
    sentiment = _str(obj, "sentiment", max_chars=32)
    emotion = _str(obj, "emotion", max_chars=32)
    for name, lab in (("sentiment", sentiment), ("emotion", emotion)):
        if lab not in _LABELS_OK:
            raise DecodeError(name, f"unknown label {lab!r}")
    topics = obj.get("topics", [])
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        raise DecodeError("topics", "expected a list of strings")
    extra = obj.get("extra") or {}
    return ScoredPost(
        post=post,
        sentiment=sentiment,
        sentiment_score=float(obj.get("sentiment_score", 0.0)),
        confidence=float(obj.get("confidence", 0.0)),
        emotion=emotion,
        emotion_confidence=float(obj.get("emotion_confidence", 0.0)),
        topics=tuple(topics),
        model=_str(obj, "model", required=False, max_chars=512),
        scored_ms=_int(obj, "scored_ms"),
        origin=_str(obj, "origin", required=False, max_chars=512),
        extra={str(k): float(v) for k, v in extra.items()} if isinstance(extra, dict) else {},
    )
