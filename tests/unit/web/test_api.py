"""The dashboard's HTTP app against a fake read model (no servers): the auth matrix, the Host
check, the security headers, the parameter errors, and that no answer carries a secret."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from monitor.aggregates import Bucket
from monitor.errors import StoreUnavailable
from monitor.web.app import WebConfig, create_app
from monitor.web.guard import CSP
from monitor.web.live import Hub
from monitor.web.readmodel import mood_row, point, summary_row

TOKEN = "s3cret-read-token-0123456789"
REDIS_URL = "redis://:hunter2-redis-pw@10.1.2.3:6379/0"
NOW = 1_764_590_400_000  # a minute start


class FakeReadModel:
    """Canned figures; ``fail`` makes every read raise what Redis being down raises."""

    def __init__(self) -> None:
        self.fail = False
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.bucket = Bucket(NOW, 5, {"negative": 3, "positive": 2}, 0.4, {"anger": 3, "joy": 2})

    def _check(self, name: str, *args: object) -> None:
        self.calls.append((name, args))
        if self.fail:
            raise StoreUnavailable(f"redis: ConnectionError: cannot reach {REDIS_URL}")

    def topics(self) -> list[str]:
        self._check("topics")
        return ["acme", "globex"]

    def summary(self, topics, window, now_ms):
        self._check("summary", tuple(topics), window)
        return [summary_row(t, window, self.bucket, Bucket(NOW - 300_000, 2)) for t in topics]

    def window(self, topic, window, now_ms):
        self._check("window", topic, window)
        return mood_row(topic, window, self.bucket)

    def series(self, topic, start_ms, end_ms, step):
        self._check("series", topic, start_ms, end_ms, step)
        return [point(self.bucket)]

    def posts(self, topic, start_ms, end_ms, limit):
        self._check("posts", topic, start_ms, end_ms, limit)
        return [
            {
                "id": "p1",
                "ts_ms": NOW,
                "text": "<script>alert(1)</script>",
                "url": "",
                "sentiment": "negative",
            }
        ]

    def alerts(self, topics, now_ms):
        self._check("alerts", tuple(topics))
        return {"open": [], "past": []}

    def status(self, now_ms):
        self._check("status")
        return {"now_ms": now_ms, "processes": [], "connectors": [], "dlq": {"total": 0, "by_reason": {}}}

    def ping(self) -> bool:
        self._check("ping")
        return True


def client(
    model=None, *, token: str | None = None, hosts=(), show_texts=True, metrics=None, metrics_auth=True
):
    model = model or FakeReadModel()
    hub = Hub(model, interval_s=0.2, clock_ms=lambda: NOW)
    cfg = WebConfig(
        token=SecretStr(token) if token else None,
        allowed_hosts=tuple(hosts),
        show_texts=show_texts,
        metrics_auth=metrics_auth,
    )
    app = create_app(model, hub, cfg, metrics=metrics)
    return TestClient(app, base_url="http://127.0.0.1:8089"), model


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


ROUTES = [
    "/",
    "/static/dashboard.js",
    "/readyz",
    "/api/v1/topics",
    "/api/v1/topics/acme/window",
    "/api/v1/topics/acme/series",
    "/api/v1/topics/acme/posts",
    "/api/v1/alerts",
    "/api/v1/status",
]


@pytest.mark.parametrize("path", ROUTES)
def test_no_token_configured_serves_every_route(path):
    c, _ = client()
    r = c.get(path)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
        ({"Authorization": f"bearer {TOKEN}"}, 200),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Bearer {TOKEN}x"}, 401),
        ({"Authorization": TOKEN}, 401),
        (basic("anyone", TOKEN), 200),
        (basic("", TOKEN), 200),
        (basic(TOKEN, "nope"), 401),
        ({"Authorization": "Basic !!!not-base64"}, 401),
        ({"Authorization": "Digest " + TOKEN}, 401),
    ],
)
def test_auth_matrix(path, headers, status):
    c, _ = client(token=TOKEN)
    r = c.get(path, headers=headers)
    assert r.status_code == status
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Basic ")
        assert TOKEN not in r.text


def test_healthz_needs_no_token_and_says_nothing_more():
    c, _ = client(token=TOKEN)
    r = c.get("/healthz")
    assert r.status_code == 200 and r.json() == {"ok": True}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_only_get_and_head(method):
    c, _ = client(token=TOKEN)
    r = c.request(method, "/api/v1/topics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"


def test_head_is_allowed():
    c, _ = client()
    assert c.head("/api/v1/topics").status_code == 200


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:8089", 200),
        ("localhost:8089", 200),
        ("LOCALHOST", 200),
        ("[::1]:8089", 200),
        ("dash.example.com", 200),
        ("dash.example.com:443", 200),
        ("evil.example.com", 403),
        ("attacker.test:8089", 403),
        ("127.0.0.1.evil.test", 403),
        ("", 403),
    ],
)
def test_host_header_is_checked_without_and_with_a_token(host, status):
    for token in (None, TOKEN):
        c, _ = client(token=token, hosts=["dash.example.com"])
        headers = {"host": host}
        if token:
            headers["Authorization"] = f"Bearer {TOKEN}"
        r = c.get("/api/v1/topics", headers=headers)
        assert r.status_code == status, (host, token)


def test_a_bad_host_is_refused_before_the_token_is_asked():
    c, _ = client(token=TOKEN)
    assert c.get("/api/v1/topics", headers={"host": "evil.test"}).status_code == 403


@pytest.mark.parametrize("path", [*ROUTES, "/healthz", "/api/v1/nope"])
def test_security_headers_on_every_answer(path):
    c, _ = client()
    r = c.get(path)
    assert r.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "'unsafe-inline'" not in CSP and "frame-ancestors 'none'" in CSP
    assert "default-src 'self'" in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    if path.startswith("/api/"):
        assert r.headers["cache-control"] == "no-store"


def test_refusals_carry_the_headers_too():
    c, _ = client(token=TOKEN)
    for r in (c.get("/api/v1/topics"), c.post("/api/v1/topics"), c.get("/", headers={"host": "x.test"})):
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-content-type-options"] == "nosniff"


def test_the_page_has_no_inline_script_and_renders_texts_as_text():
    c, _ = client()
    html = c.get("/").text
    assert "<script>" not in html and "onclick" not in html and "style=" not in html
    js = c.get("/static/dashboard.js").text
    assert "innerHTML" not in js and "outerHTML" not in js and "insertAdjacentHTML" not in js
    assert "eval(" not in js and "new Function" not in js
    assert c.get("/static/dashboard.js").headers["content-type"].startswith("text/javascript")


def test_window_is_the_mood_row():
    c, m = client()
    r = c.get("/api/v1/topics/acme/window?window=1h")
    assert r.json() == mood_row("acme", "1h", m.bucket)


def test_topics_have_the_current_and_the_previous_window():
    c, _ = client()
    body = c.get("/api/v1/topics?spark=30").json()
    assert [t["topic"] for t in body["topics"]] == ["acme", "globex"]
    row = body["topics"][0]
    assert row["current"]["posts"] == 5 and row["previous"]["posts"] == 2 and row["posts_change"] == 3
    assert row["current"]["net_sentiment"] == -0.2
    assert row["spark"] == [5]


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/v1/topics?window=5x", "window"),
        ("/api/v1/topics?window=40d", "window"),
        ("/api/v1/topics/acme/window?window=", "window"),
        ("/api/v1/topics/acme/series?from=abc", "from"),
        ("/api/v1/topics/acme/series?from=10&to=5", "from"),
        ("/api/v1/topics/acme/series?step=5m", "step"),
        ("/api/v1/topics/acme/series?from=0&to=604800000&step=1m", "step"),
        ("/api/v1/topics/acme/posts?limit=0", "limit"),
        ("/api/v1/topics/acme/posts?limit=201", "limit"),
        ("/api/v1/topics/a%20b/window", "topic"),
        ("/api/v1/topics/a:b/window", "topic"),
        ("/api/v1/topics?spark=999", "spark"),
        ("/api/v1/stream?topics=a%7Bb", "topic"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(path, param):
    c, _ = client()
    r = c.get(path)
    assert r.status_code == 400
    assert r.json()["error"].startswith(param + ":")


def test_unknown_topic_is_404():
    c, _ = client()
    assert c.get("/api/v1/topics/initech/window").status_code == 404


def test_series_picks_the_step_and_passes_the_range():
    c, m = client()
    body = c.get("/api/v1/topics/acme/series?from=1000&to=7201000").json()
    assert body["step"] == "1m" and m.calls[-1] == ("series", ("acme", 1000, 7201000, "1m"))
    body = c.get("/api/v1/topics/acme/series?from=0&to=604800000").json()
    assert body["step"] == "1h"


def test_posts_hidden_when_texts_are_off():
    c, m = client(show_texts=False)
    body = c.get("/api/v1/topics/acme/posts").json()
    assert body == {"topic": "acme", "texts_hidden": True, "posts": []}
    assert not any(name == "posts" for name, _ in m.calls)


def test_redis_down_is_503_without_the_address_or_the_password():
    m = FakeReadModel()
    c, _ = client(m, token=TOKEN)
    m.fail = True
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path in ROUTES[2:]:
        r = c.get(path, headers=auth)
        assert r.status_code == 503, path
        assert "hunter2" not in r.text and "10.1.2.3" not in r.text and TOKEN not in r.text


def test_no_answer_carries_the_token():
    c, _ = client(token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path in [*ROUTES, "/healthz", "/static/dashboard.css", "/static/vendor/uPlot.iife.min.js"]:
        r = c.get(path, headers=auth)
        assert TOKEN not in r.text, path
        assert all(TOKEN not in v for v in r.headers.values()), path


def test_metrics_mount_follows_metrics_auth():
    async def metrics(scope, receive, send):
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"mood_up 1\n"})

    c, _ = client(token=TOKEN, metrics=metrics)
    assert c.get("/metrics").status_code == 401
    assert c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text == "mood_up 1\n"
    c, _ = client(token=TOKEN, metrics=metrics, metrics_auth=False)
    assert c.get("/metrics").status_code == 200
    assert c.get("/api/v1/topics").status_code == 401


def test_answers_are_counted_by_route_template():
    from prometheus_client.parser import text_string_to_metric_families

    from monitor import metrics
    from monitor.web.app import route_label

    assert route_label("/api/v1/topics/acme/window") == "/api/v1/topics/{topic}/window"
    assert route_label("/api/v1/topics/acme/nope") == "other"
    assert route_label("/static/vendor/uPlot.min.css") == "/static"
    assert route_label("/wp-admin/x") == "other"
    c, _ = client(token=TOKEN, metrics=metrics.asgi_app(metrics.REGISTRY))
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def count(route, code):
        text = c.get("/metrics", headers=auth).text
        for fam in text_string_to_metric_families(text):
            if fam.name == "mood_monitor_http_requests":
                return sum(
                    s.value
                    for s in fam.samples
                    if s.name.endswith("_total") and s.labels["route"] == route and s.labels["code"] == code
                )
        return 0

    before_ok = count("/api/v1/topics/{topic}/window", "200")
    before_401 = count("/api/v1/topics/{topic}/window", "401")
    c.get("/api/v1/topics/acme/window", headers=auth)
    c.get("/api/v1/topics/globex/window", headers=auth)
    c.get("/api/v1/topics/acme/window")
    assert count("/api/v1/topics/{topic}/window", "200") == before_ok + 2
    assert count("/api/v1/topics/{topic}/window", "401") == before_401 + 1


def test_the_app_reads_nothing_while_no_one_watches():
    m = FakeReadModel()
    c, _ = client(m)
    with c:
        c.get("/healthz")
        c.get("/static/dashboard.js")
    assert m.calls == []  # no poll without a live viewer, no write ever (the model has none)
