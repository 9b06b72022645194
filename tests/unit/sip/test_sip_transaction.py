"""Transaction layer (RFC 3261 §17, RFC 6026) driven by a fake clock: retransmissions, timers, CANCEL, ACK."""

from __future__ import annotations

import pytest

from secondnum.sip import (
    AckReceived,
    AckTimeout,
    CancelReceived,
    ClientInviteTransaction,
    RequestReceived,
    ResponseReceived,
    SipRequest,
    SipResponse,
    TimerConfig,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TxState,
    parse_message,
)
from secondnum.sip.transaction import Event, Outgoing

T1 = 0.5
UAC = ("10.0.0.1", 5060)
UAS = ("10.0.0.2", 5060)


def invite(branch: str = "z9hG4bKinv1", method: str = "INVITE", cseq: int = 1,
           to_tag: str = "") -> SipRequest:
    to = "<sip:bob@10.0.0.2>" + (f";tag={to_tag}" if to_tag else "")
    raw = (
        f"{method} sip:bob@10.0.0.2 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.1:5060;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:alice@10.0.0.1>;tag=a1\r\n"
        f"To: {to}\r\nCall-ID: call-1@10.0.0.1\r\nCSeq: {cseq} {method}\r\n"
        "Contact: <sip:alice@10.0.0.1>\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(raw)
    assert isinstance(msg, SipRequest)
    return msg


def response_to(req: SipRequest, status: int, to_tag: str | None = "b1") -> SipResponse:
    # Responses are re-parsed from bytes so the test goes through the wire form.
    resp = req.create_response(status, to_tag=to_tag)
    msg = parse_message(resp.encode())
    assert isinstance(msg, SipResponse)
    return msg


def sent(layer: TransactionLayer) -> list[str]:
    """Start lines of everything the layer wants sent."""
    return [o.data.split(b"\r\n", 1)[0].decode() for o in layer.take_outgoing()]


def kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events if not isinstance(e, TransactionTerminated)]


def run_until(layer: TransactionLayer, until: float) -> tuple[list[float], list[Event]]:
    """Fire timers up to ``until``; returns the times at which something was sent and the events."""
    times: list[float] = []
    events: list[Event] = []
    while True:
        d = layer.next_deadline()
        if d is None or d > until:
            return times, events
        events += layer.on_timer(d)
        out: list[Outgoing] = layer.take_outgoing()
        times += [round(d, 3)] * len(out)


# --- client INVITE ------------------------------------------------------------------------------------

def test_invite_client_retransmits_with_timer_a_and_times_out_with_timer_b() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1))
    layer.send_request(invite(), UAS, "udp", now=0.0)
    assert sent(layer) == ["INVITE sip:bob@10.0.0.2 SIP/2.0"]
    times, events = run_until(layer, 100.0)
    # A doubles without cap: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 ; B fires at 64*T1 = 32 s.
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert kinds(events) == ["TransactionTimeout"]
    timeout = events[0]
    assert isinstance(timeout, TransactionTimeout) and timeout.timer == "B"
    assert layer.client_transactions == 0


def test_invite_client_over_tcp_has_no_retransmissions() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1))
    layer.send_request(invite(), UAS, "tcp", now=0.0)
    layer.take_outgoing()
    times, events = run_until(layer, 100.0)
    assert times == []
    assert kinds(events) == ["TransactionTimeout"]


def test_invite_client_provisional_stops_retransmission_and_non2xx_is_acked_inside() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1))
    req = invite()
    tx = layer.send_request(req, UAS, "udp", now=0.0)
    layer.take_outgoing()
    ev = layer.receive(response_to(req, 180), UAS, "udp", now=0.2)
    assert kinds(ev) == ["ResponseReceived"] and tx.state is TxState.PROCEEDING
    assert run_until(layer, 20.0)[0] == []  # no Timer A in Proceeding, no Timer B either
    final = response_to(req, 486)
    ev = layer.receive(final, UAS, "udp", now=21.0)
    assert kinds(ev) == ["ResponseReceived"]
    out = layer.take_outgoing()
    assert len(out) == 1
    ack = parse_message(out[0].data)
    assert isinstance(ack, SipRequest) and ack.method == "ACK"
    assert ack.top_via.branch == "z9hG4bKinv1"  # same branch as the INVITE (§17.1.1.3)
    assert ack.cseq.seq == 1 and ack.cseq.method == "ACK" and ack.to.tag == "b1"
    # Retransmitted final response: the same ACK again, nothing to the TU.
    assert layer.receive(final, UAS, "udp", now=22.0) == []
    assert [o.data for o in layer.take_outgoing()] == [out[0].data]
    # Timer D (32 s) ends the transaction.
    _, events = run_until(layer, 21.0 + 32.0)
    assert tx.terminated and kinds(events) == []


