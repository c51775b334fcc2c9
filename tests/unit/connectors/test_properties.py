"""Property tests (Hypothesis) at every connector parser boundary.

The property, everywhere: whatever a stranger sends, the result is a valid value (a Post, a
Deletion, None, a Skip) or the documented error (DecodeError, SignatureError / an HTTP 4xx),
never another exception, and no error message or log line quotes the payload (`MARK`).
Payloads are real recorded ones (`tests.recorded`) with hostile values put in at random paths.
The examples per test come from the profile loaded in tests/conftest.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import bluesky, mastodon, push, reddit, rss
from connectors.backoff import Backoff, retry_after_s
from connectors.base import Skip
from connectors.credentials import Secret
from connectors.markup import MAX_HTML_CHARS, html_to_text
from connectors.sse import SSEParser, split_lines
from monitor.errors import DecodeError
from monitor.messages import MAX_ID_CHARS, Deletion, Post, encode_deletion, encode_post

from .hostile import (
    JETSTREAM_FOCUS,
    MARK,
    MASTODON_FOCUS,
    REDDIT_FOCUS,
    SWAP_VALUES,
    ListSink,
    MemoryState,
    _apply,
    jetstream_events,
    json_values,
    mastodon_statuses,
    mutated,
    reddit_children,
    reddit_listing,
    strings,
    values,
)

NOW = 1_800_000_000_000
JETSTREAM = jetstream_events()
STATUSES = mastodon_statuses()
CHILDREN = reddit_children()
LISTING = reddit_listing()
LISTING["data"]["children"] = LISTING["data"]["children"][:10]
REDDIT = reddit.RedditConnector(
    ListSink(),
    MemoryState(),
    client_id=Secret("i"),  # type: ignore[arg-type]
    client_secret=Secret("s"),
    subreddits=["x"],
)


class Lines(logging.Handler):
    """Every log line of the connectors, formatted, while the test runs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def log_lines() -> Iterator[Lines]:
    h = Lines()
    logger = logging.getLogger("connectors")
    old = logger.level
    logger.addHandler(h)
    logger.setLevel(logging.DEBUG)
    yield h
    logger.removeHandler(h)
    logger.setLevel(old)


def check_item(item: Any) -> None:
    """A valid mapping result: None, or a Post / Deletion the wire encoding takes."""
    if item is None:
        return
    assert isinstance(item, Post | Deletion)
    assert isinstance(item.id, str) and 0 < len(item.id) <= MAX_ID_CHARS
    if isinstance(item, Deletion):
        assert type(item.deleted_ms) is int and item.deleted_ms > 0
        encode_deletion(item)
        return
    assert isinstance(item.text, str) and item.text.strip()
    assert type(item.created_ms) is int and 0 < item.created_ms < 2**53
    assert all(isinstance(getattr(item, f), str) for f in ("author_id", "lang", "url", "source"))
    assert isinstance(item.hashtags, tuple) and all(isinstance(t, str) and t for t in item.hashtags)
    assert isinstance(item.is_reply, bool) and isinstance(item.is_quote, bool)
    encode_post(item)


def check_error(exc: DecodeError) -> None:
    assert MARK not in str(exc)
    assert isinstance(exc.field, str) and isinstance(exc.reason, str)


def outcome(make: Any) -> Any:
    try:
        item = make()
    except Skip as exc:
        assert MARK not in exc.reason
        return "skip"
    except DecodeError as exc:
        check_error(exc)
        return "bad"
    return item


# ---- Bluesky Jetstream -----------------------------------------------------------------------
def _confused(bases: list[Any], focus: tuple[tuple[Any, ...], ...]) -> Iterator[Any]:
    """Every base with every focus field set to every value of another shape, one at a time."""
    for base in bases:
        for where in focus:
            for value in SWAP_VALUES:
                obj = orjson.loads(orjson.dumps(base))
                try:
                    _apply(obj, where, value, False)
                except (KeyError, IndexError, TypeError):
                    continue
                yield obj


