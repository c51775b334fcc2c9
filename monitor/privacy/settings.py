"""The ``privacy`` settings section: the author key, and how long Kafka keeps whole posts.

The author key (`monitor.privacy.pseudonym`) is a secret of at least 32 bytes, given as
``privacy.author_key`` (``MOOD_PRIVACY__AUTHOR_KEY``) or, better, as a file
``privacy.author_key_file`` (``MOOD_PRIVACY__AUTHOR_KEY_FILE=/run/secrets/author_key``, a docker
secret). A worker refuses to start without one, unless every Kafka bootstrap server is on this
host (the local stack, the tests, the demo): then it uses the key in
``$MOOD_STACK_DIR/secrets/author_key`` (default ``.stack/secrets/author_key``), created once
with 32 random bytes (mode 0600) by whichever process needs it first. Changing the key changes
every pseudonym from then on (posts before and after can no longer be matched by author).

``raw_retention_ms`` and ``dlq_retention_ms`` (24 h by default) are the Kafka ``retention.ms``
of ``posts.raw`` (whole posts: texts, authors, links) and ``posts.dlq``; ``mood-monitor`` sets
them when it creates the topics and on existing ones at every start of a worker or connector
(``kafka.scored_retention_ms``, 7 days, is that of ``posts.scored``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from monitor.errors import ConfigError

MIN_AUTHOR_KEY_BYTES = 32
DAY_MS = 24 * 3600 * 1000
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class PrivacySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    author_key: SecretStr | None = None
    author_key_file: Path | None = None
    raw_retention_ms: int = Field(DAY_MS, ge=60_000)
    dlq_retention_ms: int = Field(DAY_MS, ge=60_000)

    def author_key_bytes(self, bootstrap_servers: str) -> bytes:
        """The key, from the setting, its file, or (local stack only) the generated one.
        `ConfigError` names the setting when it is missing, unreadable or too short; the
        message never contains the key."""
        if self.author_key is not None and self.author_key_file is not None:
            raise ConfigError(
                "settings", "privacy.author_key", "give author_key or author_key_file, not both"
            )
        if self.author_key is not None:
            return _checked("privacy.author_key", self.author_key.get_secret_value().encode())
        if self.author_key_file is not None:
            return _checked("privacy.author_key_file", _read(self.author_key_file, "privacy.author_key_file"))
        if not all_local(bootstrap_servers):
            raise ConfigError(
                "settings",
                "privacy.author_key",
                "not set: a deployment needs its own secret key of at least "
                f"{MIN_AUTHOR_KEY_BYTES} bytes (MOOD_PRIVACY__AUTHOR_KEY_FILE=/run/secrets/author_key); "
                "only a Kafka on this host gets a generated one",
            )
        return _checked("privacy.author_key_file", local_key(local_key_path()))


def _checked(name: str, key: bytes) -> bytes:
    if len(key) < MIN_AUTHOR_KEY_BYTES:
        raise ConfigError("settings", name, f"shorter than {MIN_AUTHOR_KEY_BYTES} bytes ({len(key)})")
    return key


def _read(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError("settings", name, f"cannot read {path}: {exc.strerror}") from exc


def all_local(bootstrap_servers: str) -> bool:
    """Whether every ``host:port`` of a bootstrap list is a loopback address or name."""
    hosts = [h.strip() for h in bootstrap_servers.split(",") if h.strip()]
    if not hosts:
        return False
    for hp in hosts:
        host = hp.rsplit(":", 1)[0].strip("[]") if ":" in hp else hp
        if host.lower() in _LOCAL_NAMES:
            continue
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return False
        except ValueError:
            return False
    return True


def local_key_path() -> Path:
    return Path(os.environ.get("MOOD_STACK_DIR") or ".stack") / "secrets" / "author_key"


def local_key(path: Path) -> bytes:
    """The key in ``path``, created first if missing (atomically: a link that fails when
    another process created it first, so that every process of the stack agrees)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_urlsafe(32).encode() + b"\n")
        finally:
            os.close(fd)
        try:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink()
    return _read(path, "privacy.author_key_file")