def test_invite_client_2xx_enters_accepted_and_passes_retransmissions_to_tu() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1))
    req = invite()
    tx = layer.send_request(req, UAS, "udp", now=0.0)
    ok = response_to(req, 200)
    ev = layer.receive(ok, UAS, "udp", now=0.1)
    assert isinstance(ev[0], ResponseReceived) and not ev[0].retransmission
    assert tx.state is TxState.ACCEPTED
    ev = layer.receive(ok, UAS, "udp", now=1.0)
    assert isinstance(ev[0], ResponseReceived) and ev[0].retransmission
    layer.take_outgoing()
    run_until(layer, 0.1 + 64 * T1)  # Timer M
    assert tx.terminated


def test_cancel_timer_ends_invite_without_final_response() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1))
    req = invite()
    tx = layer.send_request(req, UAS, "udp", now=0.0)
    layer.receive(response_to(req, 180), UAS, "udp", now=0.1)
    assert isinstance(tx, ClientInviteTransaction)
    layer.cancel_started(tx, now=1.0)
    _, events = run_until(layer, 1.0 + 64 * T1)
    assert kinds(events) == ["TransactionTimeout"]
    assert isinstance(events[0], TransactionTimeout) and events[0].timer == "cancel"


# --- client non-INVITE --------------------------------------------------------------------------------

def test_non_invite_client_timer_e_caps_at_t2_and_timer_f_times_out() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1, t2=4.0))
    layer.send_request(invite(method="OPTIONS"), UAS, "udp", now=0.0)
    layer.take_outgoing()
    times, events = run_until(layer, 100.0)
    # 0.5, 1.5, 3.5, 7.5, then every T2=4: 11.5 ... 31.5; F at 32.
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert kinds(events) == ["TransactionTimeout"]
    assert isinstance(events[0], TransactionTimeout) and events[0].timer == "F"


def test_non_invite_client_proceeding_retransmits_every_t2_and_timer_k() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1, t2=4.0, t4=5.0))
    req = invite(method="BYE", to_tag="b1")
    tx = layer.send_request(req, UAS, "udp", now=0.0)
    layer.take_outgoing()
    layer.receive(response_to(req, 100, None), UAS, "udp", now=0.1)
    times, _ = run_until(layer, 10.0)
    assert times == [0.5, 4.5, 8.5]  # first E still at T1, then T2 in Proceeding
    ev = layer.receive(response_to(req, 200), UAS, "udp", now=10.0)
    assert kinds(ev) == ["ResponseReceived"] and tx.state is TxState.COMPLETED
    assert layer.receive(response_to(req, 200), UAS, "udp", now=11.0) == []  # absorbed
    run_until(layer, 15.0)  # Timer K = T4
    assert tx.terminated


# --- server INVITE ------------------------------------------------------------------------------------

def test_invite_server_sends_trying_absorbs_retransmissions_and_resends_last_response() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1, trying=0.1))
    req = invite()
    ev = layer.receive(req, UAC, "udp", now=0.0)
    assert kinds(ev) == ["RequestReceived"]
    assert sent(layer) == []  # the TU may answer within 100 ms: no 100 yet
    assert run_until(layer, 0.2) == ([0.1], [])  # then 100 Trying (§17.2.1)
    assert layer.receive(invite(), UAC, "udp", now=0.5) == []  # retransmission: not a new request
    assert sent(layer) == ["SIP/2.0 100 Trying"]
    assert isinstance(ev[0], RequestReceived)
    tx = ev[0].tx
    layer.send_response(req.create_response(180, to_tag="b1"), now=0.6)
    assert sent(layer) == ["SIP/2.0 180 Ringing"]
    layer.receive(invite(), UAC, "udp", now=1.0)
    assert sent(layer) == ["SIP/2.0 180 Ringing"]
    assert tx.state is TxState.PROCEEDING


