"""The Redis Cluster settings and the hash tags that keep each script and transaction in one
slot (no server: the slot of a key is computed as Redis does, CRC16 of its hash tag)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from redis.crc import key_slot

from monitor.errors import ConfigError
from monitor.settings import load_settings
from monitor.store import keys
from monitor.store.connectors import status_key


def _load(tmp_path: Path, monkeypatch, redis: dict, env: dict | None = None) -> object:
    for k in [k for k in __import__("os").environ if k.startswith("MOOD_")]:
        monkeypatch.delenv(k)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(yaml.safe_dump({"redis": redis}))
    return load_settings(cfg)


def test_cluster_settings_from_the_file_and_the_environment(tmp_path, monkeypatch):
    s = _load(tmp_path, monkeypatch, {"url": "redis://10.0.0.1:7000", "cluster": True, "wait_replicas": 1})
    assert s.redis.cluster and s.redis.wait_replicas == 1 and s.redis.dedup_shards is None
    s = _load(tmp_path, monkeypatch, {}, env={"MOOD_REDIS__CLUSTER": "true", "MOOD_REDIS__DEDUP_SHARDS": "8"})
    assert s.redis.cluster and s.redis.dedup_shards == 8
    assert not _load(tmp_path, monkeypatch, {}).redis.cluster  # one Redis unless told


@pytest.mark.parametrize("url", ["redis://10.0.0.1:7000/3", "unix:///run/redis.sock"])
def test_a_cluster_url_names_a_node_without_a_database(tmp_path, monkeypatch, url):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, monkeypatch, {"url": url, "cluster": True})
    assert "redis.url" in str(e.value) and "Cluster" in str(e.value)


def _slot(key: str) -> int:
    return int(key_slot(key.encode()))


def test_keys_written_together_share_a_slot():
    p = "mm"
    # one topic's bucket script: its watermark, buckets, sample and index
    topic = [keys.watermark(p, "x"), keys.minute(p, "x", 0), keys.hour(p, "x", 0)]
    topic += [keys.sample(p, "x", 0), keys.recent(p, "x")]
    # the alerter's commit script: lease, episode, fingerprint, outbox, log (and its other keys)
    alert = [keys.alert_lease(p), keys.alert_episode(p, "x", "r"), keys.alert_fingerprint(p, "x", "f")]
    alert += [keys.alert_outbox(p), keys.alert_log(p), keys.alert_sent(p), keys.alert_disabled(p)]
    # the registry's MULTI/EXEC; a guard slice pair; one connector's commit
    registry = [keys.topic_registry(p), keys.topic_registry_version(p)]
    guard = [keys.seen_slice(p, 7, 3), keys.seen_slice(p, 6, 3)]
    conn = status_key("mm:conn:", "rss")
    connector = [conn, conn.replace(":status", ":cursor"), conn.replace(":status", ":seen")]
    for group in (topic, alert, registry, guard, connector, [keys.seen_slice(p, 1), keys.seen_slice(p, 2)]):
        assert len({_slot(k) for k in group}) == 1, group
    # and the groups themselves are spread: different topics, different guard shards
    assert len({_slot(keys.watermark(p, f"t{i}")) for i in range(20)}) == 20
    assert len({_slot(keys.seen_slice(p, 0, s)) for s in range(16)}) == 16
