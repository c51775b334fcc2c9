"""docker-compose.yml, docker-compose.gpu.yml, Dockerfile and .dockerignore: what production runs.

No Docker engine runs here, so the files go through the parts of docker that need none:
compose-go (the loader of `docker compose`: the Compose specification's schema, interpolation
from .env, anchors, override files, profiles, env_file precedence) and moby/patternmatcher (the
.dockerignore matcher), both in scripts/composecheck, a small Go program this module builds into
a cache directory outside the repository (the Go module proxy the first time). On top of the
resolved model the tests check the security properties: nothing published beyond 127.0.0.1, no
secret in `environment:`, each secret only where it is used, .env never silently overridden,
the GPU only in the override, and no secret or state in the image's build context.
"""

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOL_SRC = ROOT / "scripts" / "composecheck"
RAW = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
APP_SERVICES = {"connector", "bluesky", "mastodon", "reddit", "rss", "push", "worker", "alerter"}
DEFAULT_SERVICES = {"kafka", "redis", "worker", "alerter"}
# profile observability (engineer D2): Prometheus and Grafana, each published on loopback only
OBSERVABILITY = {"prometheus": 9090, "grafana": 3000}
# profile dashboard (and observability): mood-monitor serve, published on loopback only
DASHBOARD = {"dashboard": 8089}
# the secrets each service is given, and no other (docs/security.md "Deployment")
EXPECTED_SECRETS = {
    "kafka": {"kafka_jaas.conf"},
    "redis": {"redis_users.acl"},
    "connector": {"kafka_password", "redis_connector"},
    "bluesky": {"kafka_password", "redis_connector"},
    "rss": {"kafka_password", "redis_connector"},
    "mastodon": {"kafka_password", "redis_connector", "mastodon_token"},
    "reddit": {"kafka_password", "redis_connector", "reddit_client_id", "reddit_client_secret"},
    "push": {"kafka_password", "redis_connector", "push_webhook_secret"},
    "worker": {"kafka_password", "redis_worker", "redis_reader", "author_key"},
    "alerter": {"kafka_password", "redis_alerter", "redis_reader", "slack_webhook"},
    "dashboard": {"redis_reader", "dashboard_token"},
    "prometheus": {"dashboard_token"},  # deploy/prometheus/prometheus.yml reads it (credentials_file)
    "grafana": {"grafana_admin_password"},
}


def _load_script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


compose_secrets = _load_script("compose_secrets")


