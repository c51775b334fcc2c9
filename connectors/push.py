"""Signed HTTP push: an ingest endpoint for sources that deliver posts by webhook.

``POST /ingest`` with Standard Webhooks headers: ``webhook-id``, ``webhook-timestamp`` (Unix
seconds) and ``webhook-signature`` (space-separated ``v1,<base64 HMAC-SHA256>`` entries) over
``"<id>.<timestamp>.<raw body>"``, keyed with the base64-decoded part of the ``whsec_`` secret.

    400  missing webhook headers, a body that is not UTF-8 JSON, both Transfer-Encoding and
         Content-Length, a body shorter than its Content-Length, or any other request that
         cannot be read
    401  no matching signature, or a timestamp more than ``tolerance_s`` (5 min) from now
    404  any other path (405: another method on /ingest)
    408  headers or body sent too slowly (`monitor.asgi.ServerLimits` header/body timeouts)
    411  Transfer-Encoding (chunked) without Content-Length: the body length must be known
    413  body larger than ``max_body_bytes`` (refused before it is read), or more than
         ``max_items`` items (1000)
    200  this webhook-id was already accepted (a sender's retry): nothing produced again
    202  accepted: ``{"accepted": n, "rejected": [{"index", "reason"}]}``
    500  a fault of ours while handling an authenticated request (the id is released)
    503  Kafka or Redis unavailable (the id is released), or the server is at its request or
         connection limit (``Retry-After``): the sender should retry

The body is one item, a JSON array of items, or ``{"posts": [...]}``. An item is a post
``{"id", "text", "created_ms"?, "lang"?, "url"?, "author_id"?, "hashtags"?}`` or a deletion
``{"kind": "delete", "id"}``; ids are prefixed ``push:``. Bad items are rejected by index and
counted; the rest of the batch goes on. `verify` is pure; the secret is never logged.

The server is a Starlette app under uvicorn (`monitor.asgi`): bounded time for headers and body,
bounded requests in flight and connections, the body capped before it is read. Redis and Kafka
calls run in a worker thread, so a slow broker never holds the event loop. The signature is
computed by the Standard Webhooks reference library (`standardwebhooks.Webhook.sign`); its
``verify`` is not used as is, because it reads the clock itself with a fixed 5-minute tolerance,
and raises ValueError/binascii.Error (not its own error) on a signature entry without a comma or
with bad base64 and UnicodeDecodeError on a non-UTF-8 body: on unauthenticated input every case
must be a 400/401. So the headers are checked here first (F12: the webhook-timestamp must be
1-12 ASCII digits; ``'\u00b2'.isdigit()`` is true and int() refuses it, and a 5,000-digit number
is over int()'s limit), then the library signs and each ``v1`` entry is compared in constant
time. A secret whose key is under 24 bytes (Standard Webhooks keys are 24-64) is refused at
start-up (F10), the error naming ``PUSH_WEBHOOK_SECRET`` and never its value.

Requests come from anyone who can reach the port, so one request never takes the server down:
`PushConnector.handle` answers every request with a status, and whatever else goes wrong with
one request is one log line naming the exception type. Log lines name reasons and sizes, never
header values or body content.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import Connector, PostSink, guarded
from connectors.credentials import Secret
from monitor.asgi import AsgiServer, ServerLimits
from monitor.errors import ConfigError, DecodeError, TransientError
from monitor.messages import Deletion, Post
from monitor.store.connectors import ConnectorState

log = logging.getLogger(__name__)

SOURCE = "push"
MAX_ITEMS = 1000
MAX_ID_CHARS = 256  # webhook-id: it becomes a Redis key
MIN_KEY_BYTES = 24  # Standard Webhooks secrets are 24-64 random bytes
MAX_SIGNATURES = 16  # v1 entries compared per request (key rotation needs two or three)
REJECT_LOG_EVERY_S = 1.0  # refused requests: at most one WARNING line a second


class Refused(Exception):  # noqa: N818 - an answer to give, not a fault of ours
    """A request answered with ``status`` (4xx) and ``reason``, before anything was produced."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SignatureError(Refused):
    """Missing webhook headers (400), or a signature or timestamp that does not verify (401)."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ConfigError naming the setting (never the
    value) when it is not one, or when the key is under `MIN_KEY_BYTES` (F10: ``whsec_`` alone
    is a 0-byte key anyone can sign with)."""
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("PUSH_WEBHOOK_SECRET", "(value)", "not a whsec_<base64> secret") from exc
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            "PUSH_WEBHOOK_SECRET",
            "(value)",
            f"the key is {len(key)} bytes, under {MIN_KEY_BYTES}: "
            f"use whsec_ + base64 of {MIN_KEY_BYTES}-64 random bytes",
        )
    return key


