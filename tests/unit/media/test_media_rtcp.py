"""RTCP codec (RFC 3550 §6, §A.2 checks) and report blocks from receive statistics (§6.4.1, §A.3)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.rtp import rtcp
from media.rtp.stats import ReceiveStats

u32 = st.integers(0, 0xFFFFFFFF)
blocks = st.builds(rtcp.ReportBlock, u32, st.integers(0, 255), st.integers(-(1 << 23), (1 << 23) - 1), u32,
                   u32, u32, u32)
sender_reports = st.builds(rtcp.SenderReport, u32, st.integers(0, (1 << 64) - 1), u32, u32, u32,
                           st.lists(blocks, max_size=31).map(tuple))
receiver_reports = st.builds(rtcp.ReceiverReport, u32, st.lists(blocks, max_size=31).map(tuple))
items = st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=255)), max_size=4).map(tuple)
sdes = st.builds(rtcp.SourceDescription, st.lists(st.tuples(u32, items), max_size=31).map(tuple))
byes = st.builds(rtcp.Bye, st.lists(u32, max_size=31).map(tuple), st.binary(max_size=255))


@given(st.one_of(sender_reports, receiver_reports), st.lists(st.one_of(sdes, byes), max_size=3))
def test_compound_round_trip(first: rtcp.RtcpPacket, rest: list[rtcp.RtcpPacket]) -> None:
    data = b"".join(rtcp.encode(p) for p in (first, *rest))
    assert len(data) % 4 == 0
    assert rtcp.decode(data) == [first, *rest]


@given(st.binary(max_size=300))
def test_decoder_raises_only_rtcp_error(data: bytes) -> None:
    try:
        rtcp.decode(data)
    except rtcp.RtcpError as exc:
        assert exc.reason in ("truncated", "version", "not_report_first", "length", "padding")


@given(st.one_of(sender_reports, receiver_reports), st.data())
def test_any_truncation_is_an_rtcp_error_or_a_shorter_valid_packet(first: rtcp.RtcpPacket,
                                                                     data: st.DataObject) -> None:
    encoded = rtcp.encode(first)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(rtcp.RtcpError):
        rtcp.decode(encoded[:cut])


RR_EMPTY = rtcp.encode(rtcp.ReceiverReport(1))


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x80\xc9", "truncated"),
    (b"\x40\xc9\x00\x01" + b"\x00" * 4, "version"),
    (rtcp.encode(rtcp.Bye((1,))), "not_report_first"),
    (b"\x80\xc9\x00\x05" + b"\x00" * 4, "length"),
    (b"\xa0\xc9\x00\x01" + b"\x00\x00\x00\x00", "padding"),             # padding count 0
    (b"\xa0\xc9\x00\x01\x00\x00\x00\x01" + RR_EMPTY, "padding"),       # padding not in the last packet
    (b"\x81\xc9\x00\x01" + b"\x00" * 4, "truncated"),                   # RC=1 without its block
    (RR_EMPTY + b"\x81\xca\x00\x01" + b"\x00\x00\x00\x01", "truncated"),  # SDES chunk without end
])
def test_bad_rtcp(data: bytes, reason: str) -> None:
    with pytest.raises(rtcp.RtcpError) as info:
        rtcp.decode(data)
    assert info.value.reason == reason


def test_known_bytes_and_padding() -> None:
    sr = rtcp.SenderReport(0x11223344, 0x0102030405060708, 160, 2, 320)
    assert rtcp.encode(sr) == bytes.fromhex("80c80006" "11223344" "01020304" "05060708" "000000a0"
                                             "00000002" "00000140")
    cname = rtcp.SourceDescription(((0x11223344, ((rtcp.CNAME, b"media@x"),)),))
    # SSRC 4 + item 2+7 + end 1 = 14 octets, null-padded to 16 = 4 words (§6.5)
    assert rtcp.encode(cname) == bytes.fromhex("81ca0004" "11223344" "0107") + b"media@x" + b"\x00" * 3
    padded = rtcp.encode(sr) + b"\xa0\xcc\x00\x01" + b"\x00\x00\x00\x04"   # APP-type packet, 4 octets pad
    assert rtcp.decode(padded)[1] == rtcp.UnknownRtcp(204, 0, b"")


def test_report_block_from_statistics() -> None:
    stats = ReceiveStats()
    for n in range(100):
        if n not in (10, 11, 12, 13):
            stats.update(1000 + n, n * 160, n * 0.02 + (0.002 if n % 2 else 0.0))
    state = rtcp.ReportState()
    sr = rtcp.SenderReport(5, rtcp.ntp_timestamp(1_700_000_000.5), 0, 0, 0)
    state.on_sender_report(sr, arrival=10.0)
    block = rtcp.report_block(7, stats, state, now=10.25)
    assert block.cumulative_lost == 4 and block.fraction_lost == (4 << 8) // 99
    assert block.highest_seq == 1099 and block.jitter == int(stats.jitter) > 0
    assert block.lsr == (sr.ntp_timestamp >> 16) & 0xFFFFFFFF and block.dlsr == 16384  # 0.25 s
    for n in range(100, 150):                                     # no loss in the next interval
        stats.update(1000 + n, n * 160, n * 0.02)
    assert rtcp.report_block(7, stats, state, now=11.0).fraction_lost == 0
    assert struct.unpack("!I", rtcp.encode(rtcp.ReceiverReport(9, (block,)))[12:16])[0] >> 24 == 10
