"""The demo starts its stream only once the worker has joined its group (a cold first start of a
worker, loading torch and the model, took 25 s; the demo's posts would have aged past its
lateness before anyone scored them)."""

from __future__ import annotations

from monitor.demo import _wait_assigned


class Proc:
    def __init__(self, code=None):
        self.code = code

    def poll(self):
        return self.code


def test_the_stream_waits_for_a_non_empty_assignment(tmp_path):
    log = tmp_path / "worker.log"
    log.write_text("INFO partitions revoked: -\nINFO partitions assigned: -\n")
    assert not _wait_assigned(log, Proc(), timeout_s=0.3)  # joined, but given nothing yet
    log.write_text(log.read_text() + "INFO partitions assigned: demo.posts.raw:0,demo.posts.raw:1\n")
    assert _wait_assigned(log, Proc(), timeout_s=5)


def test_a_worker_that_exits_while_loading_ends_the_wait_at_once(tmp_path):
    log = tmp_path / "worker.log"
    log.write_text("ERROR model could not be loaded\n")
    assert not _wait_assigned(log, Proc(code=2), timeout_s=60)
