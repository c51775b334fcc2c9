"""The Slack message body: a snapshot of every field the issue asks for, and redaction."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from monitor.alerts.message import AlertEvent, block_kit, escape, generic_json, redact

SNAPSHOT = Path(__file__).parent / "snapshots" / "slack_alert.json"
END = 1_767_276_000_000  # 2026-01-01 14:00 UTC


def event(**kw) -> AlertEvent:
    base = {
        "topic": "acme-outage",
        "rule": "negative-shift",
        "kind": "share_shift",
        "metric": "negative_share",
        "action": "fire",
        "severity": "critical",
        "value": 0.46,
        "baseline": 0.18,
        "posts": 212,
        "hits": 97,
        "window_min": 15,
        "window_end_ms": END,
        "episode_started_ms": END - 60_000,
        "z": 9.1,
        "phi": 1.4,
        "emotions": {"anger": 0.31, "sadness": 0.12, "neutral": 0.4, "joy": 0.05, "fear": 0.08},
        "examples": [
            {
                "text": "Checkout <broken> again & again, mail me: jane.doe@example.com",
                "url": "https://bsky.app/p/1",
            },
            {
                "text": "call me on +44 20 7946 0958 or (555) 123-4567, order 12345",
                "url": "javascript:alert(1)",
            },
            {"text": "   lots   of\nwhite space " + "x" * 300, "url": "https://mastodon.social/@a/2"},
            {"text": "a fourth one is never shown", "url": "https://example.org/4"},
        ],
        "terms": [("outage", 2.1), ("checkout", 1.7), ("refund", 1.2)],
        "dashboard_url": "https://grafana.example/d/mood?topic=acme-outage",
    }
    return AlertEvent(**{**base, **kw})


def test_block_kit_body_matches_the_snapshot():
    body = block_kit(event())
    if os.environ.get("MOOD_UPDATE_SNAPSHOTS"):  # after a deliberate change: rewrite, review, commit
        SNAPSHOT.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    assert body == json.loads(SNAPSHOT.read_text())


def test_body_carries_the_evidence():
    body = block_kit(event())
    text = json.dumps(body, ensure_ascii=False)
    fields = [f["text"] for b in body["blocks"] for f in b.get("fields", [])]
    assert body["text"].startswith(":rotating_light:") and "acme-outage" in body["text"]
    for want in (
        "*Topic*\nacme-outage",
        "*Rule*\n`negative-shift` (share_shift, critical)",
        "*Current vs baseline*\n46% vs 18% baseline",
        "*z*\n9.1 (φ 1.4)",
        "*Posts*\n212 in the last 15 min (97 negative)",
        "*Window*\n2026-01-01 13:45–14:00 UTC (15 min)",
        "*Emotion mix*\nneutral 40%, anger 31%, sadness 12%, fear 8%",
        "*Terms that moved*\noutage, checkout, refund",
    ):
        assert want in fields, want
    posts = next(
        b["text"]["text"] for b in body["blocks"] if "Representative" in b.get("text", {}).get("text", "")
    )
    assert posts.count("\n•") == 3 and "fourth" not in posts  # at most three
    assert (
        "• Checkout &lt;broken&gt; again &amp; again, mail me: [email] (<https://bsky.app/p/1|bsky.app>)"
        in posts
    )
    assert "(mastodon[.]social, not linked)" in posts and "<https://mastodon" not in posts
    assert "javascript:" not in text  # only http(s) links
    assert "…" in posts and "   " not in posts  # shortened, white space folded
    assert len(body["blocks"][0]["text"]["text"]) <= 150 and len(fields) <= 10
    assert "Open dashboard" in text


def test_redaction_of_emails_and_phone_numbers():
    text = json.dumps(block_kit(event()), ensure_ascii=False) + json.dumps(generic_json(event()))
    for secret in ("jane.doe", "example.com", "7946", "0958", "123-4567"):
        assert secret not in text, secret
    assert redact("order 12345 on 2026-01-01") == "order 12345 on 2026-01-01"  # not phones
    assert redact("ring +1 (555) 010-9999 now") == "ring [phone] now"
    assert redact("a.b+c@mail.co.uk wrote") == "[email] wrote"
    assert escape("<@U123> & <!channel>") == "&lt;@U123&gt; &amp; &lt;!channel&gt;"


def test_a_posts_own_links_are_text_and_nothing_unfurls():
    ev = event(
        examples=[
            {
                "text": "refund here https://evil.example/login or www.evil.example or evil.example.",
                "url": "",
            },
            {"text": "see <https://evil.example|bsky.app> now", "url": "https://bsky.app.evil.example/p"},
        ],
        terms=[("@jane", 3.0), ("outage", 2.0), ("@brand.bsky.social", 1.5)],
    )
    body = block_kit(ev)
    text = json.dumps(body, ensure_ascii=False)
    assert body["unfurl_links"] is False and body["unfurl_media"] is False
    posts = next(
        b["text"]["text"] for b in body["blocks"] if "Representative" in b.get("text", {}).get("text", "")
    )
    assert "hxxps://evil[.]example/login" in posts and "www[.]evil[.]example" in posts
    assert "evil[.]example." in posts and "https://evil" not in posts
    # a look-alike host is not linked; the text's own <url|label> is escaped, inert
    assert (
        "<https://bsky.app.evil.example" not in posts and "&lt;hxxps://evil[.]example|bsky[.]app&gt;" in posts
    )
    assert "@jane" not in text and "@brand" not in text and "outage" in text
    assert generic_json(ev)["terms"] == ["outage"]
    assert [e["url"] for e in generic_json(ev)["examples"]] == [None, None]


def test_bidi_overrides_and_zero_width_characters_are_stripped_from_examples():
    ev = event(examples=[{"text": "safe\u202etxt.exe \u2066a\u2069 b\u200bc \ufeffd", "url": ""}])
    posts = json.dumps(block_kit(ev), ensure_ascii=False) + json.dumps(generic_json(ev), ensure_ascii=False)
    for ch in "\u202e\u2066\u2069\u200b\ufeff":
        assert ch not in posts
    assert "safetxt[.]exe a bc d" in posts


def test_card_numbers_are_redacted_from_examples():
    ev = event(examples=[{"text": "my card 4111 1111 1111 1111 exp 12/28", "url": ""}])
    text = json.dumps(block_kit(ev)) + json.dumps(generic_json(ev))
    assert "4111" not in text and "[card]" in text


@pytest.mark.parametrize(("action", "lead"), [("resolve", "Resolved:"), ("renotify", "Worse:")])
def test_resolve_and_renotify_messages(action, lead):
    body = block_kit(event(action=action))
    assert body["blocks"][0]["text"]["text"].startswith(lead)
    if action == "resolve":
        assert body["text"].startswith(":white_check_mark: Resolved") and "Representative" not in str(body)
    assert event(action=action).fingerprint != event().fingerprint


def test_generic_json_has_the_same_evidence():
    g = generic_json(event())
    assert g["status"] == "firing" and g["z"] == 9.1 and g["baseline"] == 0.18 and g["posts"] == 212
    assert g["terms"] == ["outage", "checkout", "refund"] and len(g["examples"]) == 3
    assert g["examples"][1]["url"] is None and "[phone]" in g["examples"][1]["text"]
    assert generic_json(event(action="resolve"))["status"] == "resolved"
