"""The Ro client's open-session records: batched, coalesced, and still in MongoDB for crash recovery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from charging.client import ChargingRequest, RoClient, RoleOfNode
from charging.ocs import OcsServer, models
from charging.settings import DiameterPeerSettings, OcsSettings, RoClientSettings
from charging.store import OpenRoSession, OpenSessionWriter

DID = "42027777100"
OUT = ChargingRequest(DID, RoleOfNode.ORIGINATING, "tel:+42027777100", "tel:+420273333444", "icid-w")


@pytest.fixture
async def ocs(mongo_uri: str) -> AsyncIterator[OcsServer]:
    models.Account(e164=DID, balance=1_000_000).save()
    models.Tariff(prefix="420", price_per_minute=600, increment_seconds=1).save()
    server = OcsServer(OcsSettings(listen_port=0, http_port=0))
    await server.start()
    yield server
    await server.stop()


async def make_client(ocs: OcsServer, interval: float) -> RoClient:
    client = RoClient(
        RoClientSettings(peers=[DiameterPeerSettings(port=ocs.diameter_port)]), persist_interval=interval
    )
    await client.start()
    return client


def stored(session_id: str) -> OpenRoSession | None:
    return OpenRoSession.objects(session_id=session_id).first()  # type: ignore[no-any-return]


async def test_record_written_updated_and_deleted(ocs: OcsServer) -> None:
    client = await make_client(ocs, 0.05)
    try:
        s = await client.start_session(OUT)
        await client.flush()
        doc = await asyncio.to_thread(stored, s.session_id)
        assert doc is not None and doc.owner == "as.secondnum.local" and doc.answered_at is None
        assert doc.subscription_e164 == DID and doc.request_number == 0 and doc.icid == "icid-w"
        s.answered()
        await asyncio.sleep(1.1)
        await s.update()
        await client.flush()
        doc = await asyncio.to_thread(stored, s.session_id)
        assert doc is not None and doc.answered_at is not None
        assert doc.request_number == 1 and doc.reported_seconds >= 1
        await s.terminate()
        await client.flush()
        assert await asyncio.to_thread(stored, s.session_id) is None
    finally:
        await client.stop()


async def test_granted_session_is_written_without_waiting_for_the_window(ocs: OcsServer) -> None:
    """The record that lets a restarted AS release the OCS reservation goes out at once after the CCA-I."""
    client = await make_client(ocs, 30.0)  # a window far longer than the wait below
    try:
        s = await client.start_session(OUT)
        for _ in range(100):
            if await asyncio.to_thread(stored, s.session_id) is not None:
                break
            await asyncio.sleep(0.1)
        assert await asyncio.to_thread(stored, s.session_id) is not None
    finally:
        await client.stop()


async def test_changes_of_one_window_coalesce(ocs: OcsServer) -> None:
    client = await make_client(ocs, 30.0)
    try:
        sessions = [await client.start_session(OUT) for _ in range(5)]
        await client.flush()
        assert client.writer.ops_written == 5 and await asyncio.to_thread(OpenRoSession.objects.count) == 5
        for s in sessions:
            s.answered()
        for s in sessions:
            # the CCR-T mark replaces the pending answer-time update, and the delete replaces the mark
            await s.terminate()
        assert len(client.writer.pending) == 5 and client.writer.ops_coalesced == 10
        assert client.writer.ops_written == 5  # still lingering
    finally:
        await client.stop()  # flushes
    assert client.writer.ops_written == 10
    assert await asyncio.to_thread(OpenRoSession.objects.count) == 0


def test_session_closed_before_its_record_was_written_costs_no_write() -> None:
    writer = OpenSessionWriter(interval=30.0)  # not started: nothing is written meanwhile
    writer.put({"_id": "sid-0", "owner": "as.test"})
    writer.put({"_id": "sid-0", "owner": "as.test", "answered_at": None})
    writer.delete("sid-0")
    assert writer.pending == {} and writer.stored == set()


async def test_stop_flushes_open_records(ocs: OcsServer) -> None:
    """Records still pending when the writer closes are written (an orderly stop loses nothing)."""
    writer = OpenSessionWriter(interval=30.0)
    writer.start()
    writer.put({"_id": "sid-1", "owner": "as.test", "subscription_e164": DID, "role_of_node": 0})
    await writer.close()
    doc = await asyncio.to_thread(stored, "sid-1")
    assert doc is not None and doc.owner == "as.test" and doc.checkpoint_at is not None
    assert writer.ops_written == 1
