"""`mood-monitor serve` on the real local Redis, as a real subprocess: the API's figures are the
ones `mood-monitor mood --json` prints, a live-stream client sees a write through the worker's
aggregate path within seconds, the read token and the loopback rule hold on a real socket."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import orjson
import pytest

from monitor.store.buckets import RedisAggregateStore

from .dashboard_helpers import Served, write_config, write_posts

pytestmark = pytest.mark.integration


@pytest.fixture
def store(redis_url, unique):
    s = RedisAggregateStore(redis_url, unique)
    yield s
    s.close()


def _mood_json(cfg, topic: str, window: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "monitor", "mood", topic, "--json", "--window", window, "--config", str(cfg)],
        capture_output=True,
        text=True,
        check=True,
    )
    return orjson.loads(out.stdout)


def test_api_window_equals_mood_json(store, redis_url, unique, tmp_path):
    write_posts(store, "acme", ["negative", "negative", "positive", "neutral"])
    write_posts(store, "acme", ["negative"], ts_ms=int(time.time() * 1000) - 10 * 60_000)
    write_posts(store, "globex", ["positive"])
    cfg = write_config(tmp_path, redis_url, unique)
    with Served(cfg) as srv:
        for window in ("15m", "5m", "1h"):
            api = httpx.get(f"{srv.url}api/v1/topics/acme/window", params={"window": window}).json()
            assert api == _mood_json(cfg, "acme", window)
        assert api["posts"] == 5 and api["negative"] == 0.6
        topics = httpx.get(f"{srv.url}api/v1/topics", params={"window": "15m"}).json()["topics"]
        assert [t["topic"] for t in topics] == ["acme", "globex"]
        # a tile: the same raw figures (plus net sentiment, without the correction)
        row = topics[0]["current"]
        want = {k: v for k, v in _mood_json(cfg, "acme", "15m").items() if k != "corrected"}
        assert {k: v for k, v in row.items() if k != "net_sentiment"} == want
        series = httpx.get(f"{srv.url}api/v1/topics/acme/series", params={"step": "1m"}).json()
        assert sum(p["n"] for p in series["points"]) == 5
        posts = httpx.get(f"{srv.url}api/v1/topics/acme/posts").json()["posts"]
        assert len(posts) == 5 and posts[0]["ts_ms"] >= posts[-1]["ts_ms"]
        status = httpx.get(f"{srv.url}api/v1/status").json()
        assert status["redis"] == "up" and status["dlq"] == {"total": 0, "by_reason": {}}


def test_a_live_client_sees_a_write_within_seconds(store, redis_url, unique, tmp_path):
    write_posts(store, "acme", ["neutral"])
    cfg = write_config(tmp_path, redis_url, unique, "dashboard:\n  push_interval_s: 0.5\n")
    with Served(cfg) as srv, httpx.stream("GET", f"{srv.url}api/v1/stream", timeout=20) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        seen: list[int] = []
        written = False
        deadline = time.monotonic() + 15
        event = ""
        for line in lines:
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "topics":
                body = orjson.loads(line[6:])
                posts = {t["topic"]: t["current"]["posts"] for t in body["topics"]}
                seen.append(posts.get("acme", 0))
                if not written:
                    written = True
                    write_posts(store, "acme", ["negative", "negative"])
                elif posts.get("acme") == 3:
                    minutes = body["topics"][0]["minutes"]
                    assert sum(m["n"] for m in minutes) == 3
                    break
            assert time.monotonic() < deadline, f"no update after the write; saw {seen}"
    assert seen[0] == 1 and seen[-1] == 3


def test_two_viewers_share_one_poller(store, redis_url, unique, tmp_path):
    write_posts(store, "acme", ["neutral"])
    cfg = write_config(tmp_path, redis_url, unique, "dashboard:\n  push_interval_s: 0.5\n  max_clients: 2\n")
    with (
        Served(cfg) as srv,
        httpx.stream("GET", f"{srv.url}api/v1/stream", timeout=20) as a,
        httpx.stream("GET", f"{srv.url}api/v1/stream", timeout=20) as b,
    ):
        viewers = [r.iter_lines() for r in (a, b)]  # kept: a dropped iterator closes its stream
        for lines in viewers:
            assert next(lines) == "retry: 5000"
            assert [next(lines), next(lines)] == ["", "event: topics"]
        third = httpx.get(f"{srv.url}api/v1/stream", timeout=5)
        assert third.status_code == 503 and third.headers["retry-after"] == "10"


def test_a_non_loopback_bind_needs_a_token(redis_url, unique, tmp_path):
    cfg = write_config(tmp_path, redis_url, unique)
    out = subprocess.run(
        [sys.executable, "-m", "monitor", "serve", "--config", str(cfg), "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "dashboard.token" in out.stderr and "not loopback" in out.stderr


def test_the_token_from_a_file_guards_a_real_socket_and_is_never_printed(store, redis_url, unique, tmp_path):
    token = "file-token-" + unique
    (tmp_path / "token").write_text(token + "\n")
    write_posts(store, "acme", ["neutral"])
    cfg = write_config(tmp_path, redis_url, unique, f"dashboard:\n  token_file: {tmp_path / 'token'}\n")
    srv = Served(cfg, env={"MOOD_LOG_LEVEL": "DEBUG"}).start()
    try:
        url = f"{srv.url}api/v1/topics"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert httpx.get(url, auth=("viewer", token)).status_code == 200
        assert httpx.get(f"{srv.url}healthz").status_code == 200
        assert (
            httpx.get(
                url, headers={"Host": "rebound.evil.test", "Authorization": f"Bearer {token}"}
            ).status_code
            == 403
        )
    finally:
        srv.stop()
    assert srv.proc is not None and srv.proc.returncode == 0
    assert "serve: dashboard at" in srv.output and token not in srv.output


def test_serve_loads_no_model(redis_url, unique, tmp_path):
    cfg = write_config(tmp_path, redis_url, unique)
    code = (
        "import sys; from monitor.app import build_dashboard; from monitor.settings import load_settings; "
        f"build_dashboard(load_settings({str(cfg)!r})); "
        "print(sorted(m for m in ('torch', 'transformers', 'kafka', 'monitor.worker') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_alerts_show_open_episodes_and_the_alert_log(store, redis_url, unique, tmp_path):
    from monitor.alerts.episodes import FIRING, Episode
    from monitor.alerts.settings import AlertSettings
    from monitor.store.alerts import RedisAlertLedger

    write_posts(store, "acme", ["negative"])
    rule = AlertSettings().rules_for("acme")[0].name
    ledger = RedisAlertLedger(store)
    assert ledger.hold_lease("test-owner", 60)
    started = int(time.time() * 1000) - 120_000
    episode = Episode(status=FIRING, started_ms=started, notices=1, notified_severity="warning")
    log = ["kind", "open", "topic", "acme", "rule", rule, "severity", "warning", "ts_ms", str(started)]
    log += ["episode", "ep1", "episode_started_ms", str(started), "text", "acme: negative share up"]
    assert ledger.commit("test-owner", "acme", rule, episode.to_json(), "fp-" + unique, [], log) == 1
    cfg = write_config(tmp_path, redis_url, unique)
    with Served(cfg) as srv:
        body = httpx.get(f"{srv.url}api/v1/alerts").json()
        metrics = httpx.get(f"{srv.url}metrics").text
    assert [(e["topic"], e["rule"], e["status"], e["started_ms"]) for e in body["open"]] == [
        ("acme", rule, "firing", started)
    ]
    assert [(e["kind"], e["episode"], e["ts_ms"], e["text"]) for e in body["log"]] == [
        ("open", "ep1", started, "acme: negative share up")
    ]
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    assert families["mood_monitor_redis_up"].samples[0].value == 1
    routes = {s.labels["route"] for s in families["mood_monitor_http_requests"].samples}
    assert "/api/v1/alerts" in routes


def test_serve_needs_only_the_read_only_redis_user(store, redis_url, unique, tmp_path):
    """Every route and the live stream work as the ACL's `reader` (read commands only): serve
    writes nothing to Redis."""
    from monitor.store.acl import rules

    write_posts(store, "acme", ["negative", "positive"])
    user, password = f"reader-{unique}", f"pw-{unique}"
    store.client.execute_command(
        "ACL", "SETUSER", user, "reset", "on", f">{password}", *rules(unique)["reader"].split()
    )
    try:
        extra = f"  username: {user}\n  password: {password}\n"
        cfg = tmp_path / "monitor.yaml"
        cfg.write_text(
            f"redis:\n  url: {redis_url}\n  prefix: {unique}\n{extra}dashboard:\n  push_interval_s: 0.5\n"
        )
        with Served(cfg) as srv:
            for path in ROUTES_READ:
                r = httpx.get(srv.url + path)
                assert r.status_code == 200, (path, r.text)
            assert httpx.get(srv.url + "api/v1/topics").json()["topics"][0]["current"]["posts"] == 2
            with httpx.stream("GET", f"{srv.url}api/v1/stream", timeout=20) as r:
                events: list[str] = []
                lines = r.iter_lines()
                while len(events) < 3:
                    line = next(lines)
                    if line.startswith("event: "):
                        events.append(line)
                    assert '"redis":"down"' not in line
            assert sorted(events) == ["event: alerts", "event: status", "event: topics"]
            srv.stop()
            assert "NOPERM" not in srv.output and "ERROR" not in srv.output, srv.output
    finally:
        store.client.execute_command("ACL", "DELUSER", user)


ROUTES_READ = [
    "api/v1/topics?spark=10",
    "api/v1/topics/acme/window",
    "api/v1/topics/acme/series",
    "api/v1/topics/acme/posts",
    "api/v1/alerts",
    "api/v1/status",
    "readyz",
    "metrics",
]


def test_hour_series_add_up_the_minutes(store, redis_url, unique, tmp_path):
    now = int(time.time() * 1000)
    hour = now - now % 3_600_000
    write_posts(store, "acme", ["negative", "neutral"], ts_ms=hour - 3_600_000 + 5 * 60_000)
    write_posts(store, "acme", ["positive"], ts_ms=hour - 3_600_000 + 50 * 60_000)
    cfg = write_config(tmp_path, redis_url, unique)
    with Served(cfg) as srv:
        params = {"from": hour - 3 * 3_600_000, "to": hour + 3_600_000, "step": "1h"}
        hours = httpx.get(f"{srv.url}api/v1/topics/acme/series", params=params).json()["points"]
        params["step"] = "1m"
        minutes = httpx.get(f"{srv.url}api/v1/topics/acme/series", params=params).json()["points"]
    assert [p["t"] for p in hours] == [hour - 3 * 3_600_000 + i * 3_600_000 for i in range(4)]
    assert [p["n"] for p in hours] == [0, 0, 3, 0]
    assert hours[2]["s"] == {"negative": 1, "neutral": 1, "positive": 1, "uncertain": 0, "unsupported": 0}
    assert sum(p["n"] for p in minutes) == 3 and len(minutes) == 240
