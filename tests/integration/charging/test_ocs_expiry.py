"""(d) Reservation expiry in the built-in OCS (RFC 4006 §13 Tcc) over real Diameter, both ledgers.

A client reserves with CCR-I and vanishes: after Tcc the sweeper gives the reservation back. The late
report that may still come is charged as reported: CCR-T -> 2001, CCR-U -> 5002; anything after -> 5002.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from charging.messages import parse_cca
from charging.ocs import OcsServer, models
from charging.ocs.ledger import MemoryLedger
from charging.ocs.rating import TariffRule
from charging.settings import OcsSettings
from secondnum.diameter import codec
from secondnum.diameter import constants as dc

DID = "42027777100"
BALANCE = 10_000


def ccr(sid: str, rtype: int, number: int, *, requested: int | None = None, used: int | None = None) -> bytes:
    avps = [
        codec.avp(dc.AVP_SESSION_ID, sid),
        codec.avp(dc.AVP_ORIGIN_HOST, "raw.test"),
        codec.avp(dc.AVP_ORIGIN_REALM, "test"),
        codec.avp(dc.AVP_DESTINATION_REALM, "secondnum.local"),
        codec.avp(dc.AVP_AUTH_APPLICATION_ID, dc.APP_RO),
        codec.avp(dc.AVP_SERVICE_CONTEXT_ID, dc.RO_SERVICE_CONTEXT_ID),
        codec.avp(dc.AVP_CC_REQUEST_TYPE, rtype),
        codec.avp(dc.AVP_CC_REQUEST_NUMBER, number),
        codec.grouped(
            dc.AVP_SUBSCRIPTION_ID,
            [codec.avp(dc.AVP_SUBSCRIPTION_ID_TYPE, 0), codec.avp(dc.AVP_SUBSCRIPTION_ID_DATA, DID)],
        ),
    ]
    mscc = []
    if requested is not None:
        mscc.append(codec.grouped(dc.AVP_REQUESTED_SERVICE_UNIT, [codec.avp(dc.AVP_CC_TIME, requested)]))
    if used is not None:
        mscc.append(codec.grouped(dc.AVP_USED_SERVICE_UNIT, [codec.avp(dc.AVP_CC_TIME, used)]))
    if mscc:
        avps.append(codec.grouped(dc.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL, mscc))
    msg = codec.new_request(dc.CMD_CREDIT_CONTROL, dc.APP_RO, avps)
    msg.header.hop_by_hop_identifier = msg.header.end_to_end_identifier = 1000 * rtype + number + 1
    return codec.encode(msg)


async def exchange(port: int, data: bytes) -> tuple[int | None, int | None]:
    """One CCR on a fresh connection (the client of the previous request is gone); (Result-Code, granted)."""
    from ro_helpers import RawPeer

    peer = await RawPeer.connect(port)
    try:
        peer.send(data)
        raw = await peer.read_app()
        assert raw is not None
        cca = parse_cca(codec.decode(raw))
        return cca.result_code, cca.granted_seconds
    finally:
        peer.close()


@pytest.fixture(params=["memory", "mongo"])
async def ocs(request: pytest.FixtureRequest, mongo_uri: str) -> AsyncIterator[OcsServer]:
    settings = OcsSettings(
        listen_port=0, http_port=0, validity_seconds=60, session_timeout_seconds=1.0, expiry_sweep_seconds=0.2
    )
    if request.param == "memory":
        ledger = MemoryLedger()
        ledger.balances[DID] = BALANCE
        server = OcsServer(settings, ledger, http=False)
        server.tariffs.replace([TariffRule("", 600, 1, 0)])
    else:
        models.Account(e164=DID, balance=BALANCE).save()
        models.Tariff(prefix="", price_per_minute=600, increment_seconds=1).save()
        server = OcsServer(settings, http=False)
    await server.start()
    yield server
    await server.stop()


async def account(ocs: OcsServer) -> tuple[int, int]:
    if isinstance(ocs.ledger, MemoryLedger):
        return ocs.ledger.balances[DID], ocs.ledger.reserved[DID]
    acc = await asyncio.to_thread(lambda: models.Account.objects.get(e164=DID))
    return acc.balance, acc.reserved


def expired_total() -> float:
    return REGISTRY.get_sample_value("secondnum_ocs_reservations_expired_total") or 0.0


async def reserve_and_vanish(ocs: OcsServer, sid: str) -> None:
    """CCR-I (300 s granted = 3.000 reserved), then the client disappears; wait for the sweeper."""
    before = expired_total()
    rc, granted = await exchange(ocs.diameter_port, ccr(sid, dc.CC_REQUEST_INITIAL, 0, requested=300))
    assert (rc, granted) == (dc.SUCCESS, 300)
    assert await account(ocs) == (BALANCE, 3_000)
    end = time.monotonic() + 60
    while (await account(ocs))[1] != 0:
        assert time.monotonic() < end, "reservation never expired"
        await asyncio.sleep(0.1)
    assert await account(ocs) == (BALANCE, 0)  # given back, nothing charged
    assert expired_total() >= before + 1


async def test_expired_reservation_then_late_ccr_t_is_charged(ocs: OcsServer) -> None:
    await reserve_and_vanish(ocs, "late;t")
    late_t = ccr("late;t", dc.CC_REQUEST_TERMINATION, 1, used=30)
    assert await exchange(ocs.diameter_port, late_t) == (dc.SUCCESS, None)
    assert await account(ocs) == (BALANCE - 300, 0)  # 30 s at 10 milli/s
    # its retransmission (new connection, no T flag) is answered the same and not charged again
    assert await exchange(ocs.diameter_port, late_t) == (dc.SUCCESS, None)
    assert await account(ocs) == (BALANCE - 300, 0)
    # the books are closed: any other request for the session is unknown
    again = ccr("late;t", dc.CC_REQUEST_TERMINATION, 2, used=30)
    assert (await exchange(ocs.diameter_port, again))[0] == dc.UNKNOWN_SESSION_ID
    assert await account(ocs) == (BALANCE - 300, 0)
    if not isinstance(ocs.ledger, MemoryLedger):
        rec = await asyncio.to_thread(lambda: models.RatedRecord.objects.get(session_id="late;t"))
        assert rec.closed and rec.expired_at is not None and rec.used_seconds == 30 and rec.reserved == 0


async def test_expired_reservation_then_late_ccr_u_is_unknown_session(ocs: OcsServer) -> None:
    await reserve_and_vanish(ocs, "late;u")
    late_u = ccr("late;u", dc.CC_REQUEST_UPDATE, 1, requested=300, used=20)
    assert await exchange(ocs.diameter_port, late_u) == (dc.UNKNOWN_SESSION_ID, None)
    assert await account(ocs) == (BALANCE - 200, 0)  # the used units are charged, nothing new reserved
    late_t = ccr("late;u", dc.CC_REQUEST_TERMINATION, 2, used=5)
    assert (await exchange(ocs.diameter_port, late_t))[0] == dc.UNKNOWN_SESSION_ID
    assert await account(ocs) == (BALANCE - 200, 0)
