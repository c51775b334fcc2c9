"""The dashboard's HTTP app (Starlette): the page, the read API under ``/api/v1`` and the live
stream, behind the `Guard`. Built by `create_app` from a `ReadModel` and a `Hub`; run by
`monitor.web.server` (uvicorn, one process, one poller).

    GET /                                     the page (static, from the package)
    GET /static/...                           its script, styles and the vendored chart library
    GET /healthz                              the process is up (no token, no data)
    GET /readyz                               Redis answers
    GET /api/v1/topics?window=5m&spark=30     every topic: this window, the previous one (and a sparkline)
    GET /api/v1/topics/<t>/window?window=15m  one topic's figures (`mood-monitor mood --json`)
    GET /api/v1/topics/<t>/series?from=&to=&step=1m|1h   buckets between two times (ms)
    GET /api/v1/topics/<t>/posts?from=&to=&limit=20      sampled example posts, newest first
    GET /api/v1/alerts?topic=<t>              open and past alert episodes
    GET /api/v1/status                        heartbeats, connectors, DLQ, sealing lag
    GET /api/v1/stream?topics=a,b             Server-Sent Events: topics, status, alerts
    GET /metrics                              Prometheus (when a metrics app is given)

A bad parameter is a 400 naming it; Redis down is a 503 that carries no address.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import anyio
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor import metrics
from monitor.aggregates import HOUR_MS, MINUTE_MS
from monitor.errors import ConfigError, MoodMonitorError
from monitor.web.guard import Guard
from monitor.web.live import Event, Hub, Subscriber, frame
from monitor.web.readmodel import MAX_POINTS, STEPS_MS, ReadModel, parse_window

log = logging.getLogger(__name__)

API = "/api/v1"
MAX_WINDOW_MS = 35 * 86_400_000
MAX_POSTS = 200
MAX_SPARK_MIN = 120
PING_S = 15.0
STATIC = resources.files("monitor.web").joinpath("static")


@dataclass(frozen=True)
class WebConfig:
    token: SecretStr | None = None
    allowed_hosts: tuple[str, ...] = ()
    show_texts: bool = True
    metrics_auth: bool = True
    max_topics: int = 50


class BadRequest(Exception):
    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"{param}: {reason}")
        self.param = param


class NotFound(Exception):
    pass


def valid_topic(name: str) -> str:
    """A topic name as the settings allow it (1-100 characters, no space, ':', '{' or '}')."""
    if not 1 <= len(name) <= 100 or any(c.isspace() or c in "{}:" for c in name):
        raise BadRequest("topic", "not a topic name")
    return name


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 15:
        raise BadRequest(name, "expected epoch milliseconds (digits)")
    return int(raw)


def _window(request: Request, default: str) -> str:
    w = request.query_params.get("window", default)
    try:
        ms = parse_window(w)
    except ConfigError as exc:
        raise BadRequest("window", "expected like 90s, 15m, 1h or 7d") from exc
    if ms > MAX_WINDOW_MS:
        raise BadRequest("window", "at most 35d")
    return w


class Api:
    """The routes' handlers over one read model and one hub (plain ``def`` handlers run in
    Starlette's thread pool: the store is synchronous)."""

    def __init__(self, model: ReadModel, hub: Hub, cfg: WebConfig) -> None:
        self.model = model
        self.hub = hub
        self.cfg = cfg
        self.clock: Callable[[], int] = hub.clock_ms

    def known(self, topic: str) -> str:
        valid_topic(topic)
        if topic not in self.model.topics():
            raise NotFound(f"no topic {topic!r}")
        return topic

    def topics(self, request: Request) -> JSONResponse:
        window = _window(request, "5m")
        now = self.clock()
        names = self.model.topics()[: self.cfg.max_topics]
        rows = self.model.summary(names, window, now)
        spark = _int(request, "spark", 0)  # posts per minute over the last N minutes, per topic
        if spark > MAX_SPARK_MIN:
            raise BadRequest("spark", f"at most {MAX_SPARK_MIN} minutes")
        for row in rows if spark else []:
            pts = self.model.series(row["topic"], now - spark * MINUTE_MS, now + 1, "1m")
            row["spark"] = [p["n"] for p in pts]
        return JSONResponse({"now_ms": now, "window": window, "topics": rows})

    def window(self, request: Request) -> JSONResponse:
        topic = self.known(request.path_params["topic"])
        return JSONResponse(self.model.window(topic, _window(request, "15m"), self.clock()))

    def series(self, request: Request) -> JSONResponse:
        topic = self.known(request.path_params["topic"])
        end = _int(request, "to", self.clock())
        start = _int(request, "from", end - HOUR_MS)
        if start >= end:
            raise BadRequest("from", "must be before to")
        step = request.query_params.get("step") or ("1m" if end - start <= 24 * HOUR_MS else "1h")
        if step not in STEPS_MS:
            raise BadRequest("step", "expected 1m or 1h")
        if (end - start) // STEPS_MS[step] > MAX_POINTS:
            raise BadRequest("step", f"at most {MAX_POINTS} points: use 1h or a shorter range")
        points = self.model.series(topic, start, end, step)
        return JSONResponse({"topic": topic, "from": start, "to": end, "step": step, "points": points})

    def posts(self, request: Request) -> JSONResponse:
        topic = self.known(request.path_params["topic"])
        end = _int(request, "to", self.clock() + MINUTE_MS)
        start = _int(request, "from", end - 24 * HOUR_MS)
        limit = _int(request, "limit", 20)
        if not 1 <= limit <= MAX_POSTS:
            raise BadRequest("limit", f"1 to {MAX_POSTS}")
        if not self.cfg.show_texts:
            return JSONResponse({"topic": topic, "texts_hidden": True, "posts": []})
        found = self.model.posts(topic, start, end, limit)
        return JSONResponse({"topic": topic, "texts_hidden": False, "posts": found})

    def alerts(self, request: Request) -> JSONResponse:
        one = request.query_params.get("topic")
        names = [self.known(one)] if one else self.model.topics()[: self.cfg.max_topics]
        return JSONResponse(self.model.alerts(names, self.clock()))

    def status(self, request: Request) -> JSONResponse:
        return JSONResponse({**self.model.status(self.clock()), "redis": "up"})

    def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    def readyz(self, request: Request) -> JSONResponse:
        return JSONResponse({"redis": "up" if self.model.ping() else "down"})

    def index(self, request: Request) -> FileResponse:
        return FileResponse(str(STATIC.joinpath("index.html")), media_type="text/html; charset=utf-8")

    async def stream(self, request: Request) -> Response:
        raw = request.query_params.get("topics", "")
        wanted = [valid_topic(t) for t in raw.split(",") if t] if raw else None
        if wanted is not None and len(wanted) > self.cfg.max_topics:
            raise BadRequest("topics", f"at most {self.cfg.max_topics}")
        sub = self.hub.subscribe(wanted)
        if sub is None:
            return JSONResponse({"error": "too many live clients"}, 503, headers={"retry-after": "10"})
        metrics.SSE_CLIENTS.inc()
        return StreamingResponse(
            self._events(sub), media_type="text/event-stream", headers={"x-accel-buffering": "no"}
        )

    async def _events(self, sub: Subscriber) -> AsyncIterator[bytes]:
        try:
            yield b"retry: 5000\n\n"
            for first in self.hub.current():
                yield frame(first, sub.topics)
            while True:
                ev: Event | None = None
                try:
                    with anyio.move_on_after(PING_S):
                        ev = await sub.receive.receive()
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    return  # dropped as too slow (or shutting down): the browser reconnects
                yield frame(ev, sub.topics) if ev is not None else b": ping\n\n"
        finally:
            self.hub.unsubscribe(sub)
            metrics.SSE_CLIENTS.dec()


