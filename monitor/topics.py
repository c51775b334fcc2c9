"""Match a post to the tracked topics. Pure.

A topic has keywords (words or phrases) and hashtags. Matching is case-insensitive (Unicode
case folding after NFKC normalisation) and word-boundary aware: ``phone`` matches "my phone!"
but not "phoneme"; the phrase ``new phone`` matches "NEW  Phone" (any run of spaces);
the hashtag ``phonex`` matches "#PhoneX" (or a tag the source marked up) but not "#phonexyz".
A topic may instead (or as well) carry a boolean ``query`` (see `monitor.query`), and a post
whose ``topic_hints`` name a topic matches it outright.

Keywords and hashtags are atoms of the query language, so every topic, whatever it is made
of, sits in one `QuerySet`: a post is normalised and tokenised once, for all topics, on a
bounded prefix (`monitor.query.MATCH_CHARS`), and only the topics whose atoms it contains are
evaluated. A keyword is cut into words the way a post is (punctuation separates words, so
``e-mail`` is the phrase "e mail").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monitor.errors import ConfigError
from monitor.messages import MAX_HINT_CHARS, Post
from monitor.query import Node, PostFeatures, QuerySet, any_of, fold, hashtag_node, keyword_node, parse_query


@dataclass(frozen=True)
class TopicRule:
    name: str
    keywords: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()
    query: str | None = None


def rule_tree(rule: TopicRule) -> Node | None:
    """The rule as one query tree: any keyword, any hashtag or its query (None: matches only
    by topic hint)."""
    nodes: list[Node] = []
    for kw in rule.keywords:
        if not kw.strip():
            continue
        node = keyword_node(kw)
        if node is None:
            raise ConfigError(
                f"topic {rule.name!r}", "keywords", f"keyword {kw!r} has no letters, digits or emoji"
            )
        nodes.append(node)
    nodes += [n for n in map(hashtag_node, rule.hashtags) if n is not None]
    if rule.query:
        nodes.append(parse_query(rule.query, source=f"topic {rule.name!r}"))
    return any_of(nodes)


class TopicMatcher:
    def __init__(self, rules: Sequence[TopicRule]) -> None:
        self.names = tuple(r.name for r in rules)
        self._order = {name: i for i, name in enumerate(self.names)}
        self._by_fold = {fold(name): name for name in self.names}
        trees = [(r.name, tree) for r in rules if (tree := rule_tree(r)) is not None]
        self._queries = QuerySet(trees)

    @classmethod
    def from_config(cls, topics: Sequence[Any]) -> TopicMatcher:
        return cls(
            [
                TopicRule(t.name, tuple(t.keywords), tuple(t.hashtags), getattr(t, "query", None))
                for t in topics
            ]
        )

    @property
    def uses_language(self) -> bool:
        """Whether a topic's query has a ``lang:`` atom (see `QuerySet.uses_language`)."""
        return self._queries.uses_language

    def match(self, post: Post) -> tuple[str, ...]:
        by_query = self._queries.match_features(PostFeatures.of_post(post))
        if not post.topic_hints:
            return by_query  # already in the rules' order (the queries are built in it)
        found = set(by_query)
        for hint in post.topic_hints:
            name = self._by_fold.get(fold(hint[:MAX_HINT_CHARS]))
            if name is not None:
                found.add(name)
        return tuple(sorted(found, key=self._order.__getitem__))
