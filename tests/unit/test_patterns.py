"""The rule of `monitor.patterns`: every regular expression applied to untrusted text lives there,
on RE2 or with a written proof that Python's engine runs it in linear time. A new regex anywhere
else in the product fails this test until it is moved there (or, for configuration text only,
listed below with the reason)."""

from __future__ import annotations

import ast
from pathlib import Path

import re2

from monitor import patterns

ROOT = Path(__file__).resolve().parents[2]
# modules that may use Python's re on text that is not a post: the reason says which text
CONFIG_ONLY = {
    "monitor/query.py": "validates query terms from the configuration",
    "devstack/stack/__init__.py": "reads the local stack's own server output",
}
REGEX_MODULES = {"re", "re2", "regex"}


def _imports_regex(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in REGEX_MODULES for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in REGEX_MODULES:
            return True
    return False


def test_no_product_module_but_patterns_imports_a_regex_engine():
    offenders = []
    for package in ("monitor", "connectors"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "monitor/patterns.py" or rel in CONFIG_ONLY:
                continue
            if _imports_regex(ast.parse(path.read_text(), rel)):
                offenders.append(rel)
    assert offenders == [], f"move these regexes into monitor/patterns.py (RE2 or a proof): {offenders}"


def test_every_python_re_pattern_has_a_proof_in_the_docstring():
    doc = patterns.__doc__ or ""
    for name, value in vars(patterns).items():
        if name.isupper() and hasattr(value, "pattern") and not isinstance(value, re2._Regexp):
            assert f"`{name}`" in doc, f"{name} runs on Python's re: write why it is linear"


def test_the_rest_run_on_re2():
    assert all(isinstance(p, re2._Regexp) for p in patterns.LANGUAGE_NOISE)
    assert isinstance(patterns.EMAIL, re2._Regexp)
    assert isinstance(patterns.REDDIT_TAIL, re2._Regexp)


def test_re2_classes_are_unicode_aware():
    # RE2's own \\w is ASCII: the spelled-out classes keep accented and non-Latin words whole
    assert patterns.TERM.findall("über café 日本語") == ["über", "café", "日本語"]
    text = "@josé and józef@exämple.com ok"
    for p in patterns.LANGUAGE_NOISE:
        text = p.sub(" ", text)
    assert text.split() == ["and", "ok"]
