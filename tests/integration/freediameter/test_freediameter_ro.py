"""Interop: our Ro client and Diameter peer layer against freeDiameterd as the OCS.

freeDiameter 1.2.1 is an independent implementation that checks every message against its
dictionaries (RFC 4006 + TS 32.299 via dict_dcca_3gpp) and command ABNF before our extension sees it,
so a wrongly coded AVP comes back as 5001/5005 instead of a grant. What freeDiameter received is read
from the extension's event log (see fd_test_ocs.c), not from our own side.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import pytest
from diameter.message import Message
from diameter.message.avp import Avp
from fd_ocs import Event, FreeDiameterOcs, OcsFactory

from charging.client import ChargingRefused, ChargingRequest, RoClient, RoleOfNode
from charging.settings import DiameterPeerSettings, RoClientSettings
from secondnum.diameter import codec
from secondnum.diameter import constants as dc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

AS_HOST = "as.fd.secondnum.test"  # matches OcsOptions.client_pattern (acl_wl)
SUBSCRIBER = "42027777100"
CALL = ChargingRequest(
    subscription_e164=SUBSCRIBER,
    role_of_node=RoleOfNode.ORIGINATING,
    calling="tel:+42027777100",
    called="tel:+420273333444",
    icid="AyretyU0dm+6O2IrT5tAFrbHLso=",
)


def ro_settings(ocs: FreeDiameterOcs, **overrides: object) -> RoClientSettings:
    peer = DiameterPeerSettings(host=ocs.identity, realm=ocs.realm, address="127.0.0.1", port=ocs.port)
    base = RoClientSettings(
        origin_host=AS_HOST,
        origin_realm=ocs.realm,
        destination_realm=ocs.realm,
        peers=[peer],
        tx_seconds=10.0,  # generous: 2 shared cores
        reconnect_max_seconds=2.0,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def ro_client(ocs: FreeDiameterOcs, **overrides: object) -> AsyncIterator[RoClient]:
    """A started RoClient (no MongoDB persistence: this is about the wire) connected to `ocs`."""
    client = RoClient(ro_settings(ocs, **overrides), persist=False)
    await client.start()
    try:
        await client.node.wait_for_peer(ocs.realm, timeout=20)
        yield client
    finally:
        await client.stop()


def event_ccr(tag: str, sip_method: Avp) -> Message:
    """A minimal CCR (EVENT_REQUEST) whose IMS-Information carries Event-Type { `sip_method` }."""
    v = dc.VENDOR_3GPP
    ims = codec.grouped(
        dc.AVP_3GPP_IMS_INFORMATION,
        [
            codec.grouped(dc.AVP_3GPP_EVENT_TYPE, [sip_method], v),
            codec.avp(dc.AVP_3GPP_NODE_FUNCTIONALITY, dc.NODE_FUNCTIONALITY_AS, v),
        ],
        v,
    )
    return codec.new_request(
        dc.CMD_CREDIT_CONTROL,
        dc.APP_RO,
        [
            codec.avp(dc.AVP_SESSION_ID, f"{AS_HOST};1;{tag}"),
            codec.avp(dc.AVP_AUTH_APPLICATION_ID, dc.APP_RO),
            codec.avp(dc.AVP_SERVICE_CONTEXT_ID, dc.RO_SERVICE_CONTEXT_ID),
            codec.avp(dc.AVP_CC_REQUEST_TYPE, dc.CC_REQUEST_EVENT),
            codec.avp(dc.AVP_CC_REQUEST_NUMBER, 0),
            codec.grouped(
                dc.AVP_SUBSCRIPTION_ID,
                [
                    codec.avp(dc.AVP_SUBSCRIPTION_ID_TYPE, dc.SUBSCRIPTION_ID_E164),
                    codec.avp(dc.AVP_SUBSCRIPTION_ID_DATA, SUBSCRIBER),
                ],
            ),
            codec.grouped(dc.AVP_3GPP_SERVICE_INFORMATION, [ims], v),
        ],
    )


def peer_state(client: RoClient, host: str) -> str:
    return next(p.state for p in client.node.peers() if p.host == host)


def base_messages(events: list[Event], cmd: int, *, kind: str, request: bool) -> list[Event]:
    """Base-protocol messages freeDiameter received (`recv`) or sent (`sent`) with our peer."""
    return [
        e
        for e in events
        if e.get("event") == kind
        and e.get("cmd") == str(cmd)
        and e.get("request") == str(int(request))
        and e.get("peer") == AS_HOST
    ]


async def test_cer_cea_and_ccr_initial_update_termination(fd_ocs_factory: OcsFactory) -> None:
    ocs: FreeDiameterOcs = fd_ocs_factory(grant_seconds=77)
    async with ro_client(ocs) as client:
        # CER/CEA: freeDiameter accepted our capabilities and advertised application 4 back.
        assert peer_state(client, ocs.identity) == "Open"
        await ocs.wait_for(lambda ev: any(e["event"] == "peer_up" and e["peer"] == AS_HOST for e in ev))

        session = await client.start_session(CALL)
        assert session.granted_seconds == 77
        session.answered()
        await asyncio.sleep(1.2)  # so that the CCR-U reports at least one used second
        await session.update()
        assert session.granted_seconds == 77
        await session.terminate(used_seconds=42)
        assert session.closed

    ccrs = ocs.ccrs()
    assert [(c["type"], c["number"]) for c in ccrs] == [("1", "0"), ("2", "1"), ("3", "2")]
    for c in ccrs:
        assert c["session"] == session.session_id
        assert c["origin"] == AS_HOST
        assert (c["sub_type"], c["sub_data"]) == ("0", SUBSCRIBER)  # END_USER_E164 (RFC 4006 §8.47)
        assert c["role"] == "0"  # ORIGINATING_ROLE (TS 32.299 §7.2.201)
        assert c["service_context"] == dc.RO_SERVICE_CONTEXT_ID
        assert c["result"] == "2001"
    initial, update, termination = ccrs
    assert (initial["requested"], initial["used"]) == ("300", "-1")  # -1: no Used-Service-Unit
    assert update["requested"] == "300"
    used_u, used_t = int(update["used"]), int(termination["used"])
    assert used_u >= 1
    assert used_u + used_t == 42  # CCR-T reports what the CCR-U did not
    assert termination["requested"] == "-1"
    assert termination["term_cause"] == "1"  # DIAMETER_LOGOUT (RFC 6733 §8.15)


async def test_event_type_sip_method_is_accepted_by_freediameter(fd_ocs: FreeDiameterOcs) -> None:
    """TS 32.299 §7.2.53: Event-Type carries SIP-Method 824/10415 (python-diameter sends 393)."""
    fd_ocs.errors_expected = True  # the negative control below makes freeDiameter log the 5001
    async with ro_client(fd_ocs) as client:
        session = await client.start_session(CALL)
        await session.terminate(used_seconds=0)

        # Same check on a bare CCR from the codec, and the negative control: the unpatched encoding
        # (393 inside Event-Type) is refused by the same peer, so the 2001s are not freeDiameter
        # ignoring the AVP.
        patched = codec.avp(dc.AVP_3GPP_SIP_METHOD, "INVITE", dc.VENDOR_3GPP)
        answer = await client.node.send_request(event_ccr("824", patched), fd_ocs.realm)
        assert codec.result_code(answer) == dc.SUCCESS
        wrong = event_ccr("393", codec.raw_avp(393, b"INVITE"))
        answer = await client.node.send_request(wrong, fd_ocs.realm)
        assert codec.result_code(answer) == dc.AVP_UNSUPPORTED
        failed = codec.first(answer.avps, dc.AVP_FAILED_AVP)
        assert failed is not None
        assert [a.code for a in failed.value] == [393]

    ccrs = fd_ocs.ccrs()
    assert len(ccrs) == 3  # the wrong one never reached the application
    assert all(c["event_type"] == "yes" and c["sip_method"] == "INVITE" for c in ccrs)
    assert any(e["event"] == "parse_error" for e in fd_ocs.events())


async def test_credit_limit_refusal_4012(fd_ocs: FreeDiameterOcs) -> None:
    async with ro_client(fd_ocs) as client:
        refused = dataclasses.replace(CALL, subscription_e164=fd_ocs.options.refuse_number)
        with pytest.raises(ChargingRefused) as info:
            await client.start_session(refused)
        assert info.value.result_code == dc.CREDIT_LIMIT_REACHED
        assert info.value.sip_status == 402
        assert "cause=4012" in info.value.reason
        assert client.sessions == {}
        # The peer connection is unaffected: the next subscriber is charged normally.
        session = await client.start_session(CALL)
        assert session.granted_seconds == fd_ocs.options.grant_seconds
        await session.terminate(used_seconds=1)

    ccrs = fd_ocs.ccrs()
    assert [(c["sub_data"], c["type"], c["result"]) for c in ccrs] == [
        (fd_ocs.options.refuse_number, "1", "4012"),  # no CCR-T after a refused CCR-I (RFC 4006 §5.2)
        (SUBSCRIBER, "1", "2001"),
        (SUBSCRIBER, "3", "2001"),
    ]


async def test_our_watchdog_is_answered_by_freediameter(fd_ocs: FreeDiameterOcs) -> None:
    """RFC 3539: with Tw = 2 s we send DWRs; freeDiameter's DWAs keep the peer OPEN (not SUSPECT)."""
    async with ro_client(fd_ocs, watchdog_seconds=2.0) as client:
        events = await fd_ocs.wait_for(
            lambda ev: len(base_messages(ev, dc.CMD_DEVICE_WATCHDOG, kind="sent", request=False)) >= 3,
            timeout=30,
        )
        assert len(base_messages(events, dc.CMD_DEVICE_WATCHDOG, kind="recv", request=True)) >= 3
        assert peer_state(client, fd_ocs.identity) == "Open"
        session = await client.start_session(CALL)  # still routable after several Tw
        await session.terminate(used_seconds=0)
    assert not any(e["event"] == "peer_down" and e.get("peer") == AS_HOST for e in events)


