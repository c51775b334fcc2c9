"""The demo starts its stream only once the worker has joined its group (a cold first start of a
worker, loading torch and the model, took 25 s; the demo's posts would have aged past its
lateness before anyone scored them). It reads the worker's heartbeat, not its log."""

from __future__ import annotations

from devstack.demo import _wait_assigned
from monitor.app import process_name

PID = 4242


class Proc:
    pid = PID

    def __init__(self, code=None):
        self.code = code

    def poll(self):
        return self.code


class Store:
    def __init__(self, *beats):
        self.beats = list(beats)

    def health(self):
        beat = self.beats.pop(0) if len(self.beats) > 1 else self.beats[0]
        return {process_name("worker", PID): beat} if beat is not None else {}


def test_the_stream_waits_for_a_non_empty_assignment():
    assert not _wait_assigned(Store(None, {"partitions": []}), Proc(), timeout_s=0.5)  # joined, given nothing
    assert _wait_assigned(
        Store({"partitions": []}, {"partitions": ["demo.posts.raw:0"]}), Proc(), timeout_s=5
    )


def test_a_worker_that_exits_while_loading_ends_the_wait_at_once():
    assert _wait_assigned(Store(None), Proc(code=2), timeout_s=60) is None
