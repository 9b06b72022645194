"""One call's RTCP, sans-IO (media/rtp/rtcp_session.py): interval, SR/RR choice, report blocks, LSR/DLSR,
round-trip time, drops, destinations (RFC 3550 §6, RFC 3605, RFC 4961); ``a=rtcp:`` in secondnum/sdp.py."""

from __future__ import annotations

import random

import pytest

from media.rtp import packet as rtp
from media.rtp import rtcp
from media.rtp.rtcp_session import RtcpSession
from media.rtp.session import PacketDropped, RtpSession
from secondnum.sdp import accept_answer, answer_audio, make_audio_offer, parse_sdp

PEER = ("127.0.0.1", 4000)
PEER_RTCP = ("127.0.0.1", 4001)
OURS = 0x0A0B0C0D
THEIRS = 0x01020304
OFFSET = 1_700_000_000.0  # NTP time = monotonic time + this


def _pair(now: float = 100.0, seed: int = 1) -> tuple[RtpSession, RtcpSession]:
    s = RtpSession(0, 101, PEER, ssrc=OURS, rng=random.Random(seed))
    return s, RtcpSession(s, now=now, ntp_offset=OFFSET, rng=random.Random(seed))


def _feed(s: RtpSession, seqs: list[int], t0: float = 100.0) -> None:
    for seq in seqs:
        data = rtp.encode_header(0, seq, seq * 160, THEIRS, False) + b"\xff" * 160
        assert not isinstance(s.receive(data, PEER, t0 + seq * 0.02), PacketDropped)


def _middle(ntp: int) -> int:
    return (ntp >> 16) & 0xFFFFFFFF


def test_interval_is_randomised_around_five_seconds_first_one_halved() -> None:
    firsts, gaps = [], []
    for seed in range(200):
        _, c = _pair(now=0.0, seed=seed)
        firsts.append(c.next_due)
        c.report(c.next_due)
        t = c.next_due
        c.report(t)
        gaps.append(c.next_due - t)
    assert all(1.25 <= f <= 3.75 for f in firsts)
    assert all(2.5 <= g <= 7.5 for g in gaps)
    assert 4.5 < sum(gaps) / len(gaps) < 5.5 and max(gaps) - min(gaps) > 3.0  # spread, not a constant


def test_rr_before_we_send_then_sr_for_two_reports_after_sending() -> None:
    s, c = _pair()
    first = rtcp.decode(c.report(101.0))
    assert isinstance(first[0], rtcp.ReceiverReport) and first[0].ssrc == OURS and first[0].reports == ()
    assert first[1] == rtcp.SourceDescription(((OURS, ((rtcp.CNAME, c.cname),)),))
    assert len(c.cname) == 16
    for _ in range(10):
        s.build(b"\xff" * 160)
    sr = rtcp.decode(c.report(106.0))[0]
    assert isinstance(sr, rtcp.SenderReport)
    assert (sr.packet_count, sr.octet_count) == (10, 1600)
    assert sr.ntp_timestamp == rtcp.ntp_timestamp(106.0 + OFFSET)
    assert sr.rtp_timestamp == (s._ts - 160) & 0xFFFFFFFF          # the frame just sent, same instant
    assert isinstance(rtcp.decode(c.report(111.0))[0], rtcp.SenderReport)  # §6.4: sent since the previous one
    assert isinstance(rtcp.decode(c.report(116.0))[0], rtcp.ReceiverReport)
    assert c.packets_sent == 4


def test_report_block_about_the_peer_with_loss_and_extended_sequence() -> None:
    s, c = _pair()
    _feed(s, [n for n in range(65530, 65536)] + [n for n in range(0, 20) if n not in (5, 6, 7)])
    rr = rtcp.decode(c.report(110.0))[0]
    assert isinstance(rr, rtcp.ReceiverReport)
    (block,) = rr.reports
    assert block.ssrc == THEIRS
    assert block.highest_seq == (1 << 16) + 19                    # one wrap of the 16-bit sequence
    assert block.cumulative_lost == 3
    assert block.fraction_lost == (3 << 8) // (s.stats.expected)
    assert (block.lsr, block.dlsr) == (0, 0)                       # no SR from the peer yet
    _feed(s, list(range(20, 40)))
    assert rtcp.decode(c.report(115.0))[0].reports[0].fraction_lost == 0  # type: ignore[union-attr]


