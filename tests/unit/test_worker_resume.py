"""A worker resumes each newly assigned partition after the last batch Redis holds: a Redis that
lost its last second of writes is given exactly those records again."""

from __future__ import annotations

from .test_worker_pipeline import GatedScorer, make, rec


def test_newly_assigned_partitions_start_after_the_redis_watermark():
    w, consumer, store, log = make([], GatedScorer())
    store.pwm = {"raw:0": 41, "raw:2": 7}
    w.on_assigned([("raw", 0), ("raw", 1), ("raw", 2)])
    assert [e for e in log if e[0] == "seek"] == [("seek", ("raw", 0, 42)), ("seek", ("raw", 2, 8))]
    # a partition kept across a rebalance keeps the client's position: no seek
    log.clear()
    w.on_revoked([("raw", 0), ("raw", 1), ("raw", 2)])
    w.on_assigned([("raw", 0), ("raw", 3)])
    assert [e for e in log if e[0] == "seek"] == []


def test_every_batch_advances_its_partitions_watermark_even_without_topics():
    chunks = [[rec(0, 0, text="no topic here"), rec(0, 1), rec(1, 5, text="nothing either")]]
    w, consumer, store, log = make(chunks, GatedScorer(), max_posts=3)
    assert w.run(max_batches=1, idle_timeout_s=0.2) == 0
    assert store.pwm == {"raw:0": 1, "raw:1": 5}


def test_a_redis_that_lost_applied_batches_is_given_them_again_before_anything_newer():
    chunks = [[rec(0, o) for o in range(4)], [rec(0, o) for o in range(4, 8)]]
    w, consumer, store, log = make(chunks, GatedScorer(), max_posts=4)

    commit = consumer.commit

    def commit_then_crash(records):  # Redis comes back from its AOF without the last 2 records
        commit(records)
        store.pwm["raw:0"] = 1

    consumer.commit = commit_then_crash
    assert w.run(max_batches=2, idle_timeout_s=0.2) == 0
    assert ("seek", ("raw", 0, 2)) in log  # re-read from what Redis holds
    commits = [e for e in log if e[0] == "commit"]
    assert commits == [("commit", [(0, 0), (0, 1), (0, 2), (0, 3)])]  # the newer batch was not written
    assert [e for e in log if e[0] == "apply"] == [("apply", 1)]
