"""Fixtures for the media integration tests: a media service on ephemeral ports and a test UAC."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from media_harness import Uac, media_settings, start_service

from media.service import MediaService


@pytest.fixture(scope="session")
def prompt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One prompt cache for the whole session: rendering all prompts once is enough."""
    return tmp_path_factory.mktemp("prompts")


@pytest.fixture
async def media(mongo_uri: str, prompt_dir: Path) -> AsyncIterator[MediaService]:
    svc = await start_service(media_settings(prompt_dir), mongo_uri, os.environ["SECONDNUM_TEST_DB"])
    try:
        yield svc
    finally:
        await svc.stop()


@pytest.fixture
async def uac() -> AsyncIterator[Uac]:
    peer = Uac()
    await peer.start()
    try:
        yield peer
    finally:
        await peer.close()
