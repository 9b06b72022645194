"""Ro client (CTF) against the built-in OCS over loopback Diameter, balances in SecantusDB."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from diameter.message import Message

from charging.client import ChargingRefused, ChargingRequest, RoClient, RoleOfNode, RoSession
from charging.messages import parse_cca
from charging.ocs import OcsServer, models
from charging.settings import DiameterPeerSettings, OcsSettings, RoClientSettings
from secondnum.diameter import DiameterNode, PeerInfo, codec
from secondnum.diameter import constants as dc

DID = "42027777100"
OUT = ChargingRequest(DID, RoleOfNode.ORIGINATING, "tel:+42027777100", "tel:+420273333444", "icid-1")


def seed(balance: int, price: int = 600, inc: int = 60, fee: int = 0) -> None:
    models.Account(e164=DID, balance=balance).save()
    models.Tariff(prefix="420", price_per_minute=price, increment_seconds=inc, connection_fee=fee).save()


@pytest.fixture
async def ocs(mongo_uri: str) -> AsyncIterator[OcsServer]:
    server = OcsServer(OcsSettings(listen_port=0, http_port=0, grant_seconds=300, validity_seconds=3600))
    await server.start()
    yield server
    await server.stop()


def ro_settings(*ports: int, **kw: Any) -> RoClientSettings:
    peers = [
        DiameterPeerSettings(
            host=f"ocs{i}.secondnum.local" if i else "ocs.secondnum.local", port=p, priority=i
        )
        for i, p in enumerate(ports)
    ]
    return RoClientSettings(peers=peers, **kw)


@pytest.fixture
async def ro(ocs: OcsServer) -> AsyncIterator[RoClient]:
    client = RoClient(ro_settings(ocs.diameter_port))
    await client.start()
    yield client
    await client.stop()


def account() -> models.Account:
    return models.Account.objects.get(e164=DID)


async def test_grant_update_terminate_charges_used_time(ocs: OcsServer, ro: RoClient) -> None:
    seed(10_000, price=600, inc=1)
    await ocs.reload_tariffs()
    s = await ro.start_session(OUT)
    assert s.granted_seconds == 300 and not s.final_unit
    acc = await asyncio.to_thread(account)
    assert (acc.balance, acc.reserved) == (10_000, 3_000)
    s.answered()
    await asyncio.sleep(1.1)
    await s.update()
    await asyncio.sleep(1.0)
    await s.terminate()
    acc = await asyncio.to_thread(account)
    rec = await asyncio.to_thread(lambda: models.RatedRecord.objects.get(session_id=s.session_id))
    assert rec.closed and rec.used_seconds >= 2 and rec.charged == 10 * rec.used_seconds
    assert acc.reserved == 0 and acc.balance == 10_000 - rec.charged
    assert [e["type"] for e in rec.events] == [1, 2, 3]
    assert await asyncio.to_thread(models.RatedRecord.objects.count) == 1
    from charging.store import OpenRoSession

    await ro.flush()  # the record's delete is batched (charging.store.OpenSessionWriter)
    assert await asyncio.to_thread(OpenRoSession.objects.count) == 0


@pytest.mark.parametrize(
    ("balance", "subscriber", "rc", "sip"),
    [(0, DID, dc.CREDIT_LIMIT_REACHED, 402), (10_000, "42099999999", dc.USER_UNKNOWN, 404)],
)
async def test_refusals(
    ocs: OcsServer, ro: RoClient, balance: int, subscriber: str, rc: int, sip: int
) -> None:
    seed(balance)
    await ocs.reload_tariffs()
    req = ChargingRequest(subscriber, RoleOfNode.ORIGINATING, "tel:+1", "tel:+420273333444")
    with pytest.raises(ChargingRefused) as ei:
        await ro.start_session(req)
    assert (ei.value.result_code, ei.value.sip_status) == (rc, sip)
    assert f"cause={rc}" in ei.value.reason


async def test_no_tariff_is_5031(ocs: OcsServer, ro: RoClient) -> None:
    seed(10_000)
    await ocs.reload_tariffs()
    with pytest.raises(ChargingRefused) as ei:
        await ro.start_session(ChargingRequest(DID, RoleOfNode.ORIGINATING, "tel:+1", "tel:+15551234"))
    assert ei.value.result_code == dc.RATING_FAILED


async def test_final_unit_releases_the_call(ocs: OcsServer, ro: RoClient) -> None:
    seed(30, price=600, inc=1)  # 10 milli/s: 3 s affordable
    await ocs.reload_tariffs()
    released: list[str] = []
    done = asyncio.Event()

    def on_release(session: RoSession, reason: str) -> None:
        released.append(reason)
        done.set()

    s = await ro.start_session(OUT, on_release)
    assert s.final_unit and s.granted_seconds == 3
    s.answered()
    await asyncio.wait_for(done.wait(), 15)
    assert released == ["final-unit"]
    for _ in range(100):
        if s.closed:
            break
        await asyncio.sleep(0.05)
    acc = await asyncio.to_thread(account)
    assert acc.reserved == 0 and acc.balance == 0


async def _server_request(ocs: OcsServer, session: RoSession, command: int) -> Message:
    req = codec.new_request(
        command,
        dc.APP_RO,
        [codec.avp(dc.AVP_SESSION_ID, session.session_id), codec.avp(dc.AVP_AUTH_APPLICATION_ID, dc.APP_RO)],
    )
    if command == dc.CMD_RE_AUTH:
        req.avps.append(codec.avp(dc.AVP_RE_AUTH_REQUEST_TYPE, 0))
    return await ocs.node.send_request(req, "secondnum.local", destination_host="as.secondnum.local")


async def test_rar_triggers_update(ocs: OcsServer, ro: RoClient) -> None:
    seed(10_000)
    await ocs.reload_tariffs()
    s = await ro.start_session(OUT)
    s.answered()
    ans = await _server_request(ocs, s, dc.CMD_RE_AUTH)
    assert codec.result_code(ans) == dc.SUCCESS
    for _ in range(200):
        rec = await asyncio.to_thread(lambda: models.RatedRecord.objects.get(session_id=s.session_id))
        if rec.last_request_number == 1:
            break
        await asyncio.sleep(0.05)
    assert rec.last_request_number == 1 and rec.events[-1]["type"] == dc.CC_REQUEST_UPDATE
    await s.terminate()


async def test_asr_releases_and_terminates(ocs: OcsServer, ro: RoClient) -> None:
    seed(10_000)
    await ocs.reload_tariffs()
    reasons: list[str] = []
    s = await ro.start_session(OUT, lambda sess, why: reasons.append(why))
    s.answered()
    ans = await _server_request(ocs, s, dc.CMD_ABORT_SESSION)
    assert codec.result_code(ans) == dc.SUCCESS
    for _ in range(200):
        if s.closed:
            break
        await asyncio.sleep(0.05)
    assert reasons == ["abort-session"] and s.closed
    rec = await asyncio.to_thread(lambda: models.RatedRecord.objects.get(session_id=s.session_id))
    assert rec.closed
    unknown = await _server_request(ocs, s, dc.CMD_ABORT_SESSION)
    assert codec.result_code(unknown) == dc.UNKNOWN_SESSION_ID


# ---------------------------------------------------------------------- failure handling


async def fake_ocs(host: str, behaviour: str) -> DiameterNode:
    node = DiameterNode(host, "secondnum.local", (dc.APP_RO,))

    async def on_ccr(req: Message, peer: PeerInfo) -> Message:
        if behaviour == "silent":
            await asyncio.Event().wait()
        return codec.new_answer(req, dc.UNABLE_TO_DELIVER, error=True)

    node.register_handler(dc.APP_RO, dc.CMD_CREDIT_CONTROL, on_ccr)
    await node.start(listen=("127.0.0.1", 0))
    return node


@pytest.mark.parametrize("ccfh", ["TERMINATE", "CONTINUE", "RETRY_AND_TERMINATE"])
async def test_silent_ocs_ccfh(mongo_uri: str, ccfh: str) -> None:
    silent = await fake_ocs("ocs.secondnum.local", "silent")
    client = RoClient(ro_settings(silent.listen_port, tx_seconds=0.5, ccfh=ccfh))
    await client.start()
    try:
        if ccfh == "CONTINUE":
            s = await client.start_session(OUT)
            assert s.unmetered
            await s.terminate()
        else:
            with pytest.raises(ChargingRefused) as ei:
                await client.start_session(OUT)
            assert ei.value.sip_status == 503
    finally:
        await client.stop()
        await silent.stop()


@pytest.mark.parametrize("behaviour", ["3002", "silent"])
async def test_alternate_ocs(ocs: OcsServer, behaviour: str) -> None:
    """RFC 4006 §5.7: 3002/3004 or Tx expiry → the alternate OCS (with RETRY_AND_TERMINATE)."""
    seed(10_000)
    await ocs.reload_tariffs()
    primary = await fake_ocs("ocs0.secondnum.local", behaviour)
    settings = RoClientSettings(
        peers=[
            DiameterPeerSettings(host="ocs0.secondnum.local", port=primary.listen_port, priority=0),
            DiameterPeerSettings(host="ocs.secondnum.local", port=ocs.diameter_port, priority=1),
        ],
        tx_seconds=0.5,
        ccfh="RETRY_AND_TERMINATE",
    )
    client = RoClient(settings)
    await client.start()
    try:
        await client.node.wait_for_peer(host="ocs.secondnum.local", timeout=10)
        s = await client.start_session(OUT)
        assert s.granted_seconds == 300 and s.core.server_host == "ocs.secondnum.local"
        await s.terminate()
    finally:
        await client.stop()
        await primary.stop()


# ---------------------------------------------------------------------- REST


async def test_rest_api(ocs: OcsServer, ro: RoClient) -> None:
    base = f"http://127.0.0.1:{ocs.http_port}/api/v1"
    async with aiohttp.ClientSession() as http:
        r = await http.put(f"{base}/tariffs/420", json={"price_per_minute": "0.60", "increment_seconds": 1})
        assert r.status == 200
        r = await http.put(
            f"{base}/tariffs/default", json={"price_per_minute": "1.20", "connection_fee": "0.10"}
        )
        assert r.status == 200
        r = await http.get(f"{base}/tariffs")
        assert {t["prefix"] for t in (await r.json())["tariffs"]} == {"", "420"}
        r = await http.post(f"{base}/accounts/+{DID}/topup", json={"amount": "5.00"})
        assert (await r.json())["balance"] == "5.000"
        r = await http.get(f"{base}/accounts/{DID}")
        assert (await r.json())["reserved"] == "0.000"

        s = await ro.start_session(OUT)  # the tariff cache was reloaded by the PUT
        assert s.granted_seconds == 300
        r = await http.get(f"{base}/accounts/{DID}")
        assert (await r.json())["reserved"] == "3.000"
        await s.terminate(used_seconds=10)
        r = await http.get(f"{base}/accounts/{DID}/records")
        [rec] = (await r.json())["records"]
        assert (rec["used_seconds"], rec["charged"], rec["closed"]) == (10, "0.100", True)
        r = await http.get(f"{base}/accounts/{DID}")
        assert (await r.json())["balance"] == "4.900"

        for method, url, body in [
            ("post", f"{base}/accounts/{DID}/topup", {"amount": "-1"}),
            ("post", f"{base}/accounts/{DID}/topup", {"amount": "abc"}),
            ("post", f"{base}/accounts/{DID}/topup", ["x"]),
            ("post", f"{base}/accounts/12ab/topup", {"amount": "1"}),
            ("put", f"{base}/tariffs/42x", {"price_per_minute": "1"}),
            ("put", f"{base}/tariffs/44", {"price_per_minute": "1", "increment_seconds": 0}),
        ]:
            r = await getattr(http, method)(url, json=body)
            assert r.status == 400, (url, body)
            assert r.content_type == "application/problem+json"
        r = await http.get(f"{base}/accounts/999999")
        assert r.status == 404
        r = await http.delete(f"{base}/tariffs/420")
        assert r.status == 204
        r = await http.delete(f"{base}/tariffs/420")
        assert r.status == 404


async def test_health_and_metrics(ocs: OcsServer, ro: RoClient) -> None:
    seed(10_000)
    await ocs.reload_tariffs()
    s = await ro.start_session(OUT)
    await s.terminate()
    async with aiohttp.ClientSession() as http:
        r = await http.get(f"http://127.0.0.1:{ocs.http_port}/health/ready")
        assert r.status == 200, await r.text()
        text = await (await http.get(f"http://127.0.0.1:{ocs.http_port}/metrics")).text()
        assert 'secondnum_ocs_ccr_total{result="2001",type="initial"}' in text
        assert 'secondnum_ro_ccr_total{result="2001",type="termination"}' in text


async def test_stop_closes_open_sessions(ocs: OcsServer) -> None:
    seed(10_000, inc=1)
    await ocs.reload_tariffs()
    client = RoClient(ro_settings(ocs.diameter_port))
    await client.start()
    s = await client.start_session(OUT)
    s.answered()
    await asyncio.sleep(1.1)
    await client.stop()
    rec = await asyncio.to_thread(lambda: models.RatedRecord.objects.get(session_id=s.session_id))
    assert rec.closed and rec.used_seconds >= 1
    assert (await asyncio.to_thread(account)).reserved == 0


async def test_quota_rerequested_before_it_runs_out(mongo_uri: str) -> None:
    """Grant 10 s, re-request 8 s before the end: a CCR-U ~2 s after answer, with the used units."""
    seed(10_000, inc=1)
    server = OcsServer(OcsSettings(listen_port=0, http_port=0, grant_seconds=10), http=False)
    await server.start()
    client = RoClient(ro_settings(server.diameter_port, quota_request_seconds=8.0))
    await client.start()
    try:
        s = await client.start_session(OUT)
        assert s.granted_seconds == 10
        s.answered()
        rec = None
        for _ in range(200):
            rec = await asyncio.to_thread(lambda: models.RatedRecord.objects.get(session_id=s.session_id))
            if rec.last_request_number >= 1:
                break
            await asyncio.sleep(0.05)
        assert rec is not None and rec.last_request_number >= 1
        update = rec.events[1]
        assert update["type"] == dc.CC_REQUEST_UPDATE and 1 <= update["used"] <= 5
        await s.terminate()
    finally:
        await client.stop()
        await server.stop()


def _ccr(rtype: int, *, subscription: bool = True, sid: str = "raw;1") -> bytes:
    avps = [
        codec.avp(dc.AVP_SESSION_ID, sid),
        codec.avp(dc.AVP_ORIGIN_HOST, "raw.test"),
        codec.avp(dc.AVP_ORIGIN_REALM, "test"),
        codec.avp(dc.AVP_DESTINATION_REALM, "secondnum.local"),
        codec.avp(dc.AVP_AUTH_APPLICATION_ID, dc.APP_RO),
        codec.avp(dc.AVP_SERVICE_CONTEXT_ID, dc.RO_SERVICE_CONTEXT_ID),
        codec.avp(dc.AVP_CC_REQUEST_TYPE, rtype),
        codec.avp(dc.AVP_CC_REQUEST_NUMBER, 0),
    ]
    if subscription:
        avps.append(
            codec.grouped(
                dc.AVP_SUBSCRIPTION_ID,
                [codec.avp(dc.AVP_SUBSCRIPTION_ID_TYPE, 0), codec.avp(dc.AVP_SUBSCRIPTION_ID_DATA, DID)],
            )
        )
    msg = codec.new_request(dc.CMD_CREDIT_CONTROL, dc.APP_RO, avps)
    msg.header.hop_by_hop_identifier = msg.header.end_to_end_identifier = rtype
    return codec.encode(msg)


@pytest.mark.parametrize(
    ("data", "rc"),
    [
        (_ccr(1, subscription=False), dc.MISSING_AVP),
        (_ccr(4), dc.INVALID_AVP_VALUE),
        (_ccr(2, sid="raw;unknown"), dc.UNKNOWN_SESSION_ID),
    ],
)
async def test_ocs_rejects_bad_ccrs_and_keeps_serving(ocs: OcsServer, data: bytes, rc: int) -> None:
    from ro_helpers import RawPeer

    seed(10_000)
    models.Tariff(prefix="", price_per_minute=600).save()  # these CCRs carry no called party
    await ocs.reload_tariffs()
    peer = await RawPeer.connect(ocs.diameter_port)
    try:
        peer.send(data)
        raw = await peer.read_app()
        assert raw is not None
        assert codec.result_code(codec.decode(raw)) == rc
        peer.send(_ccr(1, sid="raw;good"))
        ok = await peer.read_app()
        assert ok is not None and codec.result_code(codec.decode(ok)) == dc.SUCCESS
    finally:
        peer.close()


async def test_ocs_duplicate_ccr_is_idempotent(ocs: OcsServer) -> None:
    """The same CCR-I twice (new E2E id, no T flag: e.g. resent after an OCS restart) reserves once."""
    from ro_helpers import RawPeer

    seed(10_000)
    models.Tariff(prefix="", price_per_minute=600).save()
    await ocs.reload_tariffs()
    peer = await RawPeer.connect(ocs.diameter_port)
    try:
        answers = []
        for e2e in (101, 102):
            data = bytearray(_ccr(1, sid="raw;dup"))
            data[16:20] = e2e.to_bytes(4, "big")
            peer.send(bytes(data))
            raw = await peer.read_app()
            assert raw is not None
            answers.append(parse_cca(codec.decode(raw)))
        assert answers[0] == answers[1] and answers[0].granted_seconds == 300
        acc = await asyncio.to_thread(account)
        assert acc.reserved == 3_000
    finally:
        peer.close()