def test_invite_server_non2xx_timer_g_until_ack_then_timer_i() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1, t2=4.0, t4=5.0))
    req = invite()
    ev = layer.receive(req, UAC, "udp", now=0.0)
    assert isinstance(ev[0], RequestReceived)
    tx = ev[0].tx
    layer.take_outgoing()
    layer.send_response(req.create_response(486, to_tag="b1"), now=1.0)
    layer.take_outgoing()
    times, _ = run_until(layer, 9.0)
    assert times == [1.5, 2.5, 4.5, 8.5]  # G: T1, 2T1, 4T1, then capped at T2
    ack = invite(method="ACK", to_tag="b1")
    ack.set_header("CSeq", "1 ACK")
    assert layer.receive(ack, UAC, "udp", now=9.0) == []  # absorbed, not passed to the TU
    assert tx.state is TxState.CONFIRMED
    assert run_until(layer, 13.9)[0] == []
    run_until(layer, 14.0)  # Timer I = T4
    assert tx.terminated


def test_early_invite_retransmission_gets_100_at_once() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1, trying=0.15))
    layer.receive(invite(), UAC, "udp", now=0.0)
    layer.receive(invite(), UAC, "udp", now=0.05)
    assert sent(layer) == ["SIP/2.0 100 Trying"]
    assert run_until(layer, 1.0)[0] == []  # the trying timer does not send a second one


def test_invite_server_timer_h_reports_missing_ack() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1))
    req = invite()
    layer.receive(req, UAC, "udp", now=0.0)
    layer.send_response(req.create_response(404, to_tag="b1"), now=0.0)
    layer.take_outgoing()
    _, events = run_until(layer, 64 * T1)
    assert kinds(events) == ["TransactionTimeout"]
    assert isinstance(events[0], TransactionTimeout) and events[0].timer == "H"


def test_2xx_retransmitted_by_uas_core_until_ack() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1, t2=4.0))
    req = invite()
    layer.receive(req, UAC, "udp", now=0.0)
    layer.send_response(req.create_response(200, to_tag="b1"), now=0.0)
    assert sent(layer) == ["SIP/2.0 200 OK"]  # answered at once: no 100 Trying needed
    times, _ = run_until(layer, 5.0)
    assert times == [0.5, 1.5, 3.5]
    ack = invite(branch="z9hG4bKack2", method="ACK", to_tag="b1")  # ACK for 2xx: new branch
    ack.set_header("CSeq", "1 ACK")
    ev = layer.receive(ack, UAC, "udp", now=5.0)
    assert kinds(ev) == ["AckReceived"]
    assert isinstance(ev[0], AckReceived) and ev[0].tx is not None
    assert layer.receive(ack, UAC, "udp", now=6.0) == []  # duplicate ACK absorbed
    # A retransmitted INVITE in Accepted is absorbed (RFC 6026 §7.1).
    layer.receive(invite(), UAC, "udp", now=7.0)
    assert run_until(layer, 31.0)[0] == []  # retransmission stopped
    assert layer.server_transactions == 1
    run_until(layer, 32.0)  # Timer L
    assert layer.server_transactions == 0


def test_2xx_without_ack_gives_ack_timeout_after_64_t1() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1, t2=4.0))
    req = invite()
    layer.receive(req, UAC, "udp", now=0.0)
    layer.send_response(req.create_response(200, to_tag="b1"), now=0.0)
    layer.take_outgoing()
    times, events = run_until(layer, 64 * T1)
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert kinds(events) == ["AckTimeout"]
    assert isinstance(events[0], AckTimeout)


def test_2xx_retransmitted_over_tcp_too() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1))
    req = invite()
    layer.receive(req, UAC, "tcp", now=0.0)
    layer.send_response(req.create_response(200, to_tag="b1"), now=0.0)
    layer.take_outgoing()
    assert run_until(layer, 2.0)[0] == [0.5, 1.5]


def test_ack_without_matching_transaction_is_passed_up() -> None:
    layer = TransactionLayer()
    ack = invite(branch="z9hG4bKlone", method="ACK", to_tag="b9")
    ack.set_header("CSeq", "7 ACK")
    ev = layer.receive(ack, UAC, "udp", now=0.0)
    assert kinds(ev) == ["AckReceived"] and isinstance(ev[0], AckReceived) and ev[0].tx is None


# --- CANCEL (§9.2) -------------------------------------------------------------------------------------

def test_cancel_matches_invite_answers_200_and_reports() -> None:
    layer = TransactionLayer()
    req = invite()
    ev = layer.receive(req, UAC, "udp", now=0.0)
    layer.send_response(req.create_response(180, to_tag="b1"), now=0.0)
    layer.take_outgoing()
    cancel = invite(method="CANCEL")  # same branch as the INVITE
    ev = layer.receive(cancel, UAC, "udp", now=1.0)
    assert kinds(ev) == ["CancelReceived"]
    assert isinstance(ev[0], CancelReceived) and ev[0].tx.request is req
    out = sent(layer)
    assert out == ["SIP/2.0 200 OK"]
    # A retransmitted CANCEL gets the same 200 again and no new event.
    assert layer.receive(invite(method="CANCEL"), UAC, "udp", now=1.5) == []
    assert sent(layer) == ["SIP/2.0 200 OK"]


