"""RTCP, sans-IO: encode/decode of compound packets with SR, RR, SDES and BYE (RFC 3550 §6).

Decoding applies the header validity checks of RFC 3550 §A.2 (version 2, first packet SR or RR, padding
only in the last packet, lengths adding up to the datagram) and raises :class:`RtcpError` with a short
``reason`` (the label of the dropped-packet counter) for anything else; other packet types (APP, XR, ...)
are returned as :class:`UnknownRtcp` and left to the caller. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import struct

from media.rtp.stats import ReceiveStats

SR = 200
RR = 201
SDES = 202
BYE = 203
CNAME = 1
"""SDES item type of the canonical name, the one item every compound packet carries (§6.5.1)."""
NTP_EPOCH_OFFSET = 2_208_988_800
"""Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch)."""

_HEADER = struct.Struct("!BBH")
_SENDER_INFO = struct.Struct("!IIIIII")  # SSRC, NTP msw, NTP lsw, RTP ts, packet count, octet count
_BLOCK = struct.Struct("!IIIIII")        # SSRC, fraction+cumulative, ext seq, jitter, LSR, DLSR


class RtcpError(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report (§6.4.1)."""

    ssrc: int
    fraction_lost: int
    """Fraction lost since the previous report, as a fixed-point number with the binary point at the left
    (0..255)."""
    cumulative_lost: int
    """24-bit signed (duplicates can make it negative)."""
    highest_seq: int
    jitter: int
    lsr: int = 0
    dlsr: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    """64-bit NTP time of sending (§4)."""
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class SourceDescription:
    chunks: tuple[tuple[int, tuple[tuple[int, bytes], ...]], ...]
    """(SSRC, ((item type, value), ...)) per chunk (§6.5)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Bye:
    ssrcs: tuple[int, ...]
    reason: bytes = b""


@dataclasses.dataclass(frozen=True, slots=True)
class UnknownRtcp:
    packet_type: int
    count: int
    body: bytes


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcp


# --- encoding ------------------------------------------------------------------------------------------
def _header(count: int, packet_type: int, body: bytes) -> bytes:
    if len(body) % 4:
        raise ValueError("RTCP packet body must be a multiple of 32 bits")
    if not 0 <= count <= 31:
        raise ValueError("RTCP count field holds 0..31")
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def _blocks(reports: tuple[ReportBlock, ...]) -> bytes:
    out = bytearray()
    for r in reports:
        lost = r.cumulative_lost & 0xFFFFFF
        out += _BLOCK.pack(r.ssrc, (r.fraction_lost & 0xFF) << 24 | lost, r.highest_seq, r.jitter, r.lsr,
                           r.dlsr)
    return bytes(out)


def _pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def encode(packet: RtcpPacket) -> bytes:
    """One RTCP packet (no padding bit); join several with ``b"".join`` for a compound packet."""
    if isinstance(packet, SenderReport):
        body = _SENDER_INFO.pack(packet.ssrc, packet.ntp_timestamp >> 32, packet.ntp_timestamp & 0xFFFFFFFF,
                                 packet.rtp_timestamp, packet.packet_count & 0xFFFFFFFF,
                                 packet.octet_count & 0xFFFFFFFF) + _blocks(packet.reports)
        return _header(len(packet.reports), SR, body)
    if isinstance(packet, ReceiverReport):
        return _header(len(packet.reports), RR, struct.pack("!I", packet.ssrc) + _blocks(packet.reports))
    if isinstance(packet, SourceDescription):
        sdes = bytearray()
        for ssrc, items in packet.chunks:
            chunk = bytearray(struct.pack("!I", ssrc))
            for item_type, value in items:
                if not 1 <= item_type <= 255 or len(value) > 255:
                    raise ValueError("SDES item type 1..255, value up to 255 octets")
                chunk += bytes((item_type, len(value))) + value
            chunk += b"\x00"  # end of the item list, then pad to 32 bits with more null octets (§6.5)
            sdes += _pad4(bytes(chunk))
        return _header(len(packet.chunks), SDES, bytes(sdes))
    if isinstance(packet, Bye):
        body = b"".join(struct.pack("!I", s) for s in packet.ssrcs)
        if packet.reason:
            if len(packet.reason) > 255:
                raise ValueError("BYE reason up to 255 octets")
            body += _pad4(bytes((len(packet.reason),)) + packet.reason)
        return _header(len(packet.ssrcs), BYE, body)
    return _header(packet.count, packet.packet_type, packet.body)


# --- decoding ------------------------------------------------------------------------------------------
def _decode_blocks(body: bytes, count: int) -> tuple[ReportBlock, ...]:
    if len(body) < count * _BLOCK.size:
        raise RtcpError("truncated", "report blocks")
    out = []
    for i in range(count):
        ssrc, lost_word, seq, jitter, lsr, dlsr = _BLOCK.unpack_from(body, i * _BLOCK.size)
        cumulative = lost_word & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 1 << 24
        out.append(ReportBlock(ssrc, lost_word >> 24, cumulative, seq, jitter, lsr, dlsr))
    return tuple(out)


def _decode_sdes(body: bytes, count: int) -> SourceDescription:
    chunks = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(body):
            raise RtcpError("truncated", "SDES chunk")
        (ssrc,) = struct.unpack_from("!I", body, pos)
        pos += 4
        items = []
        while True:
            if pos >= len(body):
                raise RtcpError("truncated", "SDES items")
            item_type = body[pos]
            if item_type == 0:
                pos += 1
                pos += -pos % 4  # null padding to the next 32-bit boundary
                break
            if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                raise RtcpError("truncated", "SDES item")
            length = body[pos + 1]
            items.append((item_type, bytes(body[pos + 2:pos + 2 + length])))
            pos += 2 + length
        chunks.append((ssrc, tuple(items)))
    if pos > len(body):
        raise RtcpError("truncated", "SDES padding")
    return SourceDescription(tuple(chunks))


def _decode_bye(body: bytes, count: int) -> Bye:
    if len(body) < 4 * count:
        raise RtcpError("truncated", "BYE sources")
    ssrcs = struct.unpack_from(f"!{count}I", body, 0) if count else ()
    rest = body[4 * count:]
    reason = b""
    if rest:
        if 1 + rest[0] > len(rest):
            raise RtcpError("truncated", "BYE reason")
        reason = bytes(rest[1:1 + rest[0]])
    return Bye(tuple(ssrcs), reason)


def _decode_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == SR:
        if len(body) < _SENDER_INFO.size:
            raise RtcpError("truncated", "sender info")
        ssrc, msw, lsw, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body, 0)
        return SenderReport(ssrc, msw << 32 | lsw, rtp_ts, packets, octets,
                            _decode_blocks(body[_SENDER_INFO.size:], count))
    if packet_type == RR:
        if len(body) < 4:
            raise RtcpError("truncated", "RR sender SSRC")
        return ReceiverReport(struct.unpack_from("!I", body, 0)[0], _decode_blocks(body[4:], count))
    if packet_type == SDES:
        return _decode_sdes(body, count)
    if packet_type == BYE:
        return _decode_bye(body, count)
    return UnknownRtcp(packet_type, count, bytes(body))


def decode(data: bytes) -> list[RtcpPacket]:
    """A compound RTCP packet (§6.1) checked as §A.2 describes; raises :class:`RtcpError`."""
    packets: list[RtcpPacket] = []
    pos = 0
    if len(data) < 4:
        raise RtcpError("truncated", "shorter than a header")
    while pos < len(data):
        if pos + 4 > len(data):
            raise RtcpError("truncated", "header")
        first, packet_type, words = _HEADER.unpack_from(data, pos)
        if first >> 6 != 2:
            raise RtcpError("version")
        if not packets and packet_type not in (SR, RR):
            raise RtcpError("not_report_first", f"first packet type {packet_type}")
        end = pos + 4 + 4 * words
        if end > len(data):
            raise RtcpError("length")
        body = data[pos + 4:end]
        if first & 0x20:  # padding: only the last packet may carry it (§A.2); the last octet counts it
            if end != len(data) or not body or not 0 < body[-1] <= len(body):
                raise RtcpError("padding")
            body = body[:-body[-1]]
        packets.append(_decode_one(packet_type, first & 0x1F, body))
        pos = end
    return packets


# --- building reports from receive statistics ----------------------------------------------------------
def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp (§4) of a Unix time."""
    seconds = int(unix_time)
    fraction = int((unix_time - seconds) * (1 << 32)) & 0xFFFFFFFF
    return ((seconds + NTP_EPOCH_OFFSET) & 0xFFFFFFFF) << 32 | fraction


