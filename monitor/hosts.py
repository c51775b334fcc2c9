"""A worker whose host path runs in several processes (``worker.host_processes``, issue 17).

`run_worker_hosts` is the worker's main process: it loads the model once and starts N host
processes (spawned: none inherits torch's threads). Each host process is a whole worker (a member
of the consumer group with its own share of the partitions, its own Kafka and Redis clients and
heartbeat) except for the model: it tokenizes its batch and hands it to the main process, which
scores the batches of all of them (`monitor.model.remote`). One model in memory and on the
device, and a host path no longer bounded by one process's GIL.

Life cycle: SIGTERM / SIGINT to the main process are passed to every host process, each
finishes the batch in hand, commits and leaves the group, then the main process exits with the
worst exit code. SIGHUP (reload the topics) is passed on too. A host process that exits on its
own with a failure stops the others and the worker exits 1: the deployment restarts it whole,
and nothing is lost (Redis's watermarks and the group's offsets make the restart exact). A host
process whose main process disappeared (kill -9) stops by itself within a second.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import Any

from monitor.errors import MoodMonitorError, exit_code
from monitor.model.remote import HostModel, ModelServer, RemoteScorer, host_model
from monitor.settings import Settings, load_settings

log = logging.getLogger(__name__)

_STOP_GRACE_S = 120.0  # a host process's last batch, commit and group leave, then it is killed


def run_worker_hosts(
    s: Settings,
    *,
    config_path: str | None,
    max_batches: int | None = None,
    idle_timeout_s: float | None = None,
    metrics_port: int | None = None,
) -> int:
    """The main process of a worker with ``s.worker.host_processes`` host processes."""
    from monitor import app
    from monitor.model.memory import trim
    from monitor.model.runtime import find_tokenizer, model_batches
    from monitor.model.tokens import tokens_key

    app.ensure_topics(s)
    scorer, to_labels, floor = app.build_scorer(s)
    found = find_tokenizer(scorer)
    model = host_model(scorer, to_labels, floor, found)
    server = ModelServer(
        scorer,
        concurrency=model_batches(scorer),
        key=tokens_key(*found) if found is not None and model.tokenizer is not None else None,
        after_batch=trim,  # activations differ in shape every batch: give their pages back
    )
    n = s.worker.host_processes
    port = s.metrics.port if metrics_port is None else metrics_port
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    ctx = multiprocessing.get_context("spawn")
    procs: list[Any] = []
    for i in range(n):
        mine, theirs = ctx.Pipe(duplex=True)
        p = ctx.Process(
            target=host_main,
            args=(theirs, config_path, model, i, max_batches, idle_timeout_s, port + i if port else 0, level),
            name=f"worker-host-{i}",
        )
        p.start()
        theirs.close()
        threading.Thread(target=server.serve, args=(mine,), name=f"model-for-host-{i}", daemon=True).start()
        procs.append(p)
    log.info("worker: model %s loaded once, %d host processes: %s", model.name, n, [p.pid for p in procs])
    return _Supervisor(procs).run()


class _Supervisor:
    """Waits on the host processes; passes signals on; stops them all when one fails."""

    def __init__(self, procs: list[Any]) -> None:
        self.procs = procs
        self.stopping = False
        self.failed: set[int] = set()

    def forward(self, signum: int, _frame: FrameType | None = None) -> None:
        if signum != signal.SIGHUP:
            self.stopping = True
            signum = signal.SIGTERM  # a host process takes a second SIGINT as "stop now"
        for p in self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signum)

    def alive(self) -> list[Any]:
        return [p for p in self.procs if p.exitcode is None]

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.forward)
        deadline = float("inf")
        killed: set[int] = set()
        while self.alive():
            wait([p.sentinel for p in self.alive()], timeout=1.0)
            self._note_failures()
            if self.stopping and deadline == float("inf"):
                deadline = time.monotonic() + _STOP_GRACE_S
            if time.monotonic() > deadline:
                for p in self.alive():
                    if p.pid not in killed:
                        killed.add(p.pid)
                        log.error("host process %s did not stop in %.0fs: killed", p.name, _STOP_GRACE_S)
                        p.kill()
        for p in self.procs:
            p.join()
        self._note_failures()  # the last one to end, or one killed above
        return 1 if self.failed else 0

    def _note_failures(self) -> None:
        for p in self.procs:
            if p.exitcode not in (None, 0) and p.pid not in self.failed:
                self.failed.add(p.pid)
                log.error("host process %s (pid %d) exited with %s", p.name, p.pid, p.exitcode)
                if not self.stopping:
                    log.error("stopping the other host processes: the worker exits for a restart")
                    self.forward(signal.SIGTERM)


def host_main(
    conn: Connection,
    config_path: str | None,
    model: HostModel,
    index: int,
    max_batches: int | None,
    idle_timeout_s: float | None,
    metrics_port: int,
    log_level: str,
) -> None:
    """A host process: the worker's whole host path, scoring through the main process."""
    from monitor import app, metrics
    from monitor.model.base import estimate_tokens
    from monitor.model.tokens import pretokenize_with

    os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the main process, which passes SIGTERM on
    app.setup_logging(log_level)
    parent = os.getppid()
    threading.Thread(target=_stop_when_orphaned, args=(parent,), name="parent-watch", daemon=True).start()
    try:
        s = load_settings(config_path)
        tok = model.tokenizer
        encode = pretokenize_with(tok, model.max_length) if tok is not None else estimate_tokens
        side = app.HostSide(RemoteScorer(conn, model), model.to_labels, model.uncertain_below, encode, 1)
        worker = app.build_worker(s, config_path=config_path, model=side)
        metrics.serve_metrics(metrics_port, s.metrics.host)
        log.info("host process %d of the worker (pid %d, main process %d)", index, os.getpid(), parent)
        code = worker.run(max_batches=max_batches, idle_timeout_s=idle_timeout_s, install_signals=True)
    except MoodMonitorError as exc:
        code, label = exit_code(exc)
        log.error("host process %d: %s%s", index, label, exc)
    sys.exit(code)


def _stop_when_orphaned(parent: int) -> None:
    """The main process is gone (killed): finish the batch in hand and leave the group."""
    while os.getppid() == parent:
        time.sleep(1.0)
    log.error("the worker's main process %d is gone: stopping", parent)
    os.kill(os.getpid(), signal.SIGTERM)
