"""Test fixtures. Tests marked ``integration`` or ``faults`` get the real local stack (Kafka +
Redis, started once per session by `monitor.stack` and left running for the next session);
pure unit tests never start it. Set MOOD_KAFKA_BOOTSTRAP / MOOD_REDIS_URL to use another stack.
"""

from __future__ import annotations

import os
import uuid

import pytest


@pytest.fixture(scope="session")
def stack():
    from monitor.stack import LocalStack

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
