"""The author key: from the setting or its file, required outside the local stack, generated
once into the stack dir for local runs; errors name the setting and never show the key."""

from __future__ import annotations

import stat

import pytest

from monitor.errors import ConfigError
from monitor.privacy.settings import PrivacySettings, all_local
from monitor.settings import load_settings

SECRET = "a-recognisable-author-key-0123456789abcdef"


def test_a_deployment_without_a_key_does_not_start():
    with pytest.raises(ConfigError) as err:
        PrivacySettings().author_key_bytes("kafka:9092")
    assert err.value.field == "privacy.author_key" and "AUTHOR_KEY_FILE" in str(err.value)


def test_the_key_from_the_setting_or_its_file(tmp_path):
    assert PrivacySettings(author_key=SECRET).author_key_bytes("kafka:9092") == SECRET.encode()
    f = tmp_path / "author_key"
    f.write_text(SECRET + "\n")
    assert PrivacySettings(author_key_file=f).author_key_bytes("kafka:9092") == SECRET.encode()


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"author_key": "short-secret-xyz"}, "privacy.author_key"),
        ({"author_key_file": "/nonexistent/author_key"}, "privacy.author_key_file"),
        ({"author_key": SECRET, "author_key_file": "/x"}, "privacy.author_key"),
    ],
)
def test_bad_keys_name_the_setting_and_never_show_the_key(kw, field):
    with pytest.raises(ConfigError) as err:
        PrivacySettings(**kw).author_key_bytes("kafka:9092")
    assert err.value.field == field
    assert "short-secret-xyz" not in str(err.value) and SECRET not in str(err.value)
    assert SECRET not in repr(PrivacySettings(author_key=SECRET))


def test_a_local_stack_gets_one_generated_key(tmp_path, monkeypatch):
    monkeypatch.setenv("MOOD_STACK_DIR", str(tmp_path))
    first = PrivacySettings().author_key_bytes("127.0.0.1:19092")
    path = tmp_path / "secrets" / "author_key"
    assert len(first) >= 32 and path.read_bytes().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PrivacySettings().author_key_bytes("localhost:19092,[::1]:19093") == first  # the same one
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


@pytest.mark.parametrize(
    ("servers", "local"),
    [
        ("127.0.0.1:19092", True),
        ("localhost:9092,127.0.0.2:9092", True),
        ("[::1]:9092", True),
        ("kafka:9092", False),
        ("127.0.0.1:9092,10.0.0.5:9092", False),
        ("", False),
    ],
)
def test_what_counts_as_the_local_stack(servers, local):
    assert all_local(servers) is local


def test_the_environment_sets_the_key_file(tmp_path, monkeypatch):
    f = tmp_path / "k"
    f.write_text(SECRET)
    monkeypatch.setenv("MOOD_PRIVACY__AUTHOR_KEY_FILE", str(f))
    monkeypatch.setenv("MOOD_PRIVACY__RAW_RETENTION_MS", "3600000")
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("{}\n")
    s = load_settings(cfg)
    assert s.privacy.author_key_bytes("kafka:9092") == SECRET.encode()
    assert s.privacy.raw_retention_ms == 3_600_000 and s.privacy.dlq_retention_ms == 24 * 3600 * 1000
