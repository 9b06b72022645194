"""Dialogs (RFC 3261 §12, §13.2.2.4), REFER NOTIFY sipfrag (RFC 3515) and the B2BUA link."""

from __future__ import annotations

import pytest

from secondnum.sip import (
    B2BUATable,
    Dialog,
    DialogState,
    DialogTable,
    SipError,
    SipRequest,
    SipResponse,
    SipURI,
    parse_message,
    uri_destination,
)

INVITE = (
    "INVITE sip:bob@10.0.0.2 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKd1\r\n"
    "Record-Route: <sip:10.9.0.1;lr>, <sip:10.9.0.2;lr>\r\n"
    "From: \"A\" <sip:alice@example.net>;tag=aaa\r\nTo: <sip:bob@example.net>\r\n"
    "Call-ID: dlg-1\r\nCSeq: 10 INVITE\r\nContact: <sip:alice@10.0.0.1:5060>\r\nContent-Length: 0\r\n\r\n"
)
ME = SipURI.parse("sip:as@10.0.0.2:5060")


def invite() -> SipRequest:
    m = parse_message(INVITE.encode())
    assert isinstance(m, SipRequest)
    return m


def answered(req: SipRequest, status: int = 200, contact: str = "<sip:bob@10.0.0.2:5070>") -> SipResponse:
    r = req.create_response(status, to_tag="bbb", headers=[("Contact", contact)])
    m = parse_message(r.encode())
    assert isinstance(m, SipResponse)
    return m


def incoming(method: str, cseq: int, contact: str | None = None) -> SipRequest:
    text = (
        f"{method} sip:as@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx{cseq}\r\n"
        "From: <sip:alice@example.net>;tag=aaa\r\nTo: <sip:bob@example.net>;tag=bbb\r\n"
        f"Call-ID: dlg-1\r\nCSeq: {cseq} {method}\r\n"
        + (f"Contact: {contact}\r\n" if contact else "") + "Content-Length: 0\r\n\r\n"
    )
    m = parse_message(text.encode())
    assert isinstance(m, SipRequest)
    return m


def test_uas_dialog_route_set_and_in_dialog_request() -> None:
    d = Dialog.from_uas(invite(), "bbb", ME)
    assert d.state is DialogState.EARLY and d.id.remote_tag == "aaa" and d.remote_cseq == 10
    d.confirm()
    assert [str(r.uri) for r in d.route_set] == ["sip:10.9.0.1;lr", "sip:10.9.0.2;lr"]  # UAS keeps order
    bye = d.create_request("BYE", headers=[("Reason", "SIP;cause=200")])
    assert bye.method == "BYE" and str(bye.uri) == "sip:alice@10.0.0.1:5060"
    assert [str(r.uri) for r in bye.route] == ["sip:10.9.0.1;lr", "sip:10.9.0.2;lr"]
    assert bye.from_.tag == "bbb" and bye.to.tag == "aaa" and bye.call_id == "dlg-1"
    assert bye.cseq.seq == 1 and "contact" not in bye.headers and bye.reason[0].cause == 200
    assert d.next_hop() == (("10.9.0.1", 5060), "udp")
    reinvite = d.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
    assert reinvite.cseq.seq == 2 and str(reinvite.contact[0].uri) == str(ME)
    assert parse_message(reinvite.encode()).body == b"v=0\r\n"


def test_uac_dialog_reverses_record_route_and_acks_with_invite_cseq() -> None:
    req = invite()
    resp = answered(req)
    resp.set_header("Record-Route", "<sip:10.9.0.2;lr>, <sip:10.9.0.1;lr>")
    d = Dialog.from_uac(req, resp, ME)
    assert d.state is DialogState.CONFIRMED and d.is_uac
    assert [str(r.uri) for r in d.route_set] == ["sip:10.9.0.1;lr", "sip:10.9.0.2;lr"]
    ack = d.create_ack(req.cseq.seq)
    assert ack.cseq.seq == 10 and ack.cseq.method == "ACK" and str(ack.uri) == "sip:bob@10.0.0.2:5070"
    assert d.create_request("BYE").cseq.seq == 11
    assert d.local_tag == "aaa" and d.remote_tag == "bbb"


