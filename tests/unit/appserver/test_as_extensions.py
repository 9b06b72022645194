"""Option tags the AS serves (RFC 3261 §8.2.2.3) and what a leg inherits from the caller (RFC 3262/4028)."""

from __future__ import annotations

import pytest

from appserver import legs
from secondnum.sip import BadHeaderError, NameAddr, SipRequest, SipResponse, SipURI, parse_message


def invite(*lines: str) -> SipRequest:
    raw = (
        "INVITE tel:+42027777100 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
        "From: <tel:+42075553333>;tag=a\r\nTo: <tel:+42027777100>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
        + "".join(f"{line}\r\n" for line in lines) + "Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(raw)
    assert isinstance(msg, SipRequest)
    return msg


@pytest.mark.parametrize(
    ("lines", "unsupported"),
    [
        ((), []),
        (("Supported: foo, bar",), []),  # Supported never causes a 420
        (("Require: precondition",), []),
        (("Require: 100rel, precondition, timer",), []),
        (("Require: PRECONDITION",), []),  # option tags compare case-insensitively
        (("Require: precondition, x-foo", "Require: sec-agree"), ["x-foo", "sec-agree"]),
        (("Require: replaces",), ["replaces"]),  # we never honour a Replaces header
    ],
)
def test_unsupported_options(lines: tuple[str, ...], unsupported: list[str]) -> None:
    assert legs.unsupported_options(invite(*lines)) == unsupported


def test_malformed_require_is_a_bad_header() -> None:
    with pytest.raises(BadHeaderError):
        legs.unsupported_options(invite("Require: a;b"))


@pytest.mark.parametrize(
    ("lines", "supported", "required"),
    [
        ((), [], []),
        (("Supported: replaces",), [], []),
        (("Supported: 100rel, precondition, timer", "Require: precondition"),
         ["100rel", "precondition", "timer"], ["precondition"]),
        (("Require: 100rel, timer",), ["100rel", "timer"], ["timer"]),  # 100rel is offered, never required
    ],
)
def test_passed_options(lines: tuple[str, ...], supported: list[str], required: list[str]) -> None:
    assert legs.passed_options(invite(*lines)) == (supported, required)


def test_forward_invite_carries_the_passed_extensions() -> None:
    caller = invite("Supported: 100rel, precondition, timer", "Require: precondition, timer",
                    "Session-Expires: 1800;refresher=uac", "Min-SE: 90")
    supported, required = legs.passed_options(caller)
    req = legs.forward_invite(
        target=SipURI.parse("tel:+42073723123"), did="42027777100", caller_from=caller.from_, caller_pai=None,
        present_did=True, return_route=[NameAddr(SipURI.parse("sip:10.0.0.5;lr;odi=x"))],
        contact=SipURI.parse("sip:10.0.0.2"), call_id="x", pcv=None, history=(), diversion=(), body=b"",
        content_type=None, supported=supported, require=required, extra=legs.session_timer_headers(caller))
    out = parse_message(req.encode())
    assert out.supported == ["100rel", "precondition", "timer", "histinfo"]  # no Replaces handling: no tag
    assert out.require == ["precondition", "timer"]
    assert out.headers.get("session-expires") == "1800;refresher=uac" and out.headers.get("min-se") == "90"


def test_plain_call_legs_are_unchanged() -> None:
    assert legs.passed_options(invite()) == ([], [])
    assert legs.outgoing_options(invite()) == ["100rel"]
    assert legs.outgoing_options(invite("Supported: precondition")) == ["100rel", "precondition"]


def response(*lines: str) -> SipResponse:
    raw = ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <tel:+1>;tag=a\r\n"
           "To: <tel:+2>;tag=b\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n" + "".join(f"{x}\r\n" for x in lines)
           + "Content-Length: 0\r\n\r\n").encode()
    msg = parse_message(raw)
    assert isinstance(msg, SipResponse)
    return msg
