import orjson

from connectors.replay import normalise_line
from monitor.messages import decode


def test_good_line_is_completed_and_keyed_by_id():
    key, value = normalise_line(b'{"id": "p1", "text": "hi"}', now_ms=1000, force_now=False)
    assert key == b"p1"
    post = decode(value)
    assert post.created_ms == 1000 and post.source == "replay"


def test_force_now_restamps():
    key, value = normalise_line(b'{"id": "p1", "text": "hi", "created_ms": 5}', now_ms=1000, force_now=True)
    assert decode(value).created_ms == 1000


def test_bad_lines_are_forwarded_unkeyed_for_the_dlq():
    assert normalise_line(b"{broken", now_ms=1, force_now=False) == (None, b"{broken")
    key, value = normalise_line(b'{"id": "p1"}', now_ms=1, force_now=False)
    assert key is None and orjson.loads(value)["id"] == "p1"


class _Sink:
    def __init__(self):
        self.sent = []

    def send(self, key, value, *, topic=None, headers=None):
        self.sent.append((key, value))

    def flush(self, timeout_s=30.0):
        pass

    def close(self, timeout_s=10.0):
        pass


def test_a_looped_replay_gives_every_pass_fresh_ids(tmp_path):
    from connectors.replay import ReplayConnector

    f = tmp_path / "s.jsonl"
    f.write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n')
    sink = _Sink()
    ReplayConnector(sink, f, loop=True, now=True).run(max_items=5)
    ids = [decode(v).id for _, v in sink.sent]
    assert ids == ["a", "b", "a~1", "b~1", "a~2"]
    assert [k for k, _ in sink.sent] == [i.encode() for i in ids]
