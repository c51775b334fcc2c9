"""`guarded` (connectors.base): what a payload mapping lets out is a Skip or a DecodeError, and
its message never quotes the payload; `Connector.emit` refuses an item it cannot encode before
anything is sent."""

from __future__ import annotations

import pytest

from connectors.base import Connector, Skip, guarded
from monitor.errors import DecodeError
from monitor.messages import Post

from .hostile import MARK, ListSink, deep_list


@guarded("thing")
def _mapping(kind: str) -> str:
    if kind == "skip":
        raise Skip("no_text")
    if kind == "bad":
        raise DecodeError("thing.x", "not a string")
    if kind == "type":
        return str(len(5))  # type: ignore[arg-type]
    if kind == "repr":
        return repr(deep_list(100_000))
    if kind == "assert":
        raise AssertionError(f"unknown status keyword {MARK!r} in marked section")
    return kind


def test_own_outcomes_pass_through():
    assert _mapping("fine") == "fine"
    with pytest.raises(Skip):
        _mapping("skip")
    with pytest.raises(DecodeError) as ei:
        _mapping("bad")
    assert ei.value.field == "thing.x"


@pytest.mark.parametrize(
    "kind, name", [("type", "TypeError"), ("repr", "RecursionError"), ("assert", "AssertionError")]
)
def test_any_other_exception_becomes_a_decode_error_naming_its_type_only(kind, name):
    with pytest.raises(DecodeError) as ei:
        _mapping(kind)
    assert (ei.value.field, ei.value.reason) == ("thing", f"internal_error:{name}")
    assert MARK not in str(ei.value)
    assert _mapping.__name__ == "_mapping"


def test_emit_refuses_an_unencodable_item_before_sending():
    sink = ListSink()
    c = Connector(sink)
    with pytest.raises(DecodeError) as ei:
        c.emit(Post(id="x", source="s", text="a\ud800", created_ms=1, ingested_ms=1))
    assert ei.value.field == "post" and sink.sent == [] and c.stats.produced == 0
    c.emit(Post(id="y", source="s", text="ok", created_ms=1, ingested_ms=1))
    assert [k for k, _ in sink.sent] == [b"y"] and c.stats.produced == 1
