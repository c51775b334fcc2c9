"""Make the secrets a default `docker compose up` needs, in ./secrets/ (or $MOOD_SECRETS_DIR).

    python3 scripts/compose_secrets.py [--dir DIR] [--prefix mm]

Generated once (kept when present, so re-running never changes a password):
    redis_<role>      the password of each Redis ACL user (worker, alerter, connector, reader, operator)
    kafka_password    the password of the Kafka user `mood` (SASL/PLAIN on the compose network)
    author_key        the worker's key of author pseudonyms (HMAC-SHA256; a new one changes them all)
Derived from them on every run (so editing a password file and re-running is how to rotate one):
    redis_users.acl   redis-server's ACL file: the default user off, one user per role with the
                      rules of monitor/store/acl.py and its password as a SHA-256 hash, and a
                      `health` user that may only PING (the container's health check)
    kafka_jaas.conf   the broker's JAAS file: the users of the SASL listener
Yours to write (this script says which are missing): slack_webhook (the alerter, so a default
`up`), and for the `sources` profile mastodon_token, reddit_client_id, reddit_client_secret,
push_webhook_secret.

Permissions: the directory is 0700 (no other host user can open a file in it); the files are
0644 because compose bind-mounts each file as it is, and the containers read them as non-root
users (mood, redis, appuser). Standard library only: it runs with any Python 3.11 on the host.
No secret is ever printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import secrets
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
KAFKA_USER = "mood"
USER_SECRETS = {
    "slack_webhook": "the alerter's Slack webhook URL (needed by a default docker compose up)",
    "mastodon_token": "profile sources: the Mastodon access token",
    "reddit_client_id": "profile sources: the Reddit app's client id",
    "reddit_client_secret": "profile sources: the Reddit app's client secret",
    "push_webhook_secret": "profile sources: the push endpoint's Standard Webhooks secret (whsec_...)",
}
# what a generated password looks like, and what a hand-written one may contain: nothing that
# needs quoting in a JAAS file or an ACL rule
_SAFE = re.compile(r"[A-Za-z0-9._~+/=-]{16,256}")


def _acl_module() -> ModuleType:
    """monitor/store/acl.py by path: the ACL rules have one source, and it needs no venv."""
    spec = importlib.util.spec_from_file_location("mood_acl", ROOT / "monitor" / "store" / "acl.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _password(path: Path) -> tuple[str, bool]:
    """The password in ``path``, made (random, 256 bits) when the file is missing."""
    if not path.exists():
        _write(path, secrets.token_urlsafe(32))
        return path.read_text(), True
    value = path.read_text().strip("\n")
    if not _SAFE.fullmatch(value):
        raise SystemExit(
            f"compose_secrets: {path}: a password must be 16-256 characters of A-Z a-z 0-9 . _ ~ + / = -"
        )
    return value, False


def jaas(passwords: dict[str, str]) -> str:
    users = " ".join(f'user_{name}="{pw}"' for name, pw in sorted(passwords.items()))
    return (
        f"KafkaServer {{\n  org.apache.kafka.common.security.plain.PlainLoginModule required {users};\n}};\n"
    )


def make(directory: Path, prefix: str) -> list[str]:
    """Create or refresh the secrets in ``directory``; return the report lines."""
    acl = _acl_module()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    report: list[str] = []
    redis: dict[str, str] = {}
    for role in acl.ROLES:
        redis[role], made = _password(directory / f"redis_{role}")
        report.append(f"{'made' if made else 'kept'} redis_{role}")
    kafka, made = _password(directory / "kafka_password")
    report.append(f"{'made' if made else 'kept'} kafka_password")
    _, made = _password(directory / "author_key")
    report.append(f"{'made' if made else 'kept'} author_key")
    health = "user health on nopass resetkeys resetchannels -@all +ping\n"
    _write(directory / "redis_users.acl", acl.acl_file(prefix, redis) + health)
    _write(directory / "kafka_jaas.conf", jaas({KAFKA_USER: kafka}))
    report.append("wrote redis_users.acl and kafka_jaas.conf (from the password files)")
    for name, what in USER_SECRETS.items():
        if not (directory / name).exists():
            report.append(f"missing {name}: {what}")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("MOOD_SECRETS_DIR") or ROOT / "secrets"))
    ap.add_argument("--prefix", default="mm", help="the redis.prefix the ACL users get (default mm)")
    args = ap.parse_args(argv)
    for line in make(args.dir.resolve(), args.prefix):
        print(f"compose_secrets: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
