"""RTP fixed header (RFC 3550 §5.1) encode/decode, sans-IO.

Only what a G.711 endpoint needs: version 2, optional padding (§5.1 P bit), CSRC list and header extension
(§5.3.1) are skipped over correctly, so packets that carry them are still accepted.
"""

from __future__ import annotations

import dataclasses
import struct

RTP_VERSION = 2
HEADER_LEN = 12
_HEADER = struct.Struct("!BBHII")


class RtpError(ValueError):
    """The datagram is not a valid RTP packet (drop and count it; RFC 3550 §A.1)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet; ``payload`` excludes padding, CSRCs and the header extension."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()

    def encode(self) -> bytes:
        """Serialise as version 2 without padding or extension (RFC 3550 §5.1)."""
        first = (RTP_VERSION << 6) | len(self.csrcs)
        second = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        head = _HEADER.pack(first, second, self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF,
                            self.ssrc & 0xFFFFFFFF)
        if self.csrcs:
            head += struct.pack(f"!{len(self.csrcs)}I", *self.csrcs)
        return head + self.payload


def encode_header(payload_type: int, sequence: int, timestamp: int, ssrc: int, marker: bool = False) -> bytes:
    """The 12-byte fixed header alone (hot path of the sender: header + payload concatenation)."""
    return _HEADER.pack(0x80, (0x80 if marker else 0) | payload_type, sequence & 0xFFFF,
                        timestamp & 0xFFFFFFFF, ssrc)


def decode(data: bytes) -> RtpPacket:
    """Parse ``data``; raises :class:`RtpError` with a short ``reason`` used as a metric label."""
    if len(data) < HEADER_LEN:
        raise RtpError("truncated", f"{len(data)} bytes")
    first, second, seq, ts, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtpError("version", str(first >> 6))
    cc = first & 0x0F
    offset = HEADER_LEN + 4 * cc
    if len(data) < offset:
        raise RtpError("truncated", "CSRC list")
    csrcs = struct.unpack_from(f"!{cc}I", data, HEADER_LEN) if cc else ()
    if first & 0x10:  # header extension, §5.3.1
        if len(data) < offset + 4:
            raise RtpError("truncated", "extension header")
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
        if len(data) < offset:
            raise RtpError("truncated", "extension")
    end = len(data)
    if first & 0x20:  # padding, §5.1: last octet counts the padding octets including itself
        pad = data[-1]
        if pad == 0 or end - pad < offset:
            raise RtpError("padding", str(pad))
        end -= pad
    pt = second & 0x7F
    if 72 <= pt <= 76:  # RTCP SR/RR/SDES/BYE/APP multiplexed onto the RTP port (RFC 5761 §4)
        raise RtpError("rtcp")
    return RtpPacket(pt, seq, ts, ssrc, bytes(data[offset:end]), bool(second & 0x80), tuple(csrcs))
