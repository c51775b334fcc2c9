"""The one place a Redis client is built (`redis_client`) and its errors are judged (`store_error`).

A client comes from `RedisSettings`: the URL (``redis://`` or ``rediss://`` for TLS), the ACL user
and password (or ``password_file``), the CA and an optional client certificate. A plain URL
string is accepted too (tests, benchmarks, a ``redis://`` without credentials).

With ``redis.cluster`` the client is a `redis.RedisCluster` (`RedisClient` is either): the URL
names one node, the client learns the slot map from it, sends each command to the master of its
key's slot and follows MOVED and failovers. Every multi-key command, MULTI/EXEC and script of this
package touches keys of one hash tag (`keys`), so it runs on one master; SCAN goes to every
master (`scan_iter`).

Errors: a refused login, a command the ACL denies, a certificate the CA does not vouch for and a
plaintext client at a TLS port are mistakes of configuration, not outages: they become a
`ConfigError` naming the setting to fix (one line, no secret, no retry loop). Anything else is
`StoreUnavailable` (transient: back off, retry).
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

import redis

from monitor.errors import ConfigError, MoodMonitorError, StoreUnavailable
from monitor.transport import RedisSettings, speaks_tls

RedisClient = redis.Redis | redis.RedisCluster


def redis_client(
    r: RedisSettings | str, *, decode_responses: bool = False, socket_timeout_s: float = 5.0
) -> RedisClient:
    """A client for the settings' server (or cluster), user, password and TLS files."""
    kw: dict[str, Any] = {
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": min(5.0, socket_timeout_s),
        "decode_responses": decode_responses,
    }
    if isinstance(r, str):
        return redis.Redis.from_url(r, **kw)
    if r.username:
        kw["username"] = r.username
    secret = r.secret()
    if secret is not None and not _url_has_password(r):
        kw["password"] = secret.get_secret_value()
    if r.tls:
        kw["ssl_cert_reqs"] = "required"
        kw["ssl_check_hostname"] = r.ssl_check_hostname
        for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            if getattr(r, name) is not None:
                kw[name] = str(getattr(r, name))
    if r.cluster:
        # the slot map is refreshed on MOVED and after connection errors (a failover); a
        # command is retried on the new master before the error reaches the caller
        parts = urlsplit(r.url.get_secret_value())
        return redis.RedisCluster.from_url(parts._replace(path="").geturl(), **kw)
    return redis.Redis.from_url(r.url.get_secret_value(), **kw)


def is_cluster(client: object) -> bool:
    return isinstance(client, redis.RedisCluster)


def _url_has_password(r: RedisSettings) -> bool:
    return bool(urlsplit(r.url.get_secret_value()).password)


def _where(client: Any) -> tuple[str, str, int, bool, bool]:
    """(user, host, port, tls, password given) of a client, from its pool's connection settings
    (a cluster client: those of its default node)."""
    if isinstance(client, redis.RedisCluster):
        node = client.get_default_node()  # type: ignore[no-untyped-call]  # untyped in redis-py
        client = getattr(node, "redis_connection", None)
    pool = getattr(client, "connection_pool", None)
    ckw: dict[str, Any] = getattr(pool, "connection_kwargs", {}) or {}
    tls = pool is not None and "SSL" in getattr(pool.connection_class, "__name__", "")
    user = str(ckw.get("username") or "default")
    return user, str(ckw.get("host", "?")), int(ckw.get("port", 0) or 0), tls, ckw.get("password") is not None


def _cause(exc: BaseException) -> BaseException | None:
    seen = exc.__cause__ or exc.__context__
    while seen is not None:
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def store_error(exc: redis.RedisError, client: Any = None, what: str = "redis") -> MoodMonitorError:
    """The project error for a redis-py error (``client``: the one that raised it, for where)."""
    user, host, port, tls, has_password = _where(client)
    server = f"redis {host}:{port}"
    text = str(exc)
    if isinstance(exc, redis.AuthenticationError) or text.startswith(("WRONGPASS", "NOAUTH")):
        if not has_password or "NOAUTH" in text:
            return ConfigError(
                server, "redis.password", "the server requires a login: set redis.username and redis.password"
            )
        return ConfigError(
            server,
            "redis.password",
            f"rejected by the server for user {user!r} (invalid username-password pair or user disabled)",
        )
    if isinstance(exc, redis.exceptions.NoPermissionError) or "NOPERM" in text:
        return ConfigError(server, "redis.username", f"the ACL of user {user!r} denies this: {text[:200]}")
    cause = _cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        reason = cause.verify_message or "certificate verify failed"
        if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
            return ConfigError(
                server, "redis.url", f"the server's certificate does not name this host ({reason})"
            )
        return ConfigError(
            server, "redis.ssl_ca_certs", f"the server's certificate is not signed by this CA ({reason})"
        )
    if isinstance(cause, ssl.SSLError) and tls:
        return ConfigError(
            server, "redis.url", f"TLS handshake failed ({cause.reason or type(cause).__name__})"
        )
    if (
        isinstance(exc, redis.ConnectionError)
        and not tls
        and port
        and "refused" not in text.lower()
        and speaks_tls(host, port)
    ):
        return ConfigError(
            server, "redis.url", "the server speaks TLS but the URL is redis://: use rediss://"
        )
    return StoreUnavailable(f"{what}: {type(exc).__name__}: {exc}")
