"""An unanswered CCR-T is kept and retried (RFC 4006 §5.7, RFC 6733 §5.5.4), over real Diameter on loopback.

The OCS that stops answering is the real built-in OCS in a child process, frozen with SIGSTOP (its TCP
connection stays up, so the client sees Tx expiry, as with an overloaded or hung OCS).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from diameter.message import Message
from prometheus_client import REGISTRY

from charging.client import ChargingRequest, RoClient, RoleOfNode
from charging.messages import parse_ccr
from charging.ocs import OcsServer, models
from charging.settings import DiameterPeerSettings, OcsSettings, RoClientSettings
from charging.store import TERMINATING, OpenRoSession
from secondnum.diameter import PeerInfo
from secondnum.diameter import constants as dc

DID = "42027777100"
OUT = ChargingRequest(DID, RoleOfNode.ORIGINATING, "tel:+42027777100", "tel:+420273333444", "icid-t")
HERE = Path(__file__).parent
BALANCE = 100_000
PRICE = 600  # per minute, 1 s increments: 10 milli-units per second


def seed() -> None:
    models.Account(e164=DID, balance=BALANCE).save()
    models.Tariff(prefix="420", price_per_minute=PRICE, increment_seconds=1).save()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@asynccontextmanager
async def ocs_process(mongo_uri: str, host: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """The built-in OCS as a child process (MongoDB ledger on the test database)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "ro_ocs_child.py"),
        mongo_uri,
        os.environ["SECONDNUM_TEST_DB"],
        host,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
        assert line and line[0] == "READY", line
        yield proc, int(line[1])
    finally:
        if proc.returncode is None:
            proc.kill()  # also ends a SIGSTOPped process
            await proc.wait()


def record(session_id: str) -> models.RatedRecord:
    return models.RatedRecord.objects.get(session_id=session_id)  # type: ignore[no-any-return]


def open_record(session_id: str) -> OpenRoSession | None:
    return OpenRoSession.objects(session_id=session_id).first()  # type: ignore[no-any-return]


async def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.1)


def recording(ocs: OcsServer, seen: list[tuple[int, int, Any]]) -> None:
    """Record (command flags, End-to-End id, parsed CCR) of each CCR the real OCS handles."""

    async def on_ccr(req: Message, peer: PeerInfo) -> Message:
        seen.append((req.header.command_flags, req.header.end_to_end_identifier, parse_ccr(req)))
        return await ocs.on_ccr(req, peer)

    ocs.node.register_handler(dc.APP_RO, dc.CMD_CREDIT_CONTROL, on_ccr)


async def test_ccr_t_retried_until_the_frozen_ocs_recovers(mongo_uri: str) -> None:
    """(a) OCS frozen: the call's CCR-T returns after Tx, is retried in the background, and once the OCS
    runs again it gets that CCR-T (same Session-Id, CC-Request-Number, units): charged once, reservation
    released, the client's record deleted."""
    seed()
    async with ocs_process(mongo_uri, "ocs.secondnum.local") as (proc, port):
        settings = RoClientSettings(
            peers=[DiameterPeerSettings(port=port)],
            tx_seconds=1.0,
            termination_retry_initial_seconds=0.5,
            termination_retry_max_interval_seconds=2.0,
        )
        client = RoClient(settings, persist_interval=0.05)
        await client.start()
        try:
            s = await client.start_session(OUT)
            s.answered()
            assert (await asyncio.to_thread(lambda: models.Account.objects.get(e164=DID))).reserved > 0
            pending_before = metric("secondnum_ro_terminations_pending")
            failed_before = metric("secondnum_ro_termination_retries_total", result="unanswered")

            proc.send_signal(signal.SIGSTOP)
            t0 = time.monotonic()
            await s.terminate(used_seconds=42)
            returned_after = time.monotonic() - t0
            # the call is not held for the retries: terminate() came back after the first attempt
            assert s.session_id in client.retrying
            assert s.session_id not in client.sessions and s.on_release is None
            assert metric("secondnum_ro_terminations_pending") == pending_before + 1
            await client.flush()
            doc = await asyncio.to_thread(open_record, s.session_id)
            assert doc is not None and doc.state == TERMINATING
            assert (doc.t_used, doc.request_number, doc.termination_cause) == (42, 1, 1)

            # let a few retries fail against the frozen OCS
            end = time.monotonic() + 60
            while metric("secondnum_ro_termination_retries_total", result="unanswered") < failed_before + 2:
                assert time.monotonic() < end
                await asyncio.sleep(0.1)
            proc.send_signal(signal.SIGCONT)
            t1 = time.monotonic()
            while s.session_id in client.retrying:
                assert time.monotonic() < t1 + 60, "CCR-T not delivered after the OCS came back"
                await asyncio.sleep(0.05)
            delivered_after = time.monotonic() - t1
            print(f"ccr-t: terminate() {returned_after:.2f} s; delivered {delivered_after:.2f} s after CONT")

            rec = await asyncio.to_thread(record, s.session_id)
            assert rec.closed and rec.used_seconds == 42 and rec.charged == 42 * 10
            assert [(e["type"], e["number"], e["used"]) for e in rec.events] == [(1, 0, 0), (3, 1, 42)]
            acc = await asyncio.to_thread(lambda: models.Account.objects.get(e164=DID))
            assert acc.reserved == 0 and acc.balance == BALANCE - 420  # once, despite the resends
            assert metric("secondnum_ro_terminations_pending") == pending_before
            await client.flush()
            assert await asyncio.to_thread(open_record, s.session_id) is None
        finally:
            await client.stop()