def test_cancel_without_invite_gets_481_and_after_final_gets_200_without_event() -> None:
    layer = TransactionLayer()
    assert layer.receive(invite(branch="z9hG4bKnone", method="CANCEL"), UAC, "udp", now=0.0) == []
    assert sent(layer) == ["SIP/2.0 481 Call/Transaction Does Not Exist"]
    req = invite()
    layer.receive(req, UAC, "udp", now=0.0)
    layer.send_response(req.create_response(200, to_tag="b1"), now=0.0)
    layer.take_outgoing()
    assert kinds(layer.receive(invite(method="CANCEL"), UAC, "udp", now=0.1)) == []
    assert sent(layer) == ["SIP/2.0 200 OK"]


# --- non-INVITE server and response routing -------------------------------------------------------------

def test_non_invite_server_absorbs_and_timer_j() -> None:
    layer = TransactionLayer(TimerConfig(t1=T1))
    bye = invite(method="BYE", cseq=2, to_tag="b1")
    ev = layer.receive(bye, UAC, "udp", now=0.0)
    assert kinds(ev) == ["RequestReceived"]
    assert layer.receive(bye, UAC, "udp", now=0.1) == []
    assert sent(layer) == []  # Trying state: retransmission absorbed silently
    layer.send_response(bye.create_response(200), now=0.2)
    assert sent(layer) == ["SIP/2.0 200 OK"]
    layer.receive(bye, UAC, "udp", now=0.3)
    assert sent(layer) == ["SIP/2.0 200 OK"]
    run_until(layer, 0.2 + 64 * T1)
    assert layer.server_transactions == 0


@pytest.mark.parametrize(
    ("via", "source", "transport", "dest", "received"),
    [
        # rport requested: reply to the packet source (RFC 3581 §4), received added as the host differs.
        ("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKr1;rport", ("192.0.2.9", 40000), "udp",
         ("192.0.2.9", 40000), "192.0.2.9"),
        # no rport: received IP, Via port (§18.2.2).
        ("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKr2", ("192.0.2.9", 40000), "udp", ("192.0.2.9", 5070),
         "192.0.2.9"),
        # no port in Via: 5060.
        ("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKr3", ("10.0.0.1", 40000), "udp", ("10.0.0.1", 5060), None),
        # stream: back over the connection (its remote address).
        ("SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKr4", ("10.0.0.1", 41000), "tcp", ("10.0.0.1", 41000), None),
    ],
)
def test_response_destination_per_18_2_2(via: str, source: tuple[str, int], transport: str,
                                          dest: tuple[str, int], received: str | None) -> None:
    layer = TransactionLayer()
    req = invite(method="OPTIONS")
    req.set_header("Via", via)
    ev = layer.receive(req, source, transport, now=0.0)
    assert isinstance(ev[0], RequestReceived)
    assert ev[0].tx.dest == dest
    layer.send_response(req.create_response(200), now=0.0)
    out = layer.take_outgoing()
    assert out[0].dest == dest
    resp = parse_message(out[0].data)
    assert resp.top_via.received == received
    if "rport" in via:
        assert resp.top_via.rport == source[1]


def test_stray_response_is_dropped() -> None:
    layer = TransactionLayer()
    req = invite(branch="z9hG4bKnobody")
    assert layer.receive(response_to(req, 200), UAS, "udp", now=0.0) == []


def test_finished_transactions_keep_only_what_retransmissions_need() -> None:
    """After the final response the parsed messages are dropped (GC pressure), the bytes are kept."""
    layer = TransactionLayer(TimerConfig(t1=T1))
    bye = invite(method="BYE", cseq=2, to_tag="b1")
    ev = layer.receive(bye, UAC, "udp", now=0.0)
    assert isinstance(ev[0], RequestReceived)
    tx = ev[0].tx
    tx.user_data = object()
    layer.send_response(bye.create_response(200), now=0.1)
    first = layer.take_outgoing()[0].data
    assert tx.final_sent and tx.final_status == 200 and tx.user_data is None and tx.last_response is None
    assert tx.request is not bye and tx.method == "BYE" and len(tx.request.headers) == 0
    layer.receive(bye, UAC, "udp", now=0.2)
    assert [o.data for o in layer.take_outgoing()] == [first]
