"""Push endpoint on hostile requests (security review F12, section 3): a timestamp int() cannot
read, over-long ids, a batch over the item cap, items of any shape: each is a 4xx answer or a
rejected item, never an exception out of the handler (the integration test sends the raw bytes
through the real server)."""

from __future__ import annotations

import time

import orjson
import pytest

from connectors import push
from connectors.credentials import Secret
from monitor.errors import DecodeError

from .hostile import MARK, ListSink, MemoryState, deep_list

NOW = 1_800_000_000_000

KEY = b"k" * 32


@pytest.mark.parametrize("ts", ["\u00b2", "1" * 5000, "1" * 13, "\u0661\u0662", " 1", "-5", "1e9"])
def test_push_timestamps_that_int_cannot_read_are_401(ts):
    headers = {"webhook-id": "m", "webhook-timestamp": ts, "webhook-signature": "v1,x"}
    with pytest.raises(push.SignatureError) as ei:
        push.verify(KEY, headers, b"{}", now_s=time.time())
    assert ei.value.status == 401


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"webhook-id": "m", "webhook-timestamp": "\u00b2", "webhook-signature": "v1,x"}, 401),
        ({"webhook-id": "m" * 300, "webhook-timestamp": "1", "webhook-signature": "v1,x"}, 400),
        ({"webhook-id": "\u00e9", "webhook-timestamp": "1", "webhook-signature": "v1,\u00e9\ud800"}, 400),
        (
            {"webhook-id": "m", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,\ud800"},
            401,
        ),
    ],
)
def test_push_handle_answers_instead_of_raising(headers, status):
    conn = push.PushConnector(ListSink(), MemoryState(), secret=Secret("whsec_" + "a" * 44), port=0)  # type: ignore[arg-type]
    try:
        assert conn.handle(headers, b"{}")[0] == status
    finally:
        conn.server.close()


def test_push_batch_is_capped():
    body = orjson.dumps([{"id": str(i), "text": "x"} for i in range(1001)])
    with pytest.raises(push.Refused) as ei:
        push.batch_of(body)
    assert ei.value.status == 413
    assert len(push.batch_of(orjson.dumps({"posts": [{}] * 1000}))) == 1000


@pytest.mark.parametrize("created", [2**53, 2**63 - 1, 0, -1, 1.5, True])
def test_push_created_ms_in_range(created):
    with pytest.raises(DecodeError, match="created_ms"):
        push.to_item({"id": "a", "text": "x", "created_ms": created}, now_ms=NOW)


def test_push_item_error_messages_do_not_quote_the_item():
    for obj in (
        {"id": MARK * 100, "text": "x"},
        {"id": "a", "text": [MARK]},
        {"id": "a", "text": "x", "lang": [MARK]},
        {"id": "a", "text": "x", "hashtags": deep_list()},
        deep_list(),
    ):
        with pytest.raises(DecodeError) as ei:
            push.to_item(obj, now_ms=NOW)
        assert MARK not in str(ei.value)
