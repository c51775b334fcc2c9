"""html_to_text on hostile HTML: linear time, a 64 KiB input cap, and the output it always had.

html.parser, which it used before, rescanned an unterminated tag to the end of the input from
every ``<`` after it (seconds to tens of seconds at 64 KiB) and raised AssertionError on ``<![``
followed by anything but a known keyword (security review F3 and section 4).
"""

from __future__ import annotations

import pytest

from connectors.markup import MAX_HTML_CHARS, _Tokens, html_to_text


class _Counting(str):
    """A fragment that counts the characters its ``find`` calls scan: the tokenizer's only
    scans, so their total is its work, measured without a clock."""

    scanned = 0

    def find(self, sub: str, start: int | None = 0, end: int | None = None) -> int:  # type: ignore[override]
        begin = start or 0
        at = str.find(self, sub, begin)
        _Counting.scanned += (at if at >= 0 else len(self)) - begin + 1
        return at


@pytest.mark.parametrize(
    "fragment", ["<![foo bar", "<p>a <![ b</p>", "<![ x", "<![if !IE]>z", "<!", "<![CDATA[x]]> y"]
)
def test_marked_sections_do_not_raise(fragment):
    assert isinstance(html_to_text(fragment), str)


def test_mastodon_marked_section_reads_as_html5_does():
    assert html_to_text("<p>before <![foo]> after</p>") == "before after"
    assert html_to_text("x <![CDATA[hidden]]> y") == "x y"


@pytest.mark.parametrize(
    "unit",
    [
        "<a",
        "<a\n",
        "<a b='",
        "<a b='>'",
        "<!--",
        "a<",
        "</",
        "<a b=",
        "<!-- x>",
        "<![",
        "<?",
        "&#",
        "<script>",
        "</scrip",
        "<p>x</p>",  # no "=" anywhere: an uncached search for one rescans the rest per tag
        "<a b='1' c=\"2\">t</a>",
    ],
)
def test_html_to_text_is_linear_on_quadratic_shapes_at_the_cap(unit):
    """html.parser took 1-23 s on these at 64 KiB (it rescanned to the end from every ``<``).
    The tokenizer's scans add up to a few passes over the input (measured: at most 2), never
    one per tag."""
    s = (unit * (MAX_HTML_CHARS // len(unit) + 1))[:MAX_HTML_CHARS]
    _Counting.scanned = 0
    _Tokens(_Counting(s)).run()
    assert 0 < _Counting.scanned <= 3 * len(s)
    assert isinstance(html_to_text(s), str)


def test_html_to_text_reads_only_the_first_64_kib():
    assert MAX_HTML_CHARS == 65_536
    assert len(html_to_text("<p>" + "x" * 200_000 + "</p>")) == MAX_HTML_CHARS - 3


def test_html_to_text_keeps_its_output_on_ordinary_html():
    assert (
        html_to_text(
            '<p>Hi &amp; <a href="https://x.example/a?b=1&amp;c=2"><span class="invisible">'
            "https://</span>x.example</a></p><p>two<br/>lines</p><script>no</script>"
        )
        == "Hi & https://x.example\n\ntwo\n\nlines"
    )
    assert html_to_text("a < b and c > d") == "a < b and c > d"
    assert html_to_text("x<y") == "x<y"  # an open tag at the end is text, as html.parser had it
    assert html_to_text("<!-- hidden -->seen<!---->") == "seen"
