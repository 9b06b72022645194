"""Fixtures for hss_adapter integration tests: the provisioning API on a real socket over SecantusDB."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
from hss_api import TOKEN, Api

from hss_adapter.api.app import build_app
from hss_adapter.models import ensure_indexes
from hss_adapter.settings import ApiSettings
from secondnum.http import bound_port, serve


@pytest.fixture
def database_name(mongo_uri: str) -> str:
    return os.environ["SECONDNUM_TEST_DB"]


@pytest.fixture
async def api(mongo_uri: str) -> AsyncIterator[Api]:
    ensure_indexes()
    app = build_app(ApiSettings(port=0, tokens=[TOKEN]))
    runner = await serve(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(f"http://127.0.0.1:{bound_port(runner)}", session, app)
    finally:
        await runner.cleanup()
