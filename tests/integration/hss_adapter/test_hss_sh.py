"""Diameter Sh against the test HSS over real TCP: UDR, SNR/PNR, PUR with 5105 merge, iFC check."""

from __future__ import annotations

import asyncio
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from hss_api import Api
from hss_testpeer import REALM, TestHss

from hss_adapter import store
from hss_adapter.api.routes import ON_CHANGE_KEY
from hss_adapter.cache import ProfileCache
from hss_adapter.profile import AccountProfile, AnsweringMode
from hss_adapter.settings import HssSettings
from hss_adapter.sh import constants as sh
from hss_adapter.sh.client import ShClient, sh_application_avps, user_identity
from hss_adapter.sh.ifc import check_ifc
from hss_adapter.sh.mirror import ShMirror
from hss_adapter.sh.servicedata import to_element
from hss_adapter.sh.shdata import parse_sh_data
from secondnum.diameter import DiameterNode, codec
from secondnum.diameter import constants as dc
from secondnum.diameter.routing import PeerConfig
from secondnum.ifc import IfcSpec, build_ifc

DID = "42027777100"
SI = "secondnum"
OUR_AS = "sip:127.0.0.1:5060"
V = dc.VENDOR_3GPP

HSS_DOC = {
    "display_name": "From HSS",
    "status": "active",
    "answering_mode": "voicemail_only",
    "caller_id_presentation": "did",
    "follow_me": {"ring_order": "sequential", "targets": [{"uri": "tel:+42073723123", "ring_timeout": 15}]},
    "voicemail": {"enabled": True},
    "aliases": [{"identity": "42073723123@pstn", "allow_registration": False}],
}


def inner(doc: Mapping[str, Any], did: str = DID) -> bytes:
    return ET.tostring(to_element(did, doc))


@pytest.fixture
async def hss() -> AsyncIterator[TestHss]:
    server = TestHss()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def settings_for(hss: TestHss, **extra: Any) -> HssSettings:
    return HssSettings(
        peer_address="127.0.0.1",
        peer_port=hss.node.listen_port,
        peer_host="hss.test.local",
        destination_realm=REALM,
        origin_realm=REALM,
        service_indication=SI,
        **extra,
    )


@pytest.fixture
async def mirror_factory(mongo_uri: str) -> AsyncIterator[Callable[..., ShMirror]]:
    made: list[ShMirror] = []

    def make(hss: TestHss, **extra: Any) -> ShMirror:
        m = ShMirror(settings_for(hss, **extra))
        made.append(m)
        return m

    yield make
    for m in made:
        await m.stop()


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def initial_sync_done(hss: TestHss) -> bool:
    """The mirror's start-up sync ends with the MSISDN UDR (after SNR and applying the data)."""
    return await eventually(
        lambda: any(codec.value(m.avps, sh.AVP_DATA_REFERENCE, V) == 17 for m in hss.of(dc.CMD_USER_DATA))
    )


def profile(did: str = DID) -> AccountProfile:
    found = store.profile_of(did)
    assert found is not None, did
    return found


