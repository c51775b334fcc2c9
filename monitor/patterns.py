"""Every regular expression that the project applies to untrusted text, in one place. Pure.

Post texts, platform fields and feed bodies are written by strangers, so no pattern here may
take more than linear time in its input. Two engines, chosen per pattern:

- **RE2** (the ``google-re2`` package): an automaton with no backtracking, linear by
  construction, whatever the pattern. Used wherever Python's backtracking engine could go
  super-linear (alternatives or quantified classes that overlap, such as an e-mail shape
  ``[^@\\s]+@...`` searched from every position) and the call is not on the per-post hot path's
  critical step. RE2's ``\\w``, ``\\d`` and ``\\s`` are ASCII-only, so the Unicode classes are
  spelled out (`WORD`, `SPACE`).
  Each RE2 search is linear; ``sub``/``findall`` search once per match, so a pattern is also
  written so that a match's end is known where its run ends (see `LANGUAGE_NOISE`).
- **Python's re**, for patterns proven linear below. Only where it matters for speed: through
  its Python wrapper RE2 costs ~150 us a call on a 250-character post for ``findall`` against
  ~6 us for ``re`` (`bench/hostile.py` prints both engines' figures on hostile input).

Proofs for the ``re`` patterns (n = input length):

- `CONTROL`, `FIELD_CONTROL`, `INVISIBLE`: a single character class, no quantifier: one step per position.
- `TOKEN`: four alternatives. ``#\\w+`` and ``\\w+`` are a literal or nothing, then one greedy
  class run that nothing after it can force back. ``@\\w+(?:[.-]\\w+)*(?:@\\w+(?:[.-]\\w+)*)?``
  alternates runs of ``\\w`` with single separators from a disjoint set (``[.-@]`` contain no
  ``\\w``), and everything after the first ``\\w+`` is optional, so a started match never
  backtracks into an earlier run: an attempt costs its match length plus one, and ``findall``
  resumes after each match. Failed attempts stop at their first character. Total O(n).
- `SPACES` (``[ \\t\\r\\f\\v\\u00a0]+``): one class run; ``sub`` resumes after it. O(n).
- `BLANK_LINES` (``\\n\\s*\\n+``): starts only at a newline; ``\\s*`` then gives back at most the
  run it took, and the run ends where the next start position begins, so each character is
  examined a bounded number of times. O(n).
- `DIGIT_CHAIN` (``[0-9]+(?:[ -][0-9]+)*``): digit runs alternating with single separators
  from a disjoint set, the same shape as `TOKEN`'s mention: each repetition starts with a
  separator that no digit run can take, so a started match never backtracks into an earlier
  run; a failed repetition gives back one character. An attempt costs its match length plus
  two; a failed attempt stops at its first character; ``finditer`` resumes after each match. O(n).

tests/unit/test_patterns.py checks the rule: no other module in ``monitor/`` or ``connectors/``
compiles a regular expression except on configuration text (listed there, with the reason).
"""

from __future__ import annotations

import re
from typing import Any

import re2

# Unicode classes for RE2 (its \w and \s are ASCII only)
WORD = r"[\p{L}\p{N}_]"
SPACE = r"[\s\p{Z}]"
NONSPACE = r"[^\s\p{Z}]"

# ---- Python re, proven linear above --------------------------------------------------------
# C0 controls other than tab/newline/carriage return, and DEL: never in a real post text
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# in one-line fields (ids, sources, urls, author ids): every C0/C1 control, DEL, the Unicode
# line and paragraph separators, and the bidirectional overrides and isolates
FIELD_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# emoji and pictographs, one per token (skin tones, variation selectors and ZWJ are dropped)
EMOJI = "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\u3030\u303d\u3297\u3299"
TOKEN = re.compile(rf"#\w+|@\w+(?:[.-]\w+)*(?:@\w+(?:[.-]\w+)*)?|\w+|[{EMOJI}]")
SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
BLANK_LINES = re.compile(r"\n\s*\n+")
# payment card candidates (`monitor.privacy`): ASCII digit groups joined by single spaces or
# dashes; the digit count and the Luhn check run on whole-group windows of a match
DIGIT_CHAIN = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
# invisible characters that reorder or hide text (bidi controls and isolates, zero-width
# spaces, word joiners, the BOM, the soft hyphen): stripped from alert examples. ZWJ and ZWNJ
# stay (emoji sequences and Persian, Indic spelling need them)
INVISIBLE = re.compile("[\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


# ---- RE2 -------------------------------------------------------------------------------------
def linear(pattern: str) -> Any:
    """An RE2 pattern (linear time). RE2 refuses backreferences and lookaround, which Python's
    engine would need backtracking for: such a pattern fails here, at import."""
    return re2.compile(pattern)


# what says nothing about a post's language: e-mail addresses, then links, handles, hashtags.
# Two patterns, not one alternation: RE2 makes each search linear, but sub/findall search once
# per match, and where a lower alternative could run on to the end of a spaceless run (the
# e-mail shape) every one of many short matches ("#a'-" * n) paid for that run: quadratic
LANGUAGE_NOISE = (
    linear(r"[^\s\p{Z}@]+@[^\s\p{Z}@]+\." + WORD + "+"),
    linear(rf"https?://{NONSPACE}+|www\.{NONSPACE}+|[@#][\p{{L}}\p{{N}}_.]+"),
)
# redaction (`monitor.privacy`): stored texts and alert examples
EMAIL = linear(r"[\p{L}\p{N}_.+-]+@[\p{L}\p{N}_-]+(?:\.[\p{L}\p{N}_-]+)+")
# digits with the usual separators; the caller checks the digit count (no lookaround in RE2)
PHONE_CANDIDATE = linear(r"\+?\(?\d[\d\s().-]{5,}\d")
# a link in an alert example: http(s) with no space or Slack control character
SAFE_URL = linear(r"https?://[^\s<>|]+")
# the words of a stored text for "terms that moved" (alerts): links and addresses dropped first
TERM_NOISE = linear(rf"https?://{NONSPACE}+|{NONSPACE}+@{NONSPACE}+")
TERM = linear(r"[#@]?\p{L}[\p{L}\p{N}_'-]{2,}")
# the "submitted by /u/name [link] [comments]" tail of Reddit's RSS summaries
REDDIT_TAIL = linear(r"(?s)\s*submitted by\s+/u/\S+.*?\[link\]\s*\[comments\]\s*$")