def test_lsr_dlsr_from_the_peers_sender_report() -> None:
    s, c = _pair()
    _feed(s, list(range(1, 30)))
    peer_sr = rtcp.SenderReport(THEIRS, rtcp.ntp_timestamp(1_800_000_000.25), 1234, 29, 4640)
    assert c.receive(rtcp.encode(peer_sr), PEER_RTCP, now=200.0) is None
    block = rtcp.decode(c.report(200.5))[0].reports[0]  # type: ignore[union-attr]
    assert block.lsr == _middle(peer_sr.ntp_timestamp)
    assert block.dlsr == 32768                                    # 0.5 s in units of 1/65536 s


def test_round_trip_time_from_the_peers_report_about_us() -> None:
    s, c = _pair()
    s.build(b"\xff" * 160)
    ours = rtcp.decode(c.report(300.0))[0]
    assert isinstance(ours, rtcp.SenderReport)
    # The peer holds our SR for 0.2 s; its RR reaches us 0.35 s after we sent the SR: RTT 0.15 s.
    block = rtcp.ReportBlock(OURS, 64, 7, 0x10005, 80, _middle(ours.ntp_timestamp), int(0.2 * 65536))
    rr = rtcp.encode(rtcp.ReceiverReport(THEIRS, (block,)))
    assert c.receive(rr, PEER_RTCP, now=300.35) is None
    assert c.peer.rtt == pytest.approx(0.15, abs=2 / 65536)
    summary = c.summary()
    assert summary["peer_fraction_lost"] == 0.25 and summary["peer_cumulative_lost"] == 7
    assert summary["peer_jitter_ms"] == 10.0 and summary["rtt_ms"] == pytest.approx(150, abs=0.05)
    assert summary["rtcp_received"] == 1 and summary["rtcp_sent"] == 1
    # A block about another SSRC, and one with an LSR that would give a negative RTT, change nothing.
    other = rtcp.ReportBlock(0x55, 255, 999, 1, 1, 0, 0)
    bad = rtcp.ReportBlock(OURS, 0, 7, 0x10006, 80, _middle(ours.ntp_timestamp), 5 * 65536)
    c.receive(rtcp.encode(rtcp.ReceiverReport(THEIRS, (other, bad))), PEER_RTCP, now=301.0)
    assert c.peer.rtt == pytest.approx(0.15, abs=2 / 65536) and c.peer.cumulative_lost == 7


def test_summary_without_rtcp_from_the_peer() -> None:
    _, c = _pair()
    summary = c.summary()
    assert summary["rtt_ms"] is None and summary["peer_cumulative_lost"] is None
    assert summary["rtcp_sent"] == summary["rtcp_received"] == summary["rtcp_dropped"] == 0


GOOD_RR = rtcp.encode(rtcp.ReceiverReport(THEIRS))


@pytest.mark.parametrize(("data", "reason"), [
    (GOOD_RR[:3], "rtcp_truncated"),
    (GOOD_RR[:6], "rtcp_length"),
    (b"\x40" + GOOD_RR[1:], "rtcp_version"),
    (GOOD_RR[:2] + b"\x00\x09" + GOOD_RR[4:], "rtcp_length"),
    (rtp.encode_header(0, 1, 1, THEIRS, False) + b"\xff" * 160, "rtcp_not_report_first"),  # RTP, wrong port
    (b"", "rtcp_truncated"),
])
def test_bad_packets_are_dropped_and_counted(data: bytes, reason: str) -> None:
    _, c = _pair()
    assert c.receive(data, PEER_RTCP, 1.0) == PacketDropped(reason)
    assert c.packets_dropped == 1 and c.packets_received == 0 and c.latched is None


