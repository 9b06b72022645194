"""ISC analysis (TS 24.229 §5.7.1, RFC 5502, RFC 3325): table-driven."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appserver.isc import IscRejectedError, SessionCase, TrustedPeers, classify, split_route
from secondnum.sip import SipRequest, SipURI, parse_name_addr

OWN = [SipURI.parse("sip:127.0.0.1:5060")]
TRUSTED = TrustedPeers(["127.0.0.1", "10.0.0.0/8"])


def invite(ruri: str = "tel:+42027777100", **headers: str) -> SipRequest:
    req = SipRequest("INVITE", ruri)
    req.set_header("Via", "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1")
    req.set_header("From", "<tel:+42075553333>;tag=a")
    req.set_header("To", "<tel:+42027777100>")
    req.set_header("Call-ID", "c1")
    req.set_header("CSeq", "1 INVITE")
    for name, value in headers.items():
        req.set_header(name.replace("_", "-"), value)
    return req


@pytest.mark.parametrize(
    ("host", "trusted"),
    [
        ("127.0.0.1", True),
        ("10.9.8.7", True),
        ("192.168.1.1", False),
        ("not-an-ip", False),
        ("", False),
        ("[::1]", False),
    ],
)
def test_trusted_peers(host: str, trusted: bool) -> None:
    assert (host in TRUSTED) is trusted


@pytest.mark.parametrize(
    ("routes", "ours", "kept"),
    [
        ([], None, []),
        (
            ["<sip:127.0.0.1:5060;lr>", "<sip:10.0.0.1;lr;odi=x>"],
            "sip:127.0.0.1:5060;lr",
            ["sip:10.0.0.1;lr;odi=x"],
        ),
        (["<sip:127.0.0.1;lr>", "<sip:10.0.0.1;lr;odi=x>"], "sip:127.0.0.1;lr", ["sip:10.0.0.1;lr;odi=x"]),
        (["<sip:as.example;lr>", "<sip:10.0.0.1;lr;odi=x>"], "sip:as.example;lr", ["sip:10.0.0.1;lr;odi=x"]),
        (["<sip:10.0.0.1;lr;odi=x>"], None, ["sip:10.0.0.1;lr;odi=x"]),
        (["<sip:10.0.0.2;lr>"], None, ["sip:10.0.0.2;lr"]),
    ],
)
def test_split_route(routes: list[str], ours: str | None, kept: list[str]) -> None:
    own, rest = split_route([parse_name_addr(r) for r in routes], OWN)
    assert (str(own.uri) if own else None) == ours
    assert [str(r.uri) for r in rest] == kept


@pytest.mark.parametrize(
    ("headers", "case", "served", "asserted"),
    [
        (
            {
                "p_served_user": "<tel:+42027777100>;sescase=term;regstate=unreg",
                "p_asserted_identity": "<tel:+42073723123>",
            },
            SessionCase.TERMINATING,
            "42027777100",
            "42073723123",
        ),
        (
            {
                "p_served_user": "<sip:+42027777100@ims.example;user=phone>;sescase=orig",
                "p_asserted_identity": "<tel:+42027777100>",
            },
            SessionCase.ORIGINATING,
            "42027777100",
            "42027777100",
        ),
        (
            {
                "route": "<sip:127.0.0.1:5060;lr;orig>, <sip:10.0.0.1;lr;odi=1>",
                "p_asserted_identity": "<tel:+420111222333>",
            },
            SessionCase.ORIGINATING,
            "420111222333",
            "420111222333",
        ),
        ({}, SessionCase.TERMINATING, "42027777100", None),
        # RFC 3325 §9.1: with a SIP and a tel identity asserted, the tel one is the number.
        (
            {"p_asserted_identity": "<sip:alice@ims.example>, <tel:+42073723123>"},
            SessionCase.TERMINATING,
            "42027777100",
            "42073723123",
        ),
    ],
)
def test_classify(headers: dict[str, str], case: SessionCase, served: str, asserted: str | None) -> None:
    isc = classify(invite(**headers), "127.0.0.1", TRUSTED, OWN)
    assert isc.session_case is case
    assert isc.served_user == served
    assert isc.asserted_id == asserted


def test_classify_keeps_the_odi_route() -> None:
    isc = classify(
        invite(route="<sip:127.0.0.1:5060;lr>, <sip:10.0.0.1:5080;lr;odi=abc>"), "127.0.0.1", TRUSTED, OWN
    )
    assert [str(r) for r in isc.return_route] == ["<sip:10.0.0.1:5080;lr;odi=abc>"]


@pytest.mark.parametrize(
    ("source", "headers", "status", "event"),
    [
        ("192.0.2.1", {"p_asserted_identity": "<tel:+42073723123>"}, 403, "isc_untrusted_source"),
        ("127.0.0.1", {"p_served_user": "no angle <<"}, 400, "isc_bad_header"),
        ("127.0.0.1", {"p_served_user": "<sip:alice@example.net>;sescase=orig"}, None, None),
    ],
)
def test_classify_rejects(
    source: str, headers: dict[str, str], status: int | None, event: str | None
) -> None:
    if status is None:
        assert classify(invite(**headers), source, TRUSTED, OWN).served_user == "sip:alice@example.net"
        return
    with pytest.raises(IscRejectedError) as info:
        classify(invite(**headers), source, TRUSTED, OWN)
    assert info.value.status == status and info.value.log_event == event


def test_originating_without_identity_is_refused() -> None:
    with pytest.raises(IscRejectedError) as info:
        classify(invite(route="<sip:127.0.0.1:5060;lr;orig>"), "127.0.0.1", TRUSTED, OWN)
    assert info.value.status == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"p_asserted_identity": "<sip:@>"},
        {"route": "<sip:127.0.0.1:5060;lr>, <bogus:x>"},
        {"p_charging_vector": "orig-ioi=x"},
        {"p_served_user": "<tel:>;sescase=term"},
    ],
)
def test_malformed_headers_are_400(headers: dict[str, str]) -> None:
    with pytest.raises(IscRejectedError) as info:
        classify(invite(**headers), "127.0.0.1", TRUSTED, OWN)
    assert info.value.status in (400, 404)


HEADER_NAMES = ["route", "p_asserted_identity", "p_served_user", "p_charging_vector"]


@given(
    st.dictionaries(
        st.sampled_from(HEADER_NAMES),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
        max_size=4,
    ),
    st.sampled_from(["tel:+42027777100", "sip:42027777100@h", "sip:a@b;user=phone", "tel:x"]),
)
@settings(max_examples=300, deadline=None)
def test_classify_never_raises_anything_else(headers: dict[str, str], ruri: str) -> None:
    """Bad input gets a clear rejection, never an unexpected exception (the process keeps serving)."""
    try:
        isc = classify(invite(ruri, **headers), "127.0.0.1", TRUSTED, OWN)
    except IscRejectedError as exc:
        assert exc.status in (400, 403, 404)
    else:
        assert isc.served_user
