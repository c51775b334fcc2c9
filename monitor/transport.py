"""The Kafka and Redis sections of the settings: where the servers are and how every client
reaches them (TLS, SASL, the Redis ACL user; docs/security.md "Transport and authentication").
Pure: pydantic and the standard library's ssl only, so that `monitor.kafka` and `monitor.store`
import it without importing the rest of the settings. `monitor.settings` re-exports both.

Passwords are `SecretStr`, given directly (YAML or ``MOOD_*`` env) or by a ``*_file`` setting (a
docker secret), which is read once, at start-up. Every check that spans fields raises
`SettingError` naming the setting; `monitor.settings.load_settings` turns it into a
`ConfigError` such as ``kafka.sasl_username: required with security_protocol SASL_SSL``.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _blank_is_none(v: object) -> object:
    """An empty value (``MOOD_KAFKA__SSL_CAFILE=``) unsets an optional file or secret."""
    return None if isinstance(v, str) and not v.strip() else v


class SettingError(ValueError):
    """A cross-field check of a section failed; ``field`` is the setting to fix (joined to the
    section's path in `ConfigError`)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _readable(field: str, path: Path | None) -> None:
    if path is None:
        return
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise SettingError(field, f"cannot read {path} ({exc.strerror or type(exc).__name__})") from None


def _secret_from(field: str, value: SecretStr | None, file: Path | None) -> SecretStr | None:
    """A secret given directly (YAML or ``MOOD_*`` env) or by ``<field>_file`` (a docker secret),
    read once at start-up; never both."""
    if file is None:
        return value
    if value is not None:
        raise SettingError(field, f"give {field} or {field}_file, not both")
    _readable(f"{field}_file", file)
    text = file.read_text(encoding="utf-8").strip()
    if not text:
        raise SettingError(f"{field}_file", f"{file} is empty")
    return SecretStr(text)


def _tls_files(
    names: tuple[str, str, str], ca: Path | None, cert: Path | None, key: Path | None, key_pw: str | None
) -> None:
    """Load the CA and the client certificate + key once, so that a wrong file or key password
    is a start-up error naming the setting rather than a failed handshake later."""
    ca_name, cert_name, key_name = names
    for name, path in zip(names, (ca, cert, key), strict=True):
        _readable(name, path)
    if ca is not None:
        try:
            ssl.create_default_context(cafile=str(ca))
        except ssl.SSLError:
            raise SettingError(ca_name, f"{ca} holds no PEM CA certificate") from None
    if key is not None and cert is None:
        raise SettingError(cert_name, f"{key_name} is set without a client certificate")
    if cert is not None:
        try:
            ssl.create_default_context().load_cert_chain(
                str(cert), str(key) if key else None, password=key_pw or None
            )
        except ssl.SSLError:
            raise SettingError(
                key_name if key else cert_name,
                "not a PEM certificate and private key that match (or the key password is wrong)",
            ) from None


KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]
# the client library behind monitor.kafka's producers and batch consumer (docs/benchmarks.md):
# kafka-python (pure Python, the default) or librdkafka (confluent-kafka, C: ~15x less CPU a record)
KafkaClient = Literal["kafka-python", "librdkafka"]


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:19092"
    raw_topic: str = "posts.raw"
    scored_topic: str = "posts.scored"
    dlq_topic: str = "posts.dlq"
    # the unit of parallelism: at most this many workers share the load of posts.raw
    partitions: int = Field(4, ge=1, le=1024)
    group_id: str = "mood-workers"
    # which library produces and consumes records (admin and read-back stay on kafka-python)
    client: KafkaClient = "kafka-python"
    scored_retention_ms: int = Field(7 * 24 * 3600 * 1000, ge=60_000)
    # transport and authentication of every client (docs/security.md): TLS with SSL and
    # SASL_SSL, a SASL login with SASL_PLAINTEXT and SASL_SSL
    security_protocol: KafkaProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None  # or the password in a file (a docker secret)
    ssl_cafile: Path | None = None  # the CA that signed the brokers' certificates (default: system)
    ssl_certfile: Path | None = None  # a client certificate (mTLS), PEM
    ssl_keyfile: Path | None = None  # its private key, PEM
    ssl_password: SecretStr | None = None  # the private key's password
    ssl_password_file: Path | None = None
    ssl_check_hostname: bool = True
    _sasl_secret: SecretStr | None = PrivateAttr(None)
    _ssl_secret: SecretStr | None = PrivateAttr(None)

    _blank = field_validator(
        "sasl_username",
        "sasl_password",
        "sasl_password_file",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_password",
        "ssl_password_file",
        mode="before",
    )(_blank_is_none)

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @model_validator(mode="after")
    def _security(self) -> KafkaSettings:
        self._sasl_secret = _secret_from("sasl_password", self.sasl_password, self.sasl_password_file)
        self._ssl_secret = _secret_from("ssl_password", self.ssl_password, self.ssl_password_file)
        if self.sasl:
            if not self.sasl_username:
                raise SettingError(
                    "sasl_username", f"required with security_protocol {self.security_protocol}"
                )
            if self._sasl_secret is None:
                raise SettingError(
                    "sasl_password",
                    f"required with security_protocol {self.security_protocol} (or sasl_password_file)",
                )
        elif self.sasl_username or self._sasl_secret is not None:
            raise SettingError(
                "security_protocol", f"{self.security_protocol} sends no SASL login: use SASL_SSL"
            )
        tls_set = [n for n in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(self, n) is not None]
        if tls_set and not self.tls:
            raise SettingError(
                tls_set[0], f"set, but security_protocol {self.security_protocol} does not use TLS"
            )
        key_pw = self._ssl_secret.get_secret_value() if self._ssl_secret else None
        _tls_files(
            ("ssl_cafile", "ssl_certfile", "ssl_keyfile"),
            self.ssl_cafile,
            self.ssl_certfile,
            self.ssl_keyfile,
            key_pw,
        )
        return self

    def sasl_secret(self) -> SecretStr | None:
        """The SASL password, from ``sasl_password`` or the file ``sasl_password_file``."""
        return self._sasl_secret

    def ssl_secret(self) -> SecretStr | None:
        """The client key's password, from ``ssl_password`` or ``ssl_password_file``."""
        return self._ssl_secret


