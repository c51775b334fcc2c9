"""The HTTP guard in front of every route of `mood-monitor serve` (plain ASGI middleware, so it
covers the live stream too), in this order:

1. only GET and HEAD (405 otherwise: the dashboard is read-only, no CSRF surface);
2. the Host header must name an allowed host (403 otherwise): localhost, 127.0.0.1, [::1] and
   the configured names, against DNS rebinding, with or without a token;
3. with a read token configured, every route but ``/healthz`` needs it (401 otherwise, with a
   Basic challenge so that a browser asks): ``Authorization: Bearer <token>``, or Basic with
   any user name and the token as password; compared in constant time;
4. every answer carries a strict Content-Security-Policy (no inline script, no other origin,
   no framing), nosniff, no referrer; API answers are not cached.

Refusals say why in a short JSON body that never echoes what the client sent.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable

import orjson
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.web.settings import LOOPBACK_NAMES

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
OPEN_PATHS = ("/healthz",)
CHALLENGE = b'Basic realm="mood-monitor", charset="UTF-8"'


def host_name(header: str) -> str:
    """The host of a Host header, without its port, lower case ('[::1]:8089' -> '::1')."""
    h = header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[1:end] if end > 0 else ""
    name, _, _port = h.partition(":")
    return name


def token_matches(authorization: str, token: SecretStr) -> bool:
    """Bearer <token>, or Basic <base64(any-user:token)>."""
    want = token.get_secret_value().encode()
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return hmac.compare_digest(value.encode(), want)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            return False
        _user, sep, password = decoded.partition(b":")
        return bool(sep) and hmac.compare_digest(password, want)
    return False


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        token: SecretStr | None,
        allowed_hosts: Iterable[str] = (),
        open_paths: Iterable[str] = OPEN_PATHS,
    ) -> None:
        self.app = app
        self.token = token
        self.hosts = {h.lower().strip("[]") for h in (*LOOPBACK_NAMES, *allowed_hosts)}
        self.open_paths = tuple(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            await _refuse(send, 405, "only GET and HEAD", [(b"allow", b"GET, HEAD")])
            return
        if host_name(headers.get("host", "")) not in self.hosts:
            await _refuse(send, 403, "host not allowed")
            return
        if (
            self.token is not None
            and path not in self.open_paths
            and not token_matches(headers.get("authorization", ""), self.token)
        ):
            await _refuse(send, 401, "a read token is needed", [(b"www-authenticate", CHALLENGE)])
            return
        api = path.startswith(("/api/", "/metrics"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [*SECURITY_HEADERS, (b"cache-control", b"no-store" if api else b"no-cache")]
                names = {k for k, _ in extra}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(
    send: Send, status: int, why: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps({"error": why})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