def sign(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """The base64 ``v1`` signature, by the Standard Webhooks reference library."""
    when = datetime.fromtimestamp(int(timestamp), tz=UTC)
    return Webhook(key).sign(msg_id, when, body.decode("utf-8")).partition(",")[2]


def verify(
    key: bytes, headers: Mapping[str, str], body: bytes, *, now_s: float, tolerance_s: int = 300
) -> str:
    """-> the webhook-id of a correctly signed, fresh message; SignatureError otherwise."""
    msg_id = headers.get("webhook-id", "")
    ts = headers.get("webhook-timestamp", "")
    sigs = headers.get("webhook-signature", "")
    if not (msg_id and ts and sigs):
        raise SignatureError(400, "missing webhook-id, webhook-timestamp or webhook-signature")
    if len(msg_id) > MAX_ID_CHARS or not msg_id.isascii():
        raise SignatureError(400, f"webhook-id is not ASCII of at most {MAX_ID_CHARS} characters")
    if not (ts.isascii() and ts.isdigit() and len(ts) <= 12):
        raise SignatureError(401, "webhook-timestamp is not Unix seconds")
    if abs(now_s - int(ts)) > tolerance_s:
        raise SignatureError(401, "webhook-timestamp outside the tolerance")
    try:
        expected = sign(key, msg_id, ts, body).encode()
    except UnicodeDecodeError as exc:
        raise SignatureError(400, "body is not UTF-8") from exc
    for entry in sigs.split()[:MAX_SIGNATURES]:
        version, _, sig = entry.partition(",")
        if version == "v1" and sig.isascii() and hmac.compare_digest(sig.encode(), expected):
            return msg_id
    raise SignatureError(401, "no matching v1 signature")


@guarded("item")
def to_item(obj: Any, *, now_ms: int) -> Post | Deletion:
    if not isinstance(obj, dict):
        raise DecodeError("item", "expected a JSON object")
    pid = obj.get("id")
    if not isinstance(pid, str) or not pid.strip() or len(pid) > 256:
        raise DecodeError("id", "missing, empty or longer than 256 characters")
    if obj.get("kind") == "delete":
        return Deletion(id=f"{SOURCE}:{pid}", source=SOURCE, deleted_ms=now_ms)
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise DecodeError("text", "missing or empty")
    created = obj.get("created_ms", now_ms)
    if isinstance(created, bool) or not isinstance(created, int) or not 0 < created < 2**53:
        raise DecodeError("created_ms", "not a positive integer (epoch ms)")
    strs = {k: obj.get(k, "") for k in ("lang", "url", "author_id")}
    if not all(isinstance(v, str) for v in strs.values()):
        raise DecodeError("lang/url/author_id", "expected strings")
    tags = obj.get("hashtags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise DecodeError("hashtags", "expected a list of strings")
    return Post(
        id=f"{SOURCE}:{pid}",
        source=SOURCE,
        text=text,
        created_ms=created,
        ingested_ms=now_ms,
        author_id=strs["author_id"][:512],
        lang=strs["lang"][:16],
        url=strs["url"][:4096],
        hashtags=tuple(t.lstrip("#").casefold() for t in tags[:64]),
    )


def batch_of(body: bytes, *, max_items: int = MAX_ITEMS) -> list[Any]:
    """The items of a body; SignatureError(400) when it is not JSON, Refused(413) over the cap."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SignatureError(400, "body is not JSON") from exc
    if isinstance(doc, dict) and isinstance(doc.get("posts"), list):
        doc = doc["posts"]
    items = doc if isinstance(doc, list) else [doc]
    if len(items) > max_items:
        raise Refused(413, f"more than {max_items} items")
    return items


class PushConnector(Connector):
    name = SOURCE

    def __init__(
        self,
        sink: PostSink,
        state: ConnectorState,
        *,
        secret: Secret,
        host: str = "127.0.0.1",
        port: int = 8088,
        tolerance_s: int = 300,
        max_body_bytes: int = 1 << 20,
        max_items: int = MAX_ITEMS,
        id_ttl_s: int = 7 * 86400,
        limits: ServerLimits | None = None,
    ) -> None:
        """``limits``: the server's timeouts and caps; ``host``, ``port`` and ``max_body_bytes``
        override its fields, and Content-Length is always required (411 otherwise)."""
        super().__init__(sink)
        self.state = state
        self.key = secret_key(secret.value)  # before the port is bound: a weak secret never listens
        self.tolerance_s = tolerance_s
        self.max_body_bytes = max_body_bytes
        self.max_items = max_items
        self.id_ttl_s = id_ttl_s
        self.rejected = 0
        self.duplicates = 0
        self._last_reject_log = -REJECT_LOG_EVERY_S
        self._quiet = 0
        self._lock = threading.Lock()
        self.limits = dataclasses.replace(
            limits or ServerLimits(), host=host, port=port, max_body_bytes=max_body_bytes, require_length=True
        )
        self.app = ingest_app(self)
        self.server = AsgiServer(self.app, self.limits, on_refusal=self._refused)
        self.port = self.server.port

    def _refused(self, status: int, reason: str) -> None:
        """A request the server refused before the app saw it (413, 408, 411, 503...)."""
        self._reject(status, reason)

    def _reject(self, status: int, reason: str) -> tuple[int, dict[str, Any]]:
        """Count a refused request; log it in one line, at most one a second (anyone can send
        them: the rest go to DEBUG and the next line says how many there were)."""
        now = time.monotonic()
        with self._lock:
            self.rejected += 1
            loud = now - self._last_reject_log >= REJECT_LOG_EVERY_S
            if loud:
                self._last_reject_log, quiet, self._quiet = now, self._quiet, 0
            else:
                self._quiet += 1
        if loud:
            more = f" (+{quiet} more since the last line)" if quiet else ""
            log.warning("push: rejected a request: status=%d reason=%s%s", status, reason, more)
        else:
            log.debug("push: rejected a request: status=%d reason=%s", status, reason)
        return status, {"error": reason}

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """One request -> (status, JSON answer). Never raises: input it cannot read is a 400."""
        now = time.time()
        try:
            msg_id = verify(self.key, headers, body, now_s=now, tolerance_s=self.tolerance_s)
            items = batch_of(body, max_items=self.max_items)
        except Refused as exc:
            return self._reject(exc.status, exc.reason)
        except Exception as exc:
            return self._reject(400, f"unreadable request ({type(exc).__name__})")
        try:
            if not self.state.claim(msg_id, self.id_ttl_s):
                with self._lock:
                    self.duplicates += 1
                return 200, {"duplicate": True, "webhook-id": msg_id}
            accepted, rejected = self._produce(items, int(now * 1000))
        except TransientError as exc:
            self._release(msg_id)
            log.warning("push: cannot accept now: %s", exc)
            return 503, {"error": "temporarily unavailable, retry"}
        except Exception as exc:
            self._release(msg_id)
            with self._lock:
                self.stats.errors += 1
            log.error("push: failed to handle a signed request: %s", type(exc).__name__)
            return 500, {"error": "internal error, retry"}
        self._report()
        return 202, {"accepted": accepted, "rejected": rejected}

    def _produce(self, items: list[Any], now_ms: int) -> tuple[int, list[dict[str, Any]]]:
        rejected: list[dict[str, Any]] = []
        accepted = 0
        with self._lock:
            for i, obj in enumerate(items):
                try:
                    self.emit(to_item(obj, now_ms=now_ms))
                except DecodeError as exc:
                    self.stats.count_bad(f"bad_{exc.field}")
                    rejected.append({"index": i, "reason": str(exc)})
                    continue
                accepted += 1
            self.sink.flush()
        return accepted, rejected

    def _release(self, msg_id: str) -> None:
        try:
            self.state.release(msg_id)
        except TransientError:
            log.warning("push: could not release webhook-id claim; a retry will be taken as a duplicate")

    def _report(self) -> None:
        try:
            self.state.report(
                {
                    "connected": 1,
                    "produced": self.stats.produced,
                    "deletions": self.stats.deletions,
                    "bad": self.stats.bad,
                    "rejected_requests": self.rejected,
                    "duplicates": self.duplicates,
                    "last_event_ms": int(time.time() * 1000),
                    "updated_ms": int(time.time() * 1000),
                    "errors": self.stats.errors,
                }
            )
        except TransientError as exc:
            log.warning("push: status not reported: %s", exc)

    def stop(self) -> None:
        super().stop()
        self.server.stop()

    def run(self, max_items: int | None = None) -> int:
        """Serve until `stop` (a signal handler of the entry point calls it); then drain and flush."""
        log.info("push: listening on %s:%d/ingest", self.server.host, self.port)
        self._report()
        failed = True
        try:
            self.server.serve()
            failed = False
        finally:
            self.cleanup(failed)
        return 0


def _json(status: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json", headers=headers)


def ingest_app(conn: PushConnector) -> Starlette:
    """The ASGI app: ``POST /ingest`` -> `PushConnector.handle` in a worker thread."""

    async def ingest(request: Request) -> Response:
        try:
            body = await request.body()
        except ClientDisconnect:
            return _json(400, {"error": "client went away"})  # nobody reads it; nothing to count
        headers = {k: v for k, v in request.headers.items()}  # lower-case names, latin-1 values
        status, doc = await run_in_threadpool(conn.handle, headers, body)
        return _json(status, doc)

    async def elsewhere(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        extra = {"Allow": "POST"} if status == 405 else {}
        # the body was not read: close, or its bytes would be parsed as the next request
        return _json(status, {"error": "POST /ingest"}, {"Connection": "close", **extra})

    app = Starlette(
        routes=[Route("/ingest", ingest, methods=["POST"])],
        exception_handlers={404: elsewhere, 405: elsewhere},
    )
    app.router.redirect_slashes = False  # /ingest/ is a 404, not a redirect
    return app
