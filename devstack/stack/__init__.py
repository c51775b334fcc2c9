"""The local real stack for development, tests, CI and the demo: an Apache Kafka 4.x single-node
KRaft broker run with Java 17 from Maven Central jars, and redis-server from Debian packages,
both on 127.0.0.1. No Docker engine needed.

    python -m devstack.stack up|status|down|install|logs     (also: mood-monitor stack ...)
    ... [--secure]   the secured stack instead (TLS, SCRAM, Redis ACL users: devstack.stack.secure)

``install`` also installs Debian's chromium, which the dashboard's browser test drives.

Downloads are cached outside the clone, keyed by version:
``${XDG_CACHE_HOME:-~/.cache}/mood-monitor/kafka-<version>/lib`` (Maven's own ~/.m2 too).
Runtime state (data, logs, pid files) lives in ``$MOOD_STACK_DIR`` (default ``<repo>/.stack``).
Ports: ``MOOD_KAFKA_PORT`` (19092), ``MOOD_KAFKA_CONTROLLER_PORT`` (19093), ``MOOD_REDIS_PORT`` (16379).
`LocalStack` also runs private stacks on other ports and directories for fault tests.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.errors import StackError

if TYPE_CHECKING:
    from monitor.transport import KafkaSettings

KAFKA_VERSION = "4.1.1"
HERE = resources.files("devstack.stack")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mood-monitor"


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload,no-any-return]


def java_major() -> int:
    java = shutil.which("java")
    if not java:
        raise StackError(
            "java not found: install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
        )
    out = _run([java, "-version"]).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        raise StackError(f"cannot read the Java version from: {out.strip()[:200]}")
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def ensure_jars(version: str = KAFKA_VERSION, quiet: bool = False) -> Path:
    """The broker's jars, fetched once with Maven and reused (cache keyed by version)."""
    lib = cache_dir() / f"kafka-{version}" / "lib"
    if lib.is_dir() and any(lib.glob(f"kafka_2.13-{version}.jar")):
        return lib
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError(
            "mvn not found: install Maven (Debian: apt-get install maven) to fetch the Kafka jars"
        )
    if not quiet:
        print(f"stack: fetching Apache Kafka {version} jars from Maven Central into {lib} (once)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(
            HERE.joinpath("pom.xml")
            .read_text()
            .replace("<kafka.version>4.1.1</kafka.version>", f"<kafka.version>{version}</kafka.version>")
        )
        staging = lib.with_name("lib.partial")
        shutil.rmtree(staging, ignore_errors=True)
        res = _run(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ]
        )
        if res.returncode != 0:
            raise StackError(f"maven could not fetch the Kafka jars:\n{(res.stdout + res.stderr)[-2000:]}")
        if lib.exists():
            shutil.rmtree(lib)
        staging.rename(lib)
    return lib


