"""Shared fixtures: one embedded SecantusDB per test session, a clean database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from secondnum.mongo import EmbeddedMongo, connect


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[str]:
    """The URI of a MongoDB-compatible server: ``MONGO_URI`` if set, else an embedded SecantusDB."""
    external = os.environ.get("MONGO_URI")
    if external:
        yield external
        return
    server = EmbeddedMongo(":memory:")
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def mongo_uri(mongo_server: str) -> Iterator[str]:
    """A fresh database on the shared server, connected as mongoengine's default alias.

    The database name is in ``SECONDNUM_TEST_DB`` for code under test that connects by itself.
    """
    name = f"t_{uuid.uuid4().hex[:10]}"
    connect(mongo_server, database=name)
    os.environ["SECONDNUM_TEST_DB"] = name
    yield mongo_server
    import mongoengine
    from mongoengine.connection import get_connection

    try:
        get_connection().drop_database(name)
    finally:
        mongoengine.disconnect()
        os.environ.pop("SECONDNUM_TEST_DB", None)