@dataclasses.dataclass
class ReportState:
    """What §A.3 remembers between two reports about one source, and the last SR heard from it (§6.4.1
    LSR/DLSR)."""

    expected_prior: int = 0
    received_prior: int = 0
    last_sr_ntp_middle: int = 0
    last_sr_arrival: float | None = None

    def on_sender_report(self, sr: SenderReport, arrival: float) -> None:
        self.last_sr_ntp_middle = (sr.ntp_timestamp >> 16) & 0xFFFFFFFF
        self.last_sr_arrival = arrival


def report_block(ssrc: int, stats: ReceiveStats, state: ReportState, now: float) -> ReportBlock:
    """The reception report for ``ssrc`` (§6.4.1, loss interval of §A.3), advancing ``state``."""
    expected = stats.expected
    expected_interval = expected - state.expected_prior
    received_interval = stats.received - state.received_prior
    state.expected_prior, state.received_prior = expected, stats.received
    lost_interval = expected_interval - received_interval
    fraction = 0
    if expected_interval > 0 and lost_interval > 0:
        fraction = (lost_interval << 8) // expected_interval
    cumulative = max(-(1 << 23), min((1 << 23) - 1, expected - stats.received))
    dlsr = 0
    if state.last_sr_arrival is not None:
        dlsr = int((now - state.last_sr_arrival) * 65536) & 0xFFFFFFFF  # units of 1/65536 s
    return ReportBlock(ssrc, min(fraction, 255), cumulative, stats.extended_max & 0xFFFFFFFF,
                       int(stats.jitter) & 0xFFFFFFFF, state.last_sr_ntp_middle, dlsr)
