import pytest

from monitor.app import parse_window
from monitor.cli import main
from monitor.errors import ConfigError
from monitor.settings import load_settings


def test_example_config_loads():
    s = load_settings("config/monitor.yaml")
    assert s.kafka.raw_topic == "posts.raw"
    assert s.topics


def test_env_beats_file(tmp_path, monkeypatch):
    f = tmp_path / "m.yaml"
    f.write_text("kafka:\n  partitions: 3\n")
    monkeypatch.setenv("MOOD_KAFKA__PARTITIONS", "6")
    assert load_settings(f).kafka.partitions == 6


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("kafka:\n  partitions: zero\n", "kafka.partitions"),
        ("worker:\n  max_batch: -1\n", "worker.max_batch"),
        ("kafka:\n  bogus: 1\n", "kafka.bogus"),
        ("topics:\n  - name: a\n  - name: a\n", "topics"),
        ("topics:\n  - keywords: [x]\n", "topics.0.name"),
        ("kafka: [\n", "line"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path, body, field):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(ConfigError) as ei:
        load_settings(f)
    assert str(f) in str(ei.value) and field in str(ei.value)


def test_bad_config_exits_non_zero_with_one_line(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text("worker:\n  max_wait_ms: soon\n")
    assert main(["mood", "x", "--config", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "worker.max_wait_ms" in err[0] and str(f) in err[0]


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "ms"), [("90s", 90_000), ("15m", 900_000), ("1h", 3_600_000), ("7d", 604_800_000)]
)
def test_parse_window(text, ms):
    assert parse_window(text) == ms


@pytest.mark.parametrize("text", ["", "m", "15", "-5m", "1w"])
def test_parse_window_rejects(text):
    with pytest.raises(ConfigError):
        parse_window(text)
