"""Fuzz suite: input counts are collected per property and printed at the end of the run."""

from __future__ import annotations

import pytest
from fuzz_strategies import RUNS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RUNS:
        total = sum(RUNS.values())
        parts = ", ".join(f"{k}={v}" for k, v in sorted(RUNS.items()))
        terminalreporter.write_line(f"fuzz inputs run: {total} ({parts})")
