"""Fixtures of the AS integration tests (the stack itself is built in as_stack.py)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from as_stack import Stack, build_stack


@pytest.fixture
def sipp_bin() -> str:
    path = shutil.which("sipp")
    if path is None:
        pytest.fail("'sipp' is not installed (Debian package sip-tester)")
    return path


@pytest.fixture
async def stack(
    mongo_uri: str, tmp_path: Path, sipp_bin: str, request: pytest.FixtureRequest
) -> AsyncIterator[Stack]:
    marker = request.node.get_closest_marker("as_settings")
    settings_over = dict(marker.kwargs) if marker else {}
    ro_marker = request.node.get_closest_marker("ro_settings")
    ro_over = dict(ro_marker.kwargs) if ro_marker else {}
    ocs_down = request.node.get_closest_marker("ocs_down") is not None
    balance_marker = request.node.get_closest_marker("ocs_balance")
    balance = int(balance_marker.args[0]) if balance_marker else 1_000_000
    async for s in build_stack(
        mongo_uri, tmp_path, settings_over, ro_over, with_ocs_peer=not ocs_down, balance=balance
    ):
        yield s


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "as_settings(**kw): AsSettings overrides for the stack fixture")
    config.addinivalue_line("markers", "ro_settings(**kw): RoClientSettings overrides for the stack fixture")
    config.addinivalue_line("markers", "ocs_balance(milli): the DID's prepaid balance at the OCS")
    config.addinivalue_line("markers", "ocs_down: the Ro client points at a port where no OCS listens")
