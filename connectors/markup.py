"""HTML fragments (Mastodon ``content``, RSS ``description``) to plain text for scoring. Pure.

Block elements (``p``, ``br``, ``li``, headings, ...) become line breaks; every other tag is
dropped and its text kept, so Mastodon's ``invisible``/``ellipsis`` spans around a link join back
into the full URL. ``script``/``style`` bodies and HTML comments are dropped. Entities are
decoded once by the parser; ``unescape_twice`` also decodes entities left inside CDATA (RSS
descriptions that hold ``&#8217;`` as literal text after XML parsing).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

_BLOCKS = frozenset({"p", "br", "div", "li", "ul", "ol", "blockquote", "pre", "tr", "table",
                     "h1", "h2", "h3", "h4", "h5", "h6", "hr", "section", "article"})
_SKIP = frozenset({"script", "style", "template"})
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_LINES = re.compile(r"\n\s*\n+")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip_depth += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def html_to_text(fragment: str, *, unescape_twice: bool = False) -> str:
    """Plain text of an HTML fragment: paragraphs on their own lines, spaces squeezed."""
    p = _Text()
    p.feed(fragment)
    p.close()
    text = "".join(p.parts)
    if unescape_twice and "&" in text:
        text = html.unescape(text)
    lines = [_SPACES.sub(" ", ln).strip() for ln in text.split("\n")]
    return _LINES.sub("\n\n", "\n".join(lines)).strip()
