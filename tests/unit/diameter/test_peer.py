"""Sans-IO peer state machine: RFC 6733 §5.3-§5.6 and RFC 3539 watchdog, without sockets."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secondnum.diameter import codec
from secondnum.diameter import constants as dc
from secondnum.diameter.peer import (
    AnswerReceived,
    LocalIdentity,
    PeerClosed,
    PeerConnection,
    PeerOpened,
    PeerState,
    ProtocolErrorSent,
    RequestReceived,
)

AS = LocalIdentity(
    "as.example", "example", auth_applications=(dc.APP_RO,), vendor_specific_applications=(dc.APP_SH,)
)
OCS = LocalIdentity("ocs.example", "example", auth_applications=(dc.APP_RO,))


def pair(
    client: LocalIdentity = AS, server: LocalIdentity = OCS, tw: float = 30.0
) -> tuple[PeerConnection, PeerConnection, list]:
    c = PeerConnection(client, initiator=True, now=0.0, watchdog_interval=tw)
    s = PeerConnection(server, initiator=False, now=0.0, watchdog_interval=tw)
    c.connection_made(0.0)
    s.connection_made(0.0)
    events = s.receive_data(c.data_to_send(), 0.0)
    events += c.receive_data(s.data_to_send(), 0.0)
    return c, s, events


def test_capabilities_exchange_opens_both_sides() -> None:
    c, s, events = pair()
    assert c.state is PeerState.OPEN and s.state is PeerState.OPEN
    opened = [e for e in events if isinstance(e, PeerOpened)]
    assert [(e.host, e.applications) for e in opened] == [
        ("as.example", frozenset({dc.APP_RO})),
        ("ocs.example", frozenset({dc.APP_RO})),
    ]


def test_cer_advertises_sh_in_vendor_specific_application_id() -> None:
    c = PeerConnection(AS, initiator=True, now=0.0)
    c.connection_made(0.0)
    cer = codec.decode(c.data_to_send())
    vsai = codec.first(cer.avps, dc.AVP_VENDOR_SPECIFIC_APPLICATION_ID)
    assert vsai is not None
    assert codec.value(vsai.value, dc.AVP_VENDOR_ID) == dc.VENDOR_3GPP
    assert codec.value(vsai.value, dc.AVP_AUTH_APPLICATION_ID) == dc.APP_SH
    assert codec.values(cer.avps, dc.AVP_AUTH_APPLICATION_ID) == [dc.APP_RO]
    assert not cer.header.command_flags & dc.FLAG_PROXIABLE


def test_no_common_application_gets_5010_and_closes() -> None:
    sh_only = LocalIdentity(
        "hss.example", "example", auth_applications=(), vendor_specific_applications=(dc.APP_SH,)
    )
    c, s, events = pair(client=sh_only, server=OCS)
    assert s.state is PeerState.CLOSED and c.state is PeerState.CLOSED
    assert any(isinstance(e, ProtocolErrorSent) and e.result_code == dc.NO_COMMON_APPLICATION for e in events)


def test_unknown_peer_refused_with_3010() -> None:
    c = PeerConnection(AS, initiator=True, now=0.0)
    s = PeerConnection(OCS, initiator=False, now=0.0, acceptor=lambda host, realm: host == "other")
    c.connection_made(0.0)
    s.connection_made(0.0)
    s.receive_data(c.data_to_send(), 0.0)
    cea = codec.decode(s.data_to_send())
    assert codec.result_code(cea) == dc.UNKNOWN_PEER
    assert s.state is PeerState.CLOSED


def test_request_before_cer_gets_3010() -> None:
    s = PeerConnection(OCS, initiator=False, now=0.0)
    s.connection_made(0.0)
    req = codec.new_request(dc.CMD_CREDIT_CONTROL, dc.APP_RO, [codec.avp(dc.AVP_SESSION_ID, "x")])
    s.receive_data(codec.encode(req), 0.0)
    assert codec.result_code(codec.decode(s.data_to_send())) == dc.UNKNOWN_PEER


def test_application_requests_and_answers_are_events() -> None:
    c, s, _ = pair()
    req = codec.new_request(dc.CMD_CREDIT_CONTROL, dc.APP_RO, [codec.avp(dc.AVP_SESSION_ID, "x")])
    req.header.hop_by_hop_identifier = 77
    c.send(req)
    [ev] = s.receive_data(c.data_to_send(), 1.0)
    assert isinstance(ev, RequestReceived)
    s.send(codec.new_answer(ev.message, 2001))
    [ev2] = c.receive_data(s.data_to_send(), 1.0)
    assert isinstance(ev2, AnswerReceived)
    assert ev2.message.header.hop_by_hop_identifier == 77


def test_request_for_unadvertised_application_gets_3007() -> None:
    c, s, _ = pair()
    req = codec.new_request(dc.CMD_USER_DATA, dc.APP_SH, [codec.avp(dc.AVP_SESSION_ID, "x")])
    c.send(req)
    events = s.receive_data(c.data_to_send(), 1.0)
    assert isinstance(events[0], ProtocolErrorSent)
    ans = codec.decode(s.data_to_send())
    assert codec.result_code(ans) == dc.APPLICATION_UNSUPPORTED
    assert ans.header.command_flags & dc.FLAG_ERROR


def test_byte_by_byte_delivery() -> None:
    c, s, _ = pair()
    c.send(codec.new_request(dc.CMD_CREDIT_CONTROL, dc.APP_RO, [codec.avp(dc.AVP_SESSION_ID, "x")]))
    data = c.data_to_send()
    events = []
    for i in range(len(data)):
        events += s.receive_data(data[i : i + 1], 1.0)
    assert len(events) == 1 and isinstance(events[0], RequestReceived)


def test_watchdog_okay_suspect_down() -> None:
    """RFC 3539 §3.4.1: DWR after Tw; no DWA → SUSPECT (no new requests); again → down."""
    c, _s, _ = pair(tw=6.0)
    t = c.next_timer()
    assert t is not None and 4.0 <= t <= 8.0
    assert c.handle_timer(t) == []
    dwr = codec.decode(c.data_to_send())
    assert dwr.header.command_code == dc.CMD_DEVICE_WATCHDOG
    assert c.can_send
    t2 = c.next_timer()
    assert t2 is not None and t2 > t
    assert c.handle_timer(t2) == []
    assert c.state is PeerState.SUSPECT and not c.can_send
    t3 = c.next_timer()
    assert t3 is not None
    events = c.handle_timer(t3)
    assert isinstance(events[0], PeerClosed) and c.state is PeerState.CLOSED


def test_dwa_brings_suspect_peer_back() -> None:
    c, s, _ = pair(tw=6.0)
    c.handle_timer(c.next_timer() or 0)
    dwr = c.data_to_send()
    c.handle_timer(c.next_timer() or 0)
    assert c.state is PeerState.SUSPECT
    s.receive_data(dwr, 20.0)
    c.receive_data(s.data_to_send(), 20.0)
    assert c.state is PeerState.OPEN and c.can_send


def test_traffic_postpones_watchdog() -> None:
    c, s, _ = pair(tw=6.0)
    first = c.next_timer() or 0
    c.send(codec.new_request(dc.CMD_CREDIT_CONTROL, dc.APP_RO, [codec.avp(dc.AVP_SESSION_ID, "x")]))
    s.receive_data(c.data_to_send(), first - 0.5)
    s.send(codec.new_answer(codec.decode(codec.encode(codec.new_request(272, 4))), 2001))
    c.receive_data(s.data_to_send(), first - 0.5)
    assert (c.next_timer() or 0) > first


def test_dpr_dpa() -> None:
    c, s, _ = pair()
    c.disconnect(5.0)
    assert c.state is PeerState.CLOSING
    events = s.receive_data(c.data_to_send(), 5.0)
    assert isinstance(events[0], PeerClosed) and events[0].reconnect
    events = c.receive_data(s.data_to_send(), 5.0)
    assert isinstance(events[0], PeerClosed) and c.state is PeerState.CLOSED


def test_dpa_timeout_closes() -> None:
    c, _, _ = pair()
    c.disconnect(5.0)
    assert c.handle_timer(10.1)[0] == PeerClosed("no DPA")


def test_lost_framing_closes_connection() -> None:
    _c, s, _ = pair()
    bad = struct.pack("!IIIII", (1 << 24) | 21, (0x80 << 24) | 272, 4, 9, 9)
    events = s.receive_data(bad + b"\0" * 4, 1.0)
    assert [type(e) for e in events] == [ProtocolErrorSent, PeerClosed]
    assert s.state is PeerState.CLOSED
    assert codec.result_code(codec.decode(s.data_to_send())) == dc.INVALID_MESSAGE_LENGTH


@pytest.mark.parametrize("tw", [6.0, 30.0])
def test_watchdog_jitter_bounds(tw: float) -> None:
    c, _, _ = pair(tw=tw)
    for _ in range(20):
        c._reset_watchdog(0.0)
        t = c.next_timer() or 0
        assert tw - 2.0 <= t <= tw + 2.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=8))
def test_fuzz_open_peer_never_raises(chunks: list[bytes]) -> None:
    """Random bytes after the capability exchange: events and error answers, never an exception."""
    _c, s, _ = pair()
    t = 1.0
    for chunk in chunks:
        s.receive_data(chunk, t)
        s.data_to_send()
        t += 1.0
        s.handle_timer(t)
    assert s.state in (PeerState.OPEN, PeerState.SUSPECT, PeerState.CLOSED)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=20, max_size=120))
def test_fuzz_framed_garbage_keeps_framing(body: bytes) -> None:
    """Well-framed garbage never loses the stream: the next valid request still gets through."""
    _c, s, _ = pair()
    body = body + b"\0" * (-len(body) % 4)
    frame = bytearray(body)
    frame[0:4] = struct.pack("!I", (frame[0] << 24) | len(frame))
    s.receive_data(bytes(frame), 1.0)
    if s.state is PeerState.CLOSED:
        return
    req = codec.new_request(dc.CMD_CREDIT_CONTROL, dc.APP_RO, [codec.avp(dc.AVP_SESSION_ID, "x")])
    events = s.receive_data(codec.encode(req), 2.0)
    assert any(isinstance(e, RequestReceived) for e in events)
