"""Integration-only hooks: the fault suite's report (docs/reliability.md)."""

from __future__ import annotations

import os
from pathlib import Path

from .faults import REPORT, write_report


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    target = os.environ.get("MOOD_RELIABILITY_REPORT")
    if target and REPORT:
        write_report(Path(target))
