"""Memory hygiene helpers: safe to call anywhere, and an operator's own setting wins."""

from __future__ import annotations

from monitor.model import memory


def test_limit_growth_caps_the_onednn_cache_unless_the_operator_set_it(monkeypatch):
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    memory.limit_growth()
    import os

    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(memory.ONEDNN_PRIMITIVE_CACHE)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "7")
    memory.limit_growth()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "7"


def test_trim_never_raises():
    assert memory.trim() in (True, False)
