"""Diameter codec: python-diameter 0.9.0 AVP classes with our framing, validation and dictionary fixes.

This module is the ONE place where python-diameter's dictionary bugs are patched (see `apply_patches`).
Encoding and decoding of whole messages is done here with `struct` (RFC 6733 §3 header, §4.1 AVP
header) because the library's xdrlib-based packer costs more than the rest of a transaction; the AVP
value types (`AvpUnsigned32`, `AvpUtf8String`, ...) and the dictionary stay python-diameter's.

Bad input is reported as `DiameterError` carrying the RFC 6733 §7.1 result code, the offending AVP
for Failed-AVP (§7.5) and whether framing was lost (then the transport connection must be dropped).
"""

from __future__ import annotations

import itertools
import os
import struct
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from diameter.message import Message, MessageHeader
from diameter.message.avp import Avp, AvpGrouped
from diameter.message.avp.avp import (
    AvpAddress,
    AvpFloat32,
    AvpFloat64,
    AvpInteger32,
    AvpInteger64,
    AvpTime,
    AvpUnsigned32,
    AvpUnsigned64,
    AvpUtf8String,
    get_avp_dictionary_entry,
)
from diameter.message.avp.errors import AvpEncodeError

from secondnum.diameter import constants as dc
from secondnum.diameter._patches import apply_patches

__all__ = [
    "Avp",
    "DiameterError",
    "Message",
    "MessageHeader",
    "apply_patches",
    "avp",
    "decode",
    "decode_header",
    "encode",
    "first",
    "grouped",
    "new_answer",
    "new_request",
    "result_code",
    "value",
    "values",
]

apply_patches()

HEADER_LENGTH: Final = 20
MAX_MESSAGE_LENGTH: Final = 1 << 20  # we never need more; a larger length means garbage / lost framing
_HDR = struct.Struct("!IIIII")
_AVP_HDR = struct.Struct("!II")
_AVP_VHDR = struct.Struct("!III")
_U32 = struct.Struct("!I")
# Fixed payload sizes per python-diameter value type (RFC 6733 §4.2); a mismatch is 5014 (§7.1.5).
_FIXED_SIZE: Final[dict[type[Avp], int]] = {
    AvpInteger32: 4,
    AvpUnsigned32: 4,
    AvpInteger64: 8,
    AvpUnsigned64: 8,
    AvpFloat32: 4,
    AvpFloat64: 8,
    AvpTime: 4,
}


class DiameterError(Exception):
    """Protocol error found while decoding (RFC 6733 §7: error answer with Result-Code / Failed-AVP)."""

    def __init__(
        self,
        result_code: int,
        message: str,
        *,
        header: MessageHeader | None = None,
        failed_avp: bytes | None = None,
        framing_lost: bool = False,
    ) -> None:
        super().__init__(f"{result_code}: {message}")
        self.result_code = result_code
        self.header = header
        self.failed_avp = failed_avp
        self.framing_lost = framing_lost


# --------------------------------------------------------------------------- identifiers


class IdGenerator:
    """Hop-by-Hop and End-to-End identifiers (RFC 6733 §3).

    End-to-End: high 12 bits from the clock at start-up, low 20 bits a counter, so that ids are not
    reused across a restart within 4 minutes (§3, "End-to-End Identifier").
    """

    def __init__(self) -> None:
        self._hop = itertools.count(int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF)
        self._e2e_high = (int(time.time()) & 0xFFF) << 20
        self._e2e = itertools.count(int.from_bytes(os.urandom(3), "big") & 0xFFFFF)

    def hop_by_hop(self) -> int:
        return next(self._hop) & 0xFFFFFFFF

    def end_to_end(self) -> int:
        return self._e2e_high | (next(self._e2e) & 0xFFFFF)


# --------------------------------------------------------------------------- building