async def test_freediameter_watchdog_is_answered_by_us(fd_ocs_factory: OcsFactory) -> None:
    """freeDiameter (Tw = 6 s, its minimum) sends DWR on an idle connection; we must answer DWA."""
    ocs: FreeDiameterOcs = fd_ocs_factory(tw_seconds=6)
    async with ro_client(ocs, watchdog_seconds=60.0) as client:
        events = await ocs.wait_for(
            lambda ev: len(base_messages(ev, dc.CMD_DEVICE_WATCHDOG, kind="recv", request=False)) >= 1,
            timeout=30,
        )
        assert len(base_messages(events, dc.CMD_DEVICE_WATCHDOG, kind="sent", request=True)) >= 1
        assert peer_state(client, ocs.identity) == "Open"


async def test_dpr_on_client_stop_after_closing_open_sessions(fd_ocs: FreeDiameterOcs) -> None:
    """RoClient.stop(): CCR-T for a session still open, then DPR (RFC 6733 §5.4) answered by DPA."""
    async with ro_client(fd_ocs) as client:
        terminating = dataclasses.replace(CALL, role_of_node=RoleOfNode.TERMINATING)
        session = await client.start_session(terminating)
        session.answered()
    # ro_client's exit ran client.stop(); freeDiameter logs its DPA just after sending it.
    events = await fd_ocs.wait_for(
        lambda ev: bool(base_messages(ev, dc.CMD_DISCONNECT_PEER, kind="sent", request=False))
    )
    kinds = [e["event"] for e in events if e["event"] in ("ccr", "dpr")]
    assert kinds == ["ccr", "ccr", "dpr"]
    ccrs = fd_ocs.ccrs()
    assert [(c["type"], c["role"]) for c in ccrs] == [("1", "1"), ("3", "1")]  # TERMINATING_ROLE
    dpr = next(e for e in events if e["event"] == "dpr")
    assert (dpr["peer"], dpr["cause"]) == (AS_HOST, str(dc.DISCONNECT_CAUSE_REBOOTING))
    daemon_log = fd_ocs.log_text()
    assert f"Peer '{AS_HOST}' sent a DPR with cause: REBOOTING" in daemon_log
    # We wait for the DPA before closing (RFC 6733 §5.4); closing at once made freeDiameter log
    # "Error while sending this message" for its DPA.
    assert "Error while sending" not in daemon_log


