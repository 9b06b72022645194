"""Helpers shared by tests in several folders (import as ``from testutil import ...``).

Not in a conftest.py: several conftest modules exist and ``from conftest import`` picks whichever was
imported first.
"""

from __future__ import annotations

import shutil

import pytest


def require_binary(name: str) -> str:
    """The path of a system tool the test needs; fails (not skips) when absent: CI installs it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"'{name}' is not installed; run ./dev test (it installs the system packages)")
    return path
