"""Hypothesis strategies for hostile platform payloads, built from the recorded real shapes.

`mutated(base)` takes a real payload (read in place from the shared fixtures by
`tests.recorded`) and replaces or deletes the values at a few of its paths: any JSON type in
place of any field, strings that break naive parsers, numbers at the edges of int()/float(),
lists nested 1,000 deep (whose repr raises RecursionError). Strings sometimes carry `MARK`, so a
test can check that no error message or log line quotes the payload. Plus an in-memory
connector state and a list sink, for running a connector's loop without Redis or Kafka.
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

from hypothesis import strategies as st

from tests.recorded import betamax, jsonl_lines, path, vcr

MARK = "zq\u2603MARK"  # never in a real payload; must never reach an error message or a log line

DEEP = 1000  # orjson refuses depth 1024; a Python repr of this depth raises RecursionError


def deep_list(depth: int = DEEP) -> list[Any]:
    v: list[Any] = []
    for _ in range(depth):
        v = [v]
    return v


def deep_dict(depth: int = DEEP) -> dict[str, Any]:
    v: dict[str, Any] = {}
    for _ in range(depth):
        v = {"a": v}
    return v


SPECIAL_STRINGS = [
    "",
    " ",
    "\u00b2",
    "\u0663",
    "1" * 5000,
    "9" * 30,
    "-1",
    "0",
    "1e308",
    "nan",
    "inf",
    "-inf",
    "<![",
    "<![CDATA[",
    "<![foo",
    "<a" * 500,
    "<a b='>'" * 200,
    "<!--" * 100,
    "</",
    "&#",
    "&#x110000;",
    "&#xD800;",
    "\x00",
    "\r\n",
    "\u202e",
    "\u2028",
    "\ufeff",
    "#",
    "@",
    "t1_",
    "t3_",
    "[removed]",
    "did:plc:",
    "at://",
    "a" * 70_000,
    "2026-13-45T99:99:99Z",
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59+00:00",
    "2020-01-01T00:00:00",
    MARK,
]
SPECIAL_NUMBERS = [
    0,
    -1,
    1,
    2**53,
    2**53 + 1,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    1e308,
    -1e308,
    5e-324,
    1.5,
    1e20,
    10**18,
    True,
    False,
]

strings = st.one_of(
    st.text(max_size=40), st.sampled_from(SPECIAL_STRINGS), st.text(max_size=10).map(lambda t: MARK + t)
)
numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(SPECIAL_NUMBERS),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(strings, inner, max_size=4)),
    max_leaves=10,
)
values = st.one_of(json_values, st.builds(deep_list), st.builds(deep_dict))
# values of another shape than the ones they replace: what naive iteration and int() trip on
SWAP_VALUES: list[Any] = [
    5,
    -1,
    0,
    1e308,
    -1e308,
    True,
    2**64 - 1,
    None,
    "x",
    MARK,
    "\u00b2",
    "1" * 5000,
    "<![foo",
    "<p>a <![ b</p>",
    "<a b='>'" * 50,
    [],
    [5],
    ["#t", 5, None, MARK],
    {},
    {"a": 1},
    [{"a": 1}],
    [[["x"]]],
    deep_list(),
    deep_dict(),
]
_DEEP_LIST, _DEEP_DICT = SWAP_VALUES[-2], SWAP_VALUES[-1]


def fresh(v: Any) -> Any:
    """A copy of a shared value, so that a later mutation inside it cannot change it for the
    next example (copy.deepcopy would hit the recursion limit on the deep ones)."""
    if v is _DEEP_LIST:
        return deep_list()
    if v is _DEEP_DICT:
        return deep_dict()
    return copy.deepcopy(v)


swaps = st.sampled_from(SWAP_VALUES).map(fresh)


def paths(obj: Any, prefix: tuple[Any, ...] = (), depth: int = 6) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``obj`` (dict keys, list indexes), up to ``depth`` deep."""
    out = [prefix] if prefix else []
    if depth == 0:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += paths(v, (*prefix, k), depth - 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:5]):
            out += paths(v, (*prefix, i), depth - 1)
    return out


def _apply(obj: Any, where: tuple[Any, ...], value: Any, delete: bool) -> None:
    """Set (or delete) the value at ``where``; a missing last key of an object is added."""
    parent = obj
    for step in where[:-1]:
        parent = parent[step]
    last = where[-1]
    if delete and isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, dict) or (isinstance(parent, list) and isinstance(last, int)):
        parent[last] = value


