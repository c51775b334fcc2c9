"""Tests that write the store by hand build their deltas with ``tests.buckets.bucketed`` (the
minute and the hour of each event time, as the product's writers do), not with literal
``("m", start)`` / ``("h", start)`` keys. Minute-only data makes a window read depend on the
minute of the hour a test runs at: a 1 h window read at minute 0 takes the previous hour from
its hour bucket, which such data never wrote (test_metrics_redis failed that way in CI)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

# (file, function) -> why its literal bucket keys are meant
ALLOWED = {
    ("integration/test_faults_servers.py", "test_memory_is_bounded_by_the_ttls"): (
        "the memory budget's shape: 1,440 minute and 24 hour buckets a day, written as such"
    ),
}


def _literal_bucket_keys(tree: ast.AST) -> list[tuple[str, int]]:
    """(enclosing function, line) of each dict key written as ("m"|"h", ...)."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, func: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            func = node.name
        keys: list[ast.expr | None] = []
        if isinstance(node, ast.Dict):
            keys = list(node.keys)
        elif isinstance(node, ast.DictComp):
            keys = [node.key]
        for k in keys:
            if (
                isinstance(k, ast.Tuple)
                and len(k.elts) == 2
                and isinstance(k.elts[0], ast.Constant)
                and k.elts[0].value in ("m", "h")
            ):
                found.append((func, k.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, func)

    visit(tree, "<module>")
    return found


def test_hand_written_bucket_deltas_carry_their_hours():
    bad = []
    for path in sorted(TESTS.rglob("test_*.py")):
        rel = path.relative_to(TESTS).as_posix()
        for func, line in _literal_bucket_keys(ast.parse(path.read_text(), str(path))):
            if (rel, func) not in ALLOWED:
                bad.append(f"{rel}:{line} ({func})")
    assert not bad, "literal bucket keys; build the deltas with tests.buckets.bucketed: " + ", ".join(bad)


def test_the_check_sees_minute_only_data():
    src = 'def test_x():\n    w = PartitionWrite("p:0", 0, 0, {("m", m): {"n": 1}})\n'
    assert _literal_bucket_keys(ast.parse(src)) == [("test_x", 2)]
    comp = "def f():\n    return {('m', b.start_ms): d for b in bs}\n"
    assert _literal_bucket_keys(ast.parse(comp)) == [("f", 2)]
