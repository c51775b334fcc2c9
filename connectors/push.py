"""Signed HTTP push: an ingest endpoint for sources that deliver posts by webhook.

``POST /ingest`` with Standard Webhooks headers: ``webhook-id``, ``webhook-timestamp`` (Unix
seconds) and ``webhook-signature`` (space-separated ``v1,<base64 HMAC-SHA256>`` entries) over
``"<id>.<timestamp>.<raw body>"``, keyed with the base64-decoded part of the ``whsec_`` secret.

    400  missing webhook headers, a body that is not JSON, both Transfer-Encoding and
         Content-Length, or any other request that cannot be read
    401  no matching signature, or a timestamp more than ``tolerance_s`` (5 min) from now
    411  Transfer-Encoding (chunked) without Content-Length: the body length must be known
    413  body larger than ``max_body_bytes``, or more than ``max_items`` items (1000)
    200  this webhook-id was already accepted (a sender's retry): nothing produced again
    202  accepted: ``{"accepted": n, "rejected": [{"index", "reason"}]}``
    500  a fault of ours while handling an authenticated request (the id is released)
    503  Kafka or Redis unavailable: the sender should retry (the id is released)

The body is one item, a JSON array of items, or ``{"posts": [...]}``. An item is a post
``{"id", "text", "created_ms"?, "lang"?, "url"?, "author_id"?, "hashtags"?}`` or a deletion
``{"kind": "delete", "id"}``; ids are prefixed ``push:``. Bad items are rejected by index and
counted; the rest of the batch goes on. `verify` is pure; the secret is never logged.

Requests come from anyone who can reach the port, so one request never takes the server down:
`PushConnector.handle` answers every request with a status (400 for input it cannot read, before
or after authentication), the HTTP handler catches whatever else goes wrong with one request
(one log line naming the exception type, a 500 when nothing was answered yet), and the server's
``handle_error`` logs one line instead of a traceback. The webhook-timestamp must be 1-12 ASCII
digits (``'²'.isdigit()`` is true and int() refuses it; a 5,000-digit number is over int()'s
limit). Log lines name reasons and sizes, never header values or body content.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import sys
import threading
import time
from collections.abc import Mapping
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from connectors.base import Connector, PostSink, guarded
from connectors.credentials import Secret
from monitor.errors import ConfigError, DecodeError, TransientError
from monitor.messages import Deletion, Post
from monitor.store.connectors import ConnectorState

log = logging.getLogger(__name__)

SOURCE = "push"
MAX_ITEMS = 1000
MAX_ID_CHARS = 256  # webhook-id: it becomes a Redis key


class Refused(Exception):  # noqa: N818 - an answer to give, not a fault of ours
    """A request answered with ``status`` (4xx) and ``reason``, before anything was produced."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SignatureError(Refused):
    """Missing webhook headers (400), or a signature or timestamp that does not verify (401)."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ConfigError when it is not one."""
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("PUSH_WEBHOOK_SECRET", "(value)", "not a whsec_<base64> secret") from exc


def sign(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


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
    expected = sign(key, msg_id, ts, body).encode()
    for entry in sigs.split():
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


def body_length(headers: Message, max_body_bytes: int) -> int:
    """The body length a request declares; Refused when it cannot be read safely: 411 for
    Transfer-Encoding without Content-Length, 400 for both or for several different or
    unreadable Content-Length values, 413 over ``max_body_bytes``."""
    length = headers.get_all("Content-Length") or []
    chunked = headers.get("Transfer-Encoding") is not None
    if chunked and not length:
        raise Refused(411, "Content-Length required (no Transfer-Encoding)")
    if chunked or len(set(length)) > 1:
        raise Refused(400, "conflicting Content-Length / Transfer-Encoding")
    raw = length[0].strip() if length else "0"
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12):
        raise Refused(400, "Content-Length is not a number")
    if int(raw) > max_body_bytes:
        raise Refused(413, f"body over {max_body_bytes} bytes")
    return int(raw)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """An exception that escaped a request (the stdlib prints a traceback): one line."""
        exc = sys.exc_info()[1]
        log.warning("push: connection failed: %s", type(exc).__name__ if exc else "unknown")


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
    ) -> None:
        super().__init__(sink)
        self.state = state
        self.key = secret_key(secret.value)
        self.tolerance_s = tolerance_s
        self.max_body_bytes = max_body_bytes
        self.max_items = max_items
        self.id_ttl_s = id_ttl_s
        self.rejected = 0
        self.duplicates = 0
        self._lock = threading.Lock()
        self.server = _Server((host, port), self._handler_class())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def _reject(self, status: int, reason: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.rejected += 1
        log.warning("push: rejected a request: status=%d reason=%s", status, reason)
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

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        conn = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
                log.debug("push: " + format, *args)

            answered = False

            def _answer(self, status: int, doc: dict[str, Any]) -> None:
                body = orjson.dumps(doc)
                self.answered = True
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if self.close_connection:  # tell the client, or it may reuse a socket we close
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                self.answered = False
                try:
                    self._post()
                except Exception as exc:  # one request's fault, whatever it is: one line, no traceback
                    self.close_connection = True
                    log.warning("push: request failed: %s", type(exc).__name__)
                    if not self.answered:
                        with contextlib.suppress(Exception):  # the client may be gone
                            self._answer(500, {"error": "request failed"})

            def _post(self) -> None:
                if self.path.split("?", 1)[0] != "/ingest":
                    self.close_connection = True  # the body was not read
                    self._answer(404, {"error": "POST /ingest"})
                    return
                try:
                    n = body_length(self.headers, conn.max_body_bytes)
                except Refused as exc:
                    self.close_connection = True  # the unread body would be taken as the next request
                    self._answer(*conn._reject(exc.status, exc.reason))
                    return
                body = self.rfile.read(n)
                if len(body) < n:  # the client stopped sending (or went away) mid-body
                    self.close_connection = True
                    self._answer(*conn._reject(400, "body shorter than Content-Length"))
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._answer(*conn.handle(headers, body))

        return Handler

    def stop(self) -> None:
        super().stop()
        threading.Thread(target=self.server.shutdown, daemon=True).start()

    def run(self, max_items: int | None = None) -> int:
        log.info("push: listening on %s:%d/ingest", *self.server.server_address[:2])
        self._report()
        failed = True
        try:
            self.server.serve_forever(poll_interval=0.2)
            failed = False
        finally:
            self.server.server_close()
            self.cleanup(failed)
        return 0
