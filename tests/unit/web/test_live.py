"""The live stream's hub without servers: one snapshot per poll whatever the viewers, only the
parts that changed are sent, a slow client is dropped instead of buffered, clients are capped."""

from __future__ import annotations

import anyio
import orjson
import pytest

from monitor.web.live import Hub, frame, snapshot

from .test_api import NOW, FakeReadModel


def test_snapshot_reads_each_part_once():
    m = FakeReadModel()
    snap = snapshot(m, max_topics=1, clock_ms=lambda: NOW)
    assert [r["topic"] for r in snap["topics"]["topics"]] == ["acme"]
    assert snap["topics"]["topics"][0]["minutes"][0]["n"] == 5
    names = [n for n, _ in m.calls]
    assert names.count("summary") == 1 and names.count("status") == 1 and names.count("alerts") == 1


def test_only_changed_parts_get_a_new_version():
    hub = Hub(FakeReadModel())
    base = {
        "topics": {"now_ms": 1, "topics": []},
        "status": {"now_ms": 1, "processes": []},
        "alerts": {"open": []},
    }
    assert [p for p, _, _ in hub.update(base)] == ["topics", "status", "alerts"]
    # the clock and heartbeat ages move by themselves: not a change
    same = {**base, "status": {"now_ms": 2, "processes": []}, "topics": {"now_ms": 2, "topics": []}}
    assert hub.update(same) == []
    changed = {**same, "topics": {"now_ms": 3, "topics": [{"topic": "acme"}]}}
    assert [(p, v) for p, v, _ in hub.update(changed)] == [("topics", 4)]
    assert [p for p, _, _ in hub.current()] == ["topics", "status", "alerts"]


def test_fan_out_drops_a_slow_client_and_caps_clients():
    async def main():
        hub = Hub(FakeReadModel(), max_clients=2, queue_size=2)
        fast, slow = hub.subscribe(), hub.subscribe()
        assert hub.subscribe() is None  # the cap
        for i in range(3):
            hub.update({"alerts": {"open": [i]}})
            assert (await fast.receive.receive())[2] == {"open": [i]}
        assert slow.dropped and slow not in hub.subscribers and fast in hub.subscribers
        got = [await slow.receive.receive(), await slow.receive.receive()]  # what it had, then the end
        assert [e[2]["open"] for e in got] == [[0], [1]]
        with pytest.raises(anyio.EndOfStream):
            await slow.receive.receive()
        hub.unsubscribe(fast)
        assert hub.subscribe() is not None

    anyio.run(main)


def test_poll_without_redis_reports_it_and_keeps_going():
    m = FakeReadModel()
    m.fail = True

    async def main():
        hub = Hub(m)
        await hub.poll_once()
        assert hub.parts["status"][2]["redis"] == "down"
        m.fail = False
        await hub.poll_once()
        assert hub.parts["status"][2]["redis"] == "up" and "topics" in hub.parts

    anyio.run(main)


def test_one_poller_serves_every_viewer():
    m = FakeReadModel()

    async def main():
        hub = Hub(m, interval_s=0.2, clock_ms=lambda: NOW)
        subs = [hub.subscribe() for _ in range(10)]
        async with anyio.create_task_group() as tg:
            tg.start_soon(hub.run)
            for s in subs:
                with anyio.fail_after(5):
                    assert (await s.receive.receive())[0] == "topics"
            tg.cancel_scope.cancel()
        return hub.polls

    polls = anyio.run(main)
    assert [n for n, _ in m.calls].count("summary") == polls


def test_frame_is_one_sse_event_and_filters_topics():
    ev = ("topics", 7, {"now_ms": 1, "topics": [{"topic": "a"}, {"topic": "b"}]})
    raw = frame(ev, frozenset({"b"}))
    head, data = raw.decode().rstrip("\n").rsplit("\n", 1)
    assert head == "event: topics\nid: 7"
    assert orjson.loads(data.removeprefix("data: "))["topics"] == [{"topic": "b"}]
    assert raw.endswith(b"\n\n") and raw.count(b"\n\n") == 1
