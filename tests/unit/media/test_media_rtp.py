"""RTP packet codec, RFC 3550 receive statistics, RFC 4733 events and the sans-IO session."""

from __future__ import annotations

import contextlib
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.rtp import packet as rtp
from media.rtp.dtmf import DtmfReceiver, decode_event, event_payloads
from media.rtp.session import AudioReceived, DigitReceived, PacketDropped, RtpSession
from media.rtp.stats import ReceiveStats

PEER = ("127.0.0.1", 40000)


def test_encode_decode_round_trip() -> None:
    p = rtp.RtpPacket(0, 65535, 0xFFFFFFFF, 0x12345678, b"\xff" * 160, marker=True, csrcs=(1, 2))
    assert rtp.decode(p.encode()) == p


def test_extension_and_padding_are_skipped() -> None:
    head = struct.pack("!BBHII", 0xB0, 0, 1, 2, 3)  # V=2, P=1, X=1
    ext = struct.pack("!HH", 0xBEDE, 1) + b"\x00" * 4
    data = head + ext + b"abc" + b"\x00\x02"  # payload "abc" + 2 padding octets
    assert rtp.decode(data).payload == b"abc"  # padding removed


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x80\x00\x00", "truncated"),
    (struct.pack("!BBHII", 0x40, 0, 1, 2, 3), "version"),
    (struct.pack("!BBHII", 0x8F, 0, 1, 2, 3), "truncated"),                 # 15 CSRCs announced
    (struct.pack("!BBHII", 0x90, 0, 1, 2, 3), "truncated"),                 # extension announced
    (struct.pack("!BBHII", 0xA0, 0, 1, 2, 3) + b"\x00", "padding"),         # padding count 0
    (struct.pack("!BBHII", 0x80, 200, 1, 2, 3), "rtcp"),                    # RTCP SR on the RTP port
])
def test_bad_packets(data: bytes, reason: str) -> None:
    with pytest.raises(rtp.RtpError) as err:
        rtp.decode(data)
    assert err.value.reason == reason


@given(st.binary(max_size=80))
def test_decode_never_raises_anything_else(data: bytes) -> None:
    with contextlib.suppress(rtp.RtpError):
        rtp.decode(data)


@given(st.integers(0, 127).filter(lambda x: not 72 <= x <= 76), st.integers(0, 0xFFFF),
       st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.binary(max_size=200), st.booleans())
def test_round_trip_property(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool) -> None:
    p = rtp.RtpPacket(pt, seq, ts, ssrc, payload, marker)
    assert rtp.decode(p.encode()) == p


def _feed(stats: ReceiveStats, seqs: list[int], jitter_ms: float = 0.0) -> None:
    rng = random.Random(1)
    for i, s in enumerate(seqs):
        stats.update(s & 0xFFFF, 160 * i, i * 0.02 + rng.uniform(0, jitter_ms / 1000))


@pytest.mark.parametrize(("seqs", "lost"), [
    (list(range(100)), 0),
    ([s for s in range(100) if s % 10 != 5], 10),
    (list(range(65500, 65636)), 0),                               # wrap-around
    ([s for s in range(65500, 65636) if s != 65536], 1),          # loss across the wrap
])
def test_loss(seqs: list[int], lost: int) -> None:
    st_ = ReceiveStats()
    _feed(st_, seqs)
    assert st_.lost == lost


def test_duplicate_is_rejected_and_counted() -> None:
    st_ = ReceiveStats()
    _feed(st_, [1, 2, 3])
    assert st_.update(3, 480, 0.1) is False
    assert st_.duplicates_or_late == 1 and st_.lost == 0


def test_jitter_grows_with_arrival_variation() -> None:
    steady, noisy = ReceiveStats(), ReceiveStats()
    _feed(steady, list(range(200)))
    _feed(noisy, list(range(200)), jitter_ms=15)
    assert steady.jitter_ms < 0.2 < 2 < noisy.jitter_ms