_RSS_ENTRY = {
    "title": "t",
    "summary": "s",
    "content": [{"value": "<p>x</p>", "type": "text/html"}],
    "id": "i",
    "link": "l",
    "author": "a",
    "title_detail": {"type": "text/plain"},
    "summary_detail": {"type": "text/html"},
}
_RSS_FOCUS = (
    ("title",),
    ("title_detail",),
    ("title_detail", "type"),
    ("summary",),
    ("summary_detail",),
    ("summary_detail", "type"),
    ("content",),
    ("content", 0),
    ("content", 0, "value"),
    ("content", 0, "type"),
    ("id",),
    ("link",),
    ("author",),
    ("published_parsed",),
)
_PUSH_ITEM = {
    "id": "a1",
    "text": "so happy",
    "created_ms": NOW,
    "lang": "en",
    "url": "https://x.example/1",
    "author_id": "u",
    "hashtags": ["#x"],
}
_PUSH_FOCUS = tuple((k,) for k in [*_PUSH_ITEM, "kind"]) + (("hashtags", 0),)


@pytest.mark.parametrize(
    "name, bases, focus, mapping",
    [
        ("bluesky", JETSTREAM[:4], JETSTREAM_FOCUS, lambda o: bluesky.to_post(o, now_ms=NOW)),
        (
            "mastodon",
            STATUSES[:3],
            MASTODON_FOCUS,
            lambda o: mastodon.to_post(o, host="h", now_ms=NOW, trust_language=True),
        ),
        ("reddit", CHILDREN[:2] + CHILDREN[8:10], REDDIT_FOCUS, lambda o: reddit.to_post(o, now_ms=NOW)),
        ("rss", [_RSS_ENTRY], _RSS_FOCUS, lambda o: rss.to_post(o, now_ms=NOW)[1]),
        ("push", [_PUSH_ITEM], _PUSH_FOCUS, lambda o: push.to_item(o, now_ms=NOW)),
    ],
)
def test_type_confusion_matrix_at_every_field_the_mappings_read(name, bases, focus, mapping):
    """Exhaustive, not sampled: each field a mapping reads, set to each value of another shape
    (a number for a list, a string for an object, 1e308, '²', 1,000-deep nesting, ``<![``), in a
    few real payloads (F3's crashes were all of this kind). Each is a valid item, a Skip or a
    DecodeError naming the field: type-checked where it is read, not caught by the `guarded`
    safety net (whose reason says ``internal_error``)."""
    n = 0
    for obj in _confused(bases, focus):
        n += 1
        try:
            item = mapping(obj)
        except Skip:
            continue
        except DecodeError as exc:
            check_error(exc)
            assert "internal_error" not in exc.reason, (name, exc)
            continue
        check_item(item)
    assert n >= len(focus) * len(SWAP_VALUES) * 0.9


@given(mutated(JETSTREAM, JETSTREAM_FOCUS))
def test_jetstream_to_post_gives_an_item_or_a_decode_error(event):
    item = outcome(lambda: bluesky.to_post(event, now_ms=NOW))
    if item not in ("skip", "bad"):
        check_item(item)


def _connector_jetstream() -> bluesky.JetstreamConnector:
    return bluesky.JetstreamConnector(ListSink(), MemoryState(), url="ws://127.0.0.1:1/subscribe")


@given(
    st.one_of(
        mutated(JETSTREAM, JETSTREAM_FOCUS).map(
            lambda e: orjson.dumps(e, default=str).decode() if _dumpable(e) else "{"
        ),
        strings,
        st.binary(max_size=40),
        st.integers(0, 1020).map(
            lambda n: '{"kind":"commit","time_us":5,"commit":' + "[" * n + "]" * n + "}"
        ),
    )
)
def test_jetstream_handle_never_raises_and_logs_no_content(log_lines, frame):
    conn = _connector_jetstream()
    batch: list[Any] = []
    before = len(log_lines.lines)
    t = conn.handle(frame, batch)
    assert type(t) is int and t >= 0
    for _, item in batch:
        check_item(item)
    new_lines = log_lines.lines[before:]
    assert len(new_lines) == conn.stats.bad  # one line per bad frame
    assert not any(MARK in ln for ln in new_lines)


