"""Mastodon Status / streaming event -> Post / Deletion, over the recorded docs and server bodies."""

from __future__ import annotations

import json
from collections import Counter

import orjson
import pytest

from connectors.base import Skip
from connectors.mastodon import event_to_item, to_post, ws_frame_to_item
from connectors.sse import SSEParser
from monitor.errors import DecodeError
from monitor.messages import Deletion, Post
from monitor.query import compile_query
from tests.recorded import jsonl_lines, path, sse_body

NOW = 1_800_000_000_000
HOST = "mastodon.social"


def test_status_entity_html_becomes_plain_text():
    status = json.loads(path("mastodon/docs_status_entity.json").read_text())
    p = to_post(status, host=HOST, now_ms=NOW)
    assert p.id == "mastodon:mastodon.social:103270115826048975"
    # &quot; decoded, <p> as lines, the invisible/ellipsis spans joined back into the full URL
    assert p.text.startswith('"I lost my inheritance with one wrong digit on my sort code"\n')
    assert p.text.endswith(
        "https://www.theguardian.com/money/2019/dec/07/"
        "i-lost-my-193000-inheritance-with-one-wrong-digit-on-my-sort-code"
    )
    assert "<" not in p.text and "&quot;" not in p.text
    assert p.created_ms == 1575776913901
    assert p.url == "https://mastodon.social/@Gargron/103270115826048975"
    assert p.lang == ""  # client-set language is not trusted by default
    assert to_post(status, host=HOST, now_ms=NOW, trust_language=True).lang == "en"


def test_docs_sse_events():
    kinds: Counter[str] = Counter()
    posts = []
    for line in jsonl_lines("mastodon/docs_streaming_sse_events.jsonl"):
        e = json.loads(line)
        try:
            item = event_to_item(e["event"], e["data"], host=HOST, now_ms=NOW)
        except Skip as exc:
            kinds["skip:" + exc.reason] += 1
            continue
        kinds[type(item).__name__] += 1
        if isinstance(item, Post):
            posts.append(item)
    # 7 updates, 7 edits, 6 deletes; notifications, announcements, conversation, filters ignored
    assert kinds == {"Post": 7, "skip:edit": 7, "Deletion": 6, "NoneType": 7}
    tagged = [p for p in posts if p.hashtags]
    assert tagged and all(p.hashtags == ("test",) and p.text == "#test" for p in tagged)
    assert compile_query("#test").matches(tagged[0])
    mention = next(p for p in posts if p.id.endswith(":108914327388663283"))
    assert mention.text.startswith("@disarray") and "<span" not in mention.text


def test_delete_keeps_an_18_digit_id_exact():
    d = event_to_item("delete", "107214471804101576", host=HOST, now_ms=NOW)
    assert d == Deletion(id="mastodon:mastodon.social:107214471804101576", source="mastodon", deleted_ms=NOW)


def test_recorded_server_sse_body():
    body = sse_body("mastodon/mastodonpy_test_stream_user_direct.yaml", "/api/v1/streaming/user")
    events = SSEParser().feed_text(body)
    assert [e.event for e in events] == [
        "update",
        "notification",
        "update",
        "notification",
        "status.update",
        "delete",
    ]
    items = []
    for e in events:
        try:
            items.append(event_to_item(e.event, e.data, host="localhost:3000", now_ms=NOW))
        except Skip:
            items.append("skip")
    posts = [i for i in items if isinstance(i, Post)]
    assert [p.text for p in posts][0] == "only real cars respond."
    assert isinstance(items[-1], Deletion) and items[-1].id == "mastodon:localhost:3000:117024236332527350"
    assert posts[0].id == items[-1].id  # a delete finds the post it deletes


def test_websocket_frames_decode_the_payload_twice():
    out = []
    for line in jsonl_lines("mastodon/docs_streaming_ws_frames.jsonl"):
        try:
            out.append(ws_frame_to_item(line, host=HOST, now_ms=NOW))
        except DecodeError as exc:
            out.append(exc.field)
    assert isinstance(out[0], Post) and out[0].is_reply
    assert isinstance(out[1], Deletion)
    assert out[2] is None  # filters_changed has no payload
    assert out[3] == "frame.error"  # {"error":"Unknown stream type","status":400}


def test_boost_counts_as_the_boosted_status_and_private_is_skipped():
    status = json.loads(path("mastodon/docs_status_entity.json").read_text())
    boost = {"id": "1", "visibility": "public", "content": "", "reblog": status}
    assert to_post(boost, host=HOST, now_ms=NOW).id.endswith(":103270115826048975")
    with pytest.raises(Skip, match="not_public"):
        to_post({**status, "visibility": "direct"}, host=HOST, now_ms=NOW)


@pytest.mark.parametrize(
    "event, data, field",
    [
        ("update", "{not json", "data"),
        ("update", "[]", "status"),
        ("update", '{"id": 5, "visibility": "public", "content": "x"}', "status.id"),
        ("update", '{"id": "5", "visibility": "public"}', "status.content"),
        (
            "update",
            '{"id": "5", "visibility": "public", "content": "x", "created_at": "yesterday"}',
            "status.created_at",
        ),
        ("delete", "undefined", "data"),
    ],
)
def test_malformed_events_name_the_field(event, data, field):
    with pytest.raises(DecodeError) as ei:
        event_to_item(event, data, host=HOST, now_ms=NOW)
    assert ei.value.field == field


def test_unknown_event_is_counted_not_dropped():
    with pytest.raises(Skip, match="event_brand.new"):
        event_to_item("brand.new", orjson.dumps({}).decode(), host=HOST, now_ms=NOW)
