"""The boolean topic query language: matching semantics, the indexed QuerySet, column errors."""

from __future__ import annotations

import pytest

from monitor.errors import ConfigError
from monitor.messages import Post
from monitor.query import PostFeatures, QuerySet, QuerySyntaxError, compile_query

EXAMPLE = '("new phone" OR #phonex) AND NOT giveaway lang:en'


def m(query: str, text: str, lang: str = "") -> bool:
    return compile_query(query).matches_features(PostFeatures.of(text, lang))


@pytest.mark.parametrize(
    ("text", "lang", "want"),
    [
        ("I got a NEW  Phone!", "en-US", True),
        ("#PhoneX rocks", "en", True),
        ("#phonexyz rocks", "en", False),
        ("new phone giveaway!", "en", False),
        ("new phone", "de", False),
        ("new phone", "", False),
        ("phone new", "en", False),
    ],
)
def test_example_query(text: str, lang: str, want: bool) -> None:
    assert m(EXAMPLE, text, lang) is want


def test_words_are_whole_and_folded() -> None:
    assert m("phone", "My PHONE.")
    assert not m("phone", "phoneme")
    assert not m("phone", "#phone")  # hashtags are matched with #phone
    assert m("straße", "STRASSE")  # case folding, not lower()
    assert m("ｐｈｏｎｅ", "phone")  # NFKC: full-width letters
    assert m("café", "cafe\u0301 au lait")  # NFKC composes the accent


def test_emoji_mentions_prefix_and_operators() -> None:
    assert m("😡", "so angry😡😡")
    assert m("❤️", "love it ❤")  # the variation selector does not matter
    assert m("@acme", "thanks @Acme@mastodon.social")
    assert m("@acme", "hi @acme!")
    assert not m("@acme", "acme")
    assert m("phon*", "phones everywhere")
    assert not m("phon*", "iphone")
    assert m("a OR b c", "b c")  # OR binds looser than implicit AND
    assert not m("a OR b c", "b")
    assert m("a -b", "a c") and not m("a -b", "a b")
    assert m("NOT (a OR b)", "c") and not m("NOT (a OR b)", "b")
    assert m("don't", "I don't know") and not m("don't", "don know t")


def test_matches_post_uses_lang_and_text() -> None:
    p = Post(id="x:1", source="x", text="new phone", created_ms=1, ingested_ms=1, lang="en")
    assert compile_query(EXAMPLE).matches(p)


@pytest.mark.parametrize(
    ("query", "column", "reason"),
    [
        ("(a OR b", 1, "unclosed '('"),
        ("a AND", 6, "expected a term after AND, got end of query"),
        ("NOT )", 5, "expected a term after NOT, got ')'"),
        ("a )", 3, "unmatched ')'"),
        ('a "abc', 3, "unclosed quote"),
        ("lang:english", 1, "lang: wants a 2- or 3-letter language code"),
        ("a #", 3, "hashtag '#' needs letters"),
        ("", 1, "empty query"),
        ("a OR OR b", 6, "expected a term after OR, got 'OR'"),
        ("!!!", 1, "has no letters, digits or emoji"),
        ("x ()", 4, "empty parentheses"),
        ("*", 1, "wildcard '*' needs a word"),
    ],
)
def test_errors_name_the_column(query: str, column: int, reason: str) -> None:
    with pytest.raises(QuerySyntaxError) as ei:
        compile_query(query, source="topics.yaml topic 'phones'")
    assert ei.value.column == column
    assert reason in str(ei.value)
    assert str(ei.value).startswith("topics.yaml topic 'phones': query: column ")
    assert isinstance(ei.value, ConfigError)


QUERIES = [
    ("phones", EXAMPLE),
    ("not-spam", "NOT spam"),
    ("angry", '"new phone" 😡'),
    ("acme", "@acme OR #acme"),
    ("prefix", "phon*"),
    ("german", "lang:de"),
]


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("my new phone😡 @Acme@mastodon.social", "en"),
        ("spam phoneme", "de"),
        ("#ACME giveaway new phone", "en"),
        ("", ""),
        ("nothing here", "fr"),
    ],
)
def test_queryset_agrees_with_single_queries(text: str, lang: str) -> None:
    qs = QuerySet(QUERIES)
    f = PostFeatures.of(text, lang)
    want = tuple(n for n, q in QUERIES if compile_query(q).matches_features(f))
    assert qs.match_features(f) == want


def test_queryset_error_names_the_topic() -> None:
    with pytest.raises(ConfigError, match=r"topics 'bad': query: column 3"):
        QuerySet([("ok", "a"), ("bad", "a )")])


def test_queryset_index_agrees_with_every_query_on_random_queries_and_posts() -> None:
    """The index wakes a query only on its trigger atoms: it must never miss a match."""
    import random

    rng = random.Random(7)
    words = ["phone", "battery", "screen", "new", "giveaway", "spam", "coffee", "x"]
    atoms = [*words, "#acme", "@acme", "lang:en", "lang:fr", "batt*", '"new phone"']

    def expr(depth: int) -> str:
        if depth == 0 or rng.random() < 0.3:
            return rng.choice(atoms)
        op = rng.choice([" AND ", " OR ", " AND NOT ", " "])
        return f"({expr(depth - 1)}{op}{expr(depth - 1)})"

    queries = [(f"q{i}", expr(3)) for i in range(300)]
    qs = QuerySet(queries)
    single = [(n, compile_query(q)) for n, q in queries]
    for _ in range(300):
        text = " ".join(
            rng.choice([*words, "#acme", "@acme", "batteries", "other"]) for _ in range(rng.randrange(0, 6))
        )
        f = PostFeatures.of(text, rng.choice(["en", "fr", ""]))
        assert qs.match_features(f) == tuple(n for n, q in single if q.matches_features(f)), text
