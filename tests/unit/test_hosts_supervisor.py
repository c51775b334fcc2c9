"""The worker's main process over its host processes (`monitor.hosts._Supervisor`), with real
child processes that stand in for host workers: a stop signal reaches every host as SIGTERM, a
host that fails stops the others and the worker exits 1, a clean bounded stop exits 0, and a
host that ignores SIGTERM is killed after the grace period."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Any

import pytest

from monitor import hosts

CTX = multiprocessing.get_context("spawn")


def _host(kind: str, marker: str) -> None:
    """A stand-in host: ``wait`` runs until SIGTERM (then writes what it got), ``fail`` exits 3
    soon, ``done`` exits 0 soon, ``stubborn`` ignores SIGTERM."""
    got: list[int] = []

    def on(signum: int, _frame: Any) -> None:
        got.append(signum)

    signal.signal(signal.SIGTERM, on if kind != "stubborn" else signal.SIG_IGN)
    signal.signal(signal.SIGHUP, on)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        if kind == "fail" and time.monotonic() - t0 > 0.5:
            sys.exit(3)
        if kind == "done" and time.monotonic() - t0 > 0.5:
            sys.exit(0)
        if signal.SIGTERM in got:
            with open(marker, "w") as fh:
                fh.write(",".join(str(s) for s in got))
            sys.exit(0)
        time.sleep(0.05)
    sys.exit(9)


def _start(tmp_path: Any, *kinds: str) -> tuple[list[Any], list[str]]:
    markers = [str(tmp_path / f"host-{i}") for i in range(len(kinds))]
    procs = [CTX.Process(target=_host, args=(k, m)) for k, m in zip(kinds, markers, strict=True)]
    for p in procs:
        p.start()
    time.sleep(1.5)  # the children installed their handlers
    return procs, markers


@pytest.fixture(autouse=True)
def _keep_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def _signal_me_later(signum: int, after_s: float) -> None:
    threading.Timer(after_s, os.kill, args=(os.getpid(), signum)).start()


def test_sigint_reaches_every_host_as_sigterm_after_a_sighup_and_the_worker_exits_0(tmp_path):
    procs, markers = _start(tmp_path, "wait", "wait")
    _signal_me_later(signal.SIGHUP, 0.3)
    _signal_me_later(signal.SIGINT, 1.0)
    assert hosts._Supervisor(procs).run() == 0
    assert [p.exitcode for p in procs] == [0, 0]
    for m in markers:  # the reload request, then the stop as SIGTERM (never a second SIGINT)
        assert _read(m) == f"{int(signal.SIGHUP)},{int(signal.SIGTERM)}"


def test_a_failed_host_stops_the_others_and_the_worker_exits_1(tmp_path):
    procs, markers = _start(tmp_path, "wait", "fail", "wait")
    assert hosts._Supervisor(procs).run() == 1
    assert [p.exitcode for p in procs] == [0, 3, 0]
    assert _read(markers[0]) == _read(markers[2]) == str(int(signal.SIGTERM))


def test_hosts_that_stop_by_themselves_cleanly_exit_0(tmp_path):
    procs, _ = _start(tmp_path, "done", "done")
    assert hosts._Supervisor(procs).run() == 0


def test_a_host_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(hosts, "_STOP_GRACE_S", 1.0)
    procs, _ = _start(tmp_path, "wait", "stubborn")
    _signal_me_later(signal.SIGTERM, 0.2)
    assert hosts._Supervisor(procs).run() == 1  # killed: a failure
    assert procs[0].exitcode == 0 and procs[1].exitcode == -signal.SIGKILL
    assert caplog.text.count("did not stop in 1s: killed") == 1
