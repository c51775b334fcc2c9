"""Personal data: author pseudonyms and the redactor (`monitor.privacy`). Examples, then
properties (Hypothesis): whatever the text, the redactor returns a string and leaves no e-mail
address and no card number behind."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.patterns import DIGIT_CHAIN, EMAIL
from monitor.privacy import (
    CARD_DIGITS,
    author_pseudonym,
    luhn_ok,
    redact,
    sample_text,
)

from .test_properties import HOSTILE, TEXT

KEY = b"k" * 32


def test_pseudonyms_are_keyed_stable_and_carry_nothing_of_the_id():
    a = author_pseudonym(KEY, "did:plc:abc123")
    assert a == author_pseudonym(KEY, "did:plc:abc123")
    assert a.startswith("h:") and len(a) == 34 and "abc123" not in a
    assert a != author_pseudonym(b"j" * 32, "did:plc:abc123")  # another key, another pseudonym
    assert a != author_pseudonym(KEY, "did:plc:abc124")
    assert author_pseudonym(KEY, "") == "" and author_pseudonym(b"", "did:plc:abc123") == ""


def test_luhn_on_known_numbers():
    for good in (
        "4111111111111111",
        "378282246310005",
        "6011111111111117",
        "5555555555554444",
        "79927398713",
    ):
        assert luhn_ok(good), good
    for bad in ("4111111111111112", "378282246310006", "1234567812345678"):
        assert not luhn_ok(bad), bad


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("card 4111 1111 1111 1111 exp 12/28", "card [card] exp 12/28"),
        ("4111-1111-1111-1111.", "[card]."),
        ("amex 3782 822463 10005 thanks", "amex [card] thanks"),
        ("pay:4111111111111111!", "pay:[card]!"),
        ("5 4111 1111 1111 1111", "5 [card]"),  # a digit in front does not hide it
        ("4111 1111 1111 1112 is no card", "4111 1111 1111 1112 is no card"),  # Luhn fails
        ("order 12345 on 2026-01-01", "order 12345 on 2026-01-01"),
        ("ring +1 (555) 010-9999 now", "ring [phone] now"),
        ("mail a.b+c@mail.co.uk or x@y.org", "mail [email] or [email]"),
    ],
)
def test_redaction_examples(text, want):
    assert redact(text) == want


def test_the_sample_cuts_on_white_space_so_no_half_address_is_left():
    text = "word " * 98 + "jane.doe@example.com and more"  # the address straddles character 500
    out = sample_text(text, 500)
    assert "jane" not in out and "@" not in out and len(out) <= 500
    assert sample_text("hi 4111 1111 1111 1111", 500) == "hi [card]"


def _card(rng: random.Random, n: int) -> str:
    digits = [rng.randrange(10) for _ in range(n - 1)]
    for check in range(10):
        if luhn_ok("".join(map(str, [*digits, check]))):
            return "".join(map(str, [*digits, check]))
    raise AssertionError("unreachable")


def _grouped(number: str, sep: str, size: int) -> str:
    return sep.join(number[i : i + size] for i in range(0, len(number), size)) if sep else number


def _cards_left(text: str) -> list[str]:
    """Group-aligned windows of 13-19 digits that pass Luhn: what the redactor must not leave."""
    left = []
    for m in DIGIT_CHAIN.finditer(text):
        groups = m.group().replace("-", " ").split(" ")
        for i in range(len(groups)):
            run = ""
            for g in groups[i:]:
                run += g
                if len(run) in CARD_DIGITS and luhn_ok(run):
                    left.append(run)
    return left


NON_DIGIT = st.text(st.characters(exclude_categories=("Cs", "Nd")), max_size=40)


@given(
    st.lists(
        st.tuples(NON_DIGIT, st.integers(13, 19), st.sampled_from(["", " ", "-"]), st.sampled_from([4, 5, 6]))
    ),
    st.integers(0, 2**32),
)
def test_no_card_number_survives_wherever_it_stands(parts, seed):
    rng = random.Random(seed)
    cards = [_card(rng, n) for _, n, _, _ in parts]
    text = "".join(
        before + " " + _grouped(c, sep, size) + " " for (before, _, sep, size), c in zip(parts, cards)
    )
    out = redact(text)
    digits = "".join(ch for ch in out if ch.isascii() and ch.isdigit())
    for c in cards:
        assert c not in digits
    assert _cards_left(out) == []


@given(HOSTILE)
def test_the_redactor_never_crashes_and_leaves_no_address_or_card(text):
    out = redact(text)
    assert isinstance(out, str)
    assert EMAIL.search(out) is None
    assert _cards_left(out) == []


@given(HOSTILE, st.integers(0, 600))
def test_the_sample_of_any_text_is_short_redacted_and_never_raises(text, limit):
    out = sample_text(text, limit)
    assert isinstance(out, str) and len(out) <= limit
    assert EMAIL.search(out) is None and _cards_left(out) == []


@given(TEXT, st.sampled_from(["jane.doe@example.com", "x_y+z@mail.example.co.uk", "ä@bü.de"]), TEXT)
def test_an_address_anywhere_is_gone(before, address, after):
    out = redact(f"{before} {address} {after}")
    assert address not in out and EMAIL.search(out) is None


@given(st.text(st.sampled_from("0123456789 -+()./@a"), max_size=2000))
def test_digit_soup_is_handled_and_left_clean(text):
    out = redact(text)
    assert EMAIL.search(out) is None and _cards_left(out) == []
