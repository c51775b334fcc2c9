"""The boolean topic query language: parse once, match fast. Pure.

A query combines atoms with ``AND``, ``OR``, ``NOT`` (upper case), ``-`` (short for NOT) and
parentheses; atoms side by side are ANDed::

    ("new phone" OR #phonex) AND NOT giveaway lang:en

Atoms:
    word        ``phone``      a whole word (not "phoneme", not "#phone")
    prefix      ``phon*``      any word starting with "phon"
    phrase      ``"new phone"`` the words in a row ("NEW  Phone!" matches)
    hashtag     ``#phonex``    the hashtag #PhoneX (not #phonexyz)
    mention     ``@acme``      @acme, @Acme@mastodon.social
    emoji       ``😡``          the emoji anywhere in the text
    language    ``lang:en``    the post's language tag, primary subtag ("en-US" is en)

Text and query go through the same folding (Unicode NFKC, then case folding) and the same
tokeniser (words of letters/digits/underscore, emoji one per token, ``#tag``, ``@name``), so a
term is matched exactly the way the text was cut. ``OR`` binds looser than ``AND``; ``NOT``
binds tightest. A syntax error raises `QuerySyntaxError` (a `ConfigError`) that names the
1-based column, e.g. ``column 9: expected a term after NOT, got ')'``.

`CompiledQuery.matches(post)` answers one query. `QuerySet` holds many (one per topic) behind
an inverted index: a post is tokenised once, the atoms it contains are looked up in a dict, and
only the queries that can be true (those with a matching atom, or those true on an empty post
such as ``NOT spam``) are evaluated.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from monitor.errors import ConfigError
from monitor.messages import Post
from monitor.patterns import TOKEN as _TOKEN

# configuration text only (query terms), never a post: these patterns need no linear proof
_LANG = re.compile(r"^[a-z]{2,3}$")
_NAME = re.compile(r"\w+(?:[.@-]\w+)*")
_STEM = re.compile(r"\w+")
# what a post is matched on: its first MATCH_CHARS characters, and of their normalised form
# (NFKC can expand a character 18-fold: U+FDFA) at most MATCH_FOLDED_CHARS. Far beyond any
# platform's post length but Reddit's, and it bounds the cost of one post for all topics
MATCH_CHARS = 10_000
MATCH_FOLDED_CHARS = 20_000
# parentheses and NOT nested deeper than this are a syntax error, not a RecursionError
MAX_QUERY_DEPTH = 64

Eval = Callable[[frozenset[int] | set[int]], bool]


def fold(text: str) -> str:
    """NFKC normalisation then Unicode case folding (the same as `monitor.topics.fold`)."""
    return unicodedata.normalize("NFKC", text).casefold()


_NONE: frozenset[str] = frozenset()


@functools.lru_cache(maxsize=4096)  # a post's language tag is one of few; a stranger's are bounded
def _lang_key(lang: str) -> str:
    """The primary subtag a ``lang:`` atom compares: ``en-US`` / ``en_us`` -> ``en``."""
    return fold(lang).split("-", 1)[0].split("_", 1)[0].strip()


@dataclass(slots=True)  # not frozen: a frozen __init__ sets each field through object.__setattr__
class PostFeatures:
    """A post cut once into what queries look at (made once for every post, read only)."""

    words: frozenset[str]
    hashtags: frozenset[str]
    mentions: frozenset[str]
    lang: str
    word_line: str  # " w1 w2 w3 " for phrase search

    @classmethod
    def of(cls, text: str, lang: str = "") -> PostFeatures:
        folded = fold(text[:MATCH_CHARS])[:MATCH_FOLDED_CHARS]
        toks: list[str] = _TOKEN.findall(folded)
        if "#" not in folded and "@" not in folded:  # most posts: every token is a word
            return cls(frozenset(toks), _NONE, _NONE, _lang_key(lang), " " + " ".join(toks) + " ")
        words: list[str] = []
        tags: set[str] = set()
        mentions: set[str] = set()
        for tok in toks:
            if tok[0] == "#":
                tags.add(tok[1:])
            elif tok[0] == "@":
                name = tok[1:]
                mentions.add(name)
                mentions.add(name.split("@", 1)[0])
            else:
                words.append(tok)
        return cls(
            frozenset(words),
            frozenset(tags),
            frozenset(mentions),
            _lang_key(lang),
            " " + " ".join(words) + " ",
        )

    @classmethod
    def of_post(cls, post: Post) -> PostFeatures:
        f = cls.of(post.text, post.lang)
        if not post.hashtags:
            return f
        # tags the source marked up outside the text (Bluesky record tags) count as hashtags
        f.hashtags = f.hashtags | {fold(t).lstrip("#") for t in post.hashtags}  # f is this call's own
        return f


class QuerySyntaxError(ConfigError):
    def __init__(self, source: str, query: str, column: int, reason: str) -> None:
        super().__init__(source, "query", f"column {column}: {reason} in {query!r}")
        self.column = column
        self.query = query


# ---- atoms and the tree -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Atom:
    kind: str  # word | prefix | phrase | hashtag | mention | lang
    value: str

    def test(self, f: PostFeatures) -> bool:
        if self.kind == "word":
            return self.value in f.words
        if self.kind == "hashtag":
            return self.value in f.hashtags
        if self.kind == "mention":
            return self.value in f.mentions
        if self.kind == "lang":
            return f.lang == self.value
        if self.kind == "phrase":
            return f" {self.value} " in f.word_line
        return any(w.startswith(self.value) for w in f.words)  # prefix


@dataclass(frozen=True, slots=True)
class Node:
    op: str  # atom | and | or | not
    atom: Atom | None = None
    children: tuple[Node, ...] = ()


# ---- tokeniser ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # ( ) AND OR NOT - PHRASE TERM END
    text: str
    col: int  # 1-based


def _lex(q: str, source: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(q)
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
        elif c in "()":
            out.append(_Tok(c, c, i + 1))
            i += 1
        elif c == '"':
            j = q.find('"', i + 1)
            if j < 0:
                raise QuerySyntaxError(source, q, i + 1, "unclosed quote")
            out.append(_Tok("PHRASE", q[i + 1 : j], i + 1))
            i = j + 1
        elif c == "-" and i + 1 < n and not q[i + 1].isspace():
            out.append(_Tok("-", c, i + 1))
            i += 1
        else:
            j = i
            while j < n and not q[j].isspace() and q[j] not in '()"':
                j += 1
            word = q[i:j]
            kind = word if word in ("AND", "OR", "NOT") else "TERM"
            out.append(_Tok(kind, word, i + 1))
            i = j
    out.append(_Tok("END", "end of query", n + 1))
    return out


# ---- parser (recursive descent) -------------------------------------------------------------
class _Parser:
    def __init__(self, q: str, source: str) -> None:
        self.q = q
        self.source = source
        self.toks = _lex(q, source)
        self.i = 0
        self.depth = 0

    def err(self, tok: _Tok, reason: str) -> QuerySyntaxError:
        return QuerySyntaxError(self.source, self.q, tok.col, reason)

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def parse(self) -> Node:
        if self.tok.kind == "END":
            raise self.err(self.tok, "empty query")
        node = self.parse_or()
        if self.tok.kind != "END":
            what = "unmatched ')'" if self.tok.kind == ")" else f"unexpected {self.tok.text!r}"
            raise self.err(self.tok, what)
        return node

    def parse_or(self) -> Node:
        parts = [self.parse_and()]
        while self.tok.kind == "OR":
            self.i += 1
            parts.append(self.parse_and("OR"))
        return parts[0] if len(parts) == 1 else Node("or", children=tuple(parts))

    def parse_and(self, after: str | None = None) -> Node:
        parts = [self.parse_unary(after)]
        while self.tok.kind in ("AND", "NOT", "-", "(", "PHRASE", "TERM"):
            op = None
            if self.tok.kind == "AND":
                op = "AND"
                self.i += 1
            parts.append(self.parse_unary(op))
        return parts[0] if len(parts) == 1 else Node("and", children=tuple(parts))

    def parse_unary(self, after: str | None = None) -> Node:
        t = self.tok
        if t.kind in ("NOT", "-", "("):
            if self.depth >= MAX_QUERY_DEPTH:
                raise self.err(t, f"nested deeper than {MAX_QUERY_DEPTH}")
            self.depth += 1
            try:
                return self.parse_nested(t, after)
            finally:
                self.depth -= 1
        return self.parse_atom(t, after)

    def parse_nested(self, t: _Tok, after: str | None) -> Node:
        if t.kind in ("NOT", "-"):
            self.i += 1
            return Node("not", children=(self.parse_unary(t.text),))
        if t.kind == "(":
            self.i += 1
            if self.tok.kind == ")":
                raise self.err(self.tok, "empty parentheses")
            inner = self.parse_or()
            if self.tok.kind != ")":
                raise self.err(t, "unclosed '('")
            self.i += 1
            return inner
        raise self.err(t, "expected NOT, - or (")  # unreachable: parse_unary checked the kind

    def parse_atom(self, t: _Tok, after: str | None) -> Node:
        if t.kind == "PHRASE":
            self.i += 1
            return self.phrase(t)
        if t.kind == "TERM":
            self.i += 1
            return self.term(t)
        got = "end of query" if t.kind == "END" else repr(t.text)
        where = f"after {after}" if after else "here"
        raise self.err(t, f"expected a term {where}, got {got}")

    def phrase(self, t: _Tok) -> Node:
        words = _TOKEN.findall(fold(t.text))
        if not words:
            raise self.err(t, f'phrase "{t.text}" has no letters, digits or emoji')
        words = [w.lstrip("#@") for w in words]
        if len(words) == 1:
            return Node("atom", Atom("word", words[0]))
        return Node("atom", Atom("phrase", " ".join(words)))

    def term(self, t: _Tok) -> Node:
        text = fold(t.text)
        if text.startswith("lang:"):
            code = text[5:]
            if not _LANG.match(code):
                raise self.err(t, f"lang: wants a 2- or 3-letter language code, got {t.text[5:]!r}")
            return Node("atom", Atom("lang", code))
        if text.startswith(("#", "@")):
            name = text[1:]
            kind = "hashtag" if text[0] == "#" else "mention"
            if not name or not _NAME.fullmatch(name):
                raise self.err(t, f"{kind} {t.text!r} needs letters, digits or _ after {text[0]!r}")
            return Node("atom", Atom(kind, name))
        if text.endswith("*"):
            stem = text[:-1]
            if not _STEM.fullmatch(stem):
                raise self.err(t, f"wildcard {t.text!r} needs a word before the '*'")
            return Node("atom", Atom("prefix", stem))
        toks = _TOKEN.findall(text)
        if not toks:
            raise self.err(t, f"term {t.text!r} has no letters, digits or emoji")
        if len(toks) == 1:
            return Node("atom", Atom("word", toks[0].lstrip("#@")))
        return Node("atom", Atom("phrase", " ".join(w.lstrip("#@") for w in toks)))


def parse_query(text: str, *, source: str = "query") -> Node:
    return _Parser(text, source).parse()


def keyword_node(keyword: str) -> Node | None:
    """A topic keyword as an atom: one word (or ``#tag``, ``@name``, emoji), or the phrase of its
    words; None when it has no letters, digits or emoji."""
    toks = _TOKEN.findall(fold(keyword))
    if not toks:
        return None
    if len(toks) == 1:
        tok = toks[0]
        kind = {"#": "hashtag", "@": "mention"}.get(tok[0], "word")
        return Node("atom", Atom(kind, tok[1:] if kind != "word" else tok))
    return Node("atom", Atom("phrase", " ".join(w.lstrip("#@") for w in toks)))


def hashtag_node(tag: str) -> Node | None:
    name = fold(tag).strip().lstrip("#")
    return Node("atom", Atom("hashtag", name)) if name else None


def any_of(nodes: Sequence[Node]) -> Node | None:
    if not nodes:
        return None
    return nodes[0] if len(nodes) == 1 else Node("or", children=tuple(nodes))


# ---- compilation ----------------------------------------------------------------------------
def _atoms(node: Node) -> Iterable[Atom]:
    if node.atom is not None:
        yield node.atom
    for c in node.children:
        yield from _atoms(c)


# an atom true for most posts is a poor trigger: prefer any other atom of an AND
_TRIGGER_COST = {"lang": 1000, "prefix": 3}


def _triggers(node: Node) -> frozenset[Atom] | None:
    """Atoms of which at least one must be true for ``node`` to be true (None: no such set, e.g.
    under NOT). The index wakes a query only on these, so ``lang:en AND phonex`` is looked at
    for posts that say phonex, not for every English post."""
    if node.op == "atom":
        assert node.atom is not None
        return frozenset((node.atom,))
    if node.op == "not":
        return None
    subs = [_triggers(c) for c in node.children]
    if node.op == "or":
        if any(t is None for t in subs):
            return None
        return frozenset().union(*[t for t in subs if t is not None])
    known = [t for t in subs if t is not None]
    if not known:
        return None
    return min(known, key=lambda t: sum(_TRIGGER_COST.get(a.kind, 1) for a in t))


def _compile(node: Node, ids: dict[Atom, int]) -> Eval:
    if node.op == "atom":
        assert node.atom is not None
        i = ids[node.atom]
        return lambda s: i in s
    subs = [_compile(c, ids) for c in node.children]
    if node.op == "not":
        (inner,) = subs
        return lambda s: not inner(s)
    if len(subs) == 2:
        a, b = subs
        return (lambda s: a(s) and b(s)) if node.op == "and" else (lambda s: a(s) or b(s))
    if node.op == "and":
        return lambda s: all(f(s) for f in subs)
    return lambda s: any(f(s) for f in subs)


@dataclass
class CompiledQuery:
    text: str
    tree: Node
    atoms: tuple[Atom, ...]
    _eval: Eval = field(repr=False)

    def matches_features(self, f: PostFeatures) -> bool:
        return self._eval({i for i, a in enumerate(self.atoms) if a.test(f)})

    def matches(self, post: Post) -> bool:
        return self.matches_features(PostFeatures.of_post(post))


def compile_query(text: str, *, source: str = "query") -> CompiledQuery:
    tree = parse_query(text, source=source)
    atoms = tuple(dict.fromkeys(_atoms(tree)))
    return CompiledQuery(text, tree, atoms, _compile(tree, {a: i for i, a in enumerate(atoms)}))


class QuerySet:
    """Many named queries behind one inverted index; `match` returns the names that match."""

    def __init__(self, queries: Sequence[tuple[str, str | Node]], *, source: str = "topics") -> None:
        self.names: list[str] = []
        self._evals: list[Eval] = []
        self._ids: dict[Atom, int] = {}
        self._by_atom: dict[int, list[int]] = {}
        self._always: list[int] = []  # queries with no trigger atoms (e.g. "NOT spam")
        for name, text in queries:
            tree = text if isinstance(text, Node) else parse_query(text, source=f"{source} {name!r}")
            qi = len(self.names)
            self.names.append(name)
            for a in dict.fromkeys(_atoms(tree)):
                self._ids.setdefault(a, len(self._ids))
            trig = _triggers(tree)
            if trig is None:  # e.g. "NOT spam": looked at for every post
                self._always.append(qi)
            else:
                for a in trig:
                    self._by_atom.setdefault(self._ids[a], []).append(qi)
            self._evals.append(_compile(tree, self._ids))
        self._word: dict[str, int] = {}
        self._tag: dict[str, int] = {}
        self._mention: dict[str, int] = {}
        self._lang: dict[str, int] = {}
        self._phrase: dict[str, list[tuple[int, str]]] = {}  # first word -> (id, " a b ")
        self._prefix: list[tuple[int, str]] = []
        for a, aid in self._ids.items():
            if a.kind == "word":
                self._word[a.value] = aid
            elif a.kind == "hashtag":
                self._tag[a.value] = aid
            elif a.kind == "mention":
                self._mention[a.value] = aid
            elif a.kind == "lang":
                self._lang[a.value] = aid
            elif a.kind == "phrase":
                self._phrase.setdefault(a.value.split(" ", 1)[0], []).append((aid, f" {a.value} "))
            else:
                self._prefix.append((aid, a.value))

    @property
    def uses_language(self) -> bool:
        """Whether a query looks at a post's language (a ``lang:`` atom): a post whose source
        gave no language tag must then have it detected before it is matched."""
        return bool(self._lang)

    def true_atoms(self, f: PostFeatures) -> set[int]:
        s: set[int] = set()
        for w in f.words:
            aid = self._word.get(w)
            if aid is not None:
                s.add(aid)
            for pid, needle in self._phrase.get(w, ()):
                if needle in f.word_line:
                    s.add(pid)
        for t in f.hashtags:
            aid = self._tag.get(t)
            if aid is not None:
                s.add(aid)
        for m in f.mentions:
            aid = self._mention.get(m)
            if aid is not None:
                s.add(aid)
        aid = self._lang.get(f.lang)
        if aid is not None:
            s.add(aid)
        if self._prefix:  # one sorted pass: a stem's words sort right after it
            words = sorted(f.words)
            for pid, stem in self._prefix:
                i = bisect_left(words, stem)
                if i < len(words) and words[i].startswith(stem):
                    s.add(pid)
        return s

    def match_features(self, f: PostFeatures) -> tuple[str, ...]:
        s = self.true_atoms(f)
        cand: set[int] = set(self._always)
        for aid in s:
            cand.update(self._by_atom.get(aid, ()))
        return tuple(self.names[qi] for qi in sorted(cand) if self._evals[qi](s))

    def match(self, post: Post) -> tuple[str, ...]:
        return self.match_features(PostFeatures.of_post(post))