def _dumpable(obj: Any) -> bool:
    try:
        orjson.dumps(obj)
    except TypeError:  # deeper than orjson writes (255); the nesting case is built as text above
        return False
    return True


# ---- Mastodon --------------------------------------------------------------------------------
@given(mutated(STATUSES, MASTODON_FOCUS), st.booleans())
def test_mastodon_status_mapping(status, trust):
    item = outcome(lambda: mastodon.to_post(status, host="mastodon.social", now_ms=NOW, trust_language=trust))
    if item not in ("skip", "bad"):
        check_item(item)
        assert mastodon.status_id(item.id.rsplit(":", 1)[1])


@given(
    st.one_of(st.sampled_from(["update", "delete", "status.update", "notification"]), strings),
    st.one_of(
        strings, mutated(STATUSES, MASTODON_FOCUS).filter(_dumpable).map(lambda s: orjson.dumps(s).decode())
    ),
)
def test_mastodon_streaming_events(event, data):
    item = outcome(lambda: mastodon.event_to_item(event, data, host="h", now_ms=NOW))
    if item not in ("skip", "bad"):
        check_item(item)


@given(json_values.filter(_dumpable).map(lambda v: orjson.dumps(v).decode()) | strings)
def test_mastodon_websocket_frames(frame):
    item = outcome(lambda: mastodon.ws_frame_to_item(frame, host="h", now_ms=NOW))
    if item not in ("skip", "bad"):
        check_item(item)


@given(values)
def test_mastodon_streaming_base_is_a_url_or_none(instance):
    got = mastodon.streaming_base(instance)
    assert got is None or (isinstance(got, str) and "://" in got)


# ---- Reddit ----------------------------------------------------------------------------------
@given(mutated(CHILDREN, REDDIT_FOCUS))
def test_reddit_mapping(child):
    item = outcome(lambda: reddit.to_post(child, now_ms=NOW))
    if item not in ("skip", "bad"):
        check_item(item)
        assert item.id.startswith(("reddit:t1_", "reddit:t3_"))


@given(mutated([LISTING]))
def test_reddit_listing_children(listing):
    try:
        children = reddit.listing_children(listing)
    except DecodeError as exc:
        check_error(exc)
        return
    assert isinstance(children, list)
    for child in children[:5]:
        name = reddit.fullname(child)
        assert name is None or isinstance(name, str)


@given(st.dictionaries(st.sampled_from(["x-ratelimit-remaining", "x-ratelimit-reset", "x-other"]), strings))
def test_reddit_pacing_never_sleeps_forever(headers):
    conn = REDDIT
    conn.pace(headers)
    assert 0 <= conn.gap_s <= 3600  # also not NaN


@given(strings)
def test_retry_after_is_none_or_a_wait(value):
    got = retry_after_s(value, now_s=1_800_000_000)
    assert got is None or got >= 0  # NaN fails this
    assert Backoff(1, 60).delay_for(got) <= 600


# ---- RSS / Atom through feedparser -----------------------------------------------------------
_ENTITY_TRICKS = [
    "",  # none
    # billion laughs: each level ten of the one before
    '<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    + "]>",
    '<!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>',  # external entity
    '<!DOCTYPE rss [<!ENTITY % p SYSTEM "http://127.0.0.1:1/evil.dtd"> %p;]>',  # external DTD
    '<!DOCTYPE rss [<!ENTITY big "' + "B" * 50_000 + '">]>',  # one huge expansion
    '<!DOCTYPE rss SYSTEM "http://127.0.0.1:1/x.dtd">',
]
_REFS = ["&i;", "&x;", "&big;", "&amp;", "&#x110000;", "&#0;", "&#xD800;", "&unknown;", ""]
_PIECES = [
    "<![CDATA[",
    "]]>",
    "<![",
    "<![CDATA[<p>x</p>]]>",
    "<![CDATA[<![foo]]>",
    "<a" * 50,
    "&lt;p&gt;hi&lt;/p&gt;",
    "<p>",
    "</p>",
    "<script>x</script>",
    "submitted by /u/x [link] [comments]",
    "<!-- SC_ON -->",
    "\u00b2",
    "\x00",
    "x" * 10_000,
]
_piece_text = st.lists(
    st.one_of(st.sampled_from(_PIECES), st.sampled_from(_REFS), st.text(max_size=12)), max_size=6
).map("".join)