async def test_udr_data_references(hss: TestHss) -> None:
    user = hss.user(DID)
    hss.set_repository(DID, SI, 4, inner(HSS_DOC))
    user.public_identities = [f"tel:+{DID}", f"sip:+{DID}@ims.example.net;user=phone"]
    user.msisdn_hex = ["912470733221f3"]
    node = DiameterNode("as-sh.test.local", REALM, (dc.APP_SH,))
    node.add_peer(PeerConfig("hss.test.local", REALM, "127.0.0.1", hss.node.listen_port))
    await node.start()
    try:
        await node.wait_for_peer(host="hss.test.local", timeout=10)
        client = ShClient(node, REALM, "hss.test.local")
        repo = await client.udr(f"tel:+{DID}", sh.DataReference.REPOSITORY_DATA, service_indication=SI)
        assert repo.ok and repo.user_data is not None
        assert repo.user_data.repository_data[0].sequence_number == 4
        ids = await client.udr(
            f"tel:+{DID}", sh.DataReference.IMS_PUBLIC_IDENTITY, identity_set=sh.IdentitySet.ALL_IDENTITIES
        )
        assert ids.user_data is not None and ids.user_data.public_identities == tuple(user.public_identities)
        msisdn = await client.udr(f"tel:+{DID}", sh.DataReference.MSISDN)
        assert msisdn.user_data is not None and msisdn.user_data.msisdns == ("42073723123",)
        unknown = await client.udr("tel:+42099999999", sh.DataReference.MSISDN)
        assert unknown.result_code == sh.ERROR_USER_UNKNOWN and not unknown.ok
        absent = await client.udr(f"tel:+{DID}", sh.DataReference.REPOSITORY_DATA, service_indication="other")
        assert absent.result_code == sh.USER_DATA_NOT_AVAILABLE
        # the request on the wire: User-Data-Request with the Sh application and a User-Identity
        udr = hss.of(dc.CMD_USER_DATA)[0]
        assert udr.header.application_id == dc.APP_SH
        assert codec.value(udr.avps, dc.AVP_AUTH_SESSION_STATE) == 1
        assert codec.value(udr.avps, sh.AVP_DATA_REFERENCE, V) == 0
    finally:
        await node.stop()


async def test_hss_is_master_at_start(hss: TestHss, mirror_factory: Callable[..., ShMirror]) -> None:
    store.create_account({"did": DID, "answering_mode": "forward_only"})
    hss.set_repository(DID, SI, 5, inner(HSS_DOC))
    hss.user(DID).public_identities = [f"tel:+{DID}", "sip:john@ims.example.net"]
    hss.user(DID).msisdn_hex = ["912470733221f3"]
    mirror = mirror_factory(hss)
    await mirror.start()
    assert await eventually(lambda: profile().answering_mode is AnsweringMode.VOICEMAIL_ONLY)
    assert await eventually(lambda: "sip:john@ims.example.net" in profile().alias_keys)
    p = profile()
    assert p.display_name == "From HSS" and p.follow_me.targets[0].ring_timeout == 15
    assert {a.key: a.allow_registration for a in p.aliases} == {
        "42073723123": False,
        "sip:john@ims.example.net": True,
    }
    (snr,) = hss.of(dc.CMD_SUBSCRIBE_NOTIFICATIONS)[:1]
    assert codec.value(snr.avps, sh.AVP_SUBS_REQ_TYPE, V) == 0
    assert codec.value(snr.avps, sh.AVP_EXPIRY_TIME, V) is not None
    assert hss.user(DID).subscribers  # the mirror is subscribed
    # issue 7: the first sync also reads the iFC with our Server-Name (warning logged: the HSS has none)
    assert await eventually(
        lambda: any(codec.value(m.avps, sh.AVP_DATA_REFERENCE, V) == 13 for m in hss.of(dc.CMD_USER_DATA))
    )
    from prometheus_client import generate_latest

    exposition = generate_latest().decode()
    assert 'secondnum_sh_requests_total{command="SNR",result="2001"}' in exposition


async def test_empty_hss_is_seeded_from_mongodb(
    hss: TestHss, mirror_factory: Callable[..., ShMirror]
) -> None:
    store.create_account({"did": DID, "display_name": "Local", "voicemail": {"pin": "1234"}})
    hss.user(DID)
    mirror = mirror_factory(hss)
    await mirror.start()
    assert await eventually(lambda: SI in hss.user(DID).repository)
    seq, data = hss.user(DID).repository[SI]
    assert seq == 1 and data is not None and b"Local" in data and b"scrypt$" in data and b"1234<" not in data


