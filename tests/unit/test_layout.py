"""Test modules in non-package dirs must have unique basenames: pytest imports them by basename
(rootdir-relative, no __init__.py), and a second `test_x.py` elsewhere aborts the collection."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_plain_test_module_basenames_are_unique() -> None:
    plain = [
        p for p in TESTS.rglob("*.py") if not (p.parent / "__init__.py").exists() and p.name != "conftest.py"
    ]
    dupes = [name for name, n in Counter(p.name for p in plain).items() if n > 1]
    assert dupes == [], dupes
