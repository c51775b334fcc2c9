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


def test_matches_come_in_the_rules_order_with_and_without_hints():
    import random

    rules = [
        TopicRule("zeta", ("coffee",), (), None),
        TopicRule("hinted", (), (), None),  # no query: reached by a hint only
        TopicRule("alpha", (), ("metro",), None),
        TopicRule("mid", (), (), "coffee OR #metro OR tea"),
    ]
    m = TopicMatcher(rules)
    order = {r.name: i for i, r in enumerate(rules)}
    rng = random.Random(5)
    words = ["coffee", "#metro", "tea", "bus", "#coffee", "metro"]
    for i in range(300):
        text = " ".join(rng.choice(words) for _ in range(3))
        hints = tuple(rng.sample(["hinted", "ALPHA", "nope"], rng.randrange(3)))
        got = m.match(Post(f"p{i}", "test", text, 1, 2, topic_hints=hints))
        assert list(got) == sorted(set(got), key=order.__getitem__), (text, hints, got)
        assert ("hinted" in got) == ("hinted" in hints)
