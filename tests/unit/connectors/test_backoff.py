import random

import pytest

from connectors.backoff import Backoff, retry_after_s, wait


def test_delays_grow_with_jitter_up_to_the_cap_and_reset():
    b = Backoff(1.0, 8.0, rng=random.Random(1))
    delays = [b.next_delay_s() for _ in range(8)]
    caps = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(0.5 <= d <= c for d, c in zip(delays, caps))
    assert len({round(d, 6) for d in delays}) == 8  # jittered, not a fixed ladder
    b.reset()
    assert b.next_delay_s() <= 1.0


def test_server_wish_wins_but_is_bounded():
    b = Backoff(1.0, 5.0)
    assert b.delay_for(3.0) == 3.0
    assert b.delay_for(10_000) == 50.0
    assert 0.5 <= b.delay_for(None) <= 5.0


@pytest.mark.parametrize(
    "value, expected",
    [
        ("120", 120.0),
        ("599.0", 599.0),
        (" 7 ", 7.0),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),  # HTTP date
        ("2015-10-21T07:28:30.5Z", 30.5),  # Mastodon's ISO reset
        (None, None),
        ("", None),
        ("soon", None),
        ("2015-10-21T07:28:30", None),
    ],
)
def test_retry_after_forms(value, expected):
    now = 1445412480.0  # 2015-10-21T07:28:00Z
    assert retry_after_s(value, now_s=now) == expected


def test_wait_returns_early_when_stopped():
    slept = []
    calls = iter([True, True, False])
    wait(10.0, lambda: next(calls), sleep=slept.append, step_s=0.1)
    assert slept == [0.1, 0.1]


def test_bad_parameters():
    with pytest.raises(ValueError):
        Backoff(0, 1)
