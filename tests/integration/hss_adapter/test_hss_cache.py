"""Profile cache over SecantusDB: full load, change-stream updates within a second, recovery after a crash."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pymongo
import pytest
from hss_api import Api

from hss_adapter import store
from hss_adapter.cache import ProfileCache
from hss_adapter.models import ensure_indexes
from hss_adapter.profile import AnsweringMode
from secondnum.mongo import EmbeddedMongo, connect
from secondnum.net import free_port

DID = "42027777100"
SEED = {"did": DID, "aliases": [{"identity": "42073723123@pstn", "allow_registration": False}]}


async def test_initial_load_and_lookups(api: Api, mongo_uri: str) -> None:
    await api.call("POST", "/api/v1/accounts", SEED)
    cache = ProfileCache.from_uri(mongo_uri, os.environ["SECONDNUM_TEST_DB"])
    await cache.start()
    try:
        assert cache.ready and cache.size == 1
        by_did = cache.lookup_did(DID)
        assert by_did is not None and cache.lookup_did("+" + DID) is by_did
        for spelling in (
            "42073723123@pstn",
            "tel:+42073723123",
            "sip:+42073723123@ims.example.net;user=phone",
            "<sip:+42073723123@10.0.0.1:5060;user=phone>",
            "+42073723123",
        ):
            assert cache.lookup_alias(spelling) is by_did, spelling
        for unknown in ("tel:+42099999999", "garbage", "sip:anonymous@anonymous.invalid", ""):
            assert cache.lookup_alias(unknown) is None, unknown
        assert cache.lookup_alias(DID) is None  # the DID is not an alias of itself
        assert cache.lookup_identity(f"tel:+{DID}") is by_did
    finally:
        await cache.stop()


async def test_api_changes_are_visible_within_one_second(api: Api, mongo_uri: str) -> None:
    cache = ProfileCache.from_uri(mongo_uri, os.environ["SECONDNUM_TEST_DB"])
    await cache.start()
    seen: list[str] = []
    cache.add_listener(seen.append)

    async def visible(
        predicate: Callable[[ProfileCache], bool], action: Awaitable[tuple[int, object, str]]
    ) -> None:
        status = (await action)[0]
        assert status in (200, 201, 204)
        assert await cache.wait_for(predicate, timeout=1.0), "change not visible within 1 s"

    try:
        seen_without_alias: list[bool] = []
        cache.add_listener(
            lambda _did: seen_without_alias.append(
                (p := cache.lookup_did(DID)) is not None and not p.alias_keys
            )
        )
        await visible(lambda c: c.lookup_did(DID) is not None, api.call("POST", "/api/v1/accounts", SEED))
        # The account appears complete: never a DID without its alias (aliases are written first).
        assert cache.lookup_alias("tel:+42073723123") is cache.lookup_did(DID)
        assert not any(seen_without_alias)
        await visible(
            lambda c: getattr(c.lookup_did(DID), "answering_mode", None) is AnsweringMode.VOICEMAIL_ONLY,
            api.call("PATCH", f"/api/v1/accounts/{DID}", {"answering_mode": "voicemail_only"}),
        )
        await visible(
            lambda c: c.lookup_alias("sip:john@example.net") is not None,
            api.call("POST", f"/api/v1/accounts/{DID}/aliases", {"identity": "sip:john@Example.NET"}),
        )
        await visible(
            lambda c: c.lookup_alias("tel:+42073723123") is None,
            api.call("DELETE", f"/api/v1/accounts/{DID}/aliases/42073723123@pstn"),
        )
        await visible(
            lambda c: (p := c.lookup_did(DID)) is not None and p.voicemail.verify_pin("2468"),
            api.call("PATCH", f"/api/v1/accounts/{DID}/voicemail", {"pin": "2468"}),
        )
        await visible(
            lambda c: c.lookup_did(DID) is None and c.lookup_alias("sip:john@example.net") is None,
            api.call("DELETE", f"/api/v1/accounts/{DID}"),
        )
        assert cache.size == 0
        await asyncio.sleep(0)
        assert DID in seen
    finally:
        await cache.stop()




def _start_secantus(port: int, data: Path, cfg: Path) -> subprocess.Popen[bytes]:
    exe = EmbeddedMongo()._find_executable()
    proc = subprocess.Popen(
        [exe, "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("secantusd did not start")


@pytest.fixture
def restartable_mongo(tmp_path: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """A SecantusDB on a fixed port with a data folder, which the test can SIGKILL and restart."""
    port, data, cfg = free_port(udp=False), tmp_path / "data", tmp_path / "empty.toml"
    cfg.write_text("")
    procs = [_start_secantus(port, data, cfg)]

    def crash_and_restart() -> None:
        procs[-1].kill()
        procs[-1].wait()
        procs.append(_start_secantus(port, data, cfg))

    try:
        yield f"mongodb://127.0.0.1:{port}/?replicaSet=secantus", crash_and_restart
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.slow
async def test_reload_after_database_crash(restartable_mongo: tuple[str, Callable[[], None]]) -> None:
    uri, crash_and_restart = restartable_mongo
    connect(uri, database="cache_crash")
    try:
        ensure_indexes()
        store.create_account({"did": "42000000001"})
        cache = ProfileCache.from_uri(uri, "cache_crash", retry_seconds=0.5)
        await cache.start()
        try:
            assert cache.lookup_did("42000000001") is not None
            await asyncio.to_thread(crash_and_restart)
            # Lookups keep answering from memory while the database is away.
            assert cache.lookup_did("42000000001") is not None
            # A write made while the watcher is reconnecting arrives through the full reload.
            client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(uri)
            client["cache_crash"]["accounts"].insert_one({"did": "42000000002"})
            client.close()
            assert await cache.wait_for(lambda c: c.lookup_did("42000000002") is not None, timeout=30)
            # ... and the stream is live again afterwards.
            await asyncio.to_thread(store.create_account, {"did": "42000000003"})
            assert await cache.wait_for(lambda c: c.lookup_did("42000000003") is not None, timeout=10)
        finally:
            await cache.stop()
    finally:
        import mongoengine

        mongoengine.disconnect()


async def test_bad_document_does_not_break_the_cache(api: Api, mongo_uri: str) -> None:
    from hss_adapter.models import AccountDoc

    cache = ProfileCache.from_uri(mongo_uri, os.environ["SECONDNUM_TEST_DB"])
    await cache.start()
    try:
        AccountDoc._get_collection().insert_one({"did": "42000000077", "answering_mode": "nonsense"})
        await api.call("POST", "/api/v1/accounts", SEED)
        assert await cache.wait_for(lambda c: c.lookup_did(DID) is not None, timeout=2)
        assert cache.lookup_did("42000000077") is None
    finally:
        await cache.stop()


async def test_other_collections_are_filtered_by_the_server(api: Api, mongo_uri: str) -> None:
    """CDR/balance/voicemail writes share the database; the change stream must not carry them to the AS."""
    from hss_adapter.cache import CACHE_EVENTS
    from hss_adapter.models import AccountDoc

    cache = ProfileCache.from_uri(mongo_uri, os.environ["SECONDNUM_TEST_DB"])
    await cache.start()
    try:
        before = CACHE_EVENTS._value.get()
        db = AccountDoc._get_collection().database
        db["cdrs"].insert_many([{"n": i} for i in range(20)])
        db["balances"].insert_one({"e164": DID, "balance": 1})
        await api.call("POST", "/api/v1/accounts", {"did": DID})
        assert await cache.wait_for(lambda c: c.lookup_did(DID) is not None, timeout=2)
        assert CACHE_EVENTS._value.get() - before == 1  # only the account insert
    finally:
        await cache.stop()
