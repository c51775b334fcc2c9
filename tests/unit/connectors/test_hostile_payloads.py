"""Regressions: one payload written by a stranger never crashes, stalls or loops a connector.

Each case is a payload that crashed a connector before (security review F3, F12, F16): it now
maps to a Post, a Skip or a `DecodeError` naming the field, the connector's loop counts it and
goes past it, and no log line carries the payload.
"""

from __future__ import annotations

import ast
import json
import logging
import time
from pathlib import Path

import orjson
import pytest

import connectors
from connectors import bluesky, mastodon, reddit, replay, rss
from connectors.base import Skip
from connectors.credentials import Secret
from connectors.http import BodyTooLarge, HttpSource
from connectors.sse import SSEParser, split_lines
from monitor.errors import DecodeError
from monitor.messages import Post
from tests.recorded import jsonl_lines, path

from .hostile import MARK, ListSink, MemoryState, deep_list

NOW = 1_800_000_000_000
T_US = 1_783_175_888_090_631


def _post_event(record: dict, *, time_us: int = T_US, rkey: str = "3mptbyoeyc22k") -> dict:
    return {
        "did": "did:plc:abc",
        "time_us": time_us,
        "kind": "commit",
        "commit": {"operation": "create", "collection": "app.bsky.feed.post", "rkey": rkey, "record": record},
    }


def _status(**over) -> dict:
    status = json.loads(path("mastodon/docs_status_entity.json").read_text())
    status.update(over)
    return status


# ---- F3: Bluesky ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "record",
    [
        {"text": "hi", "tags": 5},
        {"text": "hi", "tags": "#abc"},
        {"text": "hi", "facets": 5},
        {"text": "hi", "facets": "x"},
        {"text": "hi", "facets": [5, None, "x", {"features": 7}, {"features": "x"}]},
        {"text": "hi", "facets": [{"features": [5, {"$type": "app.bsky.richtext.facet#tag", "tag": 5}]}]},
        {"text": "hi", "embed": "x", "reply": 5, "langs": "en"},
    ],
)
def test_bluesky_fields_that_are_not_lists_are_ignored_not_iterated(record):
    p = bluesky.to_post(_post_event(record), now_ms=NOW)
    assert isinstance(p, Post) and p.text == "hi" and p.hashtags == () and p.lang == ""


