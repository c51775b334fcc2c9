"""The alert message's dashboard link and the page's URL state agree: the alerter fills
alerts.dashboard_url's {topic} (URL-encoded), {from_ms} and {to_ms}; the page reads ?topic=,
?range= or ?from=&to= (the browser test opens such a link)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from monitor.alerts.alerter import dashboard_link
from monitor.web.app import STATIC

TEMPLATE = "http://127.0.0.1:8089/?topic={topic}&from={from_ms}&to={to_ms}"


def test_the_link_names_the_topic_and_the_episode():
    link = dashboard_link(TEMPLATE, "r&d #1/x", 10_000_000, 12_000_000)
    q = parse_qs(urlsplit(link).query)
    assert q == {
        "topic": ["r&d #1/x"],
        "from": [str(10_000_000 - 3_600_000)],
        "to": [str(12_000_000 + 1_800_000)],
    }


def test_a_template_with_the_topic_only_still_works():
    assert dashboard_link("https://d.example/?topic={topic}&range=6h", "acme", 0, 0) == (
        "https://d.example/?topic=acme&range=6h"
    )
    assert dashboard_link(None, "acme", 0, 0) is None
    assert dashboard_link("", "acme", 0, 0) is None


def test_the_page_reads_the_parameters_the_link_sets():
    js = STATIC.joinpath("dashboard.js").read_text()
    for param in ('q.get("topic")', 'q.get("range")', 'q.get("from")', 'q.get("to")', 'q.get("tz")'):
        assert param in js
