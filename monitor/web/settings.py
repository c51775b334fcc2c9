"""The `dashboard` section of the settings (`mood-monitor serve`). Pure.

The read token is a secret: ``MOOD_DASHBOARD__TOKEN`` or, better, a file named by
``dashboard.token_file`` / ``MOOD_DASHBOARD__TOKEN_FILE`` (a docker secret). It is never logged
or echoed; `read_token` resolves it once at start-up.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from monitor.errors import ConfigError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class DashboardSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8089, ge=0, le=65535)
    # a read token (Bearer, or Basic with any user name and the token as password); required
    # for a bind beyond loopback
    token: SecretStr | None = None
    token_file: str | None = None
    # names the Host header may carry besides localhost / 127.0.0.1 / [::1] (DNS rebinding)
    allowed_hosts: list[str] = []
    # how often the one poller of a server process reads Redis for the live stream
    push_interval_s: float = Field(2.0, ge=0.2, le=60.0)
    max_clients: int = Field(32, ge=1, le=1000)  # live-stream connections at once
    max_topics: int = Field(50, ge=1, le=1000)  # topics in the overview and the live stream
    show_texts: bool = True  # example posts on the page and in /api/v1/topics/<t>/posts
    metrics_auth: bool = True  # /metrics asks for the token too (false: a private scrape network)


def read_token(cfg: DashboardSettings) -> SecretStr | None:
    """The token: the file's content when ``token_file`` is set, else ``token``; None when
    neither. ConfigError (naming the setting, never the value) on a missing or empty file."""
    if cfg.token_file:
        try:
            text = Path(cfg.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            why = f"cannot be read ({type(exc).__name__})"
            raise ConfigError(cfg.token_file, "dashboard.token_file", why) from exc
        if not text:
            raise ConfigError(cfg.token_file, "dashboard.token_file", "is empty")
        return SecretStr(text)
    if cfg.token is not None and not cfg.token.get_secret_value().strip():
        raise ConfigError("settings", "dashboard.token", "is empty")
    return cfg.token


def is_loopback(host: str) -> bool:
    import ipaddress

    h = host.strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: SecretStr | None) -> None:
    """A bind beyond loopback without a read token is refused (ConfigError)."""
    if token is None and not is_loopback(host):
        raise ConfigError(
            "settings",
            "dashboard.token",
            f"serving on {host} (not loopback) needs a read token: set dashboard.token_file "
            "or MOOD_DASHBOARD__TOKEN",
        )