def avp(code: int, val: Any, vendor: int = 0, mandatory: bool | None = None) -> Avp:
    """One AVP of dictionary type; `mandatory=None` takes the dictionary's M flag.

    A `str` given for an OctetString/DiameterIdentity AVP (Origin-Host, User-Data, ...) is UTF-8 encoded.
    """
    try:
        return Avp.new(code, vendor, value=val, is_mandatory=mandatory)
    except AvpEncodeError:
        if isinstance(val, str):
            return Avp.new(code, vendor, value=val.encode(), is_mandatory=mandatory)
        raise


def grouped(code: int, members: Sequence[Avp], vendor: int = 0, mandatory: bool | None = None) -> Avp:
    """A Grouped AVP (RFC 6733 §4.4) whose payload is encoded once, here."""
    g = Avp.new(code, vendor, is_mandatory=mandatory)
    g._avps = list(members)
    g.payload = b"".join(_encode_avp(a) for a in members)
    return g


def raw_avp(code: int, payload: bytes, vendor: int = 0, mandatory: bool = True) -> Avp:
    """An AVP with an opaque payload (for codes outside the dictionary, and for tests)."""
    flags = (dc.AVP_FLAG_MANDATORY if mandatory else 0) | (dc.AVP_FLAG_VENDOR if vendor else 0)
    return Avp(code, vendor, payload, flags)


def new_request(
    command_code: int, application_id: int, avps: Iterable[Avp] = (), proxiable: bool = True
) -> Message:
    """A request; Origin-*, Destination-* and identifiers are filled in by the node when sent."""
    flags = dc.FLAG_REQUEST | (dc.FLAG_PROXIABLE if proxiable else 0)
    hdr = MessageHeader(dc.DIAMETER_VERSION, 0, flags, command_code, application_id, 0, 0)
    return Message(hdr, list(avps))


def new_answer(
    request: Message, result_code: int | None = None, avps: Iterable[Avp] = (), error: bool = False
) -> Message:
    """An answer to `request`: same command, application and identifiers, P flag copied (RFC 6733 §6.2).

    Session-Id is copied first when present (§8.8: it MUST appear first in the message).
    """
    rh = request.header
    flags = (rh.command_flags & dc.FLAG_PROXIABLE) | (dc.FLAG_ERROR if error else 0)
    hdr = MessageHeader(
        dc.DIAMETER_VERSION,
        0,
        flags,
        rh.command_code,
        rh.application_id,
        rh.hop_by_hop_identifier,
        rh.end_to_end_identifier,
    )
    out: list[Avp] = []
    sid = first(request.avps, dc.AVP_SESSION_ID)
    if sid is not None:
        out.append(sid)
    if result_code is not None:
        out.append(avp(dc.AVP_RESULT_CODE, result_code))
    out.extend(avps)
    return Message(hdr, out)


# --------------------------------------------------------------------------- encoding


def _encode_avp(a: Avp) -> bytes:
    payload: bytes = a.payload
    vendor = a.vendor_id
    flags = a.flags
    pad = b"\0" * (-len(payload) % 4)
    if vendor:
        return _AVP_VHDR.pack(a.code, ((flags | 0x80) << 24) | (12 + len(payload)), vendor) + payload + pad
    return _AVP_HDR.pack(a.code, ((flags & 0x7F) << 24) | (8 + len(payload))) + payload + pad


def encode_avps(avps: Iterable[Avp]) -> bytes:
    return b"".join(_encode_avp(a) for a in avps)


def encode(msg: Message) -> bytes:
    """Whole message on the wire (RFC 6733 §3); also updates `msg.header.length`."""
    body = b"".join(_encode_avp(a) for a in msg.avps)
    h = msg.header
    h.length = HEADER_LENGTH + len(body)
    return (
        _HDR.pack(
            (h.version << 24) | h.length,
            (h.command_flags << 24) | h.command_code,
            h.application_id,
            h.hop_by_hop_identifier,
            h.end_to_end_identifier,
        )
        + body
    )


# --------------------------------------------------------------------------- decoding


