"""The public face of each package: a sorted `__all__` whose names all exist, and a model package
that imports no torch until a runtime module is asked for (the worker's seam and the read side
stay light)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["monitor.store", "monitor.model", "monitor.alerts", "monitor.web"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_complete(name):
    mod = importlib.import_module(name)
    assert mod.__all__ == sorted(mod.__all__)
    assert all(hasattr(mod, n) for n in mod.__all__)


def test_the_model_seam_does_not_load_torch():
    code = "import sys, monitor.model, monitor.worker; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
