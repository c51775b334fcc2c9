"""The vendored chart library is exactly the published file (sha256 pinned; VENDORED.md says
where from) and ships with its licence; the page loads nothing from another origin."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

STATIC = resources.files("monitor.web").joinpath("static")
PINNED = {
    "vendor/uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "vendor/uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
}


@pytest.mark.parametrize(("name", "sha256"), sorted(PINNED.items()))
def test_vendored_file_matches_its_pin(name, sha256):
    data = STATIC.joinpath(name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha256
    assert sha256 in STATIC.joinpath("vendor/VENDORED.md").read_text()


def test_licence_ships_with_it():
    assert "MIT License" in STATIC.joinpath("vendor/uPlot.LICENSE").read_text()


def test_the_page_loads_only_relative_urls():
    html = STATIC.joinpath("index.html").read_text()
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    assert 'src="static/vendor/uPlot.iife.min.js"' in html
