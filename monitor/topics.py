"""Match a post to the tracked topics. Pure.

A topic has keywords (words or phrases) and hashtags. Matching is case-insensitive (Unicode
case folding after NFKC normalisation) and word-boundary aware: ``phone`` matches "my phone!"
but not "phoneme"; the phrase ``new phone`` matches "NEW  Phone" (any run of spaces);
the hashtag ``phonex`` matches "#PhoneX" but not "#phonexyz". A topic may instead (or as well)
carry a boolean ``query`` (see `monitor.query`), and a post whose ``topic_hints`` name a topic
matches it outright.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.messages import Post


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


class _Query(Protocol):
    def matches(self, post: Post) -> bool: ...


@dataclass(frozen=True)
class TopicRule:
    name: str
    keywords: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()
    query: str | None = None


def _keyword_pattern(kw: str) -> str:
    words = [re.escape(w) for w in fold(kw).split()]
    return r"(?<![\w#@])" + r"\s+".join(words) + r"(?!\w)"


def _hashtag_pattern(tag: str) -> str:
    return "#" + re.escape(fold(tag).lstrip("#")) + r"(?!\w)"


class TopicMatcher:
    def __init__(self, rules: Sequence[TopicRule]) -> None:
        self.names = tuple(r.name for r in rules)
        self._regex: list[tuple[str, re.Pattern[str] | None, _Query | None]] = []
        for r in rules:
            parts = [_keyword_pattern(k) for k in r.keywords if k.strip()]
            parts += [_hashtag_pattern(h) for h in r.hashtags if h.strip("# ")]
            rx = re.compile("|".join(parts)) if parts else None
            q: _Query | None = None
            if r.query:
                from monitor.query import compile_query  # the boolean query language

                q = compile_query(r.query, source=f"topic {r.name!r}")
            self._regex.append((r.name, rx, q))

    @classmethod
    def from_config(cls, topics: Sequence[Any]) -> TopicMatcher:
        return cls([
            TopicRule(t.name, tuple(t.keywords), tuple(t.hashtags), getattr(t, "query", None))
            for t in topics
        ])

    def match(self, post: Post) -> tuple[str, ...]:
        folded = fold(post.text)
        hints = {fold(h) for h in post.topic_hints}
        out = []
        for name, rx, q in self._regex:
            if (
                fold(name) in hints
                or (rx is not None and rx.search(folded))
                or (q is not None and q.matches(post))
            ):
                out.append(name)
        return tuple(out)
