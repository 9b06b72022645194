"""RFC 3262 cores on a fake clock: the UAS sending reliable 1xx (§3) and the UAC PRACKing them (§4)."""

from __future__ import annotations

import pytest

from secondnum.sip import SipParseError, SipRequest, SipResponse, parse_message
from secondnum.sip.reliable import (
    PrackMatch,
    PrackTimeout,
    RAck,
    ReliableProvisionals,
    ReliableReceiver,
    Retransmit,
    Verdict,
    has_option,
    is_reliable,
    parse_rseq,
)

T1 = 0.5


def invite(extra: str = "") -> SipRequest:
    raw = (
        "INVITE sip:bob@10.0.0.2 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKinv1\r\n"
        "From: <sip:alice@10.0.0.1>;tag=a1\r\nTo: <sip:bob@10.0.0.2>\r\n"
        f"Call-ID: c1\r\nCSeq: 7 INVITE\r\nContact: <sip:alice@10.0.0.1>\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(raw)
    assert isinstance(msg, SipRequest)
    return msg


def wire(resp: SipResponse) -> SipResponse:
    msg = parse_message(resp.encode())
    assert isinstance(msg, SipResponse)
    return msg


def provisional(status: int = 183, tag: str = "b1", rseq: int | None = None, body: bytes = b"",
                require: str | None = "100rel") -> SipResponse:
    headers = []
    if require is not None:
        headers.append(("Require", require))
    if rseq is not None:
        headers.append(("RSeq", str(rseq)))
    resp = invite().create_response(status, to_tag=tag, headers=headers, body=body,
                                    content_type="application/sdp" if body else None)
    return wire(resp)


# --- UAS (§3) --------------------------------------------------------------------------------------------

def test_send_stamps_require_and_rseq_and_keeps_other_tags() -> None:
    uas = ReliableProvisionals(invite_cseq=7, t1=T1, first_rseq=100)
    resp = invite().create_response(183, to_tag="t", headers=[("Require", "precondition")])
    out = uas.send(resp, now=0.0)
    assert out is resp
    sent = wire(resp)
    assert sent.require == ["precondition", "100rel"]
    assert sent.headers.get("rseq") == "100"
    assert is_reliable(sent)


def test_random_initial_rseq_in_range() -> None:
    for _ in range(50):
        uas = ReliableProvisionals(1, T1)
        out = uas.send(invite().create_response(180, to_tag="t"), 0.0)
        assert out is not None
        assert 1 <= int(out.headers.get("rseq") or 0) <= 2**31 - 1


def test_retransmits_with_t1_doubling_until_64_t1_then_times_out() -> None:
    uas = ReliableProvisionals(7, T1, first_rseq=1)
    resp = invite().create_response(183, to_tag="t")
    uas.send(resp, 0.0)
    fired: list[float] = []
    now = 0.0
    while True:
        deadline = uas.next_deadline()
        assert deadline is not None
        now = deadline
        events = uas.on_timer(now)
        if any(isinstance(e, PrackTimeout) for e in events):
            break
        assert [type(e) for e in events] == [Retransmit]
        fired.append(now)
    # T1, 2T1, 4T1 ... (no T2 cap for reliable provisionals, §3), give-up at 64*T1.
    gaps = [round(b - a, 6) for a, b in zip([0.0, *fired], fired, strict=False)]
    assert gaps == [T1 * 2**i for i in range(len(gaps))]
    assert now == pytest.approx(64 * T1)
    assert uas.next_deadline() is None


def test_prack_matching_by_rack() -> None:
    uas = ReliableProvisionals(7, T1, first_rseq=5)
    uas.send(invite().create_response(183, to_tag="t"), 0.0)
    assert uas.on_prack(RAck(6, 7, "INVITE"), 0.1)[0] is PrackMatch.NO_MATCH  # wrong RSeq
    assert uas.on_prack(RAck(5, 8, "INVITE"), 0.1)[0] is PrackMatch.NO_MATCH  # wrong CSeq
    assert uas.on_prack(RAck(5, 7, "UPDATE"), 0.1)[0] is PrackMatch.NO_MATCH  # wrong method
    match, acked, nxt = uas.on_prack(RAck(5, 7, "INVITE"), 0.2)
    assert match is PrackMatch.ACKED and acked is not None and nxt is None
    assert uas.next_deadline() is None  # retransmissions stop
    assert uas.on_timer(100.0) == []
    # A retransmitted PRACK no longer matches anything outstanding.
    assert uas.on_prack(RAck(5, 7, "INVITE"), 0.3)[0] is PrackMatch.NO_MATCH


def test_second_reliable_1xx_waits_for_the_first_prack() -> None:
    uas = ReliableProvisionals(7, T1, first_rseq=1)
    first = uas.send(invite().create_response(181, to_tag="t"), 0.0)
    second_resp = invite().create_response(183, to_tag="t", body=b"v=0\r\n", content_type="application/sdp")
    assert first is not None
    assert uas.send(second_resp, 0.1) is None
    assert uas.queued == 1
    assert second_resp.headers.get("rseq") == "2"  # stamped in sending order
    assert not uas.may_send_2xx()  # a queued reliable 1xx with SDP blocks the 2xx
    match, _, nxt = uas.on_prack(RAck(1, 7, "INVITE"), 0.2)
    assert match is PrackMatch.ACKED and nxt is second_resp
    assert uas.outstanding is second_resp
    assert uas.next_deadline() == pytest.approx(0.2 + T1)
    assert not uas.may_send_2xx()
    uas.on_prack(RAck(2, 7, "INVITE"), 0.3)
    assert uas.may_send_2xx()


def test_1xx_without_body_does_not_block_the_2xx() -> None:
    uas = ReliableProvisionals(7, T1, first_rseq=1)
    uas.send(invite().create_response(180, to_tag="t"), 0.0)
    assert uas.may_send_2xx()


def test_final_sent_stops_everything() -> None:
    uas = ReliableProvisionals(7, T1, first_rseq=1)
    uas.send(invite().create_response(181, to_tag="t"), 0.0)
    uas.send(invite().create_response(183, to_tag="t"), 0.0)
    uas.final_sent()
    assert uas.next_deadline() is None and uas.on_timer(10.0) == []
    assert uas.queued == 0
    with pytest.raises(ValueError):
        uas.send(invite().create_response(180, to_tag="t"), 1.0)


def test_only_1xx_can_be_reliable() -> None:
    uas = ReliableProvisionals(7, T1)
    for status in (100, 200):
        with pytest.raises(ValueError):
            uas.send(invite().create_response(status, to_tag="t"), 0.0)


# --- UAC (§4) --------------------------------------------------------------------------------------------

def test_receiver_prack_in_order_ignores_retransmissions_and_gaps() -> None:
    uac = ReliableReceiver(invite_cseq=7)
    assert uac.receive(provisional(180, require=None)) == (Verdict.UNRELIABLE, None)
    assert uac.receive(provisional(183, rseq=None)) == (Verdict.UNRELIABLE, None)  # no RSeq: not reliable
    assert uac.receive(provisional(183, rseq=41))[0] is Verdict.NEW
    verdict, rack = uac.receive(provisional(183, rseq=41))  # retransmission
    assert (verdict, rack) == (Verdict.IGNORE, None)
    assert uac.receive(provisional(180, rseq=43))[0] is Verdict.IGNORE  # gap: out of order
    assert uac.receive(provisional(180, rseq=40))[0] is Verdict.IGNORE  # older
    verdict, rack = uac.receive(provisional(180, rseq=42))
    assert verdict is Verdict.NEW and rack == RAck(42, 7, "INVITE")
    assert str(rack) == "42 7 INVITE"


def test_receiver_keeps_one_rseq_space_per_early_dialog() -> None:
    uac = ReliableReceiver(invite_cseq=1)
    assert uac.receive(provisional(183, tag="fork1", rseq=10))[0] is Verdict.NEW
    assert uac.receive(provisional(183, tag="fork2", rseq=900))[0] is Verdict.NEW
    assert uac.receive(provisional(180, tag="fork1", rseq=11))[0] is Verdict.NEW
    assert uac.last_rseq("fork2") == 900


def test_malformed_require_is_not_reliable() -> None:
    resp = provisional(183, rseq=1, require="100rel;x")
    assert not is_reliable(resp)
    assert ReliableReceiver(1).receive(resp) == (Verdict.UNRELIABLE, None)


def test_receiver_rejects_malformed_rseq() -> None:
    uac = ReliableReceiver(1)
    resp = provisional(183, rseq=None)
    resp.set_header("RSeq", "abc")
    with pytest.raises(SipParseError):
        uac.receive(resp)


@pytest.mark.parametrize("text", ["", "1 2", "x 1 INVITE", "0 1 INVITE", "1 x INVITE", "4294967296 1 INVITE",
                                  "1 2 INVITE extra"])
def test_rack_parse_errors(text: str) -> None:
    with pytest.raises(SipParseError):
        RAck.parse(text)


@pytest.mark.parametrize("text", ["0", "-1", "2147483648", "", "12a"])
def test_rseq_parse_errors(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_rseq(text)


def test_rack_round_trip_and_option_helpers() -> None:
    assert RAck.parse(" 776656 1 INVITE ") == RAck(776656, 1, "INVITE")
    assert parse_rseq(" 2147483647 ") == 2**31 - 1
    assert has_option(invite("Supported: timer, 100rel\r\n"), "100rel")
    assert has_option(invite("Require: precondition\r\n"), "precondition")
    assert not has_option(invite(), "100rel")
    assert not has_option(invite("Supported: timer\r\n"), "100rel")


def test_uas_and_uac_together_over_the_wire() -> None:
    """The UAS's stamped response, parsed by the UAC, yields the RAck the UAS matches."""
    uas = ReliableProvisionals(7, T1)
    uac = ReliableReceiver(7)
    out = uas.send(invite().create_response(183, to_tag="t", body=b"v=0\r\n",
                                            content_type="application/sdp"), 0.0)
    assert out is not None
    verdict, rack = uac.receive(wire(out))
    assert verdict is Verdict.NEW and rack is not None
    assert uas.on_prack(rack, 0.1)[0] is PrackMatch.ACKED
