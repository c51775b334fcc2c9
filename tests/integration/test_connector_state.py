"""Connector cursor/dedup/status state in the real local Redis."""

import pytest

from monitor.store.connectors import RedisConnectorState, read_statuses

pytestmark = pytest.mark.integration


def test_dedup_cursor_meta_and_status(redis_url, unique):
    st = RedisConnectorState(redis_url, "rss-news", prefix=f"t-{unique}:conn:", seen_max=3)
    assert st.cursor() is None and st.unseen(["a", "b", "a"]) == {"a", "b"}
    st.commit(["a", "b"], "42", meta={"etag:feed1": '"v1"'}, now_ms=1000)
    assert st.unseen(["a", "b", "c"]) == {"c"} and st.cursor() == "42" and st.meta("etag:feed1") == '"v1"'
    # a fresh instance (a restart) sees the same state
    again = RedisConnectorState(redis_url, "rss-news", prefix=f"t-{unique}:conn:", seen_max=3)
    assert again.unseen(["a", "c"]) == {"c"} and again.cursor() == "42"
    st.commit(["c", "d"], None, now_ms=2000)  # trimmed to the newest 3: "a" or "b" forgotten
    assert len(st.unseen(["a", "b", "c", "d"])) == 1 and st.cursor() == "42"
    assert st.claim("wh1", 60) and not st.claim("wh1", 60)
    st.report({"connected": 1, "produced": 5})
    assert read_statuses(redis_url, prefix=f"t-{unique}:conn:") == {
        "rss-news": {"connected": "1", "produced": "5"}
    }


def test_redis_down_is_a_transient_error(unique):
    from monitor.errors import StoreUnavailable

    st = RedisConnectorState("redis://127.0.0.1:1/0", "x", prefix=f"t-{unique}:conn:")
    with pytest.raises(StoreUnavailable):
        st.cursor()
