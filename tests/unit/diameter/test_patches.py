"""python-diameter dictionary fixes, pinned byte for byte (secondnum/diameter/_patches.py)."""

from __future__ import annotations

import struct

import pytest
from diameter.message.avp.grouped import EventType, ImsInformation, ServiceInformation
from diameter.message.commands import (
    CreditControlAnswer,
    CreditControlRequest,
    ProfileUpdateRequest,
    PushNotificationRequest,
    ServerAssignmentAnswer,
    UserDataAnswer,
)

import secondnum.diameter  # noqa: F401 - applies the patches
from secondnum.diameter import codec


def avp_headers(data: bytes, start: int = 20) -> list[tuple[int, int, int]]:
    """(code, flags, vendor) of each top-level AVP in an encoded message."""
    out, pos = [], start
    while pos < len(data):
        code, fl = struct.unpack_from("!II", data, pos)
        flags, length = fl >> 24, fl & 0xFFFFFF
        vendor = struct.unpack_from("!I", data, pos + 8)[0] if flags & 0x80 else 0
        out.append((code, flags, vendor))
        pos += (length + 3) & ~3
    return out


@pytest.mark.parametrize("cls", [UserDataAnswer, ProfileUpdateRequest, PushNotificationRequest])
def test_sh_user_data_is_702_vendor_3gpp(cls: type) -> None:
    msg = cls()
    msg.user_data = b"<Sh-Data/>"
    msg.session_id = "s"
    data = msg.as_bytes()
    assert (702, 0xC0, 10415) in avp_headers(data)
    assert not any(code == 606 for code, _, _ in avp_headers(data))
    # the exact AVP bytes: code, V+M flags, length 12+10, vendor, payload, padding
    assert struct.pack("!IIIl", 702, (0xC0 << 24) | 22, 10415, 0)[:12] + b"<Sh-Data/>\0\0" in data


def test_cx_user_data_stays_606() -> None:
    msg = ServerAssignmentAnswer()
    msg.user_data = b"<x/>"
    assert (606, 0xC0, 10415) in avp_headers(msg.as_bytes())


def test_sip_method_inside_event_type_is_824() -> None:
    msg = CreditControlRequest()
    msg.session_id = "s"
    msg.service_information = ServiceInformation(
        ims_information=ImsInformation(event_type=EventType(sip_method="INVITE"))
    )
    data = msg.as_bytes()
    expected = struct.pack("!III", 824, (0xC0 << 24) | 18, 10415) + b"INVITE\0\0"
    assert expected in data
    assert struct.pack("!I", 393) + b"\x40" not in data


@pytest.mark.parametrize("cls", [CreditControlRequest, CreditControlAnswer])
def test_origin_host_and_realm_have_m_bit(cls: type) -> None:
    msg = cls()
    msg.origin_host = b"as.example"
    msg.origin_realm = b"example"
    heads = {code: flags for code, flags, _ in avp_headers(msg.as_bytes())}
    assert heads[264] == 0x40
    assert heads[296] == 0x40


def test_cca_lists_ccfh_once() -> None:
    msg = CreditControlAnswer()
    msg.credit_control_failure_handling = 1
    codes = [code for code, _, _ in avp_headers(msg.as_bytes())]
    assert codes.count(427) == 1


@pytest.mark.parametrize(
    ("cls", "app_id"),
    [
        (CreditControlRequest, 4),
        (CreditControlAnswer, 4),
        (UserDataAnswer, 16777217),
        (PushNotificationRequest, 16777217),
    ],
)
def test_application_id_in_header(cls: type, app_id: int) -> None:
    data = cls().as_bytes()
    assert struct.unpack_from("!I", data, 8)[0] == app_id


def test_patches_are_idempotent() -> None:
    codec.apply_patches()
    codec.apply_patches()
    msg = CreditControlAnswer()
    msg.credit_control_failure_handling = 0
    assert [c for c, _, _ in avp_headers(msg.as_bytes())].count(427) == 1