async def test_ccr_t_to_a_frozen_primary_goes_to_the_secondary_with_t_flag(mongo_uri: str) -> None:
    """(b) Two OCS peers: the CCR-T for a session of the frozen primary is resent to the secondary at once,
    T flag set, same End-to-End id, Session-Id, CC-Request-Number and units; the call is not held longer."""
    seed()
    secondary = OcsServer(
        OcsSettings(origin_host="ocs1.secondnum.local", listen_port=0, http_port=0), http=False
    )
    await secondary.start()
    seen: list[tuple[int, int, Any]] = []
    recording(secondary, seen)
    try:
        async with ocs_process(mongo_uri, "ocs0.secondnum.local") as (proc, port):
            settings = RoClientSettings(
                peers=[
                    DiameterPeerSettings(host="ocs0.secondnum.local", port=port, priority=0),
                    DiameterPeerSettings(
                        host="ocs1.secondnum.local", port=secondary.diameter_port, priority=1
                    ),
                ],
                tx_seconds=1.0,
            )
            client = RoClient(settings)
            await client.start()
            try:
                await client.node.wait_for_peer(host="ocs1.secondnum.local", timeout=20)
                await client.node.wait_for_peer(host="ocs0.secondnum.local", timeout=20)
                s = await client.start_session(OUT)
                assert s.core.server_host == "ocs0.secondnum.local" and seen == []
                proc.send_signal(signal.SIGSTOP)
                await s.terminate(used_seconds=17)
                assert s.closed and s.session_id not in client.retrying
                [(flags, _e2e, ccr)] = seen
                assert flags & dc.FLAG_RETRANSMIT
                assert (ccr.session_id, ccr.request_type, ccr.request_number, ccr.used_seconds) == (
                    s.session_id,
                    dc.CC_REQUEST_TERMINATION,
                    1,
                    17,
                )
                rec = await asyncio.to_thread(record, s.session_id)
                assert rec.closed and rec.used_seconds == 17
                acc = await asyncio.to_thread(lambda: models.Account.objects.get(e164=DID))
                assert acc.reserved == 0 and acc.balance == BALANCE - 170

                # The primary wakes up and reads the first copy of that CCR-T from its socket; its cache
                # still holds the session open. A CCR-I behind it on the same connection (same account,
                # rated in order) tells when it was handled: it must not have been charged again.
                proc.send_signal(signal.SIGCONT)
                s2 = await client.start_session(OUT)
                assert s2.core.server_host == "ocs0.secondnum.local"
                acc = await asyncio.to_thread(lambda: models.Account.objects.get(e164=DID))
                assert acc.balance == BALANCE - 170 and acc.reserved == 3_000  # s2's reservation only
                rec = await asyncio.to_thread(record, s.session_id)
                assert rec.used_seconds == 17 and len(rec.events) == 2
                await s2.terminate(0)
                acc = await asyncio.to_thread(lambda: models.Account.objects.get(e164=DID))
                assert acc.balance == BALANCE - 170 and acc.reserved == 0
            finally:
                await client.stop()
    finally:
        await secondary.stop()


