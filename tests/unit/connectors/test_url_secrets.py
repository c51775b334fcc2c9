"""F16: where a URL or token may go. Feed URLs are redacted for logs and Redis; the Mastodon
token goes over https only, and to a discovered streaming server only on the instance's host."""

from __future__ import annotations

import pytest

from connectors.credentials import Secret
from connectors.http import redact_url
from connectors.mastodon import MastodonConnector, own_streaming_host, token_safe
from connectors.rss import feed_ref
from monitor.errors import ConfigError

from .hostile import ListSink, MemoryState


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://u:p@feeds.example/a/b.rss?token=t#frag", "https://feeds.example/a/b.rss?..."),
        ("http://feeds.example:8080/x", "http://feeds.example:8080/x"),
        ("https://[::1]:9/x?k=v", "https://[::1]:9/x?..."),
        ("https://u@h/p", "https://h/p"),
        ("http://[::1", "(unparsable URL)"),
        ("http://h:99999/", "(unparsable URL)"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_feed_ref_keeps_feeds_apart_without_their_secrets():
    a, b = feed_ref("https://h/f?token=aaa"), feed_ref("https://h/f?token=bbb")
    assert a != b and a.startswith("https://h/f?...#") and "aaa" not in a


@pytest.mark.parametrize(
    "found, ok",
    [
        ("https://mastodon.social", True),
        ("https://streaming.mastodon.social", True),
        ("https://STREAMING.Mastodon.Social.", True),
        ("http://streaming.mastodon.social", False),  # downgrade
        ("https://evil.example", False),
        ("https://mastodon.social.evil.example", False),
        ("https://evilmastodon.social", False),
        ("https://mastodon.social@evil.example", False),  # userinfo, host is evil.example
        ("ftp://mastodon.social", False),
        ("https://[::1", False),
    ],
)
def test_own_streaming_host(found, ok):
    assert own_streaming_host(found, "https://mastodon.social") is ok


def test_loopback_http_is_allowed_for_the_token_elsewhere_not():
    assert (
        token_safe("http://127.0.0.1:4000") and token_safe("http://localhost") and token_safe("http://[::1]")
    )
    assert not token_safe("http://10.0.0.1") and not token_safe("http://mastodon.social")
    assert own_streaming_host("http://127.0.0.1:4000", "http://127.0.0.1:3000")


def _conn(**kw):
    return MastodonConnector(ListSink(), MemoryState(), stream="public", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"base_url": "http://mastodon.example"}, "base_url"),
        ({"base_url": "https://mastodon.example", "streaming_url": "http://stream.example"}, "streaming_url"),
    ],
)
def test_a_token_over_plain_http_is_a_config_error(kw, field):
    with pytest.raises(ConfigError) as ei:
        _conn(token=Secret("tok-value-123"), **kw)
    assert ei.value.field == field and "tok-value-123" not in str(ei.value)


def test_without_a_token_or_with_explicit_https_anything_goes():
    _conn(base_url="http://mastodon.example")
    _conn(base_url="https://mastodon.example", streaming_url="https://other.example", token=Secret("t"))
