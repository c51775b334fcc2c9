"""Host CPU time of one hostile record through the worker's per-record path, class by class.

    .venv/bin/python bench/hostile.py [--per-class 12] [--quick] [--lang-codes 10000]

Builds a real `monitor.worker.Worker` the way `monitor.app.build_worker` composes it (the
default model's tokenizer through `load_scorer` + `pretokenizer`, `TopicMatcher.from_config`,
the real `to_labels`), with in-memory fakes for the consumer, the producer and the store, and a
scorer stub whose forward pass returns fixed outputs of the right shape. Topics: 20 keyword
topics and 200 query topics (the shapes of `bench/query.py`), so matching costs what it would.
Then, per record, ``worker._prepare([(record, 0)])`` and ``worker._finish(items, outs, now)``
(everything the worker does for one record except the forward pass) are timed in CPU time
(``time.process_time``), for every class of `hostile_corpus` and for ordinary 280-character posts.

Each record runs in a forked child under a watchdog: Python's ``re`` holds the GIL and cannot
be interrupted, so a record that takes longer than ``--record-timeout-s`` is killed with its
child and reported as TIMEOUT (the rest of its class is skipped). A record that raises out of
the host path is reported as CRASHED. Either makes the exit status 1.

It also times every pattern of `monitor.patterns` directly on each class's strings (every
string field, and the NFKC/casefold form of the text), in the engine the module chose and in
the other one (RE2 for a ``re`` pattern; for an RE2 pattern, Python's ``re`` with the Unicode
classes translated), so a reader sees why each pattern is safe where it is; and, per pattern, how
its time grows when a class's long text doubles (about 2: linear). RE2 bounds one search, not a
``findall``/``sub``: that is one search per match, and a pattern with an alternative that can run
on to the end of the text (an e-mail shape over a text without spaces) is quadratic there.

Prints a table per class, the regex tables and, as its LAST line, one JSON object. The target:
every class under 50 ms of host CPU per record.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import multiprocessing as mp
import os
import random
import re
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TARGET_MS = 50.0
MAX_TEXT = 20_000  # WorkerConfig.max_text_chars: the longest text the worker accepts
SCHEMA_VERSION = 1  # monitor.messages.SCHEMA_VERSION (not imported: this module stays light)

# ---- the corpus ------------------------------------------------------------------------------
CLASSES: dict[str, str] = {
    # regex shapes (monitor.patterns, the old language._NOISE, query tokenizer, slack, detectors)
    "re_lang_at_dash": '"@-"*n: the old language._NOISE e-mail alternative (cubic in re)',
    "re_lang_a_at": '"a@"*n: e-mail shapes, \\S+@\\S+ (detectors) and LANGUAGE_NOISE',
    "re_lang_email_dot": '"x@y."*n: e-mail with dots, never a word after the last dot',
    "re_lang_links": '"http://"*n, "www."*n, "@."*n, "#."*n: link and handle alternatives',
    "re_token_at_dash": '"@a-"*n: TOKEN mention with separators',
    "re_token_hash": '"#"*n: TOKEN hashtag with no word',
    "re_token_at_dot_at": '"@a.a@"*n: TOKEN mention@instance chains',
    "re_spaces": 'runs of " \\t\\u00a0\\f\\v" (SPACES) ending in one letter',
    "re_blank_lines": '"\\n" + spaces, "\\n \\n"*n (BLANK_LINES)',
    "re_slack_digits": '"1 "*n, "1("*n, "+1 ("*n (PHONE_CANDIDATE)',
    "re_slack_email": '"a.+"*n + "@", "a@a."*n, "a@a-"*n (EMAIL)',
    "re_card_chains": '"4 "*n, "1-"*n, "4111 1111 "*n, cards back to back (DIGIT_CHAIN, Luhn windows)',
    "re_term": '"#a\'-"*n, "aaa-"*n, "a\'"*n (TERM, TERM_NOISE)',
    "re_reddit_tail": 'spaces + "submitted by /u/x [link]" with no [comments] (REDDIT_TAIL)',
    "re_topic_phrase": '"new "*n, "phone"*n: keyword phrases and word boundaries',
    "markup": '"<a"*n, "<![", "&#x"*n, "<!--"*n, "</"*n: HTML-ish text',
    # Unicode that expands under NFKC / casefold
    "nfkc_fdfa": "U+FDFA (18 chars under NFKC) x 20,000",
    "nfkc_squared": "U+3300..U+3357 squared katakana (up to 5 chars each)",
    "nfkc_ligature": "U+FB00..U+FB06 ligatures (U+FB03 ffi)",
    "casefold_expand": "ß, ǰ (U+01F0), ΐ (U+0390), İ (U+0130), ﬅ: casefold expands",
    "fullwidth": "fullwidth forms U+FF01..U+FF5E",
    "combining_zalgo": "one base + thousands of U+0300..U+036F, or many bases x 200 marks",
    "emoji": "ZWJ families, skin tones, flags, keycaps, variation selectors",
    "bidi_controls": "U+202A..U+202E, U+2066..U+2069, U+200E/F with Hebrew and Arabic",
    "zero_width": "U+200B, U+200C, U+200D, U+2060, U+FEFF between letters",
    "long_word": "one 20,000-character word, or digits, or underscores",
    "word_soup": "thousands of distinct words (prefix atoms, the inverted index)",
    # JSON structure
    "json_deep_v": "v nested 1000-2000 deep (lists and objects)",
    "json_deep_kind": "kind nested 1000-2000 deep",
    "json_deep_text": "text nested 1000-2000 deep",
    "json_deep_unknown": "an unknown field nested 1000-2000 deep",
    "json_deep_fields": "id, source, lang, url, topic_hints, hashtags nested deep",
    "json_wide": "100k keys, at the top or in an unknown field; 100k duplicate ids",
    "json_numbers": "2**64, 1e308, 5000-digit ints (token and string), -0, NaN, Infinity",
    "lone_surrogates": '"\\ud800" escapes (and reversed pairs) in every string field',
    "invalid_utf8": "invalid UTF-8 bytes in strings, truncated sequences",
    "overlong_utf8": "overlong encodings, UTF-8-encoded surrogates, code points > U+10FFFF",
    "control_fields": "NUL, ESC, DEL, C1, U+2028, U+202E, newlines in every field",
    "lang_shapes": 'lang values: long, "en\\n", "../", fullwidth, bidi, "und", subtags',
    "lang_distinct": "distinct 3-letter lang codes, one per record",
    "topic_hints_huge": "100k hints, 32 x 25k-char hints, NFKC-expanding hints",
    "hashtags_huge": "100k hashtags, 64 x 10k-char hashtags, NFKC-expanding hashtags",
    "deletions": "delete records with hostile ids, sources and deleted_ms",
    "schema_edge": "BOM, v true, duplicate keys, text of 20,000 / 20,001 chars, unicode blanks",
}

WORDS = [
    "phone",
    "battery",
    "screen",
    "camera",
    "update",
    "price",
    "delivery",
    "service",
    "bank",
    "train",
    "coffee",
    "game",
    "music",
    "weather",
    "store",
    "app",
    "login",
    "refund",
    "support",
    "laptop",
    "tablet",
    "charger",
    "ticket",
    "flight",
    "hotel",
    "pizza",
]
FILLER = (
    "honestly the new update made everything slower and the support team keeps telling me to "
    "restart it, which I did three times already; still waiting for a refund and a real answer "
    "from anyone who works there, thanks for nothing and have a nice weekend everyone"
)
MAX_RECORD_BYTES = 1_000_000  # every record must travel through Kafka (fault suite)


def _fit(unit: str, n: int) -> str:
    return (unit * (n // len(unit) + 1))[:n]


class _Maker:
    """Builds the records of one class; ``i`` is the record's index within its class."""

    def __init__(self, seed: int, now_ms: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.now = now_ms

    def post(self, cls: str, i: int, **over: Any) -> dict[str, Any]:
        d: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "kind": "post",
            "id": f"hostile-{cls}-{self.seed}-{i}",
            "source": "hostile",
            "text": "the battery died again today",
            "created_ms": self.now,
            "ingested_ms": self.now,
            "lang": "",
        }
        d.update(over)
        return d

    def dumps(self, d: dict[str, Any], raw: dict[str, bytes] | None = None) -> bytes:
        """JSON with some values spliced in as raw bytes (deep nesting, number tokens and
        escapes that no encoder would write)."""
        out = orjson.dumps(d)
        for name, blob in (raw or {}).items():
            out = out.replace(orjson.dumps(f"@@{name}@@"), blob, 1)
        return out

    def text_post(self, cls: str, i: int, text: str) -> bytes:
        """A text class's record: mostly the full 20,000 chars with no language tag (so the
        language is detected), some shorter, some starting with topic words, some tagged."""
        n = MAX_TEXT if i % 2 == 0 else self.rng.randrange(MAX_TEXT // 4, MAX_TEXT)
        if i % 4 == 1:
            text = f"{self.rng.choice(WORDS)} #{self.rng.choice(WORDS)} " + text
        over: dict[str, Any] = {"text": text[:n]}
        if i % 3 == 2:
            over["lang"] = "en"
        if i % 5 == 3:
            over["hashtags"] = [self.rng.choice(WORDS) for _ in range(8)]
        return orjson.dumps(self.post(cls, i, **over))


def _deep(depth: int, i: int) -> bytes:
    if i % 3 == 0:
        return b"[" * depth + b"]" * depth
    if i % 3 == 1:
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'[{"a":' * (depth // 2) + b"[]" + b"}]" * (depth // 2)


_DEPTHS = [1000, 1020, 1023, 1019, 1100, 2000, 1010, 998]


def _text_classes(m: _Maker) -> dict[str, Callable[[int], str]]:
    rng = m.rng
    big = MAX_TEXT + 8

    def cycle(*units: str) -> Callable[[int], str]:
        return lambda i: _fit(units[i % len(units)], big)

    def squared(_i: int) -> str:
        return "".join(chr(rng.randrange(0x3300, 0x3358)) for _ in range(big))

    def zalgo(i: int) -> str:
        marks = lambda k: "".join(chr(rng.randrange(0x300, 0x370)) for _ in range(k))  # noqa: E731
        if i % 2 == 0:
            return "a" + marks(big)
        return "".join("a" + marks(199) for _ in range(big // 200 + 1))

    def emoji(i: int) -> str:
        units = [
            "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
            "\U0001f44d\U0001f3fd",
            "\U0001f1fa\U0001f1f8",
            "1\ufe0f\u20e3",
            "\u2764\ufe0f",
            "\U0001f3f3\ufe0f\u200d\U0001f308",
            "\U0001f9d1\U0001f3ff\u200d\U0001f91d\u200d\U0001f9d1\U0001f3fb",
        ]
        if i % 2 == 0:
            return _fit(units[i % len(units)], big)
        return "".join(rng.choice(units) + rng.choice(["", " "]) for _ in range(big // 3))

    def bidi(_i: int) -> str:
        pool = (
            list("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
            + list("שלוםمرحبا")
            + ["abc", " "]
        )
        return "".join(rng.choice(pool) for _ in range(big))

    def zero_width(i: int) -> str:
        zw = "\u200b\u200c\u200d\u2060\ufeff"
        if i % 2:
            return _fit("a" + zw[i % len(zw)], big)
        return "".join(rng.choice("ab" + zw) for _ in range(big))

    def fullwidth(_i: int) -> str:
        return "".join(chr(rng.randrange(0xFF01, 0xFF5F)) for _ in range(big))

    def soup(_i: int) -> str:
        letters = "abcdefghijklmnopqrstuvwxyz"
        out, n = [], 0
        while n < big:
            w = "".join(rng.choice(letters) for _ in range(rng.randrange(3, 9)))
            out.append(w)
            n += len(w) + 1
        return " ".join(out)

    def long_word(i: int) -> str:
        return _fit(["a", "1", "_", "ab1_"][i % 4], big)

    return {
        "re_lang_at_dash": cycle("@-", "@-a", "-@"),
        "re_lang_a_at": cycle("a@", "@a", "a@@"),
        "re_lang_email_dot": cycle("x@y.", "x@y.-", "x@.y"),
        "re_lang_links": cycle("http://", "www.", "@.", "#.", "https://a@"),
        "re_token_at_dash": cycle("@a-", "@a-a", "@a.-"),
        "re_token_hash": cycle("#", "##a", "#@"),
        "re_token_at_dot_at": cycle("@a.a@", "@a.a@a.", "@a@a@"),
        "re_spaces": lambda i: _fit([" \t\u00a0", "\u00a0", " \f\v"][i % 3], MAX_TEXT - 1) + "x",
        "re_blank_lines": lambda i: (
            ["\n" + " " * (MAX_TEXT - 2), _fit("\n \n", MAX_TEXT - 1), _fit("\n\t", MAX_TEXT - 1)][i % 3]
            + "x"
        ),
        "re_slack_digits": cycle("1 ", "1(", "+1 (", "1-1."),
        "re_slack_email": lambda i: [_fit("a.+", MAX_TEXT - 1) + "@", _fit("a@a.", big), _fit("a@a-", big)][
            i % 3
        ],
        "re_card_chains": cycle("4 ", "1-", "4111 1111 ", "4111111111111111 ", "phone 4111 1111 1111 1111 "),
        "re_term": cycle("#a'-", "aaa-", "a'", "@aa_"),
        "re_reddit_tail": lambda i: [
            " " * 19_000 + "submitted by /u/x [link]",
            _fit("submitted by /u/x [link] ", big),
            _fit(" submitted by", big),
        ][i % 3],
        "re_topic_phrase": cycle("new ", "phone", "phone#", "#phone"),
        "markup": cycle("<a", "<![", "&#x", "<!--", "</", "<a href='"),
        "nfkc_fdfa": lambda i: _fit("\ufdfa" if i % 3 != 1 else "\ufdfa ", big),
        "nfkc_squared": squared,
        "nfkc_ligature": lambda i: _fit(["\ufb03", "\ufb00\ufb01\ufb02\ufb04\ufb05\ufb06"][i % 2], big),
        "casefold_expand": lambda i: _fit(["ß", "\u01f0", "\u0390", "\u0130", "\ufb05", "ßǰΐİ "][i % 6], big),
        "fullwidth": fullwidth,
        "combining_zalgo": zalgo,
        "emoji": emoji,
        "bidi_controls": bidi,
        "zero_width": zero_width,
        "long_word": long_word,
        "word_soup": soup,
    }


def _json_records(m: _Maker, cls: str, i: int) -> bytes:  # noqa: C901 - one branch per class
    rng = m.rng
    if cls.startswith("json_deep_"):
        field = {
            "json_deep_v": "v",
            "json_deep_kind": "kind",
            "json_deep_text": "text",
            "json_deep_unknown": "extra",
        }.get(cls) or ["id", "source", "lang", "url", "topic_hints", "hashtags", "author_id", "created_ms"][
            i % 8
        ]
        return m.dumps(
            m.post(cls, i, **{field: f"@@{field}@@"}), {field: _deep(_DEPTHS[i % len(_DEPTHS)], i)}
        )
    if cls == "json_wide":
        chars = "abcdefghijklmnopqrstuvwxyz0123456789"
        keys = [f'"{a}{b}{c}":0'.encode() for a in chars for b in chars for c in chars]
        many = b",".join(keys[:100_000])
        shape = i % 4
        if shape == 0:
            return m.dumps(m.post(cls, i, x="@@x@@"), {"x": b"0," + many}).replace(b'"x":0,', b"", 1)
        if shape == 1:
            return m.dumps(m.post(cls, i, extra="@@x@@"), {"x": b"{" + many + b"}"})
        if shape == 2:
            ids = b",".join(b'"id":"d%d"' % k for k in range(60_000))
            return m.dumps(m.post(cls, i, extra=0), {}).replace(b'"extra":0', ids, 1)
        return m.dumps(m.post(cls, i, extra="@@x@@"), {"x": b"[" + b",".join([b"0"] * 200_000) + b"]"})
    if cls == "json_numbers":
        tokens = [
            b"18446744073709551616",
            b"9223372036854775808",
            b"9007199254740993",
            b"1e308",
            b"-1e308",
            b"9" * 5000,
            b"-0",
            b"-0.0",
            b"NaN",
            b"Infinity",
            b"-Infinity",
            b"1e-400",
            b"1E+999",
            b'"' + b"7" * 5000 + b'"',
            b"1.0",
            b"0x10",
            b"1_000",
            b"+1",
            b"01",
        ]
        field = ["created_ms", "ingested_ms", "v", "created_ms", "id", "is_reply"][i % 6]
        return m.dumps(m.post(cls, i, **{field: f"@@{field}@@"}), {field: tokens[i % len(tokens)]})
    if cls == "lone_surrogates":
        escapes = [
            b'"\\ud800"',
            b'"abc\\udc00\\ud800"',
            b'"\\ud800\\u0041"',
            b'"x\\udfff"',
            b'"\\ud83d\\ude00 ok"',
            b'"' + b"\\ud800" * 2000 + b'"',
        ]
        field = ["text", "id", "source", "lang", "url", "author_id", "topic_hints", "hashtags"][i % 8]
        blob = escapes[i % len(escapes)]
        if field in ("topic_hints", "hashtags"):
            blob = b"[" + blob + b"]"
        return m.dumps(m.post(cls, i, **{field: f"@@{field}@@"}), {field: blob})
    if cls in ("invalid_utf8", "overlong_utf8"):
        bad = (
            [b"\xff", b"\xfe\xff", b"\x80", b"abc\xc3", b"\xe2\x82", b"\xf5\x80\x80\x80", b"\xc3\x28"]
            if cls == "invalid_utf8"
            else [
                b"\xc0\xaf",
                b"\xe0\x80\xaf",
                b"\xf0\x80\x80\xaf",
                b"\xc1\xbf",
                b"\xed\xa0\x80",
                b"\xed\xbf\xbf",
                b"\xf4\x90\x80\x80",
            ]
        )[i % 7]
        field = ["text", "id", "source", "lang", "url", "author_id", "extra"][i % 7]
        blob = b'"bad ' + bad * (1 + rng.randrange(50)) + b'"'
        return m.dumps(m.post(cls, i, **{field: f"@@{field}@@"}), {field: blob})
    if cls == "control_fields":
        chars = ["\x00", "\x1b[2J", "\x7f", "\x85", "\x9b31m", "\u2028", "\u202e", "\n", "\r", "\x08"]
        field = ["id", "source", "lang", "url", "author_id", "text", "topic_hints", "hashtags"][i % 8]
        ch = chars[(i // 8 + i) % len(chars)]
        val: Any = {
            "id": f"id{ch}{i}",
            "source": f"src{ch}",
            "lang": f"en{ch}",
            "url": f"https://x/{ch}",
            "author_id": f"a{ch}",
            "text": f"battery {ch} died",
            "topic_hints": [f"h{ch}"],
            "hashtags": [f"t{ch}"],
        }[field]
        return orjson.dumps(m.post(cls, i, **{field: val}))
    if cls == "lang_shapes":
        shapes = [
            "a" * 2048,
            "a" * 16,
            "a" * 17,
            "en\n",
            "../",
            "..\\x",
            "en-US",
            "EN_us",
            "und",
            "x-unknown",
            "UNKNOWN",
            "-",
            "_",
            "--",
            " ",
            "\u00a0",
            "\uff45\uff4e",
            "en\u202e",
            "zh-Hant-TW",
            "i-klingon",
            "*",
            "{x}",
            "en:1",
            "é",
            "ß",
            "\u0130",
            "en-" + "x" * 12,
            "\U0001f600",
        ]
        return orjson.dumps(
            m.post(cls, i, lang=shapes[i % len(shapes)], text="the battery died again today, what a day")
        )
    if cls == "lang_distinct":
        a = "abcdefghijklmnopqrstuvwxyz"
        code = a[i // 676 % 26] + a[i // 26 % 26] + a[i % 26]
        return orjson.dumps(m.post(cls, i, lang=code, text=f"battery {code} died again today"))
    if cls == "topic_hints_huge":
        shape = i % 5
        hints: Any = (
            [f"h{k}" for k in range(100_000)]
            if shape == 0
            else ["h" * 25_000 for _ in range(32)]
            if shape == 1
            else ["\ufdfa" * 10_000 for _ in range(20)]
            if shape == 2
            else ["x" * 900_000]
            if shape == 3
            else ["ＨＩＮＴ" * 2000, "\u0130" * 50_000, "ß" * 100_000]
        )
        return orjson.dumps(m.post(cls, i, topic_hints=hints))
    if cls == "hashtags_huge":
        shape = i % 4
        tags: Any = (
            [f"t{k}" for k in range(100_000)]
            if shape == 0
            else ["t" * 10_000 for _ in range(64)]
            if shape == 1
            else ["\ufdfa" * 255 + "x" for _ in range(64)]
            if shape == 2
            else ["#" * 5000, "\u0300" * 5000, "", " ", "\x00"]
        )
        return orjson.dumps(m.post(cls, i, hashtags=tags))
    if cls == "deletions":
        ids = [
            "x" * 512,
            "x" * 513,
            "",
            " ",
            "id\x00",
            "*",
            "{a}:b",
            f"other-source-{i}",
            "\ufdfa" * 100,
            "hostile-re_lang_a_at-7-0",
        ]
        d: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "kind": "delete",
            "id": ids[i % len(ids)],
            "source": ["hostile", "", "x" * 65, "s\x1b"][i % 4],
            "deleted_ms": m.now,
        }
        if i % 5 == 4:
            return m.dumps(d, {}).replace(str(m.now).encode(), [b"1e308", b"-1", b"NaN", b"9" * 5000][i % 4])
        return orjson.dumps(d)
    if cls == "schema_edge":
        shape = i % 12
        if shape == 0:
            return b"\xef\xbb\xbf" + orjson.dumps(m.post(cls, i))
        if shape == 1:
            return orjson.dumps(m.post(cls, i, v=True))
        if shape == 2:
            return orjson.dumps(m.post(cls, i, v="1"))
        if shape == 3:
            return orjson.dumps(m.post(cls, i)).replace(b'"id":', b'"id":"dup","id":', 1)
        if shape == 4:
            return orjson.dumps(m.post(cls, i, text=_fit("battery ", MAX_TEXT)))
        if shape == 5:
            return orjson.dumps(m.post(cls, i, text=_fit("battery ", MAX_TEXT + 1)))
        if shape == 6:
            return orjson.dumps(m.post(cls, i, text="\u3000" * 5000))
        if shape == 7:
            return orjson.dumps(m.post(cls, i, kind="DELETE"))
        if shape == 8:
            return [b"", b"null", b"   ", b"[]", b'"x"', b"{}"][i // 12 % 6]
        if shape == 9:
            return orjson.dumps(m.post(cls, i, text="x" * 900_000))
        if shape == 10:
            return orjson.dumps(m.post(cls, i, is_reply="yes", is_quote=1))
        return orjson.dumps(m.post(cls, i, text=_fit("\u00a0\u2003\u205f\u3000", MAX_TEXT - 1) + "."))
    raise ValueError(cls)


def hostile_corpus(
    seed: int = 7, per_class: int = 12, *, lang_codes: int | None = None, now_ms: int | None = None
) -> list[tuple[str, bytes]]:
    """(class, raw record value) for every class of `CLASSES`, ``per_class`` records each
    (``lang_distinct``: ``lang_codes`` records when given, up to 17,576). Deterministic for a
    seed and ``now_ms``. No record is over `MAX_RECORD_BYTES`; no text contains the fault
    suite's topic keywords (``kw0``..``kw3``), so a hostile post is never counted there."""
    m = _Maker(seed, now_ms if now_ms is not None else int(time.time() * 1000))
    texts = _text_classes(m)
    out: list[tuple[str, bytes]] = []
    for cls in CLASSES:
        n = min(max(per_class, lang_codes or 0), 26**3) if cls == "lang_distinct" else per_class
        for i in range(n):
            value = m.text_post(cls, i, texts[cls](i)) if cls in texts else _json_records(m, cls, i)
            out.append((cls, value))
    return out


def ordinary_posts(n: int, seed: int = 5, now_ms: int | None = None) -> list[bytes]:
    """Ordinary 280-character posts with no language tag (so it is detected), each naming a topic."""
    rng = random.Random(seed)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    filler = FILLER.split()
    out = []
    for i in range(n):
        words = [rng.choice(WORDS), f"#{rng.choice(WORDS)}", f"@brand{rng.randrange(300)}"]
        while len(" ".join(words)) < 280:
            words.append(rng.choice(filler))
        text = " ".join(words)[:280]
        out.append(
            orjson.dumps(
                {
                    "v": SCHEMA_VERSION,
                    "kind": "post",
                    "id": f"ordinary-{seed}-{i}",
                    "source": "bench",
                    "text": text,
                    "created_ms": now,
                    "ingested_ms": now,
                }
            )
        )
    return out


# ---- the worker on fakes -----------------------------------------------------------------------
class _Consumer:
    def poll(self, timeout_ms: int, max_records: int | None = None) -> list[Any]:
        return []

    def commit(self, records: Any) -> None:
        pass

    def assignment(self) -> list[tuple[str, int]]:
        return [("posts.raw", 0)]

    def close(self) -> None:
        pass


class _Producer:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def send(self, key: bytes | None, value: bytes, *, topic: str | None = None, headers: Any = None) -> None:
        for name, v in headers or ():
            if name == "reason":
                self.reasons.append(v.decode("utf-8", "replace"))

    def flush(self, timeout_s: float = 30.0) -> None:
        pass

    def close(self, timeout_s: float = 10.0) -> None:
        pass


class _Store:
    """The store calls `Worker._finish` makes, in memory (tests/unit/test_worker_pipeline.py)."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        self.wm: dict[tuple[str, str], int] = {}

    def claim_ids(self, items: Any) -> list[str | None]:
        out = []
        for pid, origin in items:
            prev = self.seen.setdefault(pid, origin)
            out.append(None if prev == origin else prev)
        return out

    def watermarks(self, pairs: Any) -> dict[tuple[str, str], int]:
        return {p: self.wm.get(p, -1) for p in pairs}

    def apply(self, writes: Any) -> tuple[int, int]:
        for topic, parts in writes.items():
            for pw in parts:
                key = (topic, pw.partition)
                self.wm[key] = max(self.wm.get(key, -1), pw.last_offset)
        return len(writes), 0

    def __getattr__(self, name: str) -> Any:  # remember, forget_text, heartbeat, incr_stats, ...
        return lambda *a, **k: None


class _StubScorer:
    """The forward pass, replaced by fixed outputs of the shape `to_labels` reads."""

    name = "stub"
    trained = True

    def __init__(self, out: Any) -> None:
        self.out = out

    def score(self, texts: Any, langs: Any = None) -> list[Any]:
        return [self.out] * len(texts)


def bench_topics() -> list[Any]:
    """20 keyword topics and 200 query topics, as validated settings."""
    from bench.query import make_queries
    from monitor.settings import TopicSettings

    rng = random.Random(13)
    topics = []
    for i in range(20):
        a, b = rng.sample(WORDS, 2)
        topics.append(
            TopicSettings(name=f"kw-{i}-{a}", keywords=[a, f"{a} {b}", f"new {a}"], hashtags=[a, b])
        )
    topics += [TopicSettings(name=f"q-{name}", query=q) for name, q in make_queries(200)]
    return topics


def build_worker(model: str = "default") -> Any:
    from monitor.model.base import ModelOutput, to_labels
    from monitor.model.runtime import pretokenizer
    from monitor.model.scorers import load_scorer
    from monitor.model.settings import ModelSettings
    from monitor.topics import TopicMatcher
    from monitor.worker import Worker, WorkerConfig

    emotion = None if model.startswith("builtin:") else "default"
    real = load_scorer(ModelSettings(sentiment=model, emotion=emotion))
    out = ModelOutput((0.2, 0.3, 0.5), (0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.4))
    cfg = WorkerConfig(lateness_ms=86_400_000, process_name="hostile-bench")
    return Worker(
        cfg,
        _Consumer(),
        _Producer(),
        _StubScorer(out),
        to_labels,
        _Store(),
        TopicMatcher.from_config(bench_topics()),
        encode=pretokenizer(real),
    )


# ---- jobs, run in forked children under a watchdog ------------------------------------------
class _State:
    worker: Any = None
    records: dict[str, list[bytes]] = {}
    patterns: dict[str, tuple[str, Any, Any]] = {}  # name -> (engine, compiled, other engine's)
    offset = 0


def _host_job(cls: str, i: int) -> dict[str, Any]:
    from monitor.kafka import Record

    w = _State.worker
    _State.offset += 1
    rec = Record("posts.raw", 0, _State.offset, f"{cls}-{i}".encode(), _State.records[cls][i], 0)
    reasons = w.producer.reasons
    del reasons[:]
    stage = "prepare"
    t0 = time.process_time()
    try:
        items = [it for it, _ in w._prepare([(rec, 0)])]
        t1 = time.process_time()
        stage = "finish"
        posts = [it for it in items if getattr(it, "dlq", None) is None and hasattr(it.msg, "text")]
        scores = dict(zip(map(id, posts), w.scorer.score([it.text for it in posts]), strict=True))
        res = w._finish(items, [scores.get(id(it)) for it in items], int(time.time() * 1000))
        t2 = time.process_time()
    except BaseException as exc:  # noqa: BLE001 - a record that raises is the finding
        return {
            "crash": f"{stage}: {type(exc).__name__}: {str(exc)[:100]}",
            "ms": (time.process_time() - t0) * 1000,
        }
    outcome = reasons[0] if reasons else "scored" if res.scored else "deletion" if res.deletions else "other"
    return {
        "ms": (t2 - t0) * 1000,
        "prep_ms": (t1 - t0) * 1000,
        "finish_ms": (t2 - t1) * 1000,
        "outcome": outcome,
    }


def _record_strings(value: bytes) -> list[str]:
    """What a pattern could be handed from this record: every string field (and strings in
    lists), the text's NFKC/casefold form; the raw bytes, decoded, when it is not JSON."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return [value.decode("utf-8", "replace")]
    if not isinstance(obj, dict):
        return [value.decode("utf-8", "replace")]
    out: list[str] = []
    for v in obj.values():
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, list):
            out += [x for x in v if isinstance(x, str)]
    text = obj.get("text")
    if isinstance(text, str):
        folded = unicodedata.normalize("NFKC", text).casefold()
        if folded != text:
            out.append(folded)
    return out


def _regex_job(cls: str, name: str, other: bool, limit: int) -> dict[str, Any]:
    engine, rx, alt = _State.patterns[name]
    rx = alt if other else rx
    worst = 0.0
    for value in _State.records[cls][:limit]:
        total = 0.0
        for s in _record_strings(value):
            t0 = time.process_time()
            rx.findall(s)  # a full scan with every match: the upper bound of search and sub
            total += time.process_time() - t0
        worst = max(worst, total)
    return {"ms": worst * 1000}


def _growth_job(cls: str, name: str) -> dict[str, Any]:
    """The pattern (the module's engine) on the class's first long text and on its first half:
    a linear pattern takes about twice as long on the whole, a quadratic one four times."""
    rx = _State.patterns[name][1]
    for value in _State.records[cls]:
        try:
            text = orjson.loads(value).get("text")
        except (orjson.JSONDecodeError, AttributeError):
            continue
        if isinstance(text, str) and len(text) >= 4000:
            times = []
            for part in (text[: len(text) // 2], text):
                best = math.inf
                for _ in range(3):
                    t0 = time.process_time()
                    rx.findall(part)
                    best = min(best, time.process_time() - t0)
                times.append(best * 1000)
            return {"half_ms": times[0], "ms": times[1], "ratio": times[1] / times[0] if times[0] else 0.0}
    return {}


def _child(jobs: list[tuple[Any, ...]], start: int, skip: set[str], conn: Any) -> None:
    logging.getLogger().setLevel(logging.CRITICAL)
    for k in range(start, len(jobs)):
        job = jobs[k]
        if job[0] == "host" and job[1] in skip:
            conn.send((k, {"skipped": True}))
            continue
        if job[0] == "host" and job[2] == 0:
            gc.collect()
        run = {"host": _host_job, "regex": _regex_job, "growth": _growth_job}[job[0]]
        res = run(*job[1:])
        conn.send((k, res))
    conn.send(None)


def run_jobs(
    jobs: list[tuple[Any, ...]],
    timeout_of: Callable[[tuple[Any, ...]], float],
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the jobs in order in forked children; a job over its timeout is killed with its
    child and the next child starts after it (a host timeout skips the rest of its class)."""
    ctx = mp.get_context("fork")
    results: list[dict[str, Any]] = [{} for _ in jobs]
    skip: set[str] = set()
    k = 0
    while k < len(jobs):
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(jobs, k, skip, send), daemon=True)
        proc.start()
        send.close()
        while k < len(jobs):
            if not recv.poll(timeout_of(jobs[k])):
                proc.kill()
                results[k] = {"timeout_s": timeout_of(jobs[k])}
                if jobs[k][0] == "host":
                    skip.add(jobs[k][1])
                k += 1
                break
            try:
                msg = recv.recv()
            except EOFError:  # the child died: a segfault or the OOM killer
                results[k] = {"crash": f"the process died (exit {proc.exitcode})"}
                k += 1
                break
            if msg is None:
                k = len(jobs)
                break
            idx, res = msg
            results[idx] = res
            k = idx + 1
            if progress is not None:
                progress(k)
        proc.join()
        recv.close()
    return results


# ---- patterns: both engines ------------------------------------------------------------------
def _to_re2(src: str) -> str:
    src = re.sub(r"\\u([0-9a-fA-F]{4})", r"\\x{\1}", src)
    return re.sub(r"\\U([0-9a-fA-F]{8})", r"\\x{\1}", src)


def _to_python(src: str) -> str:
    """An RE2 pattern in Python's syntax: its spelled-out Unicode classes back to \\w, \\s."""
    src = src.replace(r"\p{L}\p{N}_", r"\w").replace(r"\s\p{Z}", r"\s")
    return src.replace(r"\p{L}", r"[^\W\d_]").replace(r"\p{N}", r"\d").replace(r"\p{Z}", r"\s")


def load_patterns() -> dict[str, tuple[str, Any, Any]]:
    import re2

    from monitor import patterns

    out = {}
    for name, obj in vars(patterns).items():
        if isinstance(obj, re.Pattern):
            try:
                alt = re2.compile(_to_re2(obj.pattern))
            except Exception:  # noqa: BLE001 - RE2 refuses some syntax: no comparison then
                alt = None
            out[name] = ("re", obj, alt)
        elif type(obj).__module__.startswith("re2") and hasattr(obj, "findall") and hasattr(obj, "pattern"):
            try:
                alt = re.compile(_to_python(obj.pattern))
            except re.error:
                alt = None
            out[name] = ("re2", obj, alt)
    return out


# ---- report ---------------------------------------------------------------------------------
def _p99(xs: list[float]) -> float:
    s = sorted(xs)
    return s[max(0, math.ceil(0.99 * len(s)) - 1)] if s else 0.0


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ms = [r["ms"] for r in rows if "ms" in r and "crash" not in r]
    crashes = [r["crash"] for r in rows if "crash" in r]
    timeouts = [r for r in rows if "timeout_s" in r]
    outcomes = Counter(r["outcome"] for r in rows if "outcome" in r)
    d: dict[str, Any] = {
        "n": len(ms),
        "max_ms": round(max(ms), 3) if ms else 0.0,
        "p99_ms": round(_p99(ms), 3),
        "max_prepare_ms": round(max((r.get("prep_ms", 0) for r in rows), default=0), 3),
        "max_finish_ms": round(max((r.get("finish_ms", 0) for r in rows), default=0), 3),
        "outcomes": dict(outcomes.most_common()),
    }
    if crashes:
        d["crashed"] = len(crashes)
        d["crash"] = Counter(crashes).most_common(1)[0][0]
    if timeouts:
        d["timeout"] = f">{timeouts[0]['timeout_s']:.0f} s"
        d["max_ms"] = max(d["max_ms"], timeouts[0]["timeout_s"] * 1000)
        d["p99_ms"] = max(d["p99_ms"], d["max_ms"]) if len(timeouts) / len(rows) > 0.01 else d["p99_ms"]
    if any("skipped" in r for r in rows):
        d["skipped"] = sum(1 for r in rows if "skipped" in r)
    return d


def _status(d: dict[str, Any]) -> str:
    if d.get("crashed"):
        return "CRASHED"
    if d.get("timeout"):
        return "TIMEOUT"
    return "ok" if d["max_ms"] < TARGET_MS else "OVER"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "describe", "--always", "--dirty"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _fmt_ms(r: dict[str, Any]) -> str:
    if "timeout_s" in r:
        return f">{r['timeout_s'] * 1000:.0f}"
    return f"{r['ms']:.2f}" if "ms" in r else "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", type=int, default=None, help="records per class (default 12, quick 3)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="fewer records, fewer baseline posts, tighter timeouts (under a minute)",
    )
    ap.add_argument(
        "--lang-codes",
        type=int,
        default=None,
        help="distinct 3-letter lang codes (records of lang_distinct; default 10000, quick 300)",
    )
    ap.add_argument(
        "--baseline", type=int, default=None, help="ordinary posts timed (default 400, quick 100)"
    )
    ap.add_argument(
        "--record-timeout-s",
        type=float,
        default=None,
        help="a record taking longer is killed, its class reported TIMEOUT (default 10, quick 5)",
    )
    ap.add_argument(
        "--regex-records",
        type=int,
        default=None,
        help="records per class the patterns are timed on (default 4, quick 2)",
    )
    ap.add_argument(
        "--other-engine-timeout-s",
        type=float,
        default=None,
        help="budget of the other engine on one class and pattern, which may backtrack "
        "(default 1.5, quick 0.5)",
    )
    ap.add_argument(
        "--model",
        default="default",
        help="whose tokenizer: default | builtin:tiny-untrained | a hub id or directory",
    )
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    per_class = args.per_class or (3 if args.quick else 12)
    lang_codes = args.lang_codes if args.lang_codes is not None else (300 if args.quick else 10_000)
    n_base = args.baseline or (100 if args.quick else 400)
    rec_timeout = args.record_timeout_s or (5.0 if args.quick else 10.0)
    regex_records = args.regex_records or (2 if args.quick else 4)
    other_timeout = args.other_engine_timeout_s or (0.5 if args.quick else 1.5)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread: CPU time is the record's
    logging.basicConfig(level=logging.CRITICAL)
    t_start = time.monotonic()
    print(f"building the worker (tokenizer of {args.model}, 220 topics) ...", file=sys.stderr)
    _State.worker = build_worker(args.model)
    corpus = hostile_corpus(args.seed, per_class, lang_codes=lang_codes)
    for cls, value in corpus:
        _State.records.setdefault(cls, []).append(value)
    _State.records["baseline"] = ordinary_posts(n_base)
    _State.records["warm-up"] = ordinary_posts(20, seed=99)
    _State.patterns = load_patterns()
    for i in range(20):  # the language model loads, caches fill: once, before the children fork
        _host_job("warm-up", i)

    classes = ["baseline", *CLASSES]
    host_jobs = [("host", c, i) for c in classes for i in range(len(_State.records[c]))]
    regex_jobs = [
        ("regex", c, name, other, regex_records)
        for c in classes
        for name in _State.patterns
        for other in (False, True)
        if not other or _State.patterns[name][2] is not None
    ]
    growth_jobs = [("growth", c, name) for c in CLASSES for name in _State.patterns]
    jobs: list[tuple[Any, ...]] = host_jobs + regex_jobs + growth_jobs
    print(
        f"{len(corpus)} hostile records in {len(CLASSES)} classes, {n_base} ordinary posts, "
        f"{len(regex_jobs)} pattern timings ...",
        file=sys.stderr,
    )

    def timeout_of(job: tuple[Any, ...]) -> float:
        if job[0] == "host":
            return rec_timeout
        return other_timeout if job[0] == "regex" and job[3] else rec_timeout

    results = run_jobs(jobs, timeout_of)
    by_class: dict[str, list[dict[str, Any]]] = {c: [] for c in classes}
    regex: dict[tuple[str, str, bool], dict[str, Any]] = {}
    growth: dict[tuple[str, str], dict[str, Any]] = {}
    for job, res in zip(jobs, results, strict=True):
        if job[0] == "host":
            by_class[job[1]].append(res)
        elif job[0] == "regex":
            regex[(job[1], job[2], job[3])] = res
        else:
            growth[(job[1], job[2])] = res
    summary = {c: _summary(rows) for c, rows in by_class.items()}
    base = summary.pop("baseline")

    # ---- the host path table
    print(
        f"\nhost CPU per record through Worker._prepare + Worker._finish (no forward pass), ms; "
        f"CPU {cpu_model()}, commit {commit()}"
    )
    head = (
        f"{'class':<20}{'n':>6}{'max':>10}{'p99':>10}{'x base':>8}{'prep':>9}{'finish':>9}  status   outcomes"
    )
    print(head)
    print("-" * len(head))

    def row(name: str, d: dict[str, Any]) -> str:
        ratio = d["p99_ms"] / base["p99_ms"] if base["p99_ms"] else 0.0
        outs = ", ".join(f"{k} {v}" for k, v in list(d["outcomes"].items())[:3])
        extra = f" [{d['crash']}]" if d.get("crash") else f" [{d['timeout']}]" if d.get("timeout") else ""
        return (
            f"{name:<20}{d['n']:>6}{d['max_ms']:>10.2f}{d['p99_ms']:>10.2f}{ratio:>8.1f}"
            f"{d['max_prepare_ms']:>9.2f}{d['max_finish_ms']:>9.2f}  {_status(d):<8} {outs}{extra}"
        )

    print(row("baseline (280 ch)", base))
    for c in CLASSES:
        print(row(c, summary[c]))

    # ---- the patterns, directly
    names = list(_State.patterns)
    print(
        f"\nmonitor.patterns on each class's strings (findall), ms per record, max over {regex_records} "
        "records: the engine the module chose / the other one ('>N': over the budget, killed)"
    )
    width = 17
    print(f"{'class':<20}" + "".join(f"{n[: width - 1]:>{width}}" for n in names))
    print(
        " " * 20
        + "".join(
            f"{(e + '/' + ('re' if e == 're2' else 're2')):>{width}}"
            for e in (_State.patterns[n][0] for n in names)
        )
    )
    for c in classes:
        cells = []
        for n in names:
            own = _fmt_ms(regex.get((c, n, False), {}))
            alt = _fmt_ms(regex.get((c, n, True), {}))
            cells.append(f"{own + '/' + alt:>{width}}")
        print(f"{c:<20}" + "".join(cells))
    regex_summary: dict[str, dict[str, Any]] = {}
    for n in names:

        def worst(other: bool, n: str = n) -> tuple[str, float, bool]:
            best = ("", -1.0, False)
            for c in classes:
                r = regex.get((c, n, other))
                if r:
                    v = r.get("ms", r.get("timeout_s", 0) * 1000)
                    if v > best[1]:
                        best = (c, v, "timeout_s" in r)
            return best

        oc, oms, _ = worst(False)
        ac, ams, over = worst(True) if _State.patterns[n][2] is not None else ("", -1.0, False)
        # growth per doubling of the text, where the time is big enough to read (>= 0.2 ms)
        grown = [(g["ratio"], c) for (c, m), g in growth.items() if m == n and g.get("ms", 0) >= 0.2]
        if any("timeout_s" in g for (c, m), g in growth.items() if m == n):
            grown.append((math.inf, next(c for (c, m), g in growth.items() if m == n and "timeout_s" in g)))
        gr, gc_ = max(grown, default=(None, ""))
        regex_summary[n] = {
            "engine": _State.patterns[n][0],
            "max_ms": round(oms, 3),
            "worst_class": oc,
            "other_engine_max_ms": round(ams, 3) if ams >= 0 else None,
            "other_engine_worst_class": ac or None,
            "other_engine_over_budget": over,
            "growth_per_doubling": None if gr is None or gr == math.inf else round(gr, 2),
            "growth_worst_class": gc_ or None,
        }
    print(
        f"\n{'pattern':<18}{'engine':>7}{'worst ms':>10}  {'worst class':<20}{'other':>10}"
        f"  {'other worst class':<20}{'x per 2x':>9}  its class"
    )
    for n, s in regex_summary.items():
        ams = s["other_engine_max_ms"]
        other = "-" if ams is None else f">{ams:.0f}" if s["other_engine_over_budget"] else f"{ams:.1f}"
        g = (
            "-"
            if not s["growth_worst_class"]
            else "timeout"
            if s["growth_per_doubling"] is None
            else f"{s['growth_per_doubling']:.2f}"
        )
        print(
            f"{n:<18}{s['engine']:>7}{s['max_ms']:>10.2f}  {s['worst_class']:<20}{other:>10}  "
            f"{s['other_engine_worst_class'] or '-':<20}{g:>9}  {s['growth_worst_class'] or '-'}"
        )
    print(
        "('x per 2x': the module's engine on a class's long text vs its first half, worst over the text "
        "classes; about 2 is linear, 4 quadratic)"
    )

    crashed = [c for c in CLASSES if summary[c].get("crashed")]
    timed_out = [c for c in CLASSES if summary[c].get("timeout")]
    worst_class = max(CLASSES, key=lambda c: summary[c]["max_ms"])
    under = all(summary[c]["max_ms"] < TARGET_MS for c in CLASSES) and not crashed and not timed_out
    print(
        f"\nworst class {worst_class}: {summary[worst_class]['max_ms']:.2f} ms max; "
        f"target {TARGET_MS:.0f} ms: {'every class under it' if under else 'NOT met'}; "
        f"crashed: {', '.join(crashed) or 'none'}; timeouts: {', '.join(timed_out) or 'none'}; "
        f"{time.monotonic() - t_start:.0f} s in all"
    )
    print(
        orjson.dumps(
            {
                "cpu_model": cpu_model(),
                "commit": commit(),
                "per_class": per_class,
                "lang_codes": lang_codes,
                "target_ms": TARGET_MS,
                "baseline": {"max_ms": base["max_ms"], "p99_ms": base["p99_ms"], "n": base["n"]},
                "classes": {
                    c: {k: v for k, v in summary[c].items() if k != "outcomes"}
                    | {"status": _status(summary[c])}
                    for c in CLASSES
                },
                "worst_class": worst_class,
                "all_under_target": under,
                "crashed": crashed,
                "timeouts": timed_out,
                "regex": regex_summary,
                "elapsed_s": round(time.monotonic() - t_start, 1),
            }
        ).decode()
    )
    return 1 if crashed or timed_out else 0


if __name__ == "__main__":
    sys.exit(main())
