"""Redaction of personal data in post texts. Pure.

- `redact`: e-mail addresses -> ``[email]``, payment card numbers (13-19 digits, optionally
  grouped by single spaces or dashes, Luhn-valid) -> ``[card]``, phone numbers (7-15 digits
  with a leading ``+``, else 9-15) -> ``[phone]``. Applied to the texts Redis keeps (the
  sample alerts quote) and to alert examples. Linear time: the e-mail and phone shapes run on
  RE2, the card scan walks the digit chains of `monitor.patterns.DIGIT_CHAIN` (proven linear
  there) and tries at most 19 group-aligned windows per group, each checked in O(1) from
  prefix sums.
- `sample_text`: what the Redis sample keeps of a post: cut at ``limit`` characters on a
  word boundary (so no half of an address or a number is left behind by the cut), then
  redacted.
"""

from __future__ import annotations

from monitor.patterns import DIGIT_CHAIN, EMAIL, PHONE_CANDIDATE

CARD_DIGITS = range(13, 20)


def luhn_ok(digits: str) -> bool:
    """The Luhn check of a string of ASCII digits (payment card numbers pass it)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _groups(chain: str, base: int) -> list[tuple[int, int]]:
    """The (start, end) spans of the digit groups of one chain ("4111 1111-1111 1111")."""
    spans, start = [], 0
    for i, ch in enumerate(chain):
        if ch in " -":
            spans.append((base + start, base + i))
            start = i + 1
    spans.append((base + start, base + len(chain)))
    return spans


def _luhn_sums(digits: str) -> list[list[int]]:
    """Prefix sums by position parity: ``sums[2 * parity + doubled][k]`` adds up, over the
    digits before ``k`` whose position has that parity, the digit (``doubled`` 0) or its Luhn
    double (1), so that a window's Luhn sum takes O(1)."""
    sums = [[0] for _ in range(4)]
    for k, ch in enumerate(digits):
        d = ord(ch) - 48
        par = k % 2
        for which, add in ((2 * par, d), (2 * par + 1, d * 2 - 9 if d > 4 else d * 2)):
            sums[which].append(sums[which][-1] + add)
        for which in (2 * (1 - par), 2 * (1 - par) + 1):
            sums[which].append(sums[which][-1])
    return sums


def _window_luhn(sums: list[list[int]], a: int, b: int) -> bool:
    """Whether the digits [a, b) pass the Luhn check: from the right, the last digit counts
    plain, the one before it doubled, and so on."""
    plain = (b - 1) % 2
    dbl = 1 - plain
    total = sums[2 * plain][b] - sums[2 * plain][a] + sums[2 * dbl + 1][b] - sums[2 * dbl + 1][a]
    return total % 10 == 0


def card_spans(text: str) -> list[tuple[int, int]]:
    """Spans of payment card numbers: windows of whole digit groups, 13-19 digits, Luhn-valid;
    at each group the longest such window is taken, then the scan goes on after it."""
    out = []
    longest = CARD_DIGITS.stop - 1
    for m in DIGIT_CHAIN.finditer(text):
        chain = m.group()
        if len(chain) < CARD_DIGITS.start:
            continue
        groups = _groups(chain, m.start())
        ends = [0]  # ends[g]: digits before group g
        for a, b in groups:
            ends.append(ends[-1] + b - a)
        if ends[-1] < CARD_DIGITS.start:
            continue
        sums = _luhn_sums(chain.replace(" ", "").replace("-", ""))
        i = 0
        while i < len(groups):
            found = -1
            for j in range(i, len(groups)):
                count = ends[j + 1] - ends[i]
                if count > longest:
                    break
                if count >= CARD_DIGITS.start and _window_luhn(sums, ends[i], ends[j + 1]):
                    found = j
            if found < 0:
                i += 1
                continue
            out.append((groups[i][0], groups[found][1]))
            i = found + 1
    return out


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _phone_span(text: str, start: int, end: int) -> tuple[int, int]:
    """A candidate's span cut to a number's edges: not inside a word or after '+' on the left,
    ending in a digit not followed by a word character (the lookarounds RE2 does not have)."""
    while start < end and start > 0 and (_word(text[start - 1]) or text[start - 1] == "+"):
        start += 1
    while end > start and not (text[end - 1].isdigit() and (end == len(text) or not _word(text[end]))):
        end -= 1
    return start, end


def _is_phone(s: str) -> bool:
    digits = sum(c.isdigit() for c in s)
    return 9 <= digits <= 15 or (s.startswith("+") and 7 <= digits <= 15)


def _replace(text: str, spans: list[tuple[int, int]], token: str) -> str:
    out, last = [], 0
    for a, b in spans:
        out += [text[last:a], token]
        last = b
    return "".join([*out, text[last:]])


def redact(text: str) -> str:
    """E-mail addresses -> [email], card numbers -> [card], phone numbers -> [phone]."""
    if "@" in text:
        text = EMAIL.sub("[email]", text)
    spans = card_spans(text)
    if spans:
        text = _replace(text, spans, "[card]")
    phones = []
    for m in PHONE_CANDIDATE.finditer(text):
        a, b = _phone_span(text, m.start(), m.end())
        if b > a and PHONE_CANDIDATE.fullmatch(text[a:b]) and _is_phone(text[a:b]):
            phones.append((a, b))
    return _replace(text, phones, "[phone]") if phones else text


def sample_text(text: str, limit: int = 500) -> str:
    """The start of a text as the Redis sample keeps it: at most ``limit`` characters, cut at
    white space when it is cut (the last word, maybe part of an address, is dropped), redacted."""
    if len(text) > limit:
        cut = text[: limit + 1]
        space = max(cut.rfind(" "), cut.rfind("\n"), cut.rfind("\t"))
        text = cut[:space] if space > 0 else ""
    return redact(text)[:limit]
