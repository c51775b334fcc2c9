"""The dashboard's settings: the read token from a file or the environment, and the rule that
a bind beyond loopback needs one."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from monitor.errors import ConfigError
from monitor.settings import load_settings
from monitor.web.settings import DashboardSettings, check_bind, is_loopback, read_token


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_binds_need_no_token(host):
    assert is_loopback(host)
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "dashboard.internal", "192.168.1.2"])
def test_a_bind_beyond_loopback_without_a_token_is_refused(host):
    with pytest.raises(ConfigError) as exc:
        check_bind(host, None)
    assert exc.value.field == "dashboard.token"
    check_bind(host, SecretStr("t0ken"))


def test_token_from_a_file_wins_and_is_stripped(tmp_path):
    f = tmp_path / "token"
    f.write_text("  file-token\n")
    cfg = DashboardSettings(token=SecretStr("env-token"), token_file=str(f))
    assert read_token(cfg).get_secret_value() == "file-token"


def test_a_missing_or_empty_token_file_names_the_setting_not_the_value(tmp_path):
    with pytest.raises(ConfigError) as exc:
        read_token(DashboardSettings(token_file=str(tmp_path / "absent")))
    assert exc.value.field == "dashboard.token_file"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_token(DashboardSettings(token_file=str(empty)))
    with pytest.raises(ConfigError, match="dashboard.token"):
        read_token(DashboardSettings(token=SecretStr("  ")))


def test_token_from_the_environment_is_a_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("MOOD_DASHBOARD__TOKEN", "from-env-123")
    s = _settings(tmp_path)
    assert read_token(s.dashboard).get_secret_value() == "from-env-123"
    assert "from-env-123" not in repr(s.dashboard) and "from-env-123" not in str(s.dashboard)


def _settings(tmp_path):
    cfg = tmp_path / "m.yaml"
    cfg.write_text("dashboard:\n  port: 8090\n")
    return load_settings(cfg)


def test_defaults_are_loopback_and_the_usual_port(tmp_path):
    d = _settings(tmp_path).dashboard
    assert (d.host, d.port, d.token, d.show_texts) == ("127.0.0.1", 8090, None, True)