async def test_pnr_answered_and_applied(
    hss: TestHss, mirror_factory: Callable[..., ShMirror], mongo_uri: str
) -> None:
    store.create_account({"did": DID})
    hss.set_repository(DID, SI, 1, inner({**HSS_DOC, "answering_mode": "forward_then_voicemail"}))
    mirror = mirror_factory(hss)
    await mirror.start()
    assert await initial_sync_done(hss)
    cache = ProfileCache.from_uri(mongo_uri, os.environ["SECONDNUM_TEST_DB"])
    await cache.start()
    try:
        hss.set_repository(DID, SI, 2, inner({**HSS_DOC, "answering_mode": "reject"}))
        assert await hss.push_repository(DID, SI) == [dc.SUCCESS]
        assert await eventually(lambda: profile().answering_mode is AnsweringMode.REJECT)
        # ... and the AS's cache follows MongoDB
        assert await cache.wait_for(
            lambda c: getattr(c.lookup_did(DID), "answering_mode", None) is AnsweringMode.REJECT, 5
        )
    finally:
        await cache.stop()


@pytest.mark.parametrize(
    "user_data",
    [
        b"<Sh-Data><RepositoryData>",
        b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><Sh-Data>&e;</Sh-Data>",
        b"<Sh-Data><RepositoryData><ServiceIndication>secondnum</ServiceIndication><SequenceNumber>9"
        b"</SequenceNumber><ServiceData><SecondNumber><AnsweringMode>sometimes</AnsweringMode></SecondNumber>"
        b"</ServiceData></RepositoryData></Sh-Data>",
        b"<Sh-Data><RepositoryData><ServiceIndication>secondnum</ServiceIndication><SequenceNumber>9"
        b"</SequenceNumber><ServiceData><SecondNumber><FollowMe><Target>sip:nouser</Target></FollowMe>"
        b"</SecondNumber></ServiceData></RepositoryData></Sh-Data>",
    ],
    ids=["truncated", "external-entity", "invalid-answering-mode", "unroutable-target"],
)
async def test_malformed_pnr_is_answered_but_not_applied(
    hss: TestHss, mirror_factory: Callable[..., ShMirror], user_data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store.create_account({"did": DID, "answering_mode": "forward_only"})
    hss.set_repository(DID, SI, 1, inner({**HSS_DOC, "answering_mode": "forward_only"}))
    mirror = mirror_factory(hss)
    await mirror.start()
    assert await initial_sync_done(hss)
    before = profile()
    with caplog.at_level(logging.ERROR, logger="hss_adapter"):
        assert await hss.push(DID, user_data) == [dc.SUCCESS]
        assert await eventually(lambda: any("sh_" in r.getMessage() for r in caplog.records))
    assert profile() == before
    # the mirror still works afterwards
    hss.set_repository(DID, SI, 2, inner({**HSS_DOC, "answering_mode": "reject"}))
    assert await hss.push_repository(DID, SI) == [dc.SUCCESS]
    assert await eventually(lambda: profile().answering_mode is AnsweringMode.REJECT)


async def test_pnr_without_user_data_is_refused(
    hss: TestHss, mirror_factory: Callable[..., ShMirror]
) -> None:
    store.create_account({"did": DID})
    hss.user(DID)
    mirror = mirror_factory(hss)
    await mirror.start()
    assert await initial_sync_done(hss)
    pnr = codec.new_request(
        dc.CMD_PUSH_NOTIFICATION,
        dc.APP_SH,
        avps=[
            codec.avp(dc.AVP_SESSION_ID, "hss.test.local;pnr;no-data"),
            *sh_application_avps(),
            user_identity(f"tel:+{DID}"),
        ],
    )
    answer = await hss.node.send_request(pnr, REALM, destination_host=mirror.settings.origin_host)
    assert codec.result_code(answer) == dc.MISSING_AVP
    assert not answer.header.command_flags & dc.FLAG_ERROR  # a permanent failure, not a protocol error


async def test_api_change_sends_pur(hss: TestHss, mirror_factory: Callable[..., ShMirror], api: Api) -> None:
    hss.user(DID)
    await api.call("POST", "/api/v1/accounts", {"did": DID})
    mirror = mirror_factory(hss)
    await mirror.start()
    assert await eventually(lambda: SI in hss.user(DID).repository)  # seeded with Sequence-Number 1
    api.app[ON_CHANGE_KEY].append(mirror.account_changed)
    status, _, _ = await api.call("PATCH", f"/api/v1/accounts/{DID}", {"display_name": "Changed"})
    assert status == 200
    seq, data = hss.user(DID).repository[SI]
    assert seq == 2 and data is not None and b"Changed" in data
    pur = hss.of(dc.CMD_PROFILE_UPDATE)[-1]
    body = parse_sh_data(codec.value(pur.avps, sh.AVP_USER_DATA, V))
    assert body.repository_data[0].sequence_number == 2


async def test_out_of_sync_pur_is_merged_and_retried(
    hss: TestHss, mirror_factory: Callable[..., ShMirror], api: Api
) -> None:
    hss.user(DID)
    await api.call("POST", "/api/v1/accounts", {"did": DID, "display_name": "Base"})
    mirror = mirror_factory(hss)
    await mirror.start()
    assert await eventually(lambda: SI in hss.user(DID).repository)
    api.app[ON_CHANGE_KEY].append(mirror.account_changed)
    # Another AS changed the display name on the HSS (Sequence-Number 1 -> 7), we were not notified.
    current = store.sync_doc_of(DID)
    assert current is not None
    hss.set_repository(DID, SI, 7, inner({**current, "display_name": "Remote"}))
    status, _, _ = await api.call("PATCH", f"/api/v1/accounts/{DID}", {"answering_mode": "voicemail_only"})
    assert status == 200
    purs = hss.of(dc.CMD_PROFILE_UPDATE)
    codes = [
        parse_sh_data(codec.value(p.avps, sh.AVP_USER_DATA, V)).repository_data[0].sequence_number
        for p in purs[-2:]
    ]
    assert codes == [2, 8]  # first try rejected with 5105, re-read (UDR) and retried with 7 + 1
    seq, data = hss.user(DID).repository[SI]
    assert seq == 8 and data is not None
    assert b"Remote" in data and b"voicemail_only" in data  # both changes survive the merge
    p = profile()
    assert p.display_name == "Remote" and p.answering_mode is AnsweringMode.VOICEMAIL_ONLY


async def test_subscription_renewed_before_expiry(
    hss: TestHss, mirror_factory: Callable[..., ShMirror]
) -> None:
    store.create_account({"did": DID})
    hss.max_expiry = 2  # the HSS grants only 2 s
    hss.set_repository(DID, SI, 1, inner(HSS_DOC))
    mirror = mirror_factory(hss)
    await mirror.start()
    # Without renewal there would be exactly one SNR (the resync period is 300 s).
    assert await eventually(lambda: len(hss.of(dc.CMD_SUBSCRIBE_NOTIFICATIONS)) >= 3, timeout=15)
    renewals = hss.of(dc.CMD_SUBSCRIBE_NOTIFICATIONS)
    assert all(codec.value(r.avps, sh.AVP_SUBS_REQ_TYPE, V) == 0 for r in renewals)


async def test_resync_after_hss_restart(hss: TestHss, mirror_factory: Callable[..., ShMirror]) -> None:
    """An HSS restart loses subscriptions (and PNRs sent meanwhile): the mirror re-subscribes and re-reads."""
    store.create_account({"did": DID})
    hss.set_repository(DID, SI, 1, inner(HSS_DOC))
    mirror = mirror_factory(hss)
    await mirror.start()
    assert await initial_sync_done(hss)
    await hss.restart()
    assert not hss.user(DID).subscribers
    # changed on the HSS while we were disconnected: no PNR reached us
    hss.set_repository(DID, SI, 2, inner({**HSS_DOC, "answering_mode": "reject"}))
    assert await eventually(lambda: bool(hss.user(DID).subscribers), timeout=40)
    assert await eventually(lambda: profile().answering_mode is AnsweringMode.REJECT, timeout=10)


def _message_only_ifc(as_uri: str) -> ET.Element:
    ifc = build_ifc(IfcSpec(as_uri))
    for method in ifc.iter("Method"):
        method.text = "MESSAGE"
    return ifc


@pytest.mark.parametrize(
    ("ifcs", "points_here"),
    [
        ([IfcSpec(OUR_AS), IfcSpec("sip:10.1.1.1:5060", priority=1)], True),
        ([IfcSpec("sip:127.0.0.1:5060;transport=udp")], True),  # same address, other spelling
        ([IfcSpec("sip:10.1.1.1:5060")], False),  # HSS has iFCs, none for us
        ([], False),
        ("message-only", False),  # points at us, but never for an INVITE
    ],
)
async def test_ifc_check(hss: TestHss, ifcs: object, points_here: bool) -> None:
    if ifcs == "message-only":
        hss.user(DID).ifcs = [_message_only_ifc(OUR_AS)]
    else:
        assert isinstance(ifcs, list)
        hss.user(DID).ifcs = [build_ifc(spec) for spec in ifcs]
    node = DiameterNode("as-sh.test.local", REALM, (dc.APP_SH,))
    node.add_peer(PeerConfig("hss.test.local", REALM, "127.0.0.1", hss.node.listen_port))
    await node.start()
    try:
        await node.wait_for_peer(host="hss.test.local", timeout=10)
        client = ShClient(node, REALM, "hss.test.local")
        # The HSS answers with the iFCs of the Server-Name we send, so ask the way the AS spells itself.
        server_name = "sip:127.0.0.1:5060;transport=udp" if "transport" in str(ifcs) else OUR_AS
        result = await check_ifc(client, f"tel:+{DID}", server_name)
        assert result.points_here is points_here, result.warnings
        assert bool(result.warnings) is not points_here
        udr = hss.of(dc.CMD_USER_DATA)[0]
        assert codec.value(udr.avps, sh.AVP_DATA_REFERENCE, V) == 13
        assert codec.value(udr.avps, sh.AVP_SERVER_NAME, V) in (server_name, server_name.encode())
        unknown = await check_ifc(client, "tel:+42099999999", OUR_AS)
        assert unknown.result_code == sh.ERROR_USER_UNKNOWN and unknown.warnings
    finally:
        await node.stop()


async def test_service_with_hss_configured(hss: TestHss, mongo_uri: str) -> None:
    """``secondnum hss`` with ``[hss] peer_address``: the API change reaches the HSS through the component."""
    import aiohttp

    from hss_adapter.service import create
    from hss_adapter.settings import DEV_TOKEN
    from secondnum.service import Config, RunContext

    hss.user(DID)
    config = Config(
        {
            "api": {"port": 0},
            "hss": {
                "peer_address": "127.0.0.1",
                "peer_port": hss.node.listen_port,
                "peer_host": "hss.test.local",
                "destination_realm": REALM,
                "origin_realm": REALM,
                "service_indication": SI,
            },
        }
    )
    svc = create(config, RunContext(mongo_uri, os.environ["SECONDNUM_TEST_DB"]))
    await svc.start()
    try:
        assert any("Diameter Sh" in e.what for e in svc.endpoints())
        headers = {"Authorization": f"Bearer {DEV_TOKEN}"}
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.post(
                f"http://127.0.0.1:{svc.port}/api/v1/accounts", json={"did": DID, "display_name": "Via API"}
            ) as r,
        ):
            assert r.status == 201
        assert await eventually(lambda: SI in hss.user(DID).repository)
        assert b"Via API" in (hss.user(DID).repository[SI][1] or b"")
    finally:
        await svc.stop()