def test_uac_early_dialog_confirmed_by_2xx_recomputes_route_set() -> None:
    req = invite()
    early = answered(req, 183)
    d = Dialog.from_uac(req, early, ME)
    assert d.state is DialogState.EARLY
    ok = answered(req, 200, contact="<sip:bob@10.0.0.3>")
    ok.set_header("Record-Route", "<sip:10.7.7.7;lr>")
    d.on_response(req, ok)
    assert d.state.value == "confirmed"
    assert [str(r.uri) for r in d.route_set] == ["sip:10.7.7.7;lr"]
    assert str(d.remote_target) == "sip:bob@10.0.0.3"


def test_strict_router_in_route_set() -> None:
    req = invite()
    req.set_header("Record-Route", "<sip:10.9.0.1>")  # no lr: strict router (§12.2.1.1)
    d = Dialog.from_uas(req, "bbb", ME)
    bye = d.create_request("BYE")
    assert str(bye.uri) == "sip:10.9.0.1"
    assert [str(r.uri) for r in bye.route] == ["sip:alice@10.0.0.1:5060"]


def test_remote_cseq_order_and_target_refresh() -> None:
    d = Dialog.from_uas(invite(), "bbb", ME)
    assert d.on_request(incoming("INFO", 11))
    assert not d.on_request(incoming("INFO", 5))  # lower CSeq: 500 (§12.2.2)
    assert d.on_request(incoming("INVITE", 12, contact="<sip:alice@10.0.0.99:5080>"))
    assert str(d.remote_target) == "sip:alice@10.0.0.99:5080"
    assert d.on_request(incoming("UPDATE", 13, contact="<sip:alice@10.0.0.98>"))
    assert str(d.remote_target) == "sip:alice@10.0.0.98"
    assert d.on_request(incoming("BYE", 14))
    assert d.state is DialogState.TERMINATED
    with pytest.raises(SipError):
        d.create_request("INFO")


def test_481_to_in_dialog_request_terminates() -> None:
    d = Dialog.from_uas(invite(), "bbb", ME)
    info = d.create_request("INFO")
    d.on_response(info, info.create_response(481))
    assert d.state is DialogState.TERMINATED


def test_refer_notify_sipfrag() -> None:
    d = Dialog.from_uas(invite(), "bbb", ME)
    n = d.create_refer_notify("SIP/2.0 200 OK")
    assert n.method == "NOTIFY" and n.body == b"SIP/2.0 200 OK\r\n"
    assert n.content_type == "message/sipfrag;version=2.0"
    assert n.event is not None and n.event.package == "refer"
    ss = n.subscription_state
    assert ss is not None and ss.state == "terminated" and ss.reason == "noresource"
    active = d.create_refer_notify("SIP/2.0 100 Trying", state="active", event_id="7")
    assert active.subscription_state is not None and active.subscription_state.expires == 60
    assert active.event is not None and active.event.id == "7"
    assert active.cseq.seq == n.cseq.seq + 1


def test_dialog_table_and_b2bua_link() -> None:
    table = DialogTable()
    a = table.add(Dialog.from_uas(invite(), "bbb", ME))
    assert table.match_request(incoming("BYE", 11)) is a
    req = invite()
    b = Dialog.from_uac(req, answered(req), ME)
    links = B2BUATable()
    links.link(a, b)
    assert links.peer(a) is b and links.peer(b) is a and len(links) == 1
    c = Dialog.from_uas(invite(), "ccc", ME)
    links.replace(b, c)
    assert links.peer(a) is c and links.peer(b) is None
    links.unlink(c)
    assert links.peer(a) is None and len(links) == 0


@pytest.mark.parametrize(
    ("uri", "dest"),
    [
        ("sip:10.0.0.1", (("10.0.0.1", 5060), "udp")),
        ("sip:10.0.0.1:5070;transport=tcp", (("10.0.0.1", 5070), "tcp")),
        ("sips:10.0.0.1", (("10.0.0.1", 5061), "tls")),
        ("sip:x@host;maddr=10.1.1.1", (("10.1.1.1", 5060), "udp")),
        ("sip:[::1]:5062", (("::1", 5062), "udp")),
    ],
)
def test_uri_destination(uri: str, dest: tuple[tuple[str, int], str]) -> None:
    assert uri_destination(SipURI.parse(uri)) == dest


def test_uri_destination_tel_is_unroutable() -> None:
    with pytest.raises(SipError):
        uri_destination(SipURI.parse("tel:+42027777100"))
