"""RTP/RTCP from strangers: latching rules and the engine's receive path under a flood (sans-IO + engine).

A call's SDP says 127.0.0.1; strangers send from 127.0.0.2. RFC 4961 symmetric latching, hardened: a stranger
who sends first cannot keep the latch once the signalled host sends ("RTP bleed"), a peer behind NAT keeps its
latch, and a stranger's flood is dropped before the stream's bounded inbox.
"""

from __future__ import annotations

import random

from media.rtp import packet as rtp
from media.rtp import rtcp
from media.rtp.engine import MAX_INBOX, RtpEngine, RtpStream
from media.rtp.rtcp_session import RtcpSession
from media.rtp.session import AudioReceived, PacketDropped, RtpSession

SDP = ("127.0.0.1", 40000)
STRANGER = ("127.0.0.2", 40000)


def pkt(seq: int, ssrc: int = 0x1111, pt: int = 0) -> bytes:
    return rtp.RtpPacket(pt, seq, seq * 160, ssrc, b"\xff" * 160).encode()


def test_stranger_who_sends_first_loses_the_latch_to_the_sdp_host() -> None:
    s = RtpSession(0, 101, SDP)
    assert isinstance(s.receive(pkt(1, 0xBAD), STRANGER, 0.0), AudioReceived)
    assert s.latched == STRANGER
    legit = ("127.0.0.1", 41234)  # the SDP host, another port (e.g. an SBC's real source port)
    assert isinstance(s.receive(pkt(1), legit, 0.02), AudioReceived)
    assert s.latched == legit and s.destination == legit
    assert s.receive(pkt(2, 0xBAD), STRANGER, 0.04) == PacketDropped("source")
    # Latched to the SDP host: another port on that host cannot move it (no flip-flopping).
    assert s.receive(pkt(3), ("127.0.0.1", 5), 0.06) == PacketDropped("source")


def test_peer_behind_nat_keeps_its_latch() -> None:
    s = RtpSession(0, 101, ("10.0.0.7", 40000))
    public = ("192.0.2.7", 3000)
    assert isinstance(s.receive(pkt(1), public, 0.0), AudioReceived)
    assert s.receive(pkt(2, 0xBAD), ("198.51.100.1", 3000), 0.02) == PacketDropped("source")
    assert s.latched == public


def test_junk_from_the_sdp_host_does_not_move_the_latch() -> None:
    s = RtpSession(0, 101, SDP)
    s.receive(pkt(1, 0xBAD), STRANGER, 0.0)
    assert s.receive(b"\x80\x00junk", ("127.0.0.1", 9), 0.02) == PacketDropped("truncated")
    assert s.receive(pkt(2, pt=18), ("127.0.0.1", 9), 0.04) == PacketDropped("payload_type")
    assert s.latched == STRANGER


def test_rtcp_source_is_checked_before_decoding_and_relatches_to_the_signalled_host() -> None:
    session = RtcpSession(RtpSession(0, 101, SDP), now=0.0, ntp_offset=0.0, rng=random.Random(1))
    rr = rtcp.encode(rtcp.ReceiverReport(0xBAD))
    assert session.receive(rr, ("127.0.0.2", 40001), 0.1) is None
    assert session.receive(b"junk from a stranger", ("127.0.0.3", 40001), 0.2) == PacketDropped("rtcp_source")
    assert session.receive(rr, ("127.0.0.1", 40001), 0.3) is None
    assert session.latched == ("127.0.0.1", 40001)
    assert session.receive(rr, ("127.0.0.2", 40001), 0.4) == PacketDropped("rtcp_source")


async def test_stranger_flood_does_not_evict_the_callers_packets() -> None:
    engine = RtpEngine()
    stream = RtpStream(engine, RtpSession(0, 101, SDP), "PCMU", 30.0)
    heard: list[bytes] = []
    stream.on_audio = heard.append
    stream.on_datagram(pkt(1), SDP)
    stream.drain()
    assert heard and stream.session.latched == SDP
    for i in range(20 * MAX_INBOX):  # a flood between two clock slots
        stream.on_datagram(pkt(i, 0xBAD) if i % 2 else b"junk", STRANGER)
        if i % 100 == 0:
            stream.on_datagram(pkt(2 + i // 100), SDP)
    assert len(stream._inbox) == 5  # only the caller's packets were queued
    stream.drain()
    assert len(heard) == 6