def test_bluesky_tags_still_read_from_lists():
    p = bluesky.to_post(
        _post_event(
            {
                "text": "hi",
                "tags": ["#Mood", 5],
                "facets": [{"features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "Calm"}]}],
            }
        ),
        now_ms=NOW,
    )
    assert p.hashtags == ("calm", "mood")


def test_bluesky_unexpected_exception_becomes_a_decode_error(monkeypatch):
    def broken(record):
        raise RecursionError("maximum recursion depth exceeded while getting the repr of " + MARK)

    monkeypatch.setattr(bluesky, "features", broken)
    with pytest.raises(DecodeError) as ei:
        bluesky.to_post(_post_event({"text": "hi"}), now_ms=NOW)
    assert (ei.value.field, ei.value.reason) == ("event", "internal_error:RecursionError")
    assert MARK not in str(ei.value)


@pytest.mark.parametrize("time_us", [5, 2**63 - 1, -1, True, 1.5e15])
def test_bluesky_time_us_must_give_a_valid_post_time(time_us):
    with pytest.raises(DecodeError, match="time_us"):
        bluesky.to_post(_post_event({"text": "hi"}, time_us=time_us), now_ms=NOW)


def _jetstream() -> bluesky.JetstreamConnector:
    return bluesky.JetstreamConnector(ListSink(), MemoryState(), url="ws://127.0.0.1:1/subscribe")


def test_bluesky_bad_frames_are_counted_logged_without_content_and_passed(caplog, monkeypatch):
    conn = _jetstream()
    batch: list = []
    secret_text = f"my private words {MARK} did:plc:secret"
    with caplog.at_level(logging.DEBUG, logger="connectors"):
        # not JSON; a record whose text is not a string; one that hits an internal error
        assert conn.handle("{" + secret_text, batch) == 0
        bad = _post_event({"text": [secret_text]}, time_us=T_US + 1)
        assert conn.handle(orjson.dumps(bad).decode(), batch) == T_US + 1  # the cursor moves past it
        monkeypatch.setattr(bluesky, "features", lambda r: 1 / 0)
        poison = _post_event({"text": secret_text}, time_us=T_US + 2)
        assert conn.handle(orjson.dumps(poison).decode(), batch) == T_US + 2
        deep = f'{{"kind":"commit","did":"d","time_us":{T_US + 3},"commit":{"[" * 1020 + "]" * 1020}}}'
        assert conn.handle(deep, batch) == T_US + 3
    assert batch == []
    assert conn.stats.by_reason == {
        "malformed_json": 1,
        "bad_record.text": 1,
        "bad_event": 1,
        "bad_event.commit": 1,
    }
    assert len(caplog.records) == 4
    assert "internal_error:ZeroDivisionError" in caplog.text
    assert MARK not in caplog.text and "private" not in caplog.text and "secret" not in caplog.text
    assert "size=" in caplog.text


def test_bluesky_a_restart_after_a_poison_record_does_not_meet_it_again(monkeypatch):
    """The checkpoint is past the bad record: a restart asks for a cursor after it (minus the
    rewind, whose overlap the dedup drops), and the run goes on instead of crashing."""
    conn = _jetstream()
    batch: list = []
    good = _post_event({"text": "fine"}, time_us=T_US)
    poison = _post_event(
        {"text": "hi", "tags": 5, "facets": "x", "langs": 5, "embed": 7}, time_us=T_US + 10, rkey="r2"
    )
    bad = _post_event({"text": 5}, time_us=T_US + 20, rkey="r3")
    top = T_US
    for ev in (good, poison, bad):
        top = max(top, conn.handle(orjson.dumps(ev).decode(), batch))
    conn.flush_batch(batch, top)
    assert conn.state.cursor() == str(T_US + 20)
    assert [item.id.rsplit("/", 1)[1] for _, item in batch] == ["3mptbyoeyc22k", "r2"]
    assert "cursor=" in conn.connect_url() and str(T_US + 20 - 5_000_000) in conn.connect_url()


def test_bluesky_recorded_corpus_still_maps_the_same():
    posts = [
        p
        for ln in jsonl_lines("jetstream/expected_v1.jsonl")
        if isinstance(p := _try(lambda ln=ln: bluesky.to_post(orjson.loads(ln), now_ms=NOW)), Post)
    ]
    assert len(posts) == 16


def _try(f):
    try:
        return f()
    except (Skip, DecodeError):
        return None


# ---- F3: Mastodon -----------------------------------------------------------------------------
@pytest.mark.parametrize("tags", [5, "abc", {"name": "x"}, [5, None, {"name": 5}], True])
def test_mastodon_tags_of_any_type(tags):
    p = mastodon.to_post(_status(tags=tags), host="h", now_ms=NOW)
    assert p.hashtags == ()


@pytest.mark.parametrize("content", ["<![foo", "<p>a <![ b</p>", "<![CDATA[x]]> y", "<!", "<![if !IE]>z"])
def test_mastodon_content_with_marked_sections(content):
    p = mastodon.to_post(_status(content=content), host="h", now_ms=NOW)
    assert isinstance(p, Post)


@pytest.mark.parametrize("sid", ["\u00b2", "1" * 5000, "١٢٣", "", "1 2", "12a"])
def test_mastodon_status_ids_are_ascii_digits_that_int_can_read(sid):
    with pytest.raises(DecodeError) as ei:
        mastodon.to_post(_status(id=sid), host="h", now_ms=NOW)
    assert ei.value.field == "status.id"
    with pytest.raises(DecodeError):
        mastodon.event_to_item("delete", sid, host="h", now_ms=NOW)


def test_mastodon_values_whose_repr_would_recurse():
    deep = deep_list()
    p = mastodon.to_post(
        _status(account={"url": deep, "acct": deep}, url=deep, language=deep),
        host="h",
        now_ms=NOW,
        trust_language=True,
    )
    assert p.author_id == "" and p.url != "" and p.lang == ""  # url falls back to uri
    with pytest.raises(DecodeError) as ei:
        mastodon.to_post(_status(created_at=deep), host="h", now_ms=NOW)
    assert ei.value.field == "status.created_at"
    nest = "[" * 1000 + "]" * 1000
    frame = f'{{"error": {nest}, "status": {nest}}}'
    with pytest.raises(DecodeError) as ei:
        mastodon.ws_frame_to_item(frame, host="h", now_ms=NOW)
    assert str(ei.value) == "frame.error: server error ?"


def test_mastodon_boost_of_a_boost_of_a_boost():
    nested: dict = _status()
    for _ in range(990):
        nested = {"id": "1", "visibility": "public", "content": "x", "reblog": nested}
    with pytest.raises(DecodeError, match="boost of a boost"):
        mastodon.to_post(nested, host="h", now_ms=NOW)


def test_mastodon_errors_do_not_quote_the_payload():
    for event, data in [
        ("update", f'{{"id":"1","visibility":"public","content":"x","created_at":"{MARK}"}}'),
        ("delete", MARK),
        ("update", "{" + MARK),
    ]:
        with pytest.raises(DecodeError) as ei:
            mastodon.event_to_item(event, data, host="h", now_ms=NOW)
        assert MARK not in str(ei.value)
    with pytest.raises(Skip) as si:
        mastodon.event_to_item("x y\n" + MARK, "", host="h", now_ms=NOW)
    assert si.value.reason == "event_other"


def test_mastodon_created_before_1970_is_refused():
    with pytest.raises(DecodeError, match="1970"):
        mastodon.to_post(_status(created_at="0001-01-01T00:00:00+00:00"), host="h", now_ms=NOW)


# ---- F3: Reddit -------------------------------------------------------------------------------
def _child(**data) -> dict:
    base = {"name": "t1_abc", "created_utc": 1_700_000_000.0, "body": "so good", "parent_id": "t3_x"}
    base.update(data)
    return {"kind": "t1", "data": base}


@pytest.mark.parametrize("created", [1e308, float("inf"), float("nan"), 2**64, -5, 0, True, "1700000000"])
def test_reddit_created_utc_out_of_range(created):
    with pytest.raises(DecodeError) as ei:
        reddit.to_post(_child(created_utc=created), now_ms=NOW)
    assert ei.value.field == "child.data.created_utc"


def test_reddit_values_whose_str_would_recurse():
    deep = deep_list()
    p = reddit.to_post(_child(author=deep, author_fullname=deep, parent_id=deep), now_ms=NOW)
    assert p.author_id == "" and p.is_reply is False
    with pytest.raises(DecodeError) as ei:
        reddit.to_post({"kind": deep, "data": _child()["data"]}, now_ms=NOW)
    assert str(ei.value) == "child.kind: expected t1 or t3, got a list"


@pytest.mark.parametrize(
    "remaining, reset, gap",
    [
        ("nan", "60", 0.0),
        ("10", "nan", 0.0),
        ("10", "1e308", 360.0),
        ("0", "inf", 0.0),
        ("\u00b2", "5", 0.0),
        ("-3", "5", 0.0),
        ("0", "1e9", 3600.0),
        ("20", "60", 3.0),
    ],
)
def test_reddit_pacing_headers_are_range_checked(remaining, reset, gap):
    conn = reddit.RedditConnector(
        ListSink(), MemoryState(), client_id=Secret("i"), client_secret=Secret("s"), subreddits=["x"]
    )
    conn.pace({"x-ratelimit-remaining": remaining, "x-ratelimit-reset": reset})
    assert conn.gap_s == gap


# ---- RSS, markup, SSE, HTTP bodies ---------------------------------------------------------------
def test_no_connector_module_imports_re():
    """Regexes on untrusted text live in monitor/patterns.py (linear by construction or proof)."""
    for f in Path(connectors.__file__).parent.glob("*.py"):
        tree = ast.parse(f.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not names & {"re", "regex"}, f.name


def test_rss_reddit_tail_is_cut_with_the_shared_pattern():
    entry = {
        "title": "t",
        "summary": "<p>body</p> submitted by /u/x <a>[link]</a> <a>[comments]</a>",
        "summary_detail": {"type": "text/html"},
        "id": "i",
    }
    assert rss.to_post(entry, now_ms=NOW)[1].text == "t\n\nbody"


def test_rss_feed_over_the_cap_is_refused_before_parsing(monkeypatch):
    monkeypatch.setattr(rss, "MAX_FEED_BYTES", 100)
    with pytest.raises(DecodeError, match="over 100 bytes"):
        rss.parse_feed(b"<rss>" + b" " * 200 + b"</rss>")


def test_rss_entity_tricks_are_not_expanded():
    lol = (
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
        + "".join(
            f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + '<!ENTITY x SYSTEM "file:///etc/passwd">]><rss version="2.0"><channel><item><title>&i; &x;</title>'
        "<description>d</description></item></channel></rss>"
    )
    entries, _ = rss.parse_feed(lol.encode())
    text = rss.to_post(entries[0], now_ms=NOW)[1].text
    assert len(text) < 100 and "root:" not in text  # expanded, &i; alone is 10^9 characters


def test_sse_over_long_line_and_event_are_dropped_and_reported():
    limit = 100
    text = "event: update\ndata: " + "x" * 500 + "\n\nevent: update\ndata: ok\n\n"
    lines = list(split_lines(["event: update\ndata: ", "x" * 500, "\n\nevent: update\ndata: ok\n\n"], limit))
    assert max(len(ln) for ln in lines) == limit + 1
    p = SSEParser(max_line_chars=limit, max_event_chars=limit)
    events = [e for ln in lines if (e := p.feed_line(ln)) is not None]
    assert [(e.event, e.too_long, e.data) for e in events] == [("update", True, ""), ("update", False, "ok")]
    many = "".join(f"data: {'y' * 60}\n" for _ in range(3)) + "\n"
    (ev,) = SSEParser(max_line_chars=limit, max_event_chars=limit).feed_text(many)
    assert ev.too_long and ev.size == 180
    assert SSEParser().feed_text(text)[0].data == "x" * 500


def test_sse_lines_end_at_crlf_lf_or_cr_across_chunks():
    assert list(split_lines(["a\r", "\nb\rc", "\n", "\r"])) == ["a", "b", "c", ""]


@pytest.fixture
def fake_http():
    from tests.integration.fake_http import Answer, FakeHTTP

    def route(req):
        if req.path == "/big":
            return Answer(body=b"x" * 5000)
        if req.path == "/chunked":
            return Answer(chunks=[b"y" * 1000] * 6)
        if req.path == "/stream":
            return Answer(chunks=[b"data: " + b"z" * 3000 + b"\n\n", b"data: ok\n\n"])
        return Answer(body=b"small")

    with FakeHTTP(route) as fake:
        yield fake


def test_http_bodies_over_the_limit_are_refused(fake_http):
    http = HttpSource(max_body_bytes=4000)
    assert http.get(fake_http.url + "/small").body == b"small"
    for p in ("/big", "/chunked"):  # declared too long; streamed past the limit
        with pytest.raises(BodyTooLarge) as ei:
            http.get(fake_http.url + p)
        assert isinstance(ei.value, DecodeError) and ei.value.limit == 4000
    with http.lines(fake_http.url + "/stream", max_line_chars=100) as (status, lines):
        got = list(lines)
    assert status == 200 and [len(ln) for ln in got] == [101, 0, 8, 0]
    http.close()


def test_rss_poll_counts_a_feed_over_the_limit_and_goes_on(fake_http):
    conn = rss.FeedConnector(
        ListSink(),
        MemoryState(),
        feeds=[fake_http.url + "/big?token=s3cret"],
        http=HttpSource(max_body_bytes=4000),
    )
    conn.poll(conn.feeds[0])
    assert conn.stats.by_reason == {"body_too_large": 1}


def test_rss_poll_logs_the_feed_url_without_its_query(fake_http, caplog):
    conn = rss.FeedConnector(ListSink(), MemoryState(), feeds=[fake_http.url + "/small?token=s3cret"])
    with caplog.at_level(logging.WARNING, logger="connectors"):
        conn.poll(conn.feeds[0])
    assert (
        conn.stats.by_reason == {"not_a_feed": 1} and "s3cret" not in caplog.text and "/small" in caplog.text
    )


# ---- the loops: one payload is skipped, counted and passed ----------------------------------------
def test_live_deliver_counts_an_item_it_cannot_encode():
    conn = _jetstream()
    bad = Post(id="bluesky:x", source="bluesky", text="a\ud800b", created_ms=1, ingested_ms=1)
    good = Post(id="bluesky:y", source="bluesky", text="fine", created_ms=1, ingested_ms=1)
    assert conn.deliver([("x", bad), ("y", good)], "7") == 1
    assert conn.stats.by_reason == {"bad_post": 1} and conn.duplicates == 0
    assert conn.state.cursor() == "7" and conn.state.seen == {"x", "y"}


def test_mastodon_item_loop_skips_any_exception(monkeypatch):
    conn = mastodon.MastodonConnector(ListSink(), MemoryState(), base_url="https://h", stream="public")
    monkeypatch.setattr(mastodon, "html_to_text", lambda s: 1 / 0)
    item = conn._item(lambda: mastodon.to_post(_status(), host="h"), 10)
    assert item is None and conn.stats.by_reason == {"bad_status": 1}
    assert conn._item(lambda: [][1], 3) is None  # even a mapping that is not guarded
    assert conn.stats.by_reason == {"bad_status": 1, "internal_error": 1}


def test_reddit_poll_loop_goes_on_past_a_bad_child(monkeypatch):
    conn = reddit.RedditConnector(
        ListSink(), MemoryState(), client_id=Secret("i"), client_secret=Secret("s"), subreddits=["x"]
    )
    listing = {
        "kind": "Listing",
        "data": {
            "children": [
                _child(name="t1_a"),
                _child(name="t1_b", created_utc=1e308),
                _child(name="t1_c", author=[[["x"]]]),
            ]
        },
    }

    class Http:
        def get(self, url, **kw):
            from connectors.http import Reply

            return Reply(200, {}, orjson.dumps(listing))

    conn.http = Http()  # type: ignore[assignment]
    conn._token, conn._token_until = "tok", time.monotonic() + 60
    conn.poll("x", "new")
    assert [k for k, _ in conn.sink.sent] == [b"reddit:t1_c", b"reddit:t1_a"]
    assert conn.stats.by_reason == {"bad_child.data.created_utc": 1}
    assert conn.state.meta("before:x/new") == "t1_a"


def test_replay_line_of_any_shape_is_forwarded_not_fatal(tmp_path, monkeypatch):
    def boom(*a, **kw):
        raise RecursionError("deep")

    monkeypatch.setattr(replay, "decode", boom)
    key, value = replay.normalise_line(b'{"id":"a","text":"x"}', now_ms=NOW, force_now=False)
    assert key is None and value == b'{"id":"a","text":"x"}'
    f = tmp_path / "in.jsonl"
    f.write_bytes(b'{"id":"a","text":"x"}\n' + b"[" * 1020 + b"]" * 1020 + b"\n")
    sink = ListSink()
    replay.ReplayConnector(sink, f).run()
    assert [k for k, _ in sink.sent] == [b"in.jsonl:1", b"in.jsonl:2"]
