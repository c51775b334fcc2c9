"""No test asserts how long something took (the guide: speed is for ``bench/``, which prints
figures; a test that times itself fails on a loaded CI machine, not on a regression). A bound
on work is measured by counting (see test_markup_bounds), a bound on a wait by the event."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CLOCKS = {"perf_counter", "perf_counter_ns", "process_time", "process_time_ns", "monotonic", "monotonic_ns"}


def _reads_clock(node: ast.AST) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            f = n.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in CLOCKS:
                return True
    return False


def _elapsed(c: ast.Compare) -> bool:
    """A comparison of a difference of clock readings (``clock() - t0 < 1``); a deadline
    (``clock() < deadline``) only guards a wait against a stall and passes."""
    return any(
        isinstance(side, ast.BinOp) and isinstance(side.op, ast.Sub) and _reads_clock(side)
        for side in (c.left, *c.comparators)
    )


def timed_asserts(tree: ast.AST) -> list[int]:
    """Lines of asserts that compare an elapsed time."""
    return [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Assert)
        and any(isinstance(c, ast.Compare) and _elapsed(c) for c in ast.walk(n.test))
    ]


def test_no_test_asserts_an_elapsed_time():
    bad = [
        f"{p.relative_to(TESTS).as_posix()}:{line}"
        for p in sorted(TESTS.rglob("*.py"))
        for line in timed_asserts(ast.parse(p.read_text(), str(p)))
    ]
    assert not bad, "asserts on elapsed time (measure in bench/ or count the work): " + ", ".join(bad)


def test_the_check_sees_one():
    src = "t0 = time.perf_counter()\nrun()\nassert time.perf_counter() - t0 < 1 and ok\n"
    assert timed_asserts(ast.parse(src)) == [3]
    assert timed_asserts(ast.parse("assert process_time() - t0 < 0.5\n")) == [1]
    assert timed_asserts(ast.parse("assert age < 30\n")) == []
    assert timed_asserts(ast.parse("assert time.monotonic() < deadline, 'stalled'\n")) == []
