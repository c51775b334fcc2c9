"""The dashboard in a real browser: Debian's chromium, driven by Playwright (no browser download),
against `mood-monitor serve` on the real Redis. Posts written through the worker's aggregate
path show up in the tiles and the chart without a reload; a server restart shows
"reconnecting", then the page recovers on its own; the console has no error and the page no
Content-Security-Policy violation. `make setup` installs chromium (devstack.stack install)."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from monitor.store.buckets import RedisAggregateStore

from .dashboard_helpers import Served, write_config, write_posts

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = os.environ.get("MOOD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("MOOD_TEST_RESULTS", "test-results"))
# what the browser logs while the server is down between the stop and the restart (the live
# stream's reconnection attempts), and nothing else, is allowed on the console
RESTART_NOISE = ("ERR_CONNECTION_REFUSED", "ERR_EMPTY_RESPONSE", "ERR_INCOMPLETE_CHUNKED_ENCODING")
CSP_PROBE = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


@pytest.fixture
def store(redis_url, unique):
    s = RedisAggregateStore(redis_url, unique)
    yield s
    s.close()


def test_the_page_updates_live_and_survives_a_server_restart(store, redis_url, unique, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), f"no chromium at {CHROMIUM}: run `make setup` (apt-get install chromium)"
    topic = "acme"
    write_posts(store, topic, ["negative", "positive", "neutral"])
    write_posts(store, "globex", ["positive"])
    token = "browser-" + unique
    env = {"MOOD_DASHBOARD__TOKEN": token}
    cfg = write_config(tmp_path, redis_url, unique, "dashboard:\n  push_interval_s: 0.5\n")
    srv = Served(cfg, env=env).start()
    console: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            ctx = browser.new_context(
                http_credentials={"username": "viewer", "password": token},
                viewport={"width": 1400, "height": 1100},
            )
            ctx.add_init_script(CSP_PROBE)
            page = ctx.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.goto(f"{srv.url}?topic={topic}&range=1h")

            tile = page.locator(f'[data-testid="tile-posts"][data-topic="{topic}"]')
            chart = page.locator('[data-testid="chart-sentiment"]')
            live = page.locator('[data-testid="live-status"]')
            expect(tile).to_have_attribute("data-value", "3", timeout=15_000)
            expect(chart).to_have_attribute("data-total", "3", timeout=15_000)
            expect(live).to_have_attribute("data-state", "live", timeout=15_000)
            expect(page.locator('[data-testid="post"]')).to_have_count(3, timeout=15_000)
            # a post's markup is text, not HTML
            expect(page.locator('[data-testid="posts"] b')).to_have_count(0)
            expect(page.locator('[data-testid="posts"]')).to_contain_text("<b>negative</b>")
            expect(page.locator('[data-testid="compare-row"]')).to_have_count(2)
            assert chart.locator("canvas").count() == 1

            write_posts(store, topic, ["negative", "negative"])
            expect(tile).to_have_attribute("data-value", "5", timeout=15_000)
            expect(chart).to_have_attribute("data-total", "5", timeout=15_000)
            expect(page.locator(f'[data-testid="tile-negative"][data-topic="{topic}"]')).to_have_attribute(
                "data-value", "0.6"
            )
            assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
            assert page.evaluate("location.search") == f"?topic={topic}&range=1h"

            before_restart = list(console)
            port = srv.port
            srv.stop()
            expect(live).to_have_attribute("data-state", "reconnecting", timeout=15_000)
            write_posts(store, topic, ["positive"])  # while the server is down
            srv = Served(cfg, port=port, env=env).start()
            expect(live).to_have_attribute("data-state", "live", timeout=30_000)
            expect(tile).to_have_attribute("data-value", "6", timeout=15_000)
            expect(chart).to_have_attribute("data-total", "6", timeout=15_000)
            assert page.evaluate("performance.getEntriesByType('navigation').length") == 1

            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)
            violations = page.evaluate("window.__csp")
            browser.close()
    finally:
        srv.stop()
    assert violations == []
    assert [m for m in before_restart if m.startswith(("error", "pageerror"))] == []
    after = [m for m in console[len(before_restart) :] if m.startswith(("error", "pageerror"))]
    assert [m for m in after if not any(n in m for n in RESTART_NOISE)] == []
    assert not any("Content Security Policy" in m or "Refused to" in m for m in console)


def test_an_alert_link_opens_its_topic_and_episode(store, redis_url, unique, tmp_path):
    """The Slack message's link (alerts.dashboard_url through the alerter's dashboard_link)
    opens the dashboard on the alert's topic, even one whose name needs URL-encoding, and on the
    episode's time range."""
    from playwright.sync_api import expect, sync_playwright

    from monitor.alerts.alerter import dashboard_link
    from monitor.alerts.episodes import FIRING, Episode
    from monitor.store.alerts import RedisAlertLedger

    topic = "r&d"
    now = int(time.time() * 1000)
    write_posts(store, topic, ["negative", "negative"], ts_ms=now - 30 * 60_000)
    write_posts(store, "acme", ["positive"])
    ledger = RedisAlertLedger(store)  # an open episode of the topic, in the alert log too
    assert ledger.hold_lease("test", 60)
    episode = Episode(status=FIRING, started_ms=now - 25 * 60_000, notices=1).to_json()
    log = ["kind", "open", "topic", topic, "rule", "negative-shift", "severity", "warning", "ts_ms", str(now)]
    log += ["episode", "e1", "episode_started_ms", str(now - 25 * 60_000), "window_min", "15"]
    assert ledger.commit("test", topic, "negative-shift", episode, "fp-" + unique, [], log) == 1
    cfg = write_config(tmp_path, redis_url, unique)
    with Served(cfg) as srv, sync_playwright() as p:
        template = srv.url + "?topic={topic}&from={from_ms}&to={to_ms}"
        link = dashboard_link(template, topic, now - 40 * 60_000, now - 20 * 60_000)
        assert "topic=r%26d&" in link
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.goto(link)
        expect(page.locator('[data-testid="topic-select"]')).to_have_value(topic, timeout=15_000)
        chart = page.locator('[data-testid="chart-sentiment"]')
        # an hour before the episode to half an hour after (the minutes starting in it), the two posts
        start, end = now - 40 * 60_000 - 3_600_000, now - 20 * 60_000 + 1_800_000
        minutes = len(range(start - start % 60_000, end, 60_000))
        expect(chart).to_have_attribute("data-points", str(minutes), timeout=15_000)
        expect(chart).to_have_attribute("data-total", "2")
        expect(page.locator("#ranges button.on")).to_have_count(0)
        # the episode marked on the volume chart (once: the log's entry and the open episode agree)
        expect(page.locator('[data-testid="chart-volume"]')).to_have_attribute("data-episodes", "1")
        expect(page.locator('[data-testid="alert-log"]')).to_have_count(1)
        # the controls: UTC/local into the URL, the comparison sorted by a column, a preset range
        page.locator('[data-testid="tz-toggle"]').click()
        expect(page.locator('[data-testid="tz-toggle"]')).to_have_attribute("data-tz", "local")
        assert "tz=local" in page.evaluate("location.search")
        rows = page.locator('[data-testid="compare-row"]')
        page.locator('button[data-sort="topic"]').click()
        expect(rows.first).to_have_attribute("data-topic", "acme")
        page.locator('button[data-sort="topic"]').click()
        expect(rows.first).to_have_attribute("data-topic", topic)
        page.locator('button[data-range="6h"]').click()
        expect(chart).to_have_attribute(
            "data-points", re.compile(r"^36[01]$"), timeout=15_000
        )  # 6 h of minutes
        assert "range=6h" in page.evaluate("location.search")
        # the example posts' pause: new posts wait until resumed (the tiles go on updating)
        posts = page.locator('[data-testid="post"]')
        expect(posts).to_have_count(2, timeout=15_000)
        page.locator('[data-testid="posts-pause"]').click()
        expect(page.locator('[data-testid="posts-pause"]')).to_have_attribute("aria-pressed", "true")
        write_posts(store, topic, ["positive"])
        expect(page.locator(f'[data-testid="tile-posts"][data-topic="{topic}"]')).to_have_attribute(
            "data-value", "1", timeout=15_000
        )
        page.wait_for_timeout(4_000)  # past the page's 3 s refetch spacing: it would have refetched
        expect(posts).to_have_count(2)
        page.locator('[data-testid="posts-pause"]').click()
        expect(posts).to_have_count(3, timeout=15_000)
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
        browser.close()
    assert [m for m in console if m.startswith("error")] == []


def test_the_browser_enforces_the_policy(redis_url, unique, tmp_path):
    """The Content-Security-Policy is not decoration: Chromium refuses an injected inline script
    and an image from another origin on the served page (and the probe that the other tests rely
    on to find no violation does see them)."""
    from playwright.sync_api import sync_playwright

    cfg = write_config(tmp_path, redis_url, unique)
    with Served(cfg) as srv, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        ctx = browser.new_context()
        ctx.add_init_script(CSP_PROBE)
        page = ctx.new_page()
        page.goto(srv.url)
        page.wait_for_selector('[data-testid="live-status"][data-state="live"]', timeout=15_000)
        assert page.evaluate("window.__csp") == []
        page.evaluate(
            "document.body.append(Object.assign(document.createElement('script'), {textContent: 'window.pwned = 1'}))"
        )
        page.evaluate(
            "document.body.append(Object.assign(document.createElement('img'), {src: 'https://evil.example/p.png'}))"
        )
        page.wait_for_function("window.__csp.length >= 2", timeout=5_000)
        assert page.evaluate("window.pwned") is None
        assert sorted(v.split(" ")[0] for v in page.evaluate("window.__csp")) == [
            "img-src",
            "script-src-elem",
        ]
        browser.close()