class RedisSettings(_Section):
    # redis://host:port/db, or rediss:// for TLS; an ACL user and password may be in the URL
    # (redis://user:pw@host/0) or, better, in username + password / password_file
    url: SecretStr = SecretStr("redis://127.0.0.1:16379/0")
    username: str | None = None  # the ACL user (docs/security.md: one per process)
    password: SecretStr | None = None
    password_file: Path | None = None
    ssl_ca_certs: Path | None = None  # rediss://: the CA of the server's certificate (default: system)
    ssl_certfile: Path | None = None  # rediss://: a client certificate (tls-auth-clients), PEM
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True
    # a Redis Cluster: url names any one node (redis://host:port, no database), the client finds
    # the rest and follows failovers (README "Redis Cluster")
    cluster: bool = False
    # a batch's bucket writes count (and its Kafka offsets are committed) once this many replicas
    # of each master written to hold them (WAIT, up to wait_timeout_ms; else the batch is retried):
    # 1 with replicas, so that a master killed outright takes no figure with it; 0 never waits
    wait_replicas: int = Field(0, ge=0, le=16)
    wait_timeout_ms: int = Field(1000, ge=1, le=60_000)
    prefix: str = "mm"
    minute_ttl_s: int = Field(48 * 3600, ge=60)
    hour_ttl_s: int = Field(35 * 24 * 3600, ge=3600)
    text_ttl_s: int = Field(24 * 3600, ge=60)
    # the representative posts kept per topic and minute (the texts alerts quote)
    texts_per_minute: int = Field(8, ge=0, le=1000)
    # the duplicate-id guard remembers a post id for one to two slices (sources rewind seconds to
    # minutes; each connector also dedups what it produces, for days)
    dedup_slice_s: int = Field(3600, ge=60)
    # the guard split by digest into this many hashes, each its own hash tag: on a cluster they
    # spread over the masters instead of loading one (default: 1, or 16 with cluster: true).
    # A change takes effect at once and forgets the ids already seen (one guard window)
    dedup_shards: int | None = Field(None, ge=1, le=1024)
    _secret: SecretStr | None = PrivateAttr(None)

    _blank = field_validator(
        "username", "password", "password_file", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", mode="before"
    )(_blank_is_none)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url.get_secret_value()).scheme == "rediss"

    @model_validator(mode="after")
    def _security(self) -> RedisSettings:
        parts = urlsplit(self.url.get_secret_value())
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise SettingError("url", f"scheme {parts.scheme!r} is not redis://, rediss:// (TLS) or unix://")
        self._secret = _secret_from("password", self.password, self.password_file)
        if self._secret is not None and parts.password:
            raise SettingError("password", "the URL holds a password too: give it in one place")
        if self.username and parts.username:
            raise SettingError("username", "the URL holds a user name too: give it in one place")
        tls_set = [n for n in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile") if getattr(self, n) is not None]
        if tls_set and not self.tls:
            raise SettingError(tls_set[0], "set, but url is not rediss:// (TLS)")
        if self.cluster and (parts.scheme == "unix" or parts.path.strip("/") not in ("", "0")):
            raise SettingError(
                "url", "a Redis Cluster has one database and no unix socket: redis://host:port"
            )
        _tls_files(
            ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"),
            self.ssl_ca_certs,
            self.ssl_certfile,
            self.ssl_keyfile,
            None,
        )
        return self

    def secret(self) -> SecretStr | None:
        """The password: ``password``, the file ``password_file``, or the one in the URL."""
        if self._secret is not None:
            return self._secret
        pw = urlsplit(self.url.get_secret_value()).password
        return SecretStr(unquote(pw)) if pw else None


def speaks_tls(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Whether the server at host:port completes a TLS handshake (certificate not checked:
    only to tell a plaintext Kafka or Redis client why the server hung up on it)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw, ctx.wrap_socket(raw):
            return True
    except (OSError, ValueError):
        return False