@st.composite
def feeds(draw: st.DrawFn) -> bytes:
    dtd = draw(st.sampled_from(_ENTITY_TRICKS))
    items = []
    for _ in range(draw(st.integers(0, 3))):
        title, body, guid = draw(_piece_text), draw(_piece_text), draw(_piece_text)
        date = draw(
            st.sampled_from(
                [
                    "Mon, 26 Jun 2017 15:03:27 GMT",
                    "yesterday",
                    "",
                    "Sun, 31 Dec 99999 23:59:59 GMT",
                    "Thu, 01 Jan 1970 00:00:00 GMT",
                ]
            )
        )
        items.append(
            f"<item><title>{title}</title><description>{body}</description><guid>{guid}</guid>"
            f"<pubDate>{date}</pubDate><author>{draw(_piece_text)}</author></item>"
        )
    if draw(st.booleans()):
        doc = (
            f'<?xml version="1.0"?>{dtd}<rss version="2.0"><channel><title>t</title>'
            f"<language>{draw(_piece_text)}</language>{''.join(items)}</channel></rss>"
        )
    else:
        entries = "".join(
            i.replace("<item>", "<entry>").replace("</item>", "</entry>").replace("description>", "content>")
            for i in items
        )
        doc = f'<?xml version="1.0"?>{dtd}<feed xmlns="http://www.w3.org/2005/Atom">{entries}</feed>'
    raw = doc.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=20))
    return raw


@settings(max_examples=40)  # feedparser takes a few ms a document
@given(feeds())
def test_rss_feeds_with_entity_tricks(document):
    try:
        entries, lang = rss.parse_feed(document)
    except DecodeError as exc:
        check_error(exc)
        return
    assert isinstance(lang, str)
    for e in entries:
        got = outcome(lambda e=e: rss.to_post(e, feed_lang=lang, now_ms=NOW))
        if got in ("skip", "bad"):
            continue
        key, post = got
        assert isinstance(key, str)
        check_item(post)
        assert "root:" not in post.text  # no external entity was read
        assert len(post.text) < 200_000  # no entity was expanded (billion laughs would be 10^9)


@given(mutated([_RSS_ENTRY], _RSS_FOCUS))
def test_rss_entry_mapping_of_any_shape(entry):
    got = outcome(lambda: rss.to_post(entry, now_ms=NOW))
    if got not in ("skip", "bad"):
        check_item(got[1])


# ---- markup and SSE framing ------------------------------------------------------------------
_html = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "<",
                ">",
                "'",
                '"',
                "=",
                "/",
                "!",
                "-",
                "?",
                "<!--",
                "-->",
                "<![",
                "]]>",
                "<a",
                "<p>",
                "</p>",
                "<br/>",
                "<script>",
                "</script>",
                "&",
                "&#",
                ";",
                "&amp;",
                " ",
                "\n",
            ]
        ),
        st.text(max_size=5),
    ),
    max_size=40,
).map("".join)


@given(_html)
def test_html_to_text_never_raises(fragment):
    text = html_to_text(fragment)
    assert isinstance(text, str) and len(text) <= 2 * MAX_HTML_CHARS
    assert html_to_text(fragment, unescape_twice=True) is not None


@given(st.text(max_size=200), st.lists(st.integers(1, 50), max_size=20), st.integers(1, 30))
def test_sse_lines_do_not_depend_on_chunking_and_stay_bounded(text, cuts, limit):
    chunks, i = [], 0
    for c in cuts:
        chunks.append(text[i : i + c])
        i += c
    chunks.append(text[i:])
    whole = list(split_lines([text], limit))
    assert list(split_lines(chunks, limit)) == whole
    assert all(len(ln) <= limit + 1 for ln in whole)
    events = SSEParser(max_line_chars=limit, max_event_chars=limit).feed_text(text)
    assert all(len(e.data) <= limit and (not e.too_long or e.data == "") for e in events)


