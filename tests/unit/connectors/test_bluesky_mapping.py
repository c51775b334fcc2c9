"""Jetstream event -> Post / Deletion / None, over the recorded v1 corpus."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from connectors.base import Skip
from connectors.bluesky import dedup_key, to_post
from monitor.errors import DecodeError
from monitor.messages import Deletion, Post, decode, encode_post
from monitor.query import compile_query
from tests.recorded import jsonl_lines

NOW = 1_783_175_900_000
T = 1_783_175_888_000_000  # a Jetstream time_us


def _map_all(name: str) -> tuple[list[Post], list[Deletion], Counter[str]]:
    posts, dels, skipped = [], [], Counter()
    for line in jsonl_lines(name):
        try:
            item = to_post(orjson.loads(line), now_ms=NOW)
        except Skip as exc:
            skipped[exc.reason] += 1
            continue
        if isinstance(item, Post):
            posts.append(item)
        elif isinstance(item, Deletion):
            dels.append(item)
    return posts, dels, skipped


def test_corpus_creates_become_posts_and_the_delete_a_deletion():
    posts, dels, skipped = _map_all("jetstream/expected_v1.jsonl")
    # 17 post creates, one of them link-only with text "" (skipped, counted); 1 post delete
    assert len(posts) == 16
    assert skipped == {"no_text": 1}
    assert [d.id for d in dels] == [
        "bluesky:at://did:plc:4smmjsqf6l5jkzczvw6vsrqc/app.bsky.feed.post/3mpt73z3ejc2p"
    ]
    assert dels[0].deleted_ms > 0
    assert len({p.id for p in posts}) == 16
    assert sum(p.is_reply for p in posts) == 7  # 8 replies, one of them the link-only one
    assert all(p.created_ms // 1000 == 1783175888 for p in posts)  # time_us, not createdAt
    # each survives the wire encoding the worker decodes
    assert all(decode(encode_post(p)) == p for p in posts)


def test_langs_hashtags_and_flags():
    posts, _, _ = _map_all("jetstream/expected_v1.jsonl")
    by_rkey = {p.id.rsplit("/", 1)[1]: p for p in posts}
    assert by_rkey["3mptbypt22l26"].lang == ""  # the post without a langs key
    assert by_rkey["3mptbyoigog2b"].lang == "en-US"
    assert by_rkey["3mptbyqhi7s2f"].lang == "ja"
    de = by_rkey["3mptbypfywk2v"]
    assert de.hashtags == ("howtotellaitoshutup", "indierebellion")
    assert by_rkey["3mptbyo7tas2u"].hashtags == ("talesatwonderworld", "balanwonderworldoc")
    assert de.url.startswith("https://bsky.app/profile/did:plc:tn3hni2jpphs")
    assert not any(p.is_quote for p in posts)
    # facet hashtags are query atoms
    assert compile_query("#IndieRebellion lang:de").matches(de)


def test_record_tags_outside_the_text_are_hashtags_and_quotes_are_flagged():
    ev = {
        "did": "did:plc:x",
        "time_us": 1_700_000_000_000_000,
        "kind": "commit",
        "commit": {
            "rev": "r",
            "operation": "create",
            "collection": "app.bsky.feed.post",
            "rkey": "k1",
            "record": {
                "text": "so good",
                "tags": ["PhoneX"],
                "embed": {"$type": "app.bsky.embed.record", "record": {}},
            },
        },
    }
    p = to_post(ev, now_ms=NOW)
    assert isinstance(p, Post) and p.hashtags == ("phonex",) and p.is_quote and not p.is_reply
    assert compile_query("#phonex").matches(p)


def test_golden_non_post_events_map_to_none():
    kinds = Counter()
    for line in jsonl_lines("jetstream/golden_v1.jsonl"):
        ev = orjson.loads(line)
        try:
            item = to_post(ev, now_ms=NOW)
        except Skip:
            item = "skip"
        kinds[type(item).__name__ if item is not None else "none"] += 1
    assert kinds == {"none": 9, "Post": 1}


def test_dedup_key_is_did_and_rkey():
    posts, dels, _ = _map_all("jetstream/expected_v1.jsonl")
    assert dedup_key(posts[0]).startswith("did:plc:") and "/app.bsky.feed.post/" in dedup_key(posts[0])
    assert dedup_key(dels[0]).startswith("del:did:plc:")


@pytest.mark.parametrize(
    "event, field",
    [
        ([], "event"),
        ({"kind": "commit"}, "event.time_us"),
        ({"kind": "commit", "time_us": "12"}, "event.time_us"),
        ({"kind": "commit", "time_us": 5}, "event.time_us"),  # 0 ms: not a post time
        ({"kind": "commit", "time_us": T, "did": "did:x"}, "event.commit"),
        (
            {
                "kind": "commit",
                "time_us": T,
                "did": "did:x",
                "commit": {"collection": "app.bsky.feed.post", "operation": "create", "rkey": "a"},
            },
            "commit.record",
        ),
        (
            {
                "kind": "commit",
                "time_us": T,
                "did": "did:x",
                "commit": {
                    "collection": "app.bsky.feed.post",
                    "operation": "create",
                    "rkey": "a",
                    "record": {"text": 7},
                },
            },
            "record.text",
        ),
    ],
)
def test_malformed_events_name_the_field(event, field):
    with pytest.raises(DecodeError) as ei:
        to_post(event, now_ms=NOW)
    assert ei.value.field == field
