"""Recorded real payloads for connector tests, read in place from ``../shared/fixtures`` (beside
the repository; see its README). They are never copied into the repo. ``MOOD_FIXTURES`` points
elsewhere. A missing directory fails the test loudly rather than skipping it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
_CANDIDATES = [REPO.parent / "shared" / "fixtures", Path("/work/shared/fixtures")]
FIXTURES = Path(
    os.environ.get("MOOD_FIXTURES") or next((c for c in _CANDIDATES if c.is_dir()), _CANDIDATES[0])
)


def path(rel: str) -> Path:
    p = FIXTURES / rel
    if not p.exists():
        raise FileNotFoundError(f"recorded fixture {p} is missing (set MOOD_FIXTURES)")
    return p


def jsonl_lines(rel: str) -> list[str]:
    return [ln for ln in path(rel).read_text(encoding="utf-8").splitlines() if ln.strip()]


def betamax(rel: str) -> list[dict[str, Any]]:
    """Betamax cassette -> its interactions (``response.body.string`` is the body text)."""
    return json.loads(path(rel).read_text(encoding="utf-8"))["interactions"]


def vcr(rel: str) -> list[dict[str, Any]]:
    """VCR.py YAML cassette -> its interactions."""
    return yaml.safe_load(path(rel).read_text(encoding="utf-8"))["interactions"]


def sse_body(rel: str, uri_suffix: str) -> str:
    """The text/event-stream body recorded for the request whose uri ends with ``uri_suffix``."""
    for it in vcr(rel):
        if it["request"]["uri"].endswith(uri_suffix):
            return it["response"]["body"]["string"]
    raise KeyError(uri_suffix)