# ---- push: items, verification, the request handler -----------------------------------------
RAW = b"k" * 32
SECRET = "whsec_" + base64.b64encode(RAW).decode()


def _signed(body: bytes, msg_id: str = "msg_1", ts: str | None = None) -> dict[str, str]:
    ts = str(int(time.time())) if ts is None else ts
    mac = hmac.new(RAW, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


_ITEM = _PUSH_ITEM


@given(mutated([_ITEM, {"kind": "delete", "id": "a1"}], _PUSH_FOCUS))
def test_push_item_parsing(obj):
    item = outcome(lambda: push.to_item(obj, now_ms=NOW))
    if item not in ("skip", "bad"):
        check_item(item)
        assert item.id.startswith("push:")


_header_names = st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "content-type"])
_header_values = st.one_of(
    strings,
    st.sampled_from(["v1,", "v1," + "A" * 44, "v1a,x", "\u00b2\u00b3", "1" * 5000, str(int(time.time()))]),
)


@given(st.dictionaries(_header_names, _header_values), st.binary(max_size=60))
def test_push_verify_accepts_or_refuses(headers, body):
    try:
        got = push.verify(push.secret_key(SECRET), headers, body, now_s=time.time())
    except push.SignatureError as exc:
        assert exc.status in (400, 401) and MARK not in exc.reason
        return
    assert got == headers["webhook-id"]


@pytest.fixture(scope="module")
def push_conn() -> Iterator[push.PushConnector]:
    conn = push.PushConnector(
        ListSink(),
        MemoryState(),
        secret=Secret(SECRET),
        port=0,  # type: ignore[arg-type]
        max_body_bytes=200_000,
        max_items=50,
    )
    t = threading.Thread(target=conn.run, daemon=True)
    t.start()
    yield conn
    conn.stop()
    t.join(10)


_bodies = st.one_of(
    st.binary(max_size=80),
    json_values.filter(_dumpable).map(orjson.dumps),
    st.lists(mutated([_ITEM]).filter(_dumpable), max_size=60).map(orjson.dumps),
    st.integers(1000, 1020).map(lambda n: b"[" * n + b"]" * n),
)


@given(_bodies, st.booleans(), st.dictionaries(_header_names, _header_values))
def test_push_handler_answers_every_request(push_conn, log_lines, body, signed, headers):
    """Through `PushConnector.handle`: signed or not, any body gets a status and a JSON answer."""
    msg_id = f"msg_{hashlib.sha1(body, usedforsecurity=False).hexdigest()}_{signed}"
    before = len(log_lines.lines)
    status, doc = push_conn.handle(_signed(body, msg_id) if signed else headers, body)
    assert status in (200, 202, 400, 401, 413)
    assert isinstance(orjson.dumps(doc), bytes)
    if status == 202:
        assert doc["accepted"] + len(doc["rejected"]) == len(push.batch_of(body, max_items=10**6))
    assert not any(MARK in ln for ln in log_lines.lines[before:])


_raw_header = st.one_of(
    st.binary(max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b),
    st.sampled_from([b"\xb2", b"1" * 5000, b"-1", b"chunked", b"0x10", b" 5", b"5, 6", b"\xff\xfe"]),
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    b"webhook-id",
                    b"webhook-timestamp",
                    b"webhook-signature",
                    b"Content-Length",
                    b"Transfer-Encoding",
                    b"Content-Type",
                    b"X-Other",
                ]
            ),
            _raw_header,
        ),
        max_size=6,
    ),
    st.binary(max_size=40),
)
def test_push_server_answers_hostile_bytes_with_a_4xx(push_conn, headers, body):
    """Through a real loopback server: headers httpx would refuse to send, any body."""
    req = b"POST /ingest HTTP/1.1\r\nHost: x\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    req += b"\r\n" + body
    with socket.create_connection(("127.0.0.1", push_conn.port), timeout=10) as s:
        s.sendall(req)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), answer[:60]