async def test_freediameter_shutdown_dpr_is_answered_and_peer_leaves_open(fd_ocs: FreeDiameterOcs) -> None:
    """freeDiameter's own DPR on SIGTERM: we answer DPA, the peer leaves OPEN, a CCR is refused 503."""
    async with ro_client(fd_ocs) as client:
        assert await asyncio.to_thread(fd_ocs.stop) == 0
        events = fd_ocs.events()
        assert base_messages(events, dc.CMD_DISCONNECT_PEER, kind="sent", request=True)
        assert base_messages(events, dc.CMD_DISCONNECT_PEER, kind="recv", request=False)  # our DPA
        for _ in range(200):
            if peer_state(client, fd_ocs.identity) != "Open":
                break
            await asyncio.sleep(0.05)
        assert peer_state(client, fd_ocs.identity) != "Open"
        with pytest.raises(ChargingRefused) as info:
            await client.start_session(CALL)
        assert (info.value.result_code, info.value.sip_status) == (None, 503)


async def test_abort_session_request_from_freediameter_releases_the_call(fd_ocs: FreeDiameterOcs) -> None:
    """ASR (RFC 6733 §8.5) through a real peer: ASA 2001, the call is released, then CCR-T."""
    released: list[str] = []
    async with ro_client(fd_ocs) as client:
        call = dataclasses.replace(CALL, subscription_e164=fd_ocs.options.abort_number)
        session = await client.start_session(call, on_release=lambda s, reason: released.append(reason))
        session.answered()
        await session.update()  # the extension answers, then sends the ASR
        events = await fd_ocs.wait_for(
            lambda ev: (
                any(e["event"] == "ccr" and e["type"] == "3" for e in ev)
                and any(e["event"] == "asa" for e in ev)
            )
        )
        assert released == ["abort-session"]
        assert session.closed
    asa = [e for e in events if e["event"] == "asa"]
    assert asa == [{"event": "asa", "session": session.session_id, "result": "2001"}]
    ccrs = fd_ocs.ccrs()
    assert [(c["type"], c["number"]) for c in ccrs] == [("1", "0"), ("2", "1"), ("3", "2")]
    assert ccrs[2]["used"] != "-1"  # the CCR-T reports used units


