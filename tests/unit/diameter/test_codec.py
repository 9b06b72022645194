"""Codec: round trips and RFC 6733 §7.1.5 error detection, table-driven plus a hypothesis fuzz."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secondnum.diameter import codec
from secondnum.diameter import constants as dc


def ccr() -> bytes:
    msg = codec.new_request(
        dc.CMD_CREDIT_CONTROL,
        dc.APP_RO,
        [
            codec.avp(dc.AVP_SESSION_ID, "as.example;1;2"),
            codec.avp(dc.AVP_ORIGIN_HOST, b"as.example"),
            codec.avp(dc.AVP_CC_REQUEST_NUMBER, 0),
            codec.grouped(
                dc.AVP_3GPP_EVENT_TYPE,
                [codec.avp(dc.AVP_3GPP_SIP_METHOD, "INVITE", dc.VENDOR_3GPP)],
                dc.VENDOR_3GPP,
            ),
        ],
    )
    msg.header.hop_by_hop_identifier = 0x11223344
    msg.header.end_to_end_identifier = 0x55667788
    return codec.encode(msg)


def header(length: int, flags: int = 0xC0, code: int = 272, app: int = 4, version: int = 1) -> bytes:
    return struct.pack("!IIIII", (version << 24) | length, (flags << 24) | code, app, 1, 2)


def avp_bytes(
    code: int, payload: bytes, flags: int = 0x40, vendor: int = 0, length: int | None = None
) -> bytes:
    hlen = 12 if vendor else 8
    n = hlen + len(payload) if length is None else length
    head = struct.pack("!II", code, (flags << 24) | n) + (struct.pack("!I", vendor) if vendor else b"")
    return head + payload + b"\0" * (-len(payload) % 4)


def message(*avps: bytes, **kw: int) -> bytes:
    body = b"".join(avps)
    return header(20 + len(body), **kw) + body


def test_round_trip() -> None:
    data = ccr()
    msg = codec.decode(data)
    assert msg.header.command_code == 272
    assert msg.header.application_id == 4
    assert msg.header.hop_by_hop_identifier == 0x11223344
    assert codec.value(msg.avps, dc.AVP_SESSION_ID) == "as.example;1;2"
    et = codec.first(msg.avps, dc.AVP_3GPP_EVENT_TYPE, dc.VENDOR_3GPP)
    assert et is not None
    assert codec.value(et.value, dc.AVP_3GPP_SIP_METHOD, dc.VENDOR_3GPP) == "INVITE"
    assert codec.encode(msg) == data


def test_answer_copies_ids_and_session_first() -> None:
    req = codec.decode(ccr())
    ans = codec.new_answer(req, 2001)
    assert ans.header.hop_by_hop_identifier == 0x11223344
    assert ans.header.end_to_end_identifier == 0x55667788
    assert not ans.header.command_flags & dc.FLAG_REQUEST
    assert ans.avps[0].code == dc.AVP_SESSION_ID
    assert codec.result_code(ans) == 2001


U32 = struct.pack("!I", 7)

BAD_INPUT = [
    (
        "version 2",
        message(avp_bytes(dc.AVP_CC_REQUEST_NUMBER, U32), version=2),
        dc.UNSUPPORTED_VERSION,
        False,
    ),
    ("E bit on request", message(flags=0xA0), dc.INVALID_HDR_BITS, False),
    ("P bit on CER", message(code=257, app=0, flags=0xC0), dc.INVALID_HDR_BITS, False),
    (
        "AVP length < header",
        message(avp_bytes(dc.AVP_CC_REQUEST_NUMBER, U32, length=4)),
        dc.INVALID_AVP_LENGTH,
        False,
    ),
    (
        "AVP past end",
        message(avp_bytes(dc.AVP_CC_REQUEST_NUMBER, U32, length=40)),
        dc.INVALID_AVP_LENGTH,
        False,
    ),
    (
        "Unsigned32 of 3 bytes",
        message(avp_bytes(dc.AVP_CC_REQUEST_NUMBER, b"\0\0\7")),
        dc.INVALID_AVP_LENGTH,
        False,
    ),
    ("bad UTF-8", message(avp_bytes(dc.AVP_SESSION_ID, b"\xff\xfe")), dc.INVALID_AVP_VALUE, False),
    ("unknown M AVP", message(avp_bytes(99999, b"abcd", vendor=0)), dc.AVP_UNSUPPORTED, False),
    (
        "bad inside group",
        message(avp_bytes(dc.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL, avp_bytes(dc.AVP_CC_TIME, b"\0\0"))),
        dc.INVALID_AVP_LENGTH,
        False,
    ),
]


@pytest.mark.parametrize(("name", "data", "code", "framing_lost"), BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input(name: str, data: bytes, code: int, framing_lost: bool) -> None:
    with pytest.raises(codec.DiameterError) as ei:
        codec.decode(data)
    assert ei.value.result_code == code
    assert ei.value.framing_lost is framing_lost
    assert ei.value.header is not None


def test_failed_avp_carries_the_offending_avp() -> None:
    bad = avp_bytes(99999, b"abcd")
    with pytest.raises(codec.DiameterError) as ei:
        codec.decode(message(avp_bytes(dc.AVP_CC_REQUEST_NUMBER, U32), bad))
    assert ei.value.failed_avp == bad


def test_unknown_avp_without_m_bit_is_kept() -> None:
    msg = codec.decode(message(avp_bytes(99999, b"abcd", flags=0)))
    assert msg.avps[0].code == 99999
    assert msg.avps[0].payload == b"abcd"


@pytest.mark.parametrize("length", [0, 19, 22, 1 << 21])
def test_frame_length_rejects_impossible_lengths(length: int) -> None:
    with pytest.raises(codec.DiameterError) as ei:
        codec.frame_length(header(length))
    assert ei.value.result_code == dc.INVALID_MESSAGE_LENGTH
    assert ei.value.framing_lost


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=200))
def test_fuzz_decode_raises_only_diameter_error(body: bytes) -> None:
    body = body + b"\0" * (-len(body) % 4)
    with contextlib.suppress(codec.DiameterError):
        codec.decode(header(20 + len(body)) + body)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=4, max_size=60), st.integers(min_value=0, max_value=len(ccr())))
def test_fuzz_mutated_ccr(noise: bytes, at: int) -> None:
    data = bytearray(ccr())
    data[20 + at % (len(data) - 20) : 20 + at % (len(data) - 20) + len(noise)] = noise
    data = data[: len(ccr())]
    data[0:4] = struct.pack("!I", (1 << 24) | len(data))
    with contextlib.suppress(codec.DiameterError):
        codec.decode(bytes(data))


def test_unknown_m_avp_in_answer_is_kept() -> None:
    msg = codec.decode(message(avp_bytes(99999, b"abcd"), flags=0x40))
    assert msg.avps[0].code == 99999


def test_avp_accepts_str_for_octet_string() -> None:
    a = codec.avp(dc.AVP_ORIGIN_HOST, "as.example")
    assert a.payload == b"as.example" and a.is_mandatory
    from diameter.message.avp.errors import AvpEncodeError

    with pytest.raises(AvpEncodeError):
        codec.avp(dc.AVP_CC_REQUEST_NUMBER, "x")