def decode_header(data: bytes | memoryview) -> MessageHeader:
    """Header of the first 20 bytes (no checks)."""
    vl, fc, app, hbh, e2e = _HDR.unpack_from(data, 0)
    hdr = MessageHeader(vl >> 24, vl & 0xFFFFFF, fc >> 24, fc & 0xFFFFFF, app, hbh, e2e)
    hdr.length_header = HEADER_LENGTH
    return hdr


def frame_length(data: bytes | bytearray | memoryview) -> int:
    """Length of the message at the start of `data` (needs ≥ 4 bytes).

    Raises DiameterError(5015, framing_lost) when the length cannot be a Diameter message, which is
    the one case where the stream cannot be resynchronised (RFC 6733 §7.1.5, 5015).
    """
    length: int = _U32.unpack_from(data, 0)[0] & 0xFFFFFF
    if length < HEADER_LENGTH or length % 4 or length > MAX_MESSAGE_LENGTH:
        raise DiameterError(dc.INVALID_MESSAGE_LENGTH, f"message length {length}", framing_lost=True)
    return length


def decode(data: bytes) -> Message:
    """Decode and validate one complete message (exactly `frame_length(data)` bytes).

    Checks, in order: version (5011), header bits (3008), each AVP's length (5014), fixed-size
    values and UTF-8 (5014/5004), unknown AVPs with the M bit (5001). Grouped AVPs are decoded
    and checked recursively. The result is a plain `Message` (attribute classes are not built:
    they cost more than the rest of a transaction).
    """
    if len(data) < HEADER_LENGTH:
        raise DiameterError(dc.INVALID_MESSAGE_LENGTH, f"{len(data)} bytes", framing_lost=True)
    hdr = decode_header(data)
    if hdr.version != dc.DIAMETER_VERSION:
        raise DiameterError(dc.UNSUPPORTED_VERSION, f"version {hdr.version}", header=hdr)
    if hdr.length != len(data):
        raise DiameterError(dc.INVALID_MESSAGE_LENGTH, "length mismatch", header=hdr, framing_lost=True)
    flags = hdr.command_flags
    if flags & dc.FLAG_REQUEST and flags & dc.FLAG_ERROR:
        # RFC 6733 §3: "E ... MUST NOT be set in request messages".
        raise DiameterError(dc.INVALID_HDR_BITS, "E bit set in a request", header=hdr)
    if flags & dc.FLAG_REQUEST and flags & dc.FLAG_PROXIABLE and hdr.command_code in _LOCAL_COMMANDS:
        # CER/DWR/DPR are "REQ" only in their ABNF (RFC 6733 §5.3.1, §5.4.1, §5.5.1).
        raise DiameterError(dc.INVALID_HDR_BITS, "P bit set on a base peer request", header=hdr)
    try:
        # An answer cannot be answered: unknown M-bit AVPs in it are kept, not rejected (5001 is
        # for requests, RFC 6733 §7.1.5); length and value errors still make it unusable.
        avps = _decode_avps(data, HEADER_LENGTH, len(data), strict=bool(flags & dc.FLAG_REQUEST))
    except DiameterError as e:
        e.header = hdr
        raise
    return Message(hdr, avps)


_LOCAL_COMMANDS: Final = frozenset(
    {dc.CMD_CAPABILITIES_EXCHANGE, dc.CMD_DEVICE_WATCHDOG, dc.CMD_DISCONNECT_PEER}
)


