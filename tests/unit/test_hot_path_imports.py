"""No import statement runs inside a function of the modules a record passes through.

`from x import y` inside a function runs the import machinery on every call: ~1 µs a time, and
it was on the per-record path once (the librdkafka producer's `send`, 40,000 calls a profile).
Lazy imports belong in set-up code (constructors, loaders) outside these modules, or in a
function that runs once per process (listed below, with why)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# the worker's and the connectors' per-record path: consume, decode, match, label, aggregate,
# write, produce
HOT = [
    "monitor/kafka.py",
    "monitor/worker.py",
    "monitor/batcher.py",
    "monitor/messages.py",
    "monitor/topics.py",
    "monitor/aggregates.py",
    "monitor/prevalence.py",
    "monitor/patterns.py",
    "monitor/model/base.py",
    "monitor/model/language.py",
    "monitor/model/remote.py",
    "monitor/model/tokens.py",
    "monitor/privacy/pseudonym.py",
    "monitor/privacy/redaction.py",
    "monitor/store/buckets.py",
    "monitor/store/volume.py",
    "monitor/store/keys.py",
]
# (module, function): imports that run once per process
ONCE = {
    ("monitor/model/language.py", "_identifier"),  # lru_cache(maxsize=1): the language model, loaded once
}


def _function_imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import | ast.ImportFrom) and not (
                isinstance(node, ast.ImportFrom) and node.module == "__future__"
            ):
                found.append((fn.name, node.lineno))
    return found


@pytest.mark.parametrize("module", HOT)
def test_no_import_runs_per_call_on_the_record_path(module: str) -> None:
    rel = Path(module)
    bad = [
        f"{module}:{line} in {name}()"
        for name, line in _function_imports(REPO / rel)
        if (module, name) not in ONCE
    ]
    assert bad == [], "an import inside a function on the per-record path: " + ", ".join(bad)


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("import os\n\ndef send():\n    from json import dumps\n    return dumps\n")
    assert _function_imports(f) == [("send", 4)]
