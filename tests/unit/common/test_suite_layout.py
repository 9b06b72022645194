"""The test suite's own layout rules, which pytest's rootdir/basename import mode depends on."""

from __future__ import annotations

import collections
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]


def test_module_basenames_are_unique() -> None:
    # Without __init__.py files pytest imports each test module by its basename: two alike would clash.
    names = collections.Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py")
    assert [n for n, c in names.items() if c > 1] == []


def test_nothing_imports_from_conftest() -> None:
    # Several conftest.py exist; `from conftest import` binds whichever was imported first.
    offenders = [str(p.relative_to(TESTS)) for p in TESTS.rglob("*.py")
                 if re.search(r"^\s*(from conftest import|import conftest)", p.read_text(), re.M)]
    assert offenders == []