def test_symmetric_rtcp_latching_and_destinations() -> None:
    s, c = _pair()
    assert c.destination == ("127.0.0.1", 4001)                   # RTP port + 1 (RFC 3550 §11)
    c.update_remote(("127.0.0.9", 5555), rtp_moved=False)
    assert c.destination == ("127.0.0.9", 5555)                   # a=rtcp: (RFC 3605)
    assert c.receive(GOOD_RR, ("127.0.0.1", 6001), 1.0) is None
    assert c.destination == ("127.0.0.1", 6001)                   # latched (RFC 4961)
    assert c.receive(GOOD_RR, ("127.0.0.1", 6003), 1.0) == PacketDropped("rtcp_source")
    c.update_remote(("127.0.0.9", 5555), rtp_moved=True)          # re-INVITE moved the media
    assert c.latched is None and c.destination == ("127.0.0.9", 5555)
    s.update_remote(("0.0.0.0", 4000), 0, 101)
    c.update_remote(None, rtp_moved=True)
    assert c.destination is None                                  # RFC 2543 hold address: nowhere to send
    s.update_remote(("127.0.0.1", 0), 0, 101)
    assert c.destination is None


def test_bye_at_the_end() -> None:
    _, c = _pair()
    packets = rtcp.decode(c.report(1.0, bye=True))
    assert [type(p) for p in packets] == [rtcp.ReceiverReport, rtcp.SourceDescription, rtcp.Bye]
    assert packets[2] == rtcp.Bye((OURS,))
    assert c.receive(rtcp.encode(rtcp.ReceiverReport(THEIRS)) + rtcp.encode(rtcp.Bye((THEIRS,))), PEER_RTCP,
                     2.0) is None
    assert c.bye_received


def test_peer_ssrc_change_restarts_the_loss_interval() -> None:
    s, c = _pair()
    _feed(s, list(range(100, 200)))
    c.report(110.0)
    for seq in range(10, 20):  # a new source (§8.2): statistics restart in the RTP session
        s.receive(rtp.encode_header(0, seq, seq * 160, 0x77, False) + b"\xff" * 160, PEER, 120.0 + seq * 0.02)
    block = rtcp.decode(c.report(125.0))[0].reports[0]  # type: ignore[union-attr]
    assert block.ssrc == 0x77 and block.fraction_lost == 0 and block.cumulative_lost == 0


# --- a=rtcp: in the SDP (RFC 3605) ----------------------------------------------------------------------
def _offer(extra: str) -> bytes:
    return (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.5\r\nt=0 0\r\n"
            b"m=audio 4000 RTP/AVP 0\r\n" + extra.encode())


@pytest.mark.parametrize(("extra", "expected"), [
    ("", None),
    ("a=rtcp:4711\r\n", ("127.0.0.5", 4711)),
    ("a=rtcp:4711 IN IP4 127.0.0.9\r\n", ("127.0.0.9", 4711)),
    ("a=rtcp:4711 IN IP6 ::1\r\n", ("::1", 4711)),
    ("a=rtcp:0\r\n", None),
    ("a=rtcp:70000\r\n", None),
    ("a=rtcp:abc\r\n", None),
    ("a=rtcp:4711 IN IP4\r\n", None),
    ("a=rtcp:\r\n", None),
])
def test_rtcp_attribute(extra: str, expected: tuple[str, int] | None) -> None:
    neg = answer_audio(parse_sdp(_offer(extra)), local_host="127.0.0.1", local_port=20000, session_id="1")
    assert neg.remote_rtcp == expected
    assert b"a=rtcp" not in neg.answer.encode()                   # we use port + 1 and do not advertise it
    ours = make_audio_offer(local_host="127.0.0.1", local_port=20000, session_id="1")
    assert accept_answer(ours, parse_sdp(_offer(extra))).remote_rtcp == expected
