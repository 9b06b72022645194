"""RTCP of the RTP engine over real loopback sockets (media/rtp/engine.py + rtcp_session.py).

A socket pair stands in for the caller: it sends RTP and an SR to a stream, checks the reports the stream
sends (SR, report block, LSR/DLSR, SDES, BYE at the end), answers with an RR whose LSR/DLSR must give the
stream a round-trip time that fits what the test saw, and sends bad RTCP that must be dropped and counted
while the stream goes on. Also: RTP/RTCP port pairing.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from media_harness import free_port_block, wait_for
from prometheus_client import REGISTRY

from media.rtp import packet as rtp
from media.rtp import rtcp
from media.rtp.engine import NoPortError, RtpEngine, RtpStream
from media.rtp.session import RtpSession

PEER_SSRC = 0x5EE55EE5


class Recorder(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.packets: list[tuple[float, bytes, tuple[str, int]]] = []
        self.arrived = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.packets.append((asyncio.get_running_loop().time(), data, (str(addr[0]), int(addr[1]))))
        self.arrived.set()

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def send(self, data: bytes, dest: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, dest)


async def _endpoint(port: int = 0) -> Recorder:
    rec = Recorder()
    await asyncio.get_running_loop().create_datagram_endpoint(lambda: rec, local_addr=("127.0.0.1", port))
    return rec


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("secondnum_media_rtp_dropped_total", {"reason": reason}) or 0.0


class Peer:
    """The caller: an RTP socket on an even port and its RTCP socket on the next one."""

    def __init__(self, rtp_end: Recorder, rtcp_end: Recorder) -> None:
        self.rtp = rtp_end
        self.rtcp = rtcp_end

    def reports(self) -> list[tuple[float, list[rtcp.RtcpPacket], tuple[str, int]]]:
        return [(t, rtcp.decode(data), src) for t, data, src in self.rtcp.packets]


@pytest.fixture
async def engine() -> AsyncIterator[RtpEngine]:
    base = free_port_block(20)
    eng = RtpEngine("127.0.0.1", base, base + 9, rtcp_interval=0.4)
    eng.start()
    try:
        yield eng
    finally:
        eng.stop()


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    base = free_port_block(4)
    p = Peer(await _endpoint(base), await _endpoint(base + 1))
    try:
        yield p
    finally:
        for end in (p.rtp, p.rtcp):
            assert end.transport is not None
            end.transport.close()


def _rtp(seq: int) -> bytes:
    return rtp.encode_header(0, seq & 0xFFFF, seq * 160 & 0xFFFFFFFF, PEER_SSRC, False) + b"\xff" * 160


def _with_lsr(peer: Peer) -> tuple[float, rtcp.SenderReport] | None:
    """The first SR from the stream whose report block carries an LSR, with its arrival time."""
    for t, packets, _ in peer.reports():
        first = packets[0]
        if isinstance(first, rtcp.SenderReport) and first.reports and first.reports[0].lsr:
            return t, first
    return None


async def _open(engine: RtpEngine, peer: Peer) -> RtpStream:
    return await engine.open(RtpSession(0, 101, peer.rtp.address), "PCMU", rtp_timeout=60)


async def test_reports_round_trip_and_bad_rtcp(engine: RtpEngine, peer: Peer) -> None:
    loop = asyncio.get_running_loop()
    stream = await _open(engine, peer)
    ours_rtcp = ("127.0.0.1", stream.local_port + 1)
    # RTP from the caller across a sequence wrap, three packets lost (65534..65535, 0..19 without 3..5).
    sent = [65534, 65535] + [65536 + n for n in range(20) if n not in (3, 4, 5)]
    for seq in sent:
        peer.rtp.send(_rtp(seq), ("127.0.0.1", stream.local_port))
    await wait_for(lambda: stream.session.packets_received == len(sent))
    # Our first report: to the RTP port + 1 (no a=rtcp), from our RTCP port, an SR (we send RTP).
    await wait_for(lambda: len(peer.rtcp.packets) >= 1)
    _, first, source = peer.reports()[0]
    assert source == ours_rtcp
    assert isinstance(first[0], rtcp.SenderReport) and first[0].ssrc == stream.session.ssrc
    assert first[0].packet_count > 0
    assert isinstance(first[1], rtcp.SourceDescription) and first[1].chunks[0][1][0][0] == rtcp.CNAME

    # The caller's SR; the next report must carry its LSR and the delay since it arrived (DLSR).
    peer_ntp = rtcp.ntp_timestamp(1_900_000_000.125)
    sr_sent = loop.time()
    peer.rtcp.send(rtcp.encode(rtcp.SenderReport(PEER_SSRC, peer_ntp, 4242, len(sent), 160 * len(sent))),
                   ours_rtcp)
    await wait_for(lambda: _with_lsr(peer) is not None)
    found = _with_lsr(peer)
    assert found is not None
    got, report = found
    (block,) = report.reports
    assert block.ssrc == PEER_SSRC
    assert block.highest_seq == 65536 + 19              # extended highest sequence number received
    assert block.cumulative_lost == 3
    assert block.lsr == (peer_ntp >> 16) & 0xFFFFFFFF
    assert 0 <= block.dlsr / 65536 <= got - sr_sent + 2 / 65536

    # The caller's RR about our stream: held 0.1 s after our SR arrived; our RTT must fit what we saw.
    our_sr_at, our_packets, _ = peer.reports()[-1]
    our_sr = our_packets[0]
    assert isinstance(our_sr, rtcp.SenderReport)
    await asyncio.sleep(0.1)
    held = loop.time() - our_sr_at
    lsr = (our_sr.ntp_timestamp >> 16) & 0xFFFFFFFF
    rr_block = rtcp.ReportBlock(stream.session.ssrc, 64, 2, 1234, 40, lsr, int(held * 65536))
    rr_sent = loop.time()
    peer.rtcp.send(rtcp.encode(rtcp.ReceiverReport(PEER_SSRC, (rr_block,))), ours_rtcp)
    await wait_for(lambda: stream.rtcp.peer.rtt is not None)
    rr_seen = loop.time()
    # Our SR's NTP time is the engine's clock + the stream's offset: when it was made, in loop time.
    made = (our_sr.ntp_timestamp / (1 << 32)) - rtcp.NTP_EPOCH_OFFSET - stream.rtcp.ntp_offset
    rtt = stream.rtcp.peer.rtt
    assert rtt is not None
    assert rr_sent - made - held - 1e-3 <= rtt <= rr_seen - made - held + 1e-3  # A is between the two
    summary = stream.summary()
    assert summary["peer_cumulative_lost"] == 2 and summary["peer_fraction_lost"] == 0.25
    assert summary["peer_jitter_ms"] == 5.0 and summary["rtt_ms"] is not None
    assert summary["lost"] == 3 and summary["rtcp_received"] == 2

    # Bad RTCP: dropped and counted, the stream goes on (sending RTP, accepting good RTCP).
    before = {r: dropped(r) for r in ("rtcp_truncated", "rtcp_version", "rtcp_length", "rtcp_source")}
    good = rtcp.encode(rtcp.ReceiverReport(PEER_SSRC))
    for bad in (good[:3], b"\x40" + good[1:], good[:2] + b"\x00\x07" + good[4:]):
        peer.rtcp.send(bad, ours_rtcp)
    stranger = await _endpoint()
    stranger.send(good, ours_rtcp)
    await wait_for(lambda: stream.rtcp.packets_dropped == 4)
    for reason, was in before.items():
        assert dropped(reason) == was + 1, reason
    rtp_before = len(peer.rtp.packets)
    peer.rtcp.send(good, ours_rtcp)
    await wait_for(lambda: stream.rtcp.packets_received == 3 and len(peer.rtp.packets) > rtp_before + 5)
    assert stream in engine.streams and stream.session.packets_sent > 0
    assert stream.rtcp.peer.rtt == rtt                  # an RR without blocks changes no peer view
    assert stranger.transport is not None
    stranger.transport.close()

    # End of the call: a last report with BYE, and both ports free again.
    free = engine.free_ports
    count = len(peer.rtcp.packets)
    stream.close()
    await wait_for(lambda: len(peer.rtcp.packets) > count)
    last = peer.reports()[-1][1]
    assert isinstance(last[-1], rtcp.Bye) and last[-1].ssrcs == (stream.session.ssrc,)
    assert engine.free_ports == free + 1
    for port in (stream.local_port, stream.local_port + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))


async def test_symmetric_rtcp_latching_and_a_rtcp_address(engine: RtpEngine, peer: Peer) -> None:
    stream = await _open(engine, peer)
    elsewhere = await _endpoint()
    try:
        stream.update_remote(peer.rtp.address, 0, 101, elsewhere.address)   # a=rtcp: in a re-INVITE
        stream.rtcp_due = 0.0                                                # report at the next slot
        await wait_for(lambda: len(elsewhere.packets) >= 1)
        # The caller's RTCP comes from yet another port (NAT): we latch it and report there.
        peer.rtcp.send(rtcp.encode(rtcp.ReceiverReport(PEER_SSRC)), ("127.0.0.1", stream.local_port + 1))
        await wait_for(lambda: stream.rtcp.latched == peer.rtcp.address)
        stream.rtcp_due = 0.0
        await wait_for(lambda: len(peer.rtcp.packets) >= 1)
    finally:
        assert elsewhere.transport is not None
        elsewhere.transport.close()


async def test_a_port_whose_rtcp_port_is_taken_is_skipped() -> None:
    base = free_port_block(8)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", base + 1))
    eng = RtpEngine("127.0.0.1", base, base + 4)   # RTP on base, base+2; base+4 has no RTCP port in range
    eng.start()
    try:
        assert eng.free_ports == 2
        s = await eng.open(RtpSession(0, 101, ("127.0.0.1", 9)), "PCMU", 60)
        assert s.local_port == base + 2
        with pytest.raises(NoPortError):
            await eng.open(RtpSession(0, 101, ("127.0.0.1", 9)), "PCMU", 60)
        blocker.close()
        s2 = await eng.open(RtpSession(0, 101, ("127.0.0.1", 9)), "PCMU", 60)
        assert s2.local_port == base
        s.close()
        s2.close()
        assert eng.free_ports == 2
    finally:
        blocker.close()
        eng.stop()