def ensure_redis(quiet: bool = False) -> str:
    """Path of redis-server, installed from Debian packages when missing."""
    found = shutil.which("redis-server")
    if found:
        return found
    apt = shutil.which("apt-get")
    if not apt:
        raise StackError("redis-server not found and apt-get is not available: install redis-server")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if not quiet:
        print("stack: installing redis-server from Debian packages", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([*sudo, apt, "update", "-q"], [*sudo, apt, "install", "-y", "-q", "redis-server"]):
        res = _run(cmd, env=env)
        if res.returncode != 0:
            raise StackError(f"{' '.join(cmd)} failed:\n{(res.stdout + res.stderr)[-1500:]}")
    found = shutil.which("redis-server")
    if not found:
        raise StackError("redis-server still not found after apt-get install")
    return found


def ensure_debian_tool(binary: str, package: str, why: str, quiet: bool = False) -> str:
    """Path of ``binary``, installed from the Debian package ``package`` when missing."""
    found = shutil.which(binary)
    if found:
        return found
    apt = shutil.which("apt-get")
    if not apt:
        raise StackError(f"{binary} not found and apt-get is not available: install {package}")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if not quiet:
        print(f"stack: installing {package} from Debian packages ({why})", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, apt, "install", "-y", "-q", "--no-install-recommends", package]
    for cmd in ([*sudo, apt, "update", "-q"], install):
        res = _run(cmd, env=env)
        if res.returncode != 0:
            raise StackError(f"{' '.join(cmd)} failed:\n{(res.stdout + res.stderr)[-1500:]}")
    found = shutil.which(binary)
    if not found:
        raise StackError(f"{binary} still not found after apt-get install {package}")
    return found


def ensure_chromium(quiet: bool = False) -> str:
    """Debian's chromium: the dashboard's browser test drives it through Playwright, which
    downloads no browser of its own."""
    return ensure_debian_tool("chromium", "chromium", "the dashboard's browser test", quiet)


def ensure_promtool(quiet: bool = False) -> str:
    """Prometheus' promtool (Debian package prometheus): the tests check the shipped Prometheus
    config, its rules and every Grafana panel's query with it."""
    return ensure_debian_tool("promtool", "prometheus", "promtool checks deploy/prometheus", quiet)


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    """Start a server detached from this process (its own session, no terminal I/O: it logs to
    its own file)."""
    return subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is not alive
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


@dataclass
class LocalStack:
    dir: Path = field(
        default_factory=lambda: Path(os.environ.get("MOOD_STACK_DIR") or repo_root() / ".stack")
    )
    kafka_port: int = field(default_factory=lambda: int(os.environ.get("MOOD_KAFKA_PORT", "19092")))
    controller_port: int = field(
        default_factory=lambda: int(os.environ.get("MOOD_KAFKA_CONTROLLER_PORT", "19093"))
    )
    redis_port: int = field(default_factory=lambda: int(os.environ.get("MOOD_REDIS_PORT", "16379")))
    kafka_heap: str = "768m"
    appendonly: bool = True

    def __post_init__(self) -> None:
        self.dir = Path(self.dir).resolve()

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def kafka_client(self) -> str | KafkaSettings:
        """What a client of this stack's broker is built from (`monitor.kafka.client_kwargs`)."""
        return self.kafka_bootstrap

    def _kafka_properties(self, data: Path) -> str:
        return (
            HERE.joinpath("server.properties")
            .read_text()
            .format(kafka_port=self.kafka_port, controller_port=self.controller_port, data_dir=data)
        )

    def _format_args(self) -> list[str]:
        """Extra arguments of ``kafka-storage format`` (the secured stack's SCRAM users)."""
        return []

    def _redis_listen_args(self) -> list[str]:
        return ["--port", str(self.redis_port)]

    def _pidfile(self, name: str) -> Path:
        return self.dir / f"{name}.pid"

    def _pid(self, name: str) -> int | None:
        try:
            pid = int(self._pidfile(name).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    # ---- kafka -------------------------------------------------------------------------
    def kafka_ready(self) -> bool:
        if not _port_open(self.kafka_port):
            return False
        from monitor.kafka import broker_answers

        return broker_answers(self.kafka_client)

    def start_kafka(self, timeout_s: float = 120.0) -> None:
        if self.kafka_ready():
            return
        major = java_major()
        if major < 17:
            raise StackError(f"Kafka {KAFKA_VERSION} needs Java 17 or newer; found Java {major}")
        lib = ensure_jars()
        self.dir.mkdir(parents=True, exist_ok=True)
        data = self.dir / "kafka-data"
        props = self.dir / "server.properties"
        props.write_text(self._kafka_properties(data))
        props.chmod(0o600)  # the secured stack's holds the broker's own SCRAM password
        log4j = self.dir / "log4j2.properties"
        log4j.write_text(HERE.joinpath("log4j2.properties").read_text())
        cp = f"{lib}/*"
        jlog = f"-Dlog4j2.configurationFile={log4j}"
        if not (data / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            res = _run(
                [
                    "java",
                    "-Xmx256m",
                    "-cp",
                    cp,
                    jlog,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                    *self._format_args(),
                ]
            )
            if res.returncode != 0:
                raise StackError(f"kafka storage format failed:\n{(res.stdout + res.stderr)[-1500:]}")
        logfile = (self.dir / "kafka.log").open("ab")
        proc = subprocess.Popen(
            [
                "java",
                "-Xms256m",
                f"-Xmx{self.kafka_heap}",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true",
                jlog,
                f"-Dkafka.logs.dir={self.dir}",
                "-cp",
                cp,
                "kafka.Kafka",
                str(props),
            ],
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._pidfile("kafka").write_text(str(proc.pid))
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if proc.poll() is not None:
                raise StackError(
                    f"kafka exited with {proc.returncode} at start; see {self.dir / 'kafka.log'}"
                )
            if self.kafka_ready():
                return
            time.sleep(0.5)
        raise StackError(
            f"kafka did not answer on {self.kafka_bootstrap} within {timeout_s:.0f}s; "
            f"see {self.dir / 'kafka.log'}"
        )

    def stop_kafka(self, timeout_s: float = 60.0) -> None:
        self._stop("kafka", signal.SIGTERM, timeout_s)

    # ---- redis -------------------------------------------------------------------------
    def redis_ready(self) -> bool:
        return redis_ping(self.redis_port)

    def start_redis(self, appendonly: bool | None = None, timeout_s: float = 30.0) -> None:
        if self.redis_ready():
            return
        server = ensure_redis()
        aof = self.appendonly if appendonly is None else appendonly
        rdir = self.dir / "redis-data"
        rdir.mkdir(parents=True, exist_ok=True)
        args = [
            server,
            *self._redis_listen_args(),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(rdir),
            "--daemonize",
            "no",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--appendonly",
            "yes" if aof else "no",
            "--appendfsync",
            "everysec",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        if not aof:  # a server without persistence must also forget what an earlier run left
            for f in rdir.glob("*"):
                if f.is_file():
                    f.unlink()
                else:
                    shutil.rmtree(f)
        proc = _spawn(args)
        self._pidfile("redis").write_text(str(proc.pid))
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if proc.poll() is not None:
                raise StackError(f"redis-server exited with {proc.returncode}; see {self.dir / 'redis.log'}")
            if self.redis_ready():
                return
            time.sleep(0.2)
        raise StackError(f"redis did not answer on port {self.redis_port}; see {self.dir / 'redis.log'}")

    def stop_redis(self, timeout_s: float = 30.0) -> None:
        self._stop("redis", signal.SIGTERM, timeout_s)

    def kill_redis(self) -> None:
        """SIGKILL: no chance to flush; under appendfsync everysec the last second can be lost."""
        self._stop("redis", signal.SIGKILL, 10.0)

    # ---- both ---------------------------------------------------------------------------
    def up(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.start_redis()
        self.start_kafka()

    def down(self) -> None:
        self.stop_kafka()
        self.stop_redis()

    def _stop(self, name: str, sig: int, timeout_s: float) -> None:
        pid = self._pid(name)
        if pid is None:
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + timeout_s
        while time.time() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self._pidfile(name).unlink(missing_ok=True)

    def describe(self) -> str:
        return f"kafka {self.kafka_bootstrap}, redis {self.redis_url}"

    def status(self) -> dict[str, bool]:
        return {"kafka": self.kafka_ready(), "redis": self.redis_ready()}


def cli(argv: list[str]) -> int:
    secure = "--secure" in argv  # the secured stack (devstack.stack.secure), on its own ports
    argv = [a for a in argv if a != "--secure"]
    cmd = argv[0] if argv else "status"
    st: LocalStack
    if secure:
        from devstack.stack.secure import SecureStack

        st = SecureStack()
    else:
        st = LocalStack()
    try:
        if cmd == "install":
            ensure_jars()
            ensure_redis()
            ensure_chromium()
            ensure_promtool()
            print(
                f"stack: Kafka {KAFKA_VERSION} jars in {cache_dir() / f'kafka-{KAFKA_VERSION}' / 'lib'}; "
                f"redis-server at {shutil.which('redis-server')}; chromium at {shutil.which('chromium')}; "
                f"promtool at {shutil.which('promtool')}"
            )
            return 0
        if cmd == "up":
            st.up()
            print(f"stack: up: {st.describe()} (state in {st.dir})")
            return 0
        if cmd == "down":
            st.down()
            print("stack: down")
            return 0
        if cmd == "status":
            s = st.status()
            print(f"kafka {st.kafka_bootstrap}: {'up' if s['kafka'] else 'DOWN'}")
            print(f"redis {st.redis_url}: {'up' if s['redis'] else 'DOWN'}")
            return 0 if all(s.values()) else 1
        if cmd == "logs":
            for name in ("kafka.log", "redis.log"):
                p = st.dir / name
                print(f"== {p}")
                if p.exists():
                    print("\n".join(p.read_text(errors="replace").splitlines()[-40:]))
            return 0
    except StackError as exc:
        print(f"stack: error: {exc}", file=sys.stderr)
        return 4
    print(f"stack: unknown command {cmd!r} (use up, status, down, install or logs)", file=sys.stderr)
    return 2
