import pytest

from monitor.messages import Post
from monitor.topics import TopicMatcher, TopicRule


def post(text, hints=()):
    return Post(id="1", source="s", text=text, created_ms=0, ingested_ms=0, topic_hints=hints)


M = TopicMatcher(
    [
        TopicRule("phone", keywords=("phone x", "phonex")),
        TopicRule("coffee", hashtags=("coffee",)),
        TopicRule("cafe", keywords=("café",)),
    ]
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I love my PHONE   X!", ("phone",)),
        ("phonex rocks", ("phone",)),
        ("phonexyz is a different thing", ()),
        ("my smartphonex", ()),
        ("#Coffee time", ("coffee",)),
        ("#coffeebreak", ()),
        ("coffee without a hashtag", ()),
        ("Best CAFÉ in town and phonex", ("phone", "cafe")),
        ("ｐｈｏｎｅｘ fullwidth", ("phone",)),
        ("nothing here", ()),
    ],
)
def test_match(text, expected):
    assert M.match(post(text)) == expected


def test_topic_hint_matches_outright():
    assert M.match(post("unrelated", hints=("Coffee",))) == ("coffee",)
