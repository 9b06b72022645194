"""One call's RTCP, sans-IO (RFC 3550 §6): when to report, what to send, what the peer told us.

Fed datagrams, their source and the current (monotonic) time; returns the compound packets to send. The
codec is :mod:`media.rtp.rtcp`; receive statistics come from the call's :class:`RtpSession`.

* Interval (§6.2, §6.3.1): a call is a two-party session at ~80 kbit/s (G.711 + headers); 5 % of that
  for RTCP over two members gives a computed interval well under the 5 s minimum, so the interval is the
  fixed minimum ``min_interval`` (5 s), each one randomised to 0.5 to 1.5 times so that reports of many calls
  do not synchronise; the first report comes after half the minimum (§6.2 allows this at start-up). There
  is no timer reconsideration (§6.3.6): with two members it never changes the interval, so the §6.3.1
  compensation factor e - 3/2 is not applied either.
* Report type (§6.4): an SR when we sent RTP since the report before the last one, else an RR; one report
  block about the peer's RTP source once we have received RTP from it (§6.4.1, loss interval of §A.3,
  LSR/DLSR from the peer's last SR); then SDES with our CNAME (§6.5.1, a random per-call name as RFC 7022
  §4.2 recommends); at the end of the call the same plus BYE (§6.3.7: fewer than 50 members, sent at
  once).
* Destination: the latched RTCP source, else the SDP's ``a=rtcp:`` address (RFC 3605), else the RTP
  destination's port + 1 (RFC 3550 §11). Symmetric RTCP (RFC 4961) like RTP: the first valid packet's
  source is latched, others are dropped (``rtcp_source``).
* Receive: §A.2 checks in the codec (``rtcp_<reason>`` drops); an SR's NTP time is kept for our next
  LSR/DLSR; a report block about our SSRC is the peer's view of our stream, and its LSR/DLSR give the
  round-trip time (§6.4.1: A - LSR - DLSR, in units of 1/65536 s).

Time: NTP timestamps are the monotonic time plus a fixed offset taken when the stream opened
(``ntp_offset``), so a stepped wall clock cannot break the round-trip arithmetic.
"""

from __future__ import annotations

import base64
import dataclasses
import random
import secrets

from media.rtp import rtcp
from media.rtp.session import Address, PacketDropped, RtpSession
from media.rtp.stats import ReceiveStats

MIN_INTERVAL = 5.0
"""RFC 3550 §6.2: the recommended fixed minimum interval between reports, in seconds."""
RTT_MAX = 60.0
"""Round-trip times above this (or negative ones) come from a bad LSR/DLSR and are ignored."""


@dataclasses.dataclass(slots=True)
class PeerView:
    """What the peer last reported about our RTP stream (its report block about our SSRC, §6.4.1)."""

    fraction_lost: float = 0.0
    """Of our packets lost in the peer's last reporting interval (0..1)."""
    cumulative_lost: int = 0
    highest_seq: int = 0
    jitter_ms: float = 0.0
    rtt: float | None = None
    """Seconds, from the last report block with an LSR (None until one arrives)."""
    rtt_max: float | None = None


