"""A local Redis Cluster for tests: three masters and one replica each, ``redis-server
--cluster-enabled yes`` on private ports in a directory of its own, joined by ``redis-cli --cluster
create ... --cluster-replicas 1``. It never touches the shared stack (port 16379).

    st = RedisClusterStack(dir=tmp, ports=[...six free ports...])
    st.up()                    # waits until every slot is served and every replica is in sync
    st.url                     # redis://127.0.0.1:<first port> (with redis.cluster: true)
    st.masters()               # port -> the ports of its replicas
    st.failover(replica_port)  # CLUSTER FAILOVER on a replica: promoted once in sync, no write lost
    st.kill(port); st.start_node(port)   # SIGKILL a node, bring it back (it rejoins as a replica)
    st.pause(port) / st.pause(port, False)  # SIGSTOP / SIGCONT
    st.down()

No persistence (a restarted node resyncs from its master); ``cluster-node-timeout`` is short so
that a killed master's replica is promoted within seconds.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from devstack.stack import _alive, _run, _spawn, ensure_redis, redis_ping
from monitor.errors import StackError

NODE_TIMEOUT_MS = 1500
BUS_OFFSET = 10_000  # a node's cluster bus listens on its port + 10000


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_ports(n: int) -> list[int]:
    """``n`` ports below 55536 whose cluster bus ports (+10000) are free too."""
    out: list[int] = []
    rng = random.Random()
    while len(out) < n:
        p = rng.randrange(20_000, 45_000)
        if p not in out and p + BUS_OFFSET not in out and _free(p) and _free(p + BUS_OFFSET):
            out.append(p)
    return out


def _cli(port: int, *args: str, timeout_s: float = 10.0) -> str:
    out = _run(["redis-cli", "-p", str(port), *args], timeout=timeout_s)
    if out.returncode != 0:
        raise StackError(f"redis-cli -p {port} {' '.join(args)}: {(out.stderr or out.stdout).strip()[:300]}")
    return str(out.stdout)


def _info(port: int, section: str) -> dict[str, str]:
    lines = _cli(port, "info", section).splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line and not line.startswith("#"))


@dataclass
class RedisClusterStack:
    dir: Path
    ports: list[int]  # masters x (1 + replicas); redis-cli picks which become the masters
    replicas: int = 1
    pids: dict[int, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def _node_dir(self, port: int) -> Path:
        return self.dir / f"node-{port}"

    # ---- nodes ----------------------------------------------------------------------------
    def start_node(self, port: int, timeout_s: float = 30.0) -> None:
        """Start (or restart) one node; a node that was in the cluster rejoins it (nodes.conf)."""
        server = ensure_redis()
        d = self._node_dir(port)
        d.mkdir(parents=True, exist_ok=True)
        for stale in ("dump.rdb", "appendonlydir"):
            p = d / stale
            if p.is_file():
                p.unlink()
        args = [
            server,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(d),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--logfile", str(d / "redis.log"),
        ]  # fmt: skip
        proc = _spawn(args)
        self.pids[port] = proc.pid
        deadline = time.monotonic() + timeout_s
        while not redis_ping(port):
            if proc.poll() is not None:
                raise StackError(f"redis-server :{port} exited with {proc.returncode}; see {d / 'redis.log'}")
            if time.monotonic() > deadline:
                raise StackError(f"redis-server :{port} did not answer; see {d / 'redis.log'}")
            time.sleep(0.1)

    def kill(self, port: int) -> None:
        """SIGKILL one node (no chance to hand anything over)."""
        pid = self.pids.pop(port, None)
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        while _alive(pid):
            time.sleep(0.05)

    # ---- the cluster ----------------------------------------------------------------------
    def up(self, timeout_s: float = 60.0) -> None:
        if len(self.ports) % (self.replicas + 1) or len(self.ports) // (self.replicas + 1) < 3:
            raise StackError("ports: at least 3 masters x (1 + replicas) ports are needed")
        if not shutil.which("redis-cli"):
            raise StackError("redis-cli not found: install redis-tools (Debian), which redis-server pulls in")
        self.dir.mkdir(parents=True, exist_ok=True)
        for p in self.ports:
            self.start_node(p)
        _cli(
            self.ports[0],
            "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
            "--cluster-replicas", str(self.replicas), "--cluster-yes",
            timeout_s=timeout_s,
        )  # fmt: skip
        self.wait_healthy(timeout_s)

    def wait_healthy(self, timeout_s: float = 60.0) -> None:
        """Until every live node sees every slot served and each master has its replicas in sync."""
        deadline = time.monotonic() + timeout_s
        why = ""
        while time.monotonic() < deadline:
            try:
                why = self._unhealthy()
            except StackError as exc:
                why = str(exc)
            if not why:
                return
            time.sleep(0.2)
        raise StackError(f"redis cluster not healthy after {timeout_s:.0f} s: {why}")

    def _unhealthy(self) -> str:
        for p in self.pids:
            ci = dict(line.split(":", 1) for line in _cli(p, "cluster", "info").splitlines() if ":" in line)
            if ci.get("cluster_state", "").strip() != "ok":
                return f":{p} cluster_state {ci.get('cluster_state', '?').strip()}"
        masters = self.masters()
        if len(masters) * (self.replicas + 1) != len(self.pids):
            return f"masters {sorted(masters)} for {len(self.pids)} live nodes"
        for m, reps in masters.items():
            if len(reps) < self.replicas:
                return f"master :{m} has replicas {reps}"
            for r in reps:
                if _info(r, "replication").get("master_link_status", "").strip() != "up":
                    return f"replica :{r} not in sync with :{m}"
        return ""

    def masters(self) -> dict[int, list[int]]:
        """Master port -> its replicas' ports, as the live nodes see it (CLUSTER NODES)."""
        live = next(iter(self.pids))
        ids: dict[str, int] = {}
        rows = []
        for line in _cli(live, "cluster", "nodes").splitlines():
            f = line.split()
            if len(f) < 8 or "fail" in f[2].split(","):
                continue
            port = int(f[1].split("@", 1)[0].rsplit(":", 1)[1])
            ids[f[0]] = port
            rows.append((port, f[2], f[3]))
        out: dict[int, list[int]] = {p: [] for p, flags, _ in rows if "master" in flags.split(",")}
        for port, flags, master_id in rows:
            if "slave" in flags.split(",") and ids.get(master_id) in out:
                out[ids[master_id]].append(port)
        return out

    def master_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot."""
        slot = int(_cli(next(iter(self.pids)), "cluster", "keyslot", key).strip())
        for line in _cli(next(iter(self.pids)), "cluster", "nodes").splitlines():
            f = line.split()
            if len(f) < 9 or "master" not in f[2].split(",") or "fail" in f[2]:
                continue
            for r in f[8:]:
                lo, _, hi = r.partition("-")
                if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                    return int(f[1].split("@", 1)[0].rsplit(":", 1)[1])
        raise StackError(f"no master serves slot {slot}")

    def failover(self, replica_port: int, timeout_s: float = 30.0) -> None:
        """CLUSTER FAILOVER on a replica: its master stops taking writes, the replica catches up
        with its replication stream and takes over (no acknowledged write is lost)."""
        _cli(replica_port, "cluster", "failover")
        self.wait_promoted(replica_port, timeout_s)

    def wait_promoted(self, replica_port: int, timeout_s: float = 30.0) -> None:
        """Until the node at ``replica_port`` is a master (a failover, or its master was killed
        and the cluster elected it after ``cluster-node-timeout``)."""
        deadline = time.monotonic() + timeout_s
        while not all(self._sees_master(p, replica_port) for p in self.pids):
            if time.monotonic() > deadline:
                raise StackError(f"replica :{replica_port} was not promoted (in every live node's view)")
            time.sleep(0.1)

    def _sees_master(self, at: int, port: int) -> bool:
        for line in _cli(at, "cluster", "nodes").splitlines():
            f = line.split()
            if len(f) >= 3 and f[1].split("@", 1)[0].endswith(f":{port}"):
                return "master" in f[2].split(",")
        return False

    def pause(self, port: int, paused: bool = True) -> None:
        """SIGSTOP / SIGCONT one node: it stops answering (and replicating) without dying."""
        os.killpg(self.pids[port], signal.SIGSTOP if paused else signal.SIGCONT)

    def down(self) -> None:
        for p in list(self.pids):
            self.kill(p)
