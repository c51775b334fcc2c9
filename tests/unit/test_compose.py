"""docker-compose.yml is what production runs; no engine here, so check its shape."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
C = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
S = C["services"]


def test_services_and_images():
    assert set(S) >= {"kafka", "redis", "connector", "worker", "alerter"}
    assert S["kafka"]["image"].startswith("apache/kafka:4.")
    assert S["redis"]["image"].startswith("redis:7")
    for name in ("connector", "worker", "alerter"):
        assert S[name]["image"] == "mood-monitor:latest" and S[name]["build"] == "."


def test_kafka_is_kraft_with_volume_and_healthcheck():
    env = S["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "kafka-data:" in S["kafka"]["volumes"][0]
    assert S["kafka"]["healthcheck"]["test"]


def test_redis_persists_and_has_healthcheck():
    assert "--appendonly" in S["redis"]["command"]
    assert S["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "redis-data:/data" in S["redis"]["volumes"]


def test_app_services_wait_for_healthy_dependencies_and_get_env():
    for name in ("connector", "worker", "alerter"):
        deps = S[name]["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        env = S[name]["environment"]
        assert env["MOOD_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["MOOD_REDIS__URL"].startswith("redis://redis:6379")


def test_worker_scales_and_can_reserve_a_gpu():
    w = S["worker"]
    assert "container_name" not in w, "a fixed container name would break --scale worker=N"
    dev = w["deploy"]["resources"]["reservations"]["devices"][0]
    assert dev["capabilities"] == ["gpu"] and dev["driver"] == "nvidia"
    assert w["command"] == ["mood-monitor", "worker"]
    assert w["healthcheck"]["test"] == ["CMD", "mood-monitor", "check", "--process", "worker"]


def test_alerter_gets_the_webhook_as_a_secret_and_no_url_is_written_anywhere():
    assert S["alerter"]["secrets"] == ["slack_webhook"]
    assert "slack_webhook" in C["secrets"]
    text = (ROOT / "docker-compose.yml").read_text() + (ROOT / "config" / "monitor.yaml").read_text()
    assert "hooks.slack.com" not in text
    assert S["alerter"]["healthcheck"]["test"][-1] == "alerter"


def test_config_points_the_slack_destination_at_the_secret_file():
    cfg = yaml.safe_load((ROOT / "config" / "monitor.yaml").read_text())
    dest = cfg["alerts"]["destinations"][0]
    assert dest["url_file"] == "/run/secrets/slack_webhook"


def test_live_sources_are_opt_in_and_take_secrets_from_files():
    from connectors.cli import CONNECTORS

    for name in ("bluesky", "mastodon", "reddit", "rss", "push"):
        svc = S[name]
        assert svc["profiles"] == ["sources"]
        assert svc["command"][:4] == ["mood-monitor", "connectors", "run", name]
        assert name in CONNECTORS
        for key, value in svc.get("environment", {}).items():
            if key.endswith(("TOKEN", "SECRET", "CLIENT_ID")):
                raise AssertionError(f"{name}: {key} must come from a *_FILE secret, not the environment")
            if key.endswith("_FILE"):
                assert value.startswith("/run/secrets/")
    assert {"mastodon_token", "reddit_client_secret", "push_webhook_secret"} <= set(C["secrets"])


def test_the_replay_connector_is_opt_in():
    # its stream file is the user's own: a default `docker compose up` must not need it
    assert S["connector"]["profiles"] == ["replay"]
    defaults = [n for n, svc in S.items() if not svc.get("profiles")]
    for name in defaults:
        assert "stream.jsonl" not in " ".join(map(str, S[name].get("command", [])))