def _decode_avps(data: bytes, pos: int, end: int, strict: bool = True) -> list[Avp]:
    out: list[Avp] = []
    while pos < end:
        if end - pos < 8:
            raise DiameterError(dc.INVALID_AVP_LENGTH, "truncated AVP header", failed_avp=data[pos:end])
        code, fl = _AVP_HDR.unpack_from(data, pos)
        flags = fl >> 24
        length = fl & 0xFFFFFF
        hlen = 12 if flags & dc.AVP_FLAG_VENDOR else 8
        if length < hlen or pos + length > end:
            vendor0 = _U32.unpack_from(data, pos + 8)[0] if hlen == 12 and end - pos >= 12 else 0
            raise DiameterError(
                dc.INVALID_AVP_LENGTH,
                f"AVP {code} length {length}",
                failed_avp=_offending_header(code, flags, vendor0),
            )
        vendor = _U32.unpack_from(data, pos + 8)[0] if hlen == 12 else 0
        payload = data[pos + hlen : pos + length]
        info = get_avp_dictionary_entry(code, vendor)
        if info is None:
            if strict and flags & dc.AVP_FLAG_MANDATORY:
                raise DiameterError(
                    dc.AVP_UNSUPPORTED, f"AVP {code}/{vendor} with M bit", failed_avp=data[pos : pos + length]
                )
            a: Avp = Avp(code, vendor, payload, flags)
        else:
            typ: type[Avp] = info["type"]
            a = typ(code, vendor, payload, flags)
            a.name = info["name"]
            size = _FIXED_SIZE.get(typ)
            if size is not None and len(payload) != size:
                raise DiameterError(
                    dc.INVALID_AVP_LENGTH,
                    f"{a.name} length {len(payload)}",
                    failed_avp=data[pos : pos + length],
                )
            if typ is AvpUtf8String:
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    raise DiameterError(
                        dc.INVALID_AVP_VALUE, f"{a.name} not UTF-8", failed_avp=data[pos : pos + length]
                    ) from None
            elif typ is AvpAddress and len(payload) < 2:
                raise DiameterError(
                    dc.INVALID_AVP_LENGTH, f"{a.name} too short", failed_avp=data[pos : pos + length]
                )
            elif issubclass(typ, AvpGrouped) and code != dc.AVP_FAILED_AVP:
                # Failed-AVP holds what the peer found wrong: kept raw, never re-validated.
                a._avps = _decode_avps(data, pos + hlen, pos + length, strict)
        out.append(a)
        pos += (length + 3) & ~3
        if pos > end:
            # Padding past the end of the message: the last AVP's length was not 4-aligned at the end.
            raise DiameterError(dc.INVALID_AVP_LENGTH, "AVP padding past message end", failed_avp=None)
    return out


def _offending_header(code: int, flags: int, vendor: int) -> bytes:
    """Failed-AVP content for a bad AVP length (RFC 6733 §7.1.5, 5014): the AVP header with a
    zero-filled payload of the minimum size of its type, so that the answer itself stays valid."""
    info = get_avp_dictionary_entry(code, vendor)
    size = _FIXED_SIZE.get(info["type"], 0) if info is not None else 0
    return _encode_avp(Avp(code, vendor, b"\0" * size, flags))


# --------------------------------------------------------------------------- reading


def first(avps: Iterable[Avp], code: int, vendor: int = 0) -> Avp | None:
    for a in avps:
        if a.code == code and a.vendor_id == vendor:
            return a
    return None


def value(avps: Iterable[Avp], code: int, vendor: int = 0) -> Any:
    """Value of the first matching AVP, or None."""
    a = first(avps, code, vendor)
    return None if a is None else a.value


def values(avps: Iterable[Avp], code: int, vendor: int = 0) -> list[Any]:
    return [a.value for a in avps if a.code == code and a.vendor_id == vendor]


def result_code(msg: Message) -> int | None:
    """Result-Code, else Experimental-Result/Experimental-Result-Code (RFC 6733 §7.6)."""
    rc = value(msg.avps, dc.AVP_RESULT_CODE)
    if rc is not None:
        return int(rc)
    er = first(msg.avps, dc.AVP_EXPERIMENTAL_RESULT)
    if er is not None:
        erc = value(er.value, dc.AVP_EXPERIMENTAL_RESULT_CODE)
        return None if erc is None else int(erc)
    return None


def text(avps: Iterable[Avp], code: int, vendor: int = 0) -> str | None:
    """A DiameterIdentity/OctetString/UTF8String AVP value as text."""
    v = value(avps, code, vendor)
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)
