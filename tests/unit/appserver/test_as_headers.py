"""History-Info (RFC 7044/4458), Diversion (RFC 5806) and the initial requests of each leg."""

from __future__ import annotations

import pytest

from appserver import legs
from appserver.diversion import (
    DiversionCause,
    add_retarget,
    diversion_headers,
    history_base,
    mark_failed,
)
from secondnum.sip import Diversion, HistoryInfoEntry, PChargingVector, SipURI, parse_message, parse_name_addr

DID_URI = SipURI.parse("tel:+42027777100")
MOBILE = SipURI.parse("tel:+42073723123")
VM = SipURI.parse("sip:vm-deposit@127.0.0.1:5070;mailbox=42027777100")


def render(entries: list[HistoryInfoEntry]) -> str:
    return ", ".join(str(e) for e in entries)


def test_history_starts_with_the_received_request_uri() -> None:
    entries, parent = history_base([], DID_URI)
    assert (render(entries), parent) == ("<tel:+42027777100>;index=1", "1")


def test_history_keeps_received_entries_and_retargets_below_ours() -> None:
    received = [
        HistoryInfoEntry.parse("<sip:+42027777100@ims.example;user=phone>;index=1"),
        HistoryInfoEntry.parse("<tel:+42027777100>;index=1.1;mp=1"),
    ]
    entries, parent = history_base(received, DID_URI)
    assert parent == "1.1"
    out = add_retarget(entries, parent, MOBILE, DiversionCause.UNCONDITIONAL)
    assert str(out[-1]) == "<tel:+42073723123;cause=302>;index=1.1.1;mp=1.1"


@pytest.mark.parametrize(
    ("cause", "text"),
    [
        (DiversionCause.NO_REPLY, ";cause=408>;index=1.2;mp=1"),
        (DiversionCause.BUSY, ";cause=486>;index=1.2;mp=1"),
        (DiversionCause.UNREACHABLE, ";cause=480>;index=1.2;mp=1"),
    ],
)
def test_voicemail_after_a_failed_forward(cause: DiversionCause, text: str) -> None:
    entries, parent = history_base([], DID_URI)
    entries = add_retarget(entries, parent, MOBILE, DiversionCause.UNCONDITIONAL)
    entries = mark_failed(entries, "1.1", cause.cause)
    entries = add_retarget(entries, parent, VM, cause)
    assert render(entries) == (
        "<tel:+42027777100>;index=1, <tel:+42073723123;cause=302>;index=1.1;mp=1, "
        f"<sip:vm-deposit@127.0.0.1:5070;mailbox=42027777100{text}"
    )


def test_failed_sip_target_carries_an_escaped_reason() -> None:
    entries = add_retarget(
        [HistoryInfoEntry(DID_URI, "1")], "1", SipURI.parse("sip:bob@10.0.0.1"), DiversionCause.UNCONDITIONAL
    )
    out = mark_failed(entries, "1.1", 486)
    assert str(out[1]) == "<sip:bob@10.0.0.1;cause=302?Reason=SIP%3Bcause%3D486>;index=1.1;mp=1"
    assert HistoryInfoEntry.parse(str(out[1])).cause == 302


@pytest.mark.parametrize(
    ("cause", "reason"),
    [
        (DiversionCause.UNCONDITIONAL, "unconditional"),
        (DiversionCause.NO_REPLY, "no-answer"),
        (DiversionCause.BUSY, "user-busy"),
        (DiversionCause.UNREACHABLE, "unavailable"),
    ],
)
def test_diversion_reason(cause: DiversionCause, reason: str) -> None:
    received = [Diversion.parse("<tel:+1555>;reason=user-busy;counter=1")]
    out = diversion_headers(received, SipURI.parse("tel:+42027777100;phone-context=x"), cause)
    assert [str(d) for d in out] == [
        f"<tel:+42027777100>;reason={reason};counter=1",
        "<tel:+1555>;reason=user-busy;counter=1",
    ]


def _parsed(req: object) -> object:
    return parse_message(req.encode())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("present_did", "pai", "from_"),
    [
        (True, "<tel:+42027777100>", "<tel:+42027777100>"),
        (False, "<tel:+42075553333>", "Caller <tel:+42075553333>"),
    ],
)
def test_forward_invite(present_did: bool, pai: str, from_: str) -> None:
    route = [parse_name_addr("<sip:10.0.0.1:5080;lr;odi=abc>")]
    pcv = PChargingVector.parse("icid-value=AyretyU0dm;orig-ioi=ims.example.net;term-ioi=x")
    req = legs.forward_invite(
        target=MOBILE,
        did="42027777100",
        caller_from=parse_name_addr('"Caller" <tel:+42075553333>;tag=x'),
        caller_pai=parse_name_addr("<tel:+42075553333>"),
        present_did=present_did,
        return_route=route,
        contact=SipURI.parse("sip:127.0.0.1:5060"),
        call_id="abc@127.0.0.1",
        pcv=legs.routed_charging_vector(pcv, "secondnum.local"),
        history=[],
        diversion=[],
        body=b"v=0\r\n",
        content_type="application/sdp",
    )
    msg = _parsed(req)
    assert msg.raw_uri == "tel:+42073723123"  # type: ignore[attr-defined]
    assert msg.headers.get("Route") == "<sip:10.0.0.1:5080;lr;odi=abc>"  # type: ignore[attr-defined]
    assert msg.headers.get("P-Asserted-Identity") == pai  # type: ignore[attr-defined]
    assert msg.headers.get("From").startswith(from_ + ";tag=")  # type: ignore[attr-defined]
    assert msg.headers.get("P-Charging-Vector") == "icid-value=AyretyU0dm;orig-ioi=ims.example.net"  # type: ignore[attr-defined]
    assert msg.from_.tag != "x"  # type: ignore[attr-defined]


def test_outgoing_invite_routes_with_orig_and_asserts_the_did() -> None:
    req = legs.outgoing_invite(
        destination=SipURI.parse("tel:+420273333444"),
        did="42027777100",
        scscf=SipURI.parse("sip:10.0.0.1:5080"),
        contact=SipURI.parse("sip:127.0.0.1"),
        call_id="c@h",
        domain="secondnum.local",
    )
    assert req.headers.get("Route") == "<sip:10.0.0.1:5080;lr;orig>"
    assert req.headers.get("P-Asserted-Identity") == "<tel:+42027777100>"
    pcv = req.p_charging_vector
    assert pcv is not None and pcv.params["icid-generated-at"] == "secondnum.local" and req.body == b""


def test_media_uri() -> None:
    media = SipURI.parse("sip:127.0.0.1:5070")
    assert (
        str(legs.media_uri(media, "vm-access", "42027777100", network_auth=True))
        == "sip:vm-access@127.0.0.1:5070;mailbox=42027777100;auth=network"
    )
    assert (
        str(legs.media_uri(media, "vm-deposit", "42027777100"))
        == "sip:vm-deposit@127.0.0.1:5070;mailbox=42027777100"
    )


def test_fresh_icids_are_unique() -> None:
    assert len({legs.new_icid("h") for _ in range(100)}) == 100