@pytest.fixture(scope="session")
def composecheck() -> Path:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        pytest.fail("the compose checks need the Go toolchain (Debian: apt-get install golang-go)")
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        digest.update((TOOL_SRC / name).read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mood-monitor"
    exe = base / f"composecheck-{digest.hexdigest()[:16]}" / "composecheck"
    if not exe.exists():
        exe.parent.mkdir(parents=True, exist_ok=True)
        tmp = exe.with_name(f"composecheck.{os.getpid()}")
        res = subprocess.run(
            [go, "build", "-trimpath", "-o", str(tmp), "."],
            cwd=TOOL_SRC,
            capture_output=True,
            text=True,
            env={**os.environ, "GOFLAGS": "-buildvcs=false -mod=readonly"},
        )
        assert res.returncode == 0, f"building scripts/composecheck failed:\n{res.stderr[-2000:]}"
        tmp.replace(exe)
    return exe


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the compose project (the files a `docker compose up` reads) with its secrets
    made by scripts/compose_secrets.py, and no .env unless a test writes one."""
    deploy = [str(p.relative_to(ROOT)) for p in (ROOT / "deploy").rglob("*") if p.is_file()]
    for name in ("docker-compose.yml", "docker-compose.gpu.yml", "config/monitor.yaml", *deploy):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    compose_secrets.make(tmp_path / "secrets", "mm")
    (tmp_path / "secrets" / "slack_webhook").write_text("https://hooks.example.invalid/T0/B0/slack-sentinel")
    return tmp_path


def resolve(tool: Path, workdir: Path, *files: str, profiles: tuple[str, ...] = ()) -> dict:
    args = [str(tool), "-workdir", str(workdir)]
    for p in profiles:
        args += ["-profile", p]
    res = subprocess.run([*args, *(str(workdir / f) for f in files)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.fixture
def model(composecheck: Path, project: Path) -> dict:
    """Every service (all profiles) as compose resolves it."""
    return resolve(composecheck, project, "docker-compose.yml", profiles=("*",))


# ---- the real parser ---------------------------------------------------------------------------


def test_the_files_validate_with_the_compose_loader(composecheck, project):
    default = resolve(composecheck, project, "docker-compose.yml")
    assert set(default["services"]) == DEFAULT_SERVICES, "a plain `up` starts no source"
    everything = resolve(composecheck, project, "docker-compose.yml", profiles=("*",))
    every = DEFAULT_SERVICES | APP_SERVICES | set(OBSERVABILITY) | set(DASHBOARD)
    assert set(everything["services"]) == every
    resolve(composecheck, project, "docker-compose.yml", "docker-compose.gpu.yml")


def test_the_loader_refuses_what_the_specification_does_not_allow(composecheck, tmp_path):
    text = (ROOT / "docker-compose.yml").read_text().replace("    healthcheck:\n", "    healthchek:\n", 1)
    (tmp_path / "docker-compose.yml").write_text(text)
    res = subprocess.run(
        [str(composecheck), "-workdir", str(tmp_path), str(tmp_path / "docker-compose.yml")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1 and "healthchek" in res.stderr


# ---- exposure ----------------------------------------------------------------------------------


def test_only_the_push_endpoint_is_published_and_only_on_loopback(model):
    published = {name: svc["ports"] for name, svc in model["services"].items() if svc.get("ports")}
    assert set(published) == {"push", *OBSERVABILITY, *DASHBOARD}
    for name, target in {**OBSERVABILITY, **DASHBOARD}.items():
        assert [(p["host_ip"], p["target"]) for p in published[name]] == [("127.0.0.1", target)], name
    for port in published["push"]:
        assert port["host_ip"] == "127.0.0.1", port
        assert port["target"] == 8088


def test_kafka_and_redis_are_on_an_internal_network_only(model):
    assert model["networks"]["backend"].get("internal") is True
    for name in ("kafka", "redis"):
        assert set(model["services"][name]["networks"]) == {"backend"}, name
    for name in APP_SERVICES:
        assert "backend" in model["services"][name]["networks"], name


def test_kafka_asks_for_a_password_and_keeps_its_controller_on_loopback(model):
    env = model["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    for name, address in listeners.items():
        if protocols[name] == "PLAINTEXT":
            assert address.startswith("127.0.0.1:"), f"{name}: an unauthenticated listener beyond loopback"
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    reachable = [n for n, a in advertised.items() if not a.startswith("127.0.0.1:")]
    assert reachable == ["INTERNAL"] and protocols["INTERNAL"] == "SASL_PLAINTEXT"
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "PLAIN"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].endswith("@127.0.0.1:9093")
    assert "java.security.auth.login.config=/run/secrets/kafka_jaas.conf" in env["KAFKA_OPTS"]
    assert "9094" in " ".join(model["services"]["kafka"]["healthcheck"]["test"])
    assert any(v["target"] == "/var/lib/kafka/data" for v in model["services"]["kafka"]["volumes"])


def test_redis_runs_with_acl_users_and_aof(model):
    svc = model["services"]["redis"]
    cmd = svc["command"]
    assert cmd[cmd.index("--aclfile") + 1] == "/run/secrets/redis_users.acl"
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert "requirepass" not in " ".join(cmd)
    assert "--user health" in " ".join(svc["healthcheck"]["test"])
    assert any(v["target"] == "/data" for v in svc["volumes"])


def test_images_are_exact_release_tags(model):
    tag = re.compile(r"^[a-z0-9./-]+:\d+\.\d+\.\d+([-.][a-z0-9.]+)*(@sha256:[0-9a-f]{64})?$")
    for name in ("kafka", "redis"):
        assert tag.match(model["services"][name]["image"]), model["services"][name]["image"]
    redis_version = tuple(int(x) for x in model["services"]["redis"]["image"].split(":")[1].split(".")[:3])
    assert redis_version >= (7, 2, 11), "CVE-2025-49844 is fixed from 7.2.11"
    bases = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert bases and all(tag.match(b) for b in bases), bases


# ---- secrets -----------------------------------------------------------------------------------


def test_each_service_gets_only_the_secrets_it_uses(model):
    monitor_yaml = (ROOT / "config" / "monitor.yaml").read_text()
    for name, svc in model["services"].items():
        given = {s["source"] for s in svc.get("secrets", [])}
        assert given == EXPECTED_SECRETS[name], name
        uses = json.dumps([svc.get("environment"), svc.get("command"), svc.get("healthcheck")])
        for secret in given:
            path = f"/run/secrets/{secret}"
            prometheus_yml = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
            assert (
                path in uses
                or (name == "alerter" and path in monitor_yaml)
                or (name == "prometheus" and path in prometheus_yml)
            ), f"{name} never reads {secret}"
    used = set().union(*EXPECTED_SECRETS.values())
    assert set(model["secrets"]) - used == {"redis_operator"}, "a secret no service uses (but the operator's)"
    for secret in model["secrets"].values():
        assert "/config/" not in secret["file"], "secrets live outside config/"


def test_no_secret_is_written_into_the_model(model, project):
    text = json.dumps(model)
    values = [p.read_text().strip() for p in (project / "secrets").iterdir() if p.is_file()]
    assert values
    for value in values:
        assert value not in text
    for name, svc in model["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"(PASSWORD|TOKEN|SECRET|WEBHOOK|KEY)$", key):
                raise AssertionError(f"{name}: {key} must come from a *_FILE secret, not the environment")
            if key.endswith("_FILE") and not key.startswith("KAFKA"):
                assert value.startswith("/run/secrets/"), (name, key)
            assert not re.search(r"://[^/@\s]*:[^/@\s]+@", value or ""), f"{name}: {key} holds a password"


def test_config_is_not_mounted_whole(model):
    for name, svc in model["services"].items():
        for vol in svc.get("volumes", []):
            if vol["type"] == "bind":
                assert Path(vol["source"]).is_file() or vol["source"].endswith("stream.jsonl"), (name, vol)
                assert vol.get("read_only") is True, (name, vol)
                assert Path(vol["source"]).name != "config", (name, vol)


def test_env_file_values_are_never_silently_overridden(composecheck, project):
    # every variable the app services interpolate, set in .env to a value of its own
    names = sorted(set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text())))
    assert "MOOD_REDIS__URL" in names and "MOOD_KAFKA__BOOTSTRAP_SERVERS" in names
    ports = (
        "MOOD_SECRETS_DIR",
        "PUSH_BIND",
        "PUSH_PORT",
        "PROMETHEUS_PORT",
        "GRAFANA_PORT",
        "DASHBOARD_PORT",
    )
    env = {n: f"from-dotenv-{n.lower()}" for n in names if n not in ports}
    env["MOOD_KAFKA__PARTITIONS"] = "3"
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    model = resolve(composecheck, project, "docker-compose.yml", profiles=("*",))
    for name in APP_SERVICES:
        got = model["services"][name]["environment"]
        for key, value in got.items():
            if key in env:
                assert value == env[key], f"{name}: {key}={value!r} overrides .env's {env[key]!r}"
        assert got["MOOD_REDIS__URL"] == env["MOOD_REDIS__URL"]


def test_every_app_environment_entry_is_interpolated_from_its_own_name():
    # the static form of the rule above: `KEY: ${KEY:-default}`, never a bare literal
    for name in APP_SERVICES:
        svc = RAW["services"][name]
        env = svc.get("environment") or RAW["x-app"]["environment"]
        for key, value in env.items():
            if key == "<<":
                continue
            assert re.fullmatch(rf"\$\{{{key}(:?-[^}}]*)?\}}", str(value)), f"{name}: {key}: {value!r}"


def test_the_settings_load_from_each_services_environment(model, project, monkeypatch):
    """The MOOD_* names compose sets are real settings, and load (secrets from the files)."""
    from monitor.settings import load_settings

    secrets_dir = project / "secrets"
    for name in sorted(APP_SERVICES):
        env = model["services"][name]["environment"]
        for key in [k for k in os.environ if k.startswith("MOOD_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith("MOOD_") and key != "MOOD_CONFIG":
                monkeypatch.setenv(key, value.replace("/run/secrets/", f"{secrets_dir}/"))
        s = load_settings(project / "config" / "monitor.yaml")
        assert s.kafka.security_protocol == "SASL_PLAINTEXT" and s.kafka.sasl_mechanism == "PLAIN"
        assert s.kafka.sasl_secret().get_secret_value() == (secrets_dir / "kafka_password").read_text()
        role = s.redis.username
        assert role == {"worker": "worker", "alerter": "alerter"}.get(name, "connector")
        assert s.redis.secret().get_secret_value() == (secrets_dir / f"redis_{role}").read_text()
        if name == "worker":  # the compose network's Kafka is not on loopback: the key must be given
            key = s.privacy.author_key_bytes(s.kafka.bootstrap_servers)
            assert key == (secrets_dir / "author_key").read_bytes().strip()


# ---- services ----------------------------------------------------------------------------------


def test_app_services_wait_for_healthy_kafka_and_redis(model):
    for name in APP_SERVICES:
        deps = model["services"][name]["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name


def test_the_worker_scales_and_runs_on_a_cpu_only_host(composecheck, project):
    plain = resolve(composecheck, project, "docker-compose.yml", profiles=("*",))
    for name, svc in plain["services"].items():
        assert not (svc.get("deploy") or {}).get("resources", {}).get("reservations", {}).get("devices"), name
    w = plain["services"]["worker"]
    assert "container_name" not in w, "a fixed container name would break --scale worker=N"
    assert w["command"] == ["mood-monitor", "worker"]
    assert w["healthcheck"]["test"][-3:] == ["check", "--process", "worker"]
    gpu = resolve(composecheck, project, "docker-compose.yml", "docker-compose.gpu.yml")
    dev = gpu["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert dev["capabilities"] == ["gpu"] and dev["driver"] == "nvidia"
    assert "secrets" in gpu["services"]["worker"], "the override merges, it does not replace"


def test_health_checks_read_heartbeats_as_the_read_only_user(model):
    for name in ("worker", "alerter"):
        test = model["services"][name]["healthcheck"]["test"]
        assert "MOOD_REDIS__USERNAME=reader" in test and test[-1] == name


def test_the_slack_destination_reads_the_secret_file_and_no_url_is_written_anywhere():
    cfg = yaml.safe_load((ROOT / "config" / "monitor.yaml").read_text())
    assert cfg["alerts"]["destinations"][0]["url_file"] == "/run/secrets/slack_webhook"
    text = (ROOT / "docker-compose.yml").read_text() + (ROOT / "config" / "monitor.yaml").read_text()
    assert "hooks.slack.com/services/T" not in text


def test_live_sources_are_opt_in():
    from connectors.cli import CONNECTORS

    for name in ("bluesky", "mastodon", "reddit", "rss", "push"):
        svc = RAW["services"][name]
        assert svc["profiles"] == ["sources"]
        assert svc["command"][:4] == ["mood-monitor", "connectors", "run", name]
        assert name in CONNECTORS


def test_the_replay_connector_is_opt_in(model):
    # its stream file is the user's own: a default `docker compose up` must not need it
    assert RAW["services"]["connector"]["profiles"] == ["replay"]
    for name in DEFAULT_SERVICES:
        assert "stream.jsonl" not in json.dumps(model["services"][name])


def test_a_default_up_needs_only_shipped_files_and_the_named_ones(composecheck, tmp_path):
    """After compose_secrets.py, the one file a default `up` lacks is the Slack URL, which the
    README tells the user to write."""
    for name in ("docker-compose.yml", "config/monitor.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    compose_secrets.make(tmp_path / "secrets", "mm")
    default = resolve(composecheck, tmp_path, "docker-compose.yml")
    needed = {s["source"] for svc in default["services"].values() for s in svc.get("secrets", [])}
    missing = {n for n in needed if not Path(default["secrets"][n]["file"]).exists()}
    assert missing == {"slack_webhook"}
    readme = (ROOT / "README.md").read_text()
    assert "scripts/compose_secrets.py" in readme and "secrets/slack_webhook" in readme
    for svc in default["services"].values():
        for vol in svc.get("volumes", []):
            if vol["type"] == "bind":
                assert Path(vol["source"]).exists(), vol


# ---- the image ---------------------------------------------------------------------------------


def _context(tool: Path, root: Path) -> set[str]:
    res = subprocess.run([str(tool), "-context", str(root)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return set(res.stdout.split())


def test_dockerignore_keeps_secrets_env_venv_and_state_out_of_the_build_context(composecheck, tmp_path):
    shutil.copy(ROOT / ".dockerignore", tmp_path / ".dockerignore")
    wanted = [
        "pyproject.toml",
        "requirements.lock",
        "README.md",
        "LICENSE",
        "monitor/__init__.py",
        "monitor/store/lua/x.lua",
        "connectors/push.py",
    ]
    unwanted = [
        "secrets/redis_worker",
        "config/secrets/slack_webhook",
        "config/monitor.yaml",
        ".env",
        "config/.env",
        ".venv/bin/python",
        ".stack/redis-data/appendonly.aof",
        ".demo/run/monitor.yaml",
        ".git/config",
        "monitor/__pycache__/x.cpython-311.pyc",
        "monitor/.env",
        "monitor/secrets/token",
        "connectors/client.key",
        "tests/unit/test_x.py",
        ".mypy_cache/x",
        ".pytest_cache/x",
        ".hypothesis/x",
        "bench/x.py",
        "requirements-dev.lock",
        "docs/x.md",
    ]
    for rel in wanted + unwanted:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    assert _context(composecheck, tmp_path) == set(wanted)


def test_the_dockerfile_copies_only_what_the_build_context_holds(composecheck):
    context = _context(composecheck, ROOT)
    assert not [
        p for p in context if p.startswith((".venv/", ".stack/", "secrets/", "config/", "tests/", ".git/"))
    ]
    assert not [p for p in context if "__pycache__" in p or Path(p).name == ".env"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile, re.M):
        *sources, _dest = line.split()
        for src in sources:
            assert src in context or any(p.startswith(src.rstrip("/") + "/") for p in context), src


def test_the_image_installs_the_lock_file_and_runs_as_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install --require-hashes -r \S*requirements\.lock", dockerfile)
    assert re.search(r"pip install --no-deps", dockerfile), "the project itself must resolve nothing"
    assert "COPY config" not in dockerfile and not re.search(r"^COPY \. ", dockerfile, re.M)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")


# ---- scripts/compose_secrets.py ------------------------------------------------------------------


def test_compose_secrets_makes_passwords_once_and_derives_the_acl_and_jaas(tmp_path):
    d = tmp_path / "secrets"
    report = compose_secrets.make(d, "mm")
    assert "missing slack_webhook" in " ".join(report)
    before = {p.name: p.read_text() for p in d.iterdir()}
    assert compose_secrets.make(d, "mm") and {p.name: p.read_text() for p in d.iterdir()} == before
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    acl = (d / "redis_users.acl").read_text()
    assert acl.startswith("user default off\n")
    roles = compose_secrets._acl_module().ROLES
    assert {"worker", "alerter", "connector", "reader"} <= set(roles)
    for role in roles:
        pw = (d / f"redis_{role}").read_text()
        assert len(pw) >= 32 and pw not in acl
        assert f"user {role} on #{hashlib.sha256(pw.encode()).hexdigest()} " in acl
    assert "user health on nopass resetkeys resetchannels -@all +ping" in acl
    jaas = (d / "kafka_jaas.conf").read_text()
    assert f'user_mood="{(d / "kafka_password").read_text()}"' in jaas and "PlainLoginModule" in jaas


def test_compose_secrets_refuses_a_password_it_cannot_embed_and_never_prints_one(tmp_path, capsys):
    d = tmp_path / "secrets"
    d.mkdir()
    (d / "kafka_password").write_text('a"; user_evil="x')
    with pytest.raises(SystemExit) as exc:
        compose_secrets.main(["--dir", str(d)])
    assert "kafka_password" in str(exc.value) and "user_evil" not in str(exc.value)
    (d / "kafka_password").unlink()
    assert compose_secrets.main(["--dir", str(d)]) == 0
    out = capsys.readouterr().out
    for p in d.iterdir():
        if p.name.startswith(("redis_", "kafka_password")) and p.suffix != ".acl":
            assert p.read_text() not in out


def test_compose_secrets_runs_without_the_venv(tmp_path):
    res = subprocess.run(
        [
            str(Path(sys.base_prefix) / "bin" / "python3"),
            "-I",
            str(ROOT / "scripts" / "compose_secrets.py"),
            "--dir",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "s" / "redis_users.acl").exists()