def test_event_payloads_decode_and_dedupe() -> None:
    rx = DtmfReceiver()
    payloads = event_payloads("#", duration_ms=100)
    assert payloads[0][1] is True and sum(m for _, m in payloads) == 1
    assert [decode_event(p).end for p, _ in payloads][-3:] == [True, True, True]
    digits = [rx.feed(7, 1000, p) for p, _ in payloads]
    assert [d for d in digits if d] == ["#"]
    assert rx.feed(7, 2000, payloads[-1][0]) == "#"  # a new event (new timestamp) whose start was lost


def _session() -> RtpSession:
    return RtpSession(0, 101, PEER, rng=random.Random(3))


def test_session_latches_and_drops_other_sources() -> None:
    s = _session()
    pkt = rtp.RtpPacket(0, 10, 0, 99, b"\xff" * 160).encode()
    assert isinstance(s.receive(pkt, ("127.0.0.1", 5555), 0.0), AudioReceived)
    assert s.destination == ("127.0.0.1", 5555)  # symmetric RTP
    other = rtp.RtpPacket(0, 11, 160, 99, b"\xff" * 160).encode()
    assert s.receive(other, ("127.0.0.1", 6666), 0.02) == PacketDropped("source")


@pytest.mark.parametrize(("data", "reason"), [
    (rtp.RtpPacket(8, 1, 0, 1, b"x").encode(), "payload_type"),
    (b"\x80", "truncated"),
    (rtp.RtpPacket(101, 1, 0, 1, b"\x01").encode(), "telephone_event"),
])
def test_session_drops_bad_input(data: bytes, reason: str) -> None:
    assert _session().receive(data, PEER, 0.0) == PacketDropped(reason)


def test_session_reports_rfc4733_digit_once() -> None:
    s = _session()
    seq, results = 100, []
    for digit, ts in (("5", 8000), ("5", 16000)):
        for payload, marker in event_payloads(digit):
            results.append(s.receive(rtp.RtpPacket(101, seq, ts, 1, payload, marker).encode(), PEER, 0.0))
            seq += 1
    assert [r for r in results if r is not None] == [DigitReceived("5"), DigitReceived("5")]


def test_session_builds_sequential_packets() -> None:
    s = _session()
    a, b = rtp.decode(s.build(b"\xff" * 160)), rtp.decode(s.build(b"\xff" * 160))
    assert a.marker and not b.marker
    assert (b.sequence - a.sequence) & 0xFFFF == 1
    assert (b.timestamp - a.timestamp) & 0xFFFFFFFF == 160
    assert a.ssrc == b.ssrc == s.ssrc


def test_session_summary_counts_loss_and_jitter() -> None:
    """The per-call export (log line, histograms, message envelope): 100 packets sent by the peer, 5 lost,
    arrivals alternately 0 and 4 ms late (RFC 3550 §A.8 jitter converges towards 4 ms)."""
    s = _session()
    for n in range(100):
        if n in (20, 21, 50, 70, 90):
            continue
        late = 0.004 if n % 2 else 0.0
        s.receive(rtp.RtpPacket(0, 1000 + n, n * 160, 7, b"\xff" * 160).encode(), PEER, n * 0.02 + late)
    s.receive(rtp.RtpPacket(0, 1099, 99 * 160, 7, b"\xff" * 160).encode(), PEER, 2.0)  # duplicate
    for _ in range(3):
        s.build(b"\xff" * 160)
    summary = s.summary()
    assert summary["packets_sent"] == 3 and summary["octets_sent"] == 480
    assert summary["packets_received"] == 95 and summary["octets_received"] == 95 * 160
    # §A.1: the first packet is the source's probation packet; counting starts with the second.
    assert summary["expected"] == 99 and summary["lost"] == 5
    assert summary["loss_fraction"] == pytest.approx(5 / 99, abs=1e-6)
    assert 3.0 < float(summary["jitter_ms"]) < 4.5


def test_session_summary_without_packets() -> None:
    summary = _session().summary()
    assert summary["packets_received"] == 0 and summary["expected"] == 0
    assert summary["loss_fraction"] == 0.0 and summary["jitter_ms"] == 0.0
