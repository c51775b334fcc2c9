"""Hand-made bucket deltas for tests that write the store directly: the minute AND the hour
bucket of each event time, as every writer in the product keeps both (``add_at``). A window
read takes whole hours from the hour buckets (``window_plan``), so minute-only test data reads
differently depending on the minute of the hour the test happens to run at; the check in
``tests/unit/test_bucket_test_data.py`` keeps hand-written ``("m", ...)`` keys out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from monitor.aggregates import Delta, add_at


def bucketed(by_time: Iterable[tuple[int, Mapping[str, float]]]) -> dict[tuple[str, int], Delta]:
    """The minute and hour deltas of (event time ms, delta) pairs, summed per bucket."""
    out: dict[tuple[str, int], Delta] = {}
    for ts_ms, d in by_time:
        add_at(out, ts_ms, d)
    return out
