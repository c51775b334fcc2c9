"""Integration-only hooks: the fault suite's report (docs/reliability.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .faults import REPORT, kill_started, write_report


@pytest.fixture(autouse=True)
def _no_orphan_workers():
    """A failed fault test must not leave its workers running into the next tests."""
    yield
    kill_started()


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    target = os.environ.get("MOOD_RELIABILITY_REPORT")
    if target and REPORT:
        write_report(Path(target))