async def _bad_request(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, 400)


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, 404)


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("read failed: %s", exc)
    return JSONResponse({"error": "redis unavailable"}, 503, headers={"retry-after": "5"})


def create_app(model: ReadModel, hub: Hub, cfg: WebConfig, *, metrics: ASGIApp | None = None) -> ASGIApp:
    """The app behind its guard; its lifespan runs the hub's poller."""
    api = Api(model, hub, cfg)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(hub.run)
            yield
            tg.cancel_scope.cancel()

    routes: list[Any] = [
        Route("/", api.index),
        Route("/healthz", api.healthz),
        Route("/readyz", api.readyz),
        Route(f"{API}/topics", api.topics),
        Route(f"{API}/topics/{{topic}}/window", api.window),
        Route(f"{API}/topics/{{topic}}/series", api.series),
        Route(f"{API}/topics/{{topic}}/posts", api.posts),
        Route(f"{API}/alerts", api.alerts),
        Route(f"{API}/status", api.status),
        Route(f"{API}/stream", api.stream),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    if metrics is not None:
        routes.append(Route("/metrics", _Asgi(metrics)))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        # Redis down (StoreUnavailable) or refusing the user (ConfigError from the store): 503
        exception_handlers={BadRequest: _bad_request, NotFound: _not_found, MoodMonitorError: _unavailable},
    )
    open_paths = ("/healthz",) if cfg.metrics_auth else ("/healthz", "/metrics")
    guarded = Guard(app, token=cfg.token, allowed_hosts=cfg.allowed_hosts, open_paths=open_paths)
    return Instrumented(guarded)


class _Asgi:
    """An ASGI app as a route's endpoint (Starlette calls a plain function a request handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def route_label(path: str) -> str:
    """The route template of a path, for bounded metric labels (never the raw path)."""
    if path.startswith(f"{API}/topics/"):
        parts = path.split("/")
        return (
            f"{API}/topics/{{topic}}/{parts[5]}" if len(parts) == 6 and parts[5] in _TOPIC_ROUTES else "other"
        )
    if path.startswith("/static/"):
        return "/static"
    return path if path in _PLAIN_ROUTES else "other"


_TOPIC_ROUTES = ("window", "series", "posts")
_PLAIN_ROUTES = frozenset(
    [
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        *(f"{API}/{r}" for r in ("topics", "alerts", "status", "stream")),
    ]
)


class Instrumented:
    """Counts every answer (refusals too) by route template, method and status, and times it
    (`monitor.metrics`: mood_monitor_http_requests_total, ..._http_request_duration_seconds)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_label(scope["path"])
        method = scope["method"] if scope["method"] in ("GET", "HEAD") else "other"
        status = [500]
        t0 = time.perf_counter()

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            metrics.HTTP_REQUESTS.labels(route=route, method=method, code=str(status[0])).inc()
            if route != f"{API}/stream":  # a stream lasts as long as its viewer
                metrics.HTTP_SECONDS.labels(route=route).observe(time.perf_counter() - t0)
