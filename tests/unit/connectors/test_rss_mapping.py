"""RSS/Atom document -> Posts, over real captured feeds."""

from __future__ import annotations

from collections import Counter

import pytest

from connectors.base import Skip
from connectors.rss import parse_feed, to_post
from monitor.errors import DecodeError
from tests.recorded import path

NOW = 1_800_000_000_000


def _posts(name: str):
    entries, lang = parse_feed(path(name).read_bytes())
    out, skipped = [], Counter()
    for e in entries:
        try:
            out.append(to_post(e, feed_lang=lang, now_ms=NOW))
        except Skip as exc:
            skipped[exc.reason] += 1
    return out, skipped


def test_scripting_news_items_without_titles_are_scored_by_description():
    posts, skipped = _posts("rss/rss2_scriptingnews_2017-06-26.rss")
    assert len(posts) == 50 and not skipped
    keys = [k for k, _ in posts]
    # the feed itself repeats two guids (24.html#a100632, 25.html#a080631): the dedup key folds them
    assert len(set(keys)) == 48 and all(k.startswith("http://scripting.com/") and "#" in k for k in keys)
    assert all("<" not in p.text for _, p in posts)
    times = [p.created_ms for _, p in posts]
    assert times != sorted(times) and times != sorted(times, reverse=True)  # not in date order
    assert all(t < NOW for t in times)


def test_manton_entities_in_cdata_are_decoded_and_empty_titles_fall_back():
    posts, _ = _posts("rss/rss2_manton_2015-09-25.rss")
    assert len(posts) == 10
    first_key, first = posts[0]
    assert first_key == "http://www.manton.org/?p=3071"
    assert first.text.startswith("This week\u2019s Core Intuition is out")  # &#8217; decoded
    assert "&#" not in "".join(p.text for _, p in posts)
    titled = dict(posts)["http://www.manton.org/?p=3064"]
    assert titled.text.startswith("Instagram hits 400 million users\n\n")
    assert titled.lang == "en"


def test_reddit_atom_boilerplate_is_stripped():
    posts, _ = _posts("rss/atom_reddit_r_homelab_new_2023-07-23.xml")
    assert len(posts) == 25
    keys = [k for k, _ in posts]
    assert keys[0] == "t3_157kyrd" and all(k.startswith("t3_") for k in keys)
    text = dict(posts)["t3_157kyrd"].text
    assert text.startswith("Any reason to keep 1G connections to my servers?\n\nHello all,")
    for _, p in posts:
        assert "submitted by" not in p.text and "[comments]" not in p.text and "&#32;" not in p.text
        assert "SC_OFF" not in p.text


def test_not_a_feed_is_a_decode_error():
    with pytest.raises(DecodeError, match="feed"):
        parse_feed(b"\x00\x01 not xml at all <<<")
    with pytest.raises(DecodeError, match="no RSS/Atom root"):
        parse_feed(b"<html><body>moved</body></html>")
    assert parse_feed(b'<rss version="2.0"><channel><title>x</title></channel></rss>') == ([], "")


def test_truncated_feed_still_yields_what_it_could_read():
    doc = path("rss/rss2_manton_2015-09-25.rss").read_bytes()
    entries, _ = parse_feed(doc[: len(doc) // 2])
    assert 0 < len(entries) < 10