async def test_re_auth_request_from_freediameter_triggers_ccr_update(fd_ocs: FreeDiameterOcs) -> None:
    """RAR (RFC 4006 §5.5): RAA 2001, then a CCR-Update of the same session."""
    async with ro_client(fd_ocs) as client:
        call = dataclasses.replace(CALL, subscription_e164=fd_ocs.options.reauth_number)
        session = await client.start_session(call)
        session.answered()
        await session.update()
        events = await fd_ocs.wait_for(
            lambda ev: (
                any(e["event"] == "ccr" and e["number"] == "2" for e in ev)
                and any(e["event"] == "raa" for e in ev)
            )
        )
        await session.terminate(used_seconds=5)
    raa = [e for e in events if e["event"] == "raa"]
    assert raa == [{"event": "raa", "session": session.session_id, "result": "2001"}]
    ccrs = fd_ocs.ccrs()
    assert [(c["type"], c["number"]) for c in ccrs] == [("1", "0"), ("2", "1"), ("2", "2"), ("3", "3")]
    assert all(c["result"] == "2001" for c in ccrs)


async def test_cca_with_unknown_mandatory_avp_keeps_the_connection(fd_ocs: FreeDiameterOcs) -> None:
    """A CCA carrying an M-bit AVP no dictionary of ours knows (65000/10415) from a real peer.

    secondnum.diameter.codec keeps unknown M-bit AVPs in answers on purpose (5001 is for requests,
    RFC 6733 §7.1.5), so the grant is used; what matters here is that the odd answer neither breaks
    the connection nor the next call. (RFC 6733 §4.1 reads stricter; see notes-freediameter.md.)
    """
    async with ro_client(fd_ocs) as client:
        garbled = dataclasses.replace(CALL, subscription_e164=fd_ocs.options.garble_number)
        first = await client.start_session(garbled)
        assert first.granted_seconds == fd_ocs.options.grant_seconds
        await first.terminate(used_seconds=3)
        assert peer_state(client, fd_ocs.identity) == "Open"
        second = await client.start_session(CALL)
        assert second.granted_seconds == fd_ocs.options.grant_seconds
        await second.terminate(used_seconds=0)
    ccrs = fd_ocs.ccrs()
    assert [(c["sub_data"], c["type"]) for c in ccrs] == [
        (fd_ocs.options.garble_number, "1"),
        (fd_ocs.options.garble_number, "3"),
        (SUBSCRIBER, "1"),
        (SUBSCRIBER, "3"),
    ]


async def test_hung_peer_is_detected_and_a_restarted_peer_is_reconnected(fd_ocs_factory: OcsFactory) -> None:
    """RFC 3539 §3.4 against a real peer: a frozen freeDiameterd (SIGSTOP) leaves OPEN and gets no new
    requests; once it runs again, and after it restarts on the same port, calls are charged again."""
    ocs = fd_ocs_factory()
    async with ro_client(ocs, watchdog_seconds=2.0, tx_seconds=3.0) as client:
        ocs.pause()
        try:
            for _ in range(400):  # one unanswered DWR -> SUSPECT (up to ~2 Tw with jitter)
                if peer_state(client, ocs.identity) != "Open":
                    break
                await asyncio.sleep(0.05)
            assert peer_state(client, ocs.identity) != "Open"
            with pytest.raises(ChargingRefused) as info:
                await client.start_session(CALL)  # no route: not sent to the hung peer
            assert info.value.sip_status == 503
        finally:
            ocs.resume()
        await client.node.wait_for_peer(ocs.realm, timeout=30)  # back from SUSPECT on the late DWA
        session = await client.start_session(CALL)
        await session.terminate(used_seconds=1)

        port = ocs.port
        await asyncio.to_thread(ocs.stop)
        await asyncio.to_thread(ocs.start, 30.0, port)
        await client.node.wait_for_peer(ocs.realm, timeout=30)
        session = await client.start_session(CALL)
        assert session.granted_seconds == ocs.options.grant_seconds
        await session.terminate(used_seconds=2)
    assert [(c["type"], c["used"]) for c in ocs.ccrs()] == [("1", "-1"), ("3", "2")]  # the restarted daemon
