"""Test fixtures. Tests marked ``integration`` or ``faults`` get the real local stack (Kafka +
Redis, started once per session by `devstack.stack` and left running for the next session);
pure unit tests never start it. Set MOOD_KAFKA_BOOTSTRAP / MOOD_REDIS_URL to use another stack.
"""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import HealthCheck, settings

# Property tests (Hypothesis) at every parser boundary. `make test` runs the small,
# derandomized "ci" profile (the same examples every run, well under a minute in all);
# `make fuzz` runs the long, random "fuzz" one. HYPOTHESIS_PROFILE picks another.
settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz", max_examples=5_000, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def stack():
    from devstack.stack import LocalStack

    st = LocalStack()
    if not (os.environ.get("MOOD_KAFKA_BOOTSTRAP") and os.environ.get("MOOD_REDIS_URL")):
        st.up()
    return st


@pytest.fixture(scope="session")
def kafka_bootstrap(stack) -> str:
    return os.environ.get("MOOD_KAFKA_BOOTSTRAP") or stack.kafka_bootstrap


@pytest.fixture(scope="session")
def redis_url(stack) -> str:
    return os.environ.get("MOOD_REDIS_URL") or stack.redis_url


@pytest.fixture
def unique() -> str:
    """A short name unique to this test, for Kafka topics, groups and Redis key prefixes."""
    return "t" + uuid.uuid4().hex[:10]
