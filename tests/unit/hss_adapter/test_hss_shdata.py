"""Sh-Data XML (TS 29.328 Annex D) parsing: valid documents, and malformed/unsafe ones refused."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from hss_adapter.sh.servicedata import from_element, to_element
from hss_adapter.sh.shdata import (
    ShDataError,
    build_repository_data,
    build_sh_data,
    decode_msisdn,
    parse_sh_data,
)
from hss_adapter.sh.state import three_way_merge

DOC = {
    "display_name": "John",
    "status": "active",
    "answering_mode": "forward_then_voicemail",
    "caller_id_presentation": "did",
    "follow_me": {
        "ring_order": "sequential",
        "targets": [{"uri": "tel:+42073723123", "ring_timeout": 20}],
        "time_window": {
            "days": ["mon", "tue"],
            "start": "08:00",
            "end": "18:00",
            "timezone": "Europe/Prague",
        },
    },
    "voicemail": {
        "enabled": True,
        "pin_required": True,
        "max_message_seconds": 120,
        "max_messages": 50,
        "pin_hash": "scrypt$16384$8$1$AAAA$BBBB",
    },
    "aliases": [{"identity": "42073723123@pstn", "allow_registration": False}],
}


def test_repository_data_round_trip() -> None:
    body = build_repository_data("secondnum", 7, to_element("42027777100", DOC))
    data = parse_sh_data(body)
    (repo,) = data.repository_data
    assert (repo.service_indication, repo.sequence_number) == ("secondnum", 7)
    assert from_element(repo.service_data, "42027777100") == DOC


def test_other_sections() -> None:
    body = build_sh_data(
        public_identities=["sip:+42027777100@ims.example.net", "tel:+42027777100"],
        msisdn_hex=["912470733221f3"],
        ifcs=[(0, "sip:127.0.0.1:5060", 0)],
    )
    data = parse_sh_data(body)
    assert data.public_identities == ("sip:+42027777100@ims.example.net", "tel:+42027777100")
    assert data.msisdns == ("42073723123",)
    assert data.ifcs[0].priority == 0
    assert data.ifcs[0].application_server is not None
    assert data.ifcs[0].application_server.server_name == "sip:127.0.0.1:5060"


def test_namespaced_document_is_accepted() -> None:
    body = (
        b'<Sh-Data xmlns="urn:example"><RepositoryData><ServiceIndication>s</ServiceIndication>'
        b"<SequenceNumber>1</SequenceNumber></RepositoryData></Sh-Data>"
    )
    assert parse_sh_data(body).repository_data[0].service_data is None


BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    b"<Sh-Data>&lol2;</Sh-Data>"
)
EXTERNAL = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Sh-Data>&e;</Sh-Data>'
)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "XML"),
        (b"not xml", "XML"),
        (b"<Sh-Data><RepositoryData>", "XML"),
        (b"<Other/>", "root element"),
        (BOMB, "XML"),
        (EXTERNAL, "XML"),
        (
            b"<Sh-Data><RepositoryData><SequenceNumber>1</SequenceNumber></RepositoryData></Sh-Data>",
            "ServiceIndication",
        ),
        (
            b"<Sh-Data><RepositoryData><ServiceIndication>s</ServiceIndication>"
            b"<SequenceNumber>70000</SequenceNumber></RepositoryData></Sh-Data>",
            "out of range",
        ),
        (
            b"<Sh-Data><RepositoryData><ServiceIndication>s</ServiceIndication>"
            b"<SequenceNumber>x</SequenceNumber></RepositoryData></Sh-Data>",
            "not an integer",
        ),
        (b"<Sh-Data><PublicIdentifiers><MSISDN>zz</MSISDN></PublicIdentifiers></Sh-Data>", "hexBinary"),
        (b"<Sh-Data>" + b"<x/>" * 70000 + b"</Sh-Data>", "larger"),
    ],
)
def test_malformed_documents_are_refused(body: bytes, fragment: str) -> None:
    with pytest.raises(ShDataError) as info:
        parse_sh_data(body)
    assert fragment in str(info.value)


def _service(xml: str) -> bytes:
    return (
        b"<Sh-Data><RepositoryData><ServiceIndication>secondnum</ServiceIndication>"
        b"<SequenceNumber>1</SequenceNumber><ServiceData>" + xml.encode() + b"</ServiceData>"
        b"</RepositoryData></Sh-Data>"
    )


@pytest.mark.parametrize(
    ("xml", "fragment"),
    [
        ("<Other/>", "no SecondNumber"),
        ('<SecondNumber did="42000000001"/>', "not 42027777100"),
        ("<SecondNumber><AnsweringMode>sometimes</AnsweringMode></SecondNumber>", "answering_mode"),
        (
            '<SecondNumber><FollowMe><Target ringTimeout="x">tel:+1</Target></FollowMe></SecondNumber>',
            "ringTimeout",
        ),
        (
            '<SecondNumber><FollowMe><Target ringTimeout="999">tel:+4201234567</Target></FollowMe>'
            "</SecondNumber>",
            "ring_timeout",
        ),
        ('<SecondNumber><Voicemail maxMessages="many"/></SecondNumber>', "maxMessages"),
        ('<SecondNumber><Voicemail pinHash="1234"/></SecondNumber>', "pinHash"),
        ("<SecondNumber><Alias>not a number</Alias></SecondNumber>", "Alias"),
    ],
)
def test_malformed_service_data_is_refused(xml: str, fragment: str) -> None:
    repo = parse_sh_data(_service(xml)).repository_data[0]
    with pytest.raises(ShDataError) as info:
        from_element(repo.service_data, "42027777100")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("hexdata", "digits"),
    [
        ("2470733221f3", "42073723123"),  # TBCD only
        ("912470733221f3", "42073723123"),  # with TON/NPI octet (international, E.164)
        ("214365", "123456"),
    ],
)
def test_msisdn_tbcd(hexdata: str, digits: str) -> None:
    assert decode_msisdn(hexdata) == digits


@pytest.mark.parametrize(
    ("base", "local", "remote", "merged"),
    [
        ({"a": 1, "b": 1}, {"a": 2, "b": 1}, {"a": 1, "b": 3}, {"a": 2, "b": 3}),  # both changed, disjoint
        ({"a": 1}, {"a": 2}, {"a": 3}, {"a": 2}),  # conflict: local wins
        ({"a": 1}, {"a": 1}, {"a": 3}, {"a": 3}),  # only remote changed
        (None, {"a": 1}, {"a": 3, "c": 4}, {"a": 1, "c": 4}),  # no base: local wins
    ],
)
def test_three_way_merge(
    base: dict[str, Any] | None, local: dict[str, Any], remote: dict[str, Any], merged: dict[str, Any]
) -> None:
    assert three_way_merge(base, local, remote) == merged


# --- property tests: whatever arrives in User-Data, the parser answers ShData or ShDataError, nothing else.

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TAGS = [
    "Sh-Data",
    "RepositoryData",
    "ServiceIndication",
    "SequenceNumber",
    "ServiceData",
    "SecondNumber",
    "PublicIdentifiers",
    "IMSPublicIdentity",
    "MSISDN",
    "Sh-IMS-Data",
    "IFCs",
    "InitialFilterCriteria",
    "Priority",
    "ApplicationServer",
    "ServerName",
    "DefaultHandling",
    "Alias",
    "FollowMe",
    "Target",
]


@st.composite
def xmlish(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(_TAGS))
    if depth > 3 or draw(st.booleans()):
        return f"<{tag}>{draw(st.text(max_size=12))}</{tag}>".replace("&", "&amp;").replace("<<", "<")
    inner_parts = draw(st.lists(xmlish(depth + 1), max_size=3))
    return f"<{tag}>{''.join(inner_parts)}</{tag}>"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parser_total_on_bytes(data: bytes) -> None:
    with contextlib.suppress(ShDataError):
        parse_sh_data(data)


@settings(max_examples=300, deadline=None)
@given(xmlish())
def test_parser_and_service_data_total_on_shaped_xml(body: str) -> None:
    try:
        parsed = parse_sh_data("<Sh-Data>" + body + "</Sh-Data>")
    except ShDataError:
        return
    for repo in parsed.repository_data:
        with contextlib.suppress(ShDataError):
            from_element(repo.service_data, "42027777100")