@st.composite
def mutated(draw: st.DrawFn, bases: list[Any], focus: tuple[tuple[Any, ...], ...] = ()) -> Any:
    """One of ``bases`` (a real payload) with 1-6 of its values replaced by hostile ones (two
    in three a value of another shape: a number for a list, a string for an object), added or
    deleted; sometimes the whole payload is replaced. Three mutations in four go to one of the
    ``focus`` paths (the fields a mapping reads, present in the payload or not), so that most
    payloads get past the envelope checks to the field under test; the rest go anywhere."""
    base = copy.deepcopy(draw(st.sampled_from(bases)))
    if draw(st.integers(0, 19)) == 0:
        return draw(values)
    for _ in range(draw(st.integers(1, 6))):
        if focus and draw(st.integers(0, 3)):
            where = draw(st.sampled_from(focus))
        else:
            ps = paths(base)
            if not ps:
                break
            where = draw(st.sampled_from(ps))
        value = draw(swaps) if draw(st.integers(0, 2)) else draw(values)
        delete = draw(st.integers(0, 5)) == 0
        with contextlib.suppress(KeyError, IndexError, TypeError):  # a parent is missing or not a container
            _apply(base, where, value, delete)
    return base


JETSTREAM_FOCUS = tuple(
    ("commit", "record", *p)
    for p in [
        ("text",),
        ("langs",),
        ("langs", 0),
        ("facets",),
        ("facets", 0),
        ("facets", 0, "features"),
        ("facets", 0, "features", 0),
        ("facets", 0, "features", 0, "tag"),
        ("tags",),
        ("tags", 0),
        ("embed",),
        ("embed", "$type"),
        ("reply",),
    ]
) + (("time_us",), ("did",), ("commit", "rkey"), ("commit", "operation"))
MASTODON_FOCUS = tuple(
    (*pre, *p)
    for pre in [(), ("reblog",)]
    for p in [
        ("id",),
        ("content",),
        ("spoiler_text",),
        ("tags",),
        ("tags", 0),
        ("tags", 0, "name"),
        ("account",),
        ("account", "url"),
        ("account", "acct"),
        ("created_at",),
        ("language",),
        ("url",),
        ("uri",),
        ("in_reply_to_id",),
        ("quote",),
        ("reblog",),
        ("visibility",),
    ]
)
REDDIT_FOCUS = (("kind",), ("data",)) + tuple(
    ("data", k)
    for k in [
        "name",
        "created_utc",
        "title",
        "selftext",
        "body",
        "author",
        "author_fullname",
        "parent_id",
        "permalink",
    ]
)


# ---- the recorded real payloads --------------------------------------------------------------
def jetstream_events() -> list[dict[str, Any]]:
    events = [json.loads(ln) for ln in jsonl_lines("jetstream/expected_v1.jsonl")]
    posts = [e for e in events if e.get("commit", {}).get("collection") == "app.bsky.feed.post"]
    others = [e for e in events if e not in posts][:3]  # a like, a follow...: mapped to None
    return posts + others


def mastodon_statuses() -> list[dict[str, Any]]:
    out = [json.loads(path("mastodon/docs_status_entity.json").read_text())]
    for it in vcr("mastodon/mastodonpy_test_hashtag_tl.yaml"):
        body = it["response"]["body"]["string"]
        if it["request"]["uri"].endswith("/api/v1/timelines/tag/hoot"):
            out += json.loads(body)
    return out


def reddit_children() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in ("reddit/r_all_new_stream_2016-12-22.json", "reddit/r_testsub_comments_2023-10-08.json"):
        listing = json.loads(betamax(name)[1]["response"]["body"]["string"])
        out += listing["data"]["children"][:8]
    return out


def reddit_listing() -> dict[str, Any]:
    return json.loads(betamax("reddit/r_testsub_comments_2023-10-08.json")[1]["response"]["body"]["string"])


# ---- fakes for running connector loops without Redis or Kafka --------------------------------
class MemoryState:
    """`RedisConnectorState`'s interface, in memory."""

    def __init__(self) -> None:
        self.cursor_value: str | None = None
        self.seen: set[str] = set()
        self.meta_values: dict[str, str] = {}
        self.claims: set[str] = set()
        self.status: dict[str, Any] = {}

    def cursor(self) -> str | None:
        return self.cursor_value

    def unseen(self, keys: Any) -> set[str]:
        return {k for k in keys if k not in self.seen}

    def commit(self, keys: Any, cursor: str | None = None, *, meta: Any = None, now_ms: Any = None) -> None:
        self.seen.update(keys)
        if cursor is not None:
            self.cursor_value = cursor
        self.meta_values.update(meta or {})

    def meta(self, field: str) -> str | None:
        return self.meta_values.get(field)

    def claim(self, key: str, ttl_s: int) -> bool:
        if key in self.claims:
            return False
        self.claims.add(key)
        return True

    def release(self, key: str) -> None:
        self.claims.discard(key)

    def report(self, status: Any) -> None:
        self.status = dict(status)


class ListSink:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []

    def send(self, key: bytes | None, value: bytes, *, topic: str | None = None, headers: Any = None) -> None:
        self.sent.append((key, value))

    def flush(self, timeout_s: float = 30.0) -> None:
        pass

    def close(self, timeout_s: float = 10.0) -> None:
        pass
