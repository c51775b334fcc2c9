"""Reddit connector against a loopback fake replaying the recorded PRAW cassette: app-only OAuth,
before= paging, 429/503 with Retry-After, a body cut mid-transfer, a malformed listing; the posts
in the real local Kafka: none lost, none duplicated."""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter

import orjson
import pytest

from connectors.backoff import Backoff
from connectors.credentials import Secret
from connectors.reddit import RedditConnector, to_post
from monitor.kafka import KafkaPostProducer, ensure_topics, read_topic
from monitor.store.connectors import RedisConnectorState, read_statuses
from tests.recorded import betamax

from .fake_http import Answer, FakeHTTP, Request

pytestmark = pytest.mark.integration

CASSETTE = betamax("reddit/r_all_comments_stream_2016-12-22.json")
MODERN = betamax("reddit/r_testsub_comments_2023-10-08.json")


class RedditScript:
    """Answers /r/all/comments/ as recorded: ``before=X`` -> the recording with that before, no
    ``before`` -> the recorded no-before answers in turn. Faults are served first, in order."""

    def __init__(self, faults: list[Answer]) -> None:
        self.by_before: dict[str, bytes] = {}
        self.plain: list[bytes] = []
        for it in CASSETTE[1:]:
            q = dict(p.split("=", 1) for p in it["request"]["uri"].split("?", 1)[1].split("&"))
            body = it["response"]["body"]["string"].encode()
            if "before" in q:
                self.by_before[q["before"]] = body
            else:
                self.plain.append(body)
        self.faults = list(faults)
        self.tokens = 0
        self.lock = threading.Lock()

    def __call__(self, req: Request) -> Answer:
        if req.path == "/api/v1/access_token":
            assert req.method == "POST" and b"grant_type=client_credentials" in req.body
            assert req.headers["authorization"] == "Basic " + base64.b64encode(b"cid:csecret").decode()
            self.tokens += 1
            return Answer(
                200,
                {"Content-Type": "application/json"},
                json.dumps({"access_token": f"tok{self.tokens}", "expires_in": 3600}).encode(),
            )
        assert req.path == "/r/all/comments/" and req.headers["authorization"].startswith("bearer tok")
        with self.lock:
            if self.faults:
                return self.faults.pop(0)
            rl = {"x-ratelimit-remaining": "599.0", "x-ratelimit-reset": "1", "x-ratelimit-used": "1"}
            if "before" in req.query:
                return Answer(
                    200,
                    rl,
                    self.by_before.get(req.query["before"], b'{"kind":"Listing","data":{"children":[]}}'),
                )
            body = self.plain.pop(0) if len(self.plain) > 1 else self.plain[0]
            return Answer(200, rl, body)


def _expected_names() -> set[str]:
    names = set()
    for it in CASSETTE[1:]:
        for ch in json.loads(it["response"]["body"]["string"])["data"]["children"]:
            try:
                to_post(ch)
            except Exception:
                continue
            names.add(ch["data"]["name"])
    return names


def _connector(kafka_bootstrap, redis_url, unique, url):
    state = RedisConnectorState(redis_url, "reddit", prefix=f"t-{unique}:conn:")
    return RedditConnector(
        KafkaPostProducer(kafka_bootstrap, f"{unique}.raw"),
        state,
        client_id=Secret("cid"),
        client_secret=Secret("csecret"),
        subreddits=["all"],
        kinds=["comments"],
        auth_url=f"{url}/api/v1/access_token",
        api_url=url,
        poll_interval_s=0.05,
        backoff=Backoff(0.05, 0.3),
    )


def test_faults_lose_nothing_and_duplicate_nothing(kafka_bootstrap, redis_url, unique, caplog):
    ensure_topics(kafka_bootstrap, {f"{unique}.raw": 2})
    first_page = CASSETTE[1]["response"]["body"]["string"].encode()
    script = RedditScript(
        [
            Answer(429, {"Retry-After": "1"}, b'{"message": "Too Many Requests"}'),
            Answer(503, {}, b"<html>upstream down</html>"),
            Answer(200, {}, first_page, cut_after=5000),  # the link drops mid-body
            Answer(200, {"Content-Type": "text/html"}, b"<html>not json</html>"),  # a malformed body
        ]
    )
    with FakeHTTP(script) as fake:
        conn = _connector(kafka_bootstrap, redis_url, unique, fake.url)
        conn.run(idle_timeout_s=3.0)
    recs = read_topic(kafka_bootstrap, f"{unique}.raw", timeout_s=10)
    keys = Counter(r.key.decode() for r in recs)
    expected = _expected_names()
    assert len(expected) >= 180  # 182 distinct comments recorded, less any removed ones
    assert set(keys) == {f"reddit:{n}" for n in expected}
    assert max(keys.values()) == 1
    assert all(orjson.loads(r.value)["source"] == "reddit" for r in recs)
    # the recorded before= pages were asked for, with the newest fullname seen
    befores = [r.query.get("before") for r in fake.requests if r.path.startswith("/r/")]
    assert "t1_dbhn11d" in befores and "t1_dbhn12t" in befores and "t1_dbhn13p" in befores
    assert conn.stats.by_reason == {"malformed_listing": 1}
    assert conn.stats.errors == 3  # 429, 503, the cut body
    st = read_statuses(redis_url, prefix=f"t-{unique}:conn:")["reddit"]
    assert st["produced"] == str(len(expected)) and st["errors"] == "3"
    assert float(st["ratelimit_remaining"]) == 599.0
    assert "csecret" not in caplog.text and "tok1" not in caplog.text


def test_rate_limit_headers_pace_the_requests():
    conn = RedditConnector.__new__(RedditConnector)
    conn.extra_status = {}
    conn.pace({"x-ratelimit-remaining": "599.0", "x-ratelimit-reset": "525", "x-ratelimit-used": "1"})
    assert conn.gap_s == pytest.approx(525 / 599)
    conn.pace({"x-ratelimit-remaining": "0.0", "x-ratelimit-reset": "42"})
    assert conn.gap_s == 42
    conn.pace({})  # the 2016 answers carry no budget
    assert conn.gap_s == 0.0
    hdrs = {k.lower(): v[0] for k, v in MODERN[1]["response"]["headers"].items()}
    conn.pace(hdrs)
    assert conn.gap_s == pytest.approx(525 / 599) and conn.extra_status["ratelimit_remaining"] == 599.0
