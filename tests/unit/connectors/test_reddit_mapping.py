"""Reddit Listing -> Posts, over the recorded PRAW cassettes (2016 and 2023 schemas)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from connectors.base import Skip
from connectors.reddit import fullname, listing_children, to_post
from monitor.errors import DecodeError
from monitor.messages import Post, decode, encode_post
from tests.recorded import betamax

NOW = 1_800_000_000_000


def _listing(cassette: str, i: int):
    return json.loads(betamax(cassette)[i]["response"]["body"]["string"])


def _map(children):
    posts, skipped = [], Counter()
    for ch in children:
        try:
            posts.append(to_post(ch, now_ms=NOW))
        except Skip as exc:
            skipped[exc.reason] += 1
    return posts, skipped


def test_new_posts_title_and_selftext():
    children = listing_children(_listing("reddit/r_all_new_stream_2016-12-22.json", 1))
    posts, skipped = _map(children)
    assert len(posts) + sum(skipped.values()) == 100 and len(posts) >= 99
    assert all(p.id.startswith("reddit:t3_") and p.url.startswith("https://www.reddit.com/r/") for p in posts)
    assert all(isinstance(decode(encode_post(p)), Post) for p in posts)
    first = children[0]["data"]
    assert posts[0].text.startswith(first["title"].strip())
    assert posts[0].created_ms == int(first["created_utc"] * 1000)  # not the legacy `created`
    self_post = next(c["data"] for c in children if c["data"]["selftext"].strip())
    p = next(p for p in posts if p.id == "reddit:" + self_post["name"])
    assert p.text == f"{self_post['title'].strip()}\n\n{self_post['selftext'].strip()}"


def test_askreddit_questions_are_in_the_title():
    posts, _ = _map(listing_children(_listing("reddit/r_askreddit_new_2016-03-01.json", 1)))
    assert len(posts) == 100 and sum("\n\n" in p.text for p in posts) == 1  # 99 have no selftext


def test_comments_modern_schema():
    children = listing_children(_listing("reddit/r_testsub_comments_2023-10-08.json", 1))
    posts, skipped = _map(children)
    assert len(posts) + sum(skipped.values()) == 100
    assert all(p.id.startswith("reddit:t1_") for p in posts)
    c0 = children[0]["data"]
    assert posts[0].text == c0["body"].strip() and posts[0].author_id == c0["author_fullname"]
    assert posts[0].is_reply == c0["parent_id"].startswith("t1_")


def test_before_page_holds_only_newer_items_and_empty_is_normal():
    cas = "reddit/r_all_comments_stream_2016-12-22.json"
    assert listing_children(_listing(cas, 2)) == []  # ?before=t1_dbhn11d: nothing newer yet
    newer = listing_children(_listing(cas, 5))
    assert len(newer) == 31 and all(fullname(c).startswith("t1_") for c in newer)


def test_removed_comment_is_skipped_with_a_reason():
    with pytest.raises(Skip, match="removed"):
        to_post({"kind": "t1", "data": {"name": "t1_x", "created_utc": 1.0, "body": "[removed]"}})


@pytest.mark.parametrize(
    "thing, field",
    [
        ("t1_abc", "child"),
        ({"kind": "t1"}, "child.data"),
        ({"kind": "t1", "data": {"created_utc": 1.0, "body": "x"}}, "child.data.name"),
        ({"kind": "t1", "data": {"name": "t1_a", "body": "x"}}, "child.data.created_utc"),
        ({"kind": "t1", "data": {"name": "t1_a", "created_utc": 1.0}}, "child.data.body"),
        ({"kind": "t5", "data": {"name": "t1_a", "created_utc": 1.0}}, "child.kind"),
    ],
)
def test_malformed_children_name_the_field(thing, field):
    with pytest.raises(DecodeError) as ei:
        to_post(thing)
    assert ei.value.field == field


def test_not_a_listing():
    with pytest.raises(DecodeError, match="listing"):
        listing_children({"kind": "t2", "data": {}})
    with pytest.raises(DecodeError, match="children"):
        listing_children({"kind": "Listing", "data": {"children": None}})