class RtcpSession:
    """RTCP state of one call; pairs with the call's :class:`RtpSession`."""

    def __init__(self, rtp_session: RtpSession, *, now: float, ntp_offset: float,
                 min_interval: float = MIN_INTERVAL, rng: random.Random | None = None) -> None:
        self.rtp = rtp_session
        self.ntp_offset = ntp_offset
        self.min_interval = min_interval
        self._rng = rng or random.Random()
        self.cname = base64.b64encode(secrets.token_bytes(12))  # RFC 7022 §4.2: 96 random bits
        self.remote_rtcp: Address | None = None
        """``a=rtcp:`` from the SDP (RFC 3605), when it had one."""
        self.latched: Address | None = None
        self.next_due = now + self._randomised(min_interval / 2)
        """Monotonic time of the next report: the engine compares it in the stream's clock slot."""
        self.peer = PeerView()
        self.peer_reports = 0
        """Report blocks about our SSRC received."""
        self.packets_sent = 0
        self.packets_received = 0
        self.packets_dropped = 0
        self.bye_received = False
        self._report_state = rtcp.ReportState()
        self._reported_stats: ReceiveStats | None = None
        self._sent_at_reports = (0, 0)
        """Our RTP packet count at the last two reports (§6.4: SR if we sent since the one before)."""

    def _randomised(self, interval: float) -> float:
        return interval * self._rng.uniform(0.5, 1.5)

    def ntp(self, now: float) -> int:
        return rtcp.ntp_timestamp(now + self.ntp_offset)

    # --- addresses ---------------------------------------------------------------------------------------
    def update_remote(self, remote_rtcp: Address | None, rtp_moved: bool) -> None:
        """A new offer/answer: new ``a=rtcp:`` (or none); latching starts over when an address moved."""
        if rtp_moved or remote_rtcp != self.remote_rtcp:
            self.latched = None
        self.remote_rtcp = remote_rtcp

    @property
    def destination(self) -> Address | None:
        """Where reports go; None while there is no peer address yet (INVITE without SDP)."""
        if self.latched is not None:
            return self.latched
        if self.remote_rtcp is not None:
            return self.remote_rtcp
        host, port = self.rtp.destination
        if port == 0 or host in ("0.0.0.0", "::"):  # no answer yet, or the RFC 2543 hold address
            return None
        return host, port + 1

    # --- sending -----------------------------------------------------------------------------------------
    def postpone(self, now: float) -> None:
        """Nothing to send to yet: look again one interval later."""
        self.next_due = now + self._randomised(self.min_interval)

    def report(self, now: float, *, bye: bool = False) -> bytes:
        """The compound packet due at ``now`` (SR or RR, SDES CNAME, BYE when ``bye``); schedules the next."""
        self.next_due = now + self._randomised(self.min_interval)
        s = self.rtp
        blocks: tuple[rtcp.ReportBlock, ...] = ()
        if s.remote_ssrc is not None and s.stats.expected:
            if self._reported_stats is not s.stats:  # the peer changed SSRC: the §A.3 interval restarts
                self._reported_stats = s.stats
                self._report_state.expected_prior = self._report_state.received_prior = 0
            blocks = (rtcp.report_block(s.remote_ssrc, s.stats, self._report_state, now),)
        older, last = self._sent_at_reports
        self._sent_at_reports = (last, s.packets_sent)
        first: rtcp.RtcpPacket
        if s.packets_sent > older:
            first = rtcp.SenderReport(s.ssrc, self.ntp(now), s.last_timestamp, s.packets_sent, s.octets_sent,
                                      blocks)
        else:
            first = rtcp.ReceiverReport(s.ssrc, blocks)
        parts = [rtcp.encode(first),
                 rtcp.encode(rtcp.SourceDescription(((s.ssrc, ((rtcp.CNAME, self.cname),)),)))]
        if bye:
            parts.append(rtcp.encode(rtcp.Bye((s.ssrc,))))
        self.packets_sent += 1
        return b"".join(parts)

    # --- receiving ---------------------------------------------------------------------------------------
    def receive(self, data: bytes, source: Address, now: float) -> PacketDropped | None:
        """Take one datagram from the RTCP port; a :class:`PacketDropped` (reason ``rtcp_*``) if not kept.

        Latching as for RTP (:meth:`RtpSession.source_allowed`): the source is checked before decoding, so a
        stranger's flood costs no parse, and a latch to a host other than the signalled one moves to the
        signalled host when a valid report comes from there."""
        latched = self.latched
        if latched is not None and source != latched:
            host = (self.remote_rtcp or self.rtp.remote)[0]
            if source[0] != host or latched[0] == host:
                self.packets_dropped += 1
                return PacketDropped("rtcp_source")
        try:
            packets = rtcp.decode(data)
        except rtcp.RtcpError as exc:
            self.packets_dropped += 1
            return PacketDropped("rtcp_" + exc.reason)
        self.latched = source
        self.packets_received += 1
        for packet in packets:
            if isinstance(packet, rtcp.SenderReport):
                if self.rtp.remote_ssrc is None or packet.ssrc == self.rtp.remote_ssrc:
                    self._report_state.on_sender_report(packet, now)
                self._take_blocks(packet.reports, now)
            elif isinstance(packet, rtcp.ReceiverReport):
                self._take_blocks(packet.reports, now)
            elif isinstance(packet, rtcp.Bye):
                self.bye_received = True
        return None

    def _take_blocks(self, blocks: tuple[rtcp.ReportBlock, ...], now: float) -> None:
        for block in blocks:
            if block.ssrc != self.rtp.ssrc:
                continue  # about someone else (a mixer's other sources): not our stream
            peer = self.peer
            self.peer_reports += 1
            peer.fraction_lost = block.fraction_lost / 256
            peer.cumulative_lost = block.cumulative_lost
            peer.highest_seq = block.highest_seq
            peer.jitter_ms = block.jitter * 1000.0 / self.rtp.clock_rate
            if block.lsr:
                arrival = (self.ntp(now) >> 16) & 0xFFFFFFFF
                rtt = ((arrival - block.lsr - block.dlsr) & 0xFFFFFFFF) / 65536
                if rtt <= RTT_MAX:
                    peer.rtt = rtt
                    peer.rtt_max = rtt if peer.rtt_max is None else max(peer.rtt_max, rtt)

    def summary(self) -> dict[str, int | float | None]:
        """RTCP part of the per-call statistics (added to :meth:`RtpSession.summary` by the stream)."""
        peer = self.peer
        known = self.peer_reports > 0
        return {
            "rtcp_sent": self.packets_sent, "rtcp_received": self.packets_received,
            "rtcp_dropped": self.packets_dropped,
            "peer_fraction_lost": round(peer.fraction_lost, 6) if known else None,
            "peer_cumulative_lost": peer.cumulative_lost if known else None,
            "peer_jitter_ms": round(peer.jitter_ms, 3) if known else None,
            "rtt_ms": round(peer.rtt * 1000, 3) if peer.rtt is not None else None,
            "rtt_max_ms": round(peer.rtt_max * 1000, 3) if peer.rtt_max is not None else None,
        }
