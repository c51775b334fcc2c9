"""HTML fragments (Mastodon ``content``, RSS ``description``) to plain text for scoring. Pure.

Block elements (``p``, ``br``, ``li``, headings, ...) become line breaks; every other tag is
dropped and its text kept, so Mastodon's ``invisible``/``ellipsis`` spans around a link join back
into the full URL. ``script``/``style``/``template`` bodies and comments are dropped. Entities
in text are decoded once (``html.unescape``); ``unescape_twice`` also decodes entities left
inside CDATA (RSS descriptions that hold ``&#8217;`` as literal text after XML parsing).

Fragments are written by strangers, so the cost is bounded:

- **Input cap**: only the first `MAX_HTML_CHARS` (65,536) characters of a fragment are read;
  the rest is dropped. That is far above any post (Mastodon's default limit is 500 characters,
  the worker keeps at most 20,000).
- **Linear tokenizer**: the fragment is read once, left to right, with ``str.find`` (no regular
  expression, no backtracking), in the way an HTML5 tokenizer reads it: a tag ends at the first
  ``>`` outside a quoted attribute value, a comment at ``-->``, ``<!...>``, ``<?...>`` and
  ``</...>`` without a letter are bogus comments up to the next ``>``, and ``script``/``style``
  text runs to its end tag. Every search resumes where the last stopped, and the next ``>`` and
  ``=`` are found once and reused, so no character is scanned more than a fixed number of times.
  The stdlib ``html.parser`` is not used: its unterminated tags are rescanned to the end of the
  input from every ``<`` after them (``"<a\\n" * 20000`` took seconds, ``"<a b='>'" * 8000``
  tens of seconds, well within 64 KiB), and CPython 3.11's version raises AssertionError on
  ``<![foo``.

A construct that is still open when the input ends (``a<b``, ``<a href='x``, ``<!-- x``) is kept
as text from its ``<`` on, as ``html.parser`` did. Spaces are squeezed with `monitor.patterns`.
"""

from __future__ import annotations

import html

from monitor.patterns import BLANK_LINES, SPACES

MAX_HTML_CHARS = 1 << 16
_BLOCKS = frozenset(
    {
        "p",
        "br",
        "div",
        "li",
        "ul",
        "ol",
        "blockquote",
        "pre",
        "tr",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "section",
        "article",
    }
)
_SKIP = frozenset({"script", "style", "template"})
_RAW = frozenset({"script", "style"})  # their text is not markup: it runs to the end tag
_NAME_STOP = frozenset("\t\n\r\f />\x00")
_SPACE = frozenset(" \t\n\r\f")
_LONGEST_NAME = max(len(n) for n in _BLOCKS | _SKIP)


class _Tokens:
    """One left-to-right pass over a fragment, collecting its text."""

    def __init__(self, s: str) -> None:
        self.s = s
        self.n = len(s)
        self.parts: list[str] = []
        self.skip_depth = 0
        self._gt = -2  # cached position of the next ">" (-1: there is none left)
        self._eq = -2  # cached position of the next "="

    def _next_gt(self, j: int) -> int:
        if -1 < self._gt < j or self._gt == -2:
            self._gt = self.s.find(">", j)
        return self._gt

    def _next_eq(self, j: int) -> int:
        if -1 < self._eq < j or self._eq == -2:
            self._eq = self.s.find("=", j)
        return self._eq

    def text(self, chunk: str) -> None:
        if chunk and not self.skip_depth:
            self.parts.append(html.unescape(chunk))

    def tag_end(self, j: int) -> int:
        """Index after the ``>`` that ends a tag whose attributes start at ``j``; -1 when the
        input ends first. A ``'`` or ``"`` right after ``=`` (spaces allowed) opens a quoted
        value, which may hold ``>``."""
        s, n = self.s, self.n
        while True:
            gt = self._next_gt(j)
            if gt < 0:
                return -1
            eq = self._next_eq(j)
            if eq < 0 or eq > gt:
                return gt + 1
            k = eq + 1
            while k < n and s[k] in _SPACE:
                k += 1
            if k < n and s[k] in "'\"":
                close = s.find(s[k], k + 1)
                if close < 0:
                    return -1
                j = close + 1
            else:
                j = k

    def name_at(self, i: int) -> tuple[str, int]:
        """(lower-cased tag name if it could be one we care about, else "", index after it)."""
        s, n = self.s, self.n
        k = i
        while k < n and k - i <= _LONGEST_NAME and s[k] not in _NAME_STOP:
            k += 1
        if k < n and k - i > _LONGEST_NAME:
            return "", k  # a long name: none of ours; tag_end reads the rest
        return s[i:k].lower(), k

    def start(self, name: str, self_closing: bool) -> None:
        if name in _SKIP:
            self.skip_depth += 1
        elif name in _BLOCKS:
            self.parts.append("\n")
        if self_closing:
            self.end(name)

    def end(self, name: str) -> None:
        if name in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif name in _BLOCKS:
            self.parts.append("\n")

    def raw_end(self, name: str, i: int) -> int:
        """Where the ``</name`` that ends a script/style body starts (``n`` when none does)."""
        s, n = self.s, self.n
        while True:
            p = s.find("</", i)
            if p < 0:
                return n
            after = p + 2 + len(name)
            if s[p + 2 : after].lower() == name and (after >= n or s[after] in _NAME_STOP):
                return p
            i = p + 2

    def run(self) -> list[str]:
        s, n = self.s, self.n
        i = 0
        while i < n:
            lt = s.find("<", i)
            if lt < 0:
                self.text(s[i:])
                break
            self.text(s[i:lt])
            nxt = s[lt + 1 : lt + 2]
            end = -1
            if nxt.isascii() and nxt.isalpha():  # a start tag
                name, j = self.name_at(lt + 1)
                end = self.tag_end(j)
                if end > 0:
                    self_closing = s[end - 2] == "/" and end - 2 > lt + 1
                    self.start(name, self_closing)
                    if name in _RAW and not self_closing:
                        end = self.raw_end(name, end)  # the body is dropped (skip_depth is up)
            elif nxt == "/":
                after = s[lt + 2 : lt + 3]
                if after == ">":
                    end = lt + 3
                elif after.isascii() and after.isalpha():
                    name, j = self.name_at(lt + 2)
                    end = self.tag_end(j)
                    if end > 0:
                        self.end(name)
                else:
                    end = self._bogus(lt + 2)
            elif s.startswith("<!--", lt):
                end = self._comment(lt)
            elif nxt in ("!", "?"):
                end = self._bogus(lt + 2)
            else:
                self.text("<")
                end = lt + 1
            if end < 0:  # open at the end of the input: text from its "<" on
                self.text(s[lt:])
                break
            i = end
        return self.parts

    def _bogus(self, j: int) -> int:
        gt = self._next_gt(j)
        return gt + 1 if gt >= 0 else -1

    def _comment(self, lt: int) -> int:
        s = self.s
        if s.startswith(">", lt + 4):
            return lt + 5  # <!-->
        if s.startswith("->", lt + 4):
            return lt + 6  # <!--->
        close = s.find("-->", lt + 4)
        return close + 3 if close >= 0 else -1


def html_to_text(fragment: str, *, unescape_twice: bool = False) -> str:
    """Plain text of an HTML fragment: paragraphs on their own lines, spaces squeezed. Only the
    first `MAX_HTML_CHARS` characters are read."""
    text = "".join(_Tokens(fragment[:MAX_HTML_CHARS]).run())
    if unescape_twice and "&" in text:
        text = html.unescape(text)
    lines = [SPACES.sub(" ", ln).strip() for ln in text.split("\n")]
    return BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