async def test_pending_ccr_t_is_sent_by_the_restarted_client(mongo_uri: str) -> None:
    """(c) The AS dies with a CCR-T pending: the restarted client sends that CCR-T (same number, the recorded
    units, T flag and End-to-End id); the OCS charges it, releases the reservation; the record goes."""
    seed()
    ocs = OcsServer(OcsSettings(listen_port=0, http_port=0), http=False)
    await ocs.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "ro_pending_child.py"),
        mongo_uri,
        os.environ["SECONDNUM_TEST_DB"],
        str(ocs.diameter_port),
        "23",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    ocs2: OcsServer | None = None
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
        assert line and line[0] == "READY", line
        session_id = line[1]
        await ocs.stop()  # the OCS goes away before the call ends
        proc.stdin.write(b"T\n")
        await proc.stdin.drain()
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
        assert line == ["PENDING"], line
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        doc = await asyncio.to_thread(open_record, session_id)
        assert doc is not None and doc.state == TERMINATING and doc.end_to_end != 0
        assert (doc.t_used, doc.request_number) == (23, 1)
        acc = await asyncio.to_thread(lambda: models.Account.objects.get(e164=DID))
        assert acc.reserved > 0  # the dead session's reservation is still held

        ocs2 = OcsServer(OcsSettings(listen_port=0, http_port=0), http=False)
        await ocs2.start()
        seen: list[tuple[int, int, Any]] = []
        recording(ocs2, seen)
        client = RoClient(RoClientSettings(peers=[DiameterPeerSettings(port=ocs2.diameter_port)]))
        await client.start()
        try:
            assert await client.recover_open_sessions() == 1
            await client.flush()
        finally:
            await client.stop()
        [(flags, e2e, ccr)] = seen
        assert flags & dc.FLAG_RETRANSMIT and e2e == doc.end_to_end
        assert (ccr.session_id, ccr.request_type, ccr.request_number, ccr.used_seconds) == (
            session_id,
            dc.CC_REQUEST_TERMINATION,
            1,
            23,
        )
        rec = await asyncio.to_thread(record, session_id)
        assert rec.closed and rec.used_seconds == 23
        assert [(e["type"], e["number"]) for e in rec.events] == [(1, 0), (3, 1)]
        acc = await asyncio.to_thread(lambda: models.Account.objects.get(e164=DID))
        assert acc.reserved == 0 and acc.balance == BALANCE - 230
        assert await asyncio.to_thread(OpenRoSession.objects.count) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if ocs2 is not None:
            await ocs2.stop()


async def test_retries_are_bounded(mongo_uri: str) -> None:
    """No OCS at all for longer than termination_retry_seconds: the CCR-T is given up, logged, counted,
    and its record deleted (the CDR remains the record of the call)."""
    seed()
    ocs = OcsServer(OcsSettings(listen_port=0, http_port=0), http=False)
    await ocs.start()
    settings = RoClientSettings(
        peers=[DiameterPeerSettings(port=ocs.diameter_port)],
        tx_seconds=1.0,
        termination_retry_seconds=1.5,
        termination_retry_initial_seconds=0.2,
        termination_retry_max_interval_seconds=0.5,
    )
    client = RoClient(settings, persist_interval=0.05)
    await client.start()
    try:
        s = await client.start_session(OUT)
        await ocs.stop()
        abandoned = metric("secondnum_ro_terminations_abandoned_total")
        await s.terminate(used_seconds=5)
        assert s.session_id in client.retrying
        end = time.monotonic() + 60
        while s.session_id in client.retrying:
            assert time.monotonic() < end
            await asyncio.sleep(0.05)
        assert metric("secondnum_ro_terminations_abandoned_total") == abandoned + 1
        await client.flush()
        assert await asyncio.to_thread(open_record, s.session_id) is None
    finally:
        await client.stop()


async def test_stop_leaves_pending_ccr_t_for_the_next_start(mongo_uri: str) -> None:
    """An orderly stop with a CCR-T pending cancels its retry, keeps its record; the next start sends it."""
    seed()
    ocs = OcsServer(OcsSettings(listen_port=0, http_port=0), http=False)
    await ocs.start()
    client = RoClient(RoClientSettings(peers=[DiameterPeerSettings(port=ocs.diameter_port)], tx_seconds=1.0))
    await client.start()
    s = await client.start_session(OUT)
    await ocs.stop()
    pending = metric("secondnum_ro_terminations_pending")
    await s.terminate(used_seconds=9)
    assert s.session_id in client.retrying
    await client.stop()
    assert client.retrying == {} and metric("secondnum_ro_terminations_pending") == pending
    doc = await asyncio.to_thread(open_record, s.session_id)
    assert doc is not None and doc.state == TERMINATING and doc.t_used == 9

    ocs = OcsServer(OcsSettings(listen_port=0, http_port=0), http=False)
    await ocs.start()
    client = RoClient(RoClientSettings(peers=[DiameterPeerSettings(port=ocs.diameter_port)]))
    await client.start()
    try:
        assert await client.recover_open_sessions() == 1
        await client.flush()
    finally:
        await client.stop()
        await ocs.stop()
    rec = await asyncio.to_thread(record, s.session_id)
    assert rec.closed and rec.used_seconds == 9 and rec.reserved == 0
    assert await asyncio.to_thread(open_record, s.session_id) is None
