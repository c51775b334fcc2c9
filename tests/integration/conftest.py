"""Integration-only hooks: the fault suite's report (docs/reliability.md), the secured stack,
the Redis Cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .faults import REPORT, kill_started, write_report
from .secure_helpers import start_secure_stack


@pytest.fixture(autouse=True)
def _no_orphan_workers():
    """A failed fault test must not leave its workers running into the next tests."""
    yield
    kill_started()


@pytest.fixture(scope="session")
def secure_stack(tmp_path_factory):
    """One secured stack (TLS + SCRAM Kafka, TLS-only Redis with ACL users) per test session, on
    free ports and in a temporary directory: the shared plain stack is never touched."""
    st = start_secure_stack(tmp_path_factory.mktemp("secure-stack"))
    try:
        yield st
    finally:
        st.down()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """One Redis Cluster (three masters, one replica each) per test session, on free ports in a
    temporary directory: the shared plain Redis is never touched."""
    from devstack.stack.cluster import RedisClusterStack, free_cluster_ports

    st = RedisClusterStack(dir=tmp_path_factory.mktemp("redis-cluster"), ports=free_cluster_ports(6))
    try:
        st.up()
        yield st
    finally:
        st.down()


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    target = os.environ.get("MOOD_RELIABILITY_REPORT")
    if target and REPORT:
        write_report(Path(target))
