"""One call's RTP stream, sans-IO: fed datagrams + source + time, returns events; builds outgoing packets.

Receive rules (the reasons are the ``reason`` label of ``secondnum_media_rtp_dropped_total``):

* not RTP (RFC 3550 §5.1 checks in :mod:`media.rtp.packet`) → ``truncated``/``version``/``padding``/``rtcp``;
* symmetric RTP (RFC 4961): until the first valid packet arrives we send to the SDP address; that packet's
  source is then *latched* and packets from any other source are dropped (``source``). Latching (rather than
  insisting on the SDP address) lets calls work when the offer's ``c=`` is not where packets come from
  (NAT, an AS passing on an offer). A stream latched to a host other than the SDP's moves to the SDP host
  as soon as valid RTP comes from there: a stranger who sends first ("RTP bleed") cannot keep the call's
  media, while a peer behind NAT (nothing ever arrives from its ``c=`` host) keeps its latch;
* payload type neither the negotiated codec nor telephone-event (RFC 3264 §6.1) → ``payload_type``;
* a change of SSRC after latching is accepted (the peer may restart, RFC 3550 §8.2) and resets statistics.
"""

from __future__ import annotations

import dataclasses
import random

from media.rtp import packet as rtp
from media.rtp.dtmf import DtmfReceiver
from media.rtp.stats import ReceiveStats

Address = tuple[str, int]

SAMPLES_PER_FRAME = 160  # 20 ms at 8 kHz (RFC 3551 §4.5 default packetisation for G.711)


@dataclasses.dataclass(frozen=True, slots=True)
class AudioReceived:
    payload: bytes
    timestamp: int


@dataclasses.dataclass(frozen=True, slots=True)
class DigitReceived:
    digit: str


@dataclasses.dataclass(frozen=True, slots=True)
class PacketDropped:
    reason: str


RtpEvent = AudioReceived | DigitReceived | PacketDropped


class RtpSession:
    """RTP send/receive state of one call (RFC 3550 §5.1, §6.4.1 statistics, §8 SSRC)."""

    def __init__(self, payload_type: int, telephone_event_pt: int | None, remote: Address, *,
                 clock_rate: int = 8000, ssrc: int | None = None,
                 rng: random.Random | None = None) -> None:
        r = rng or random.SystemRandom()
        self.payload_type = payload_type
        self.telephone_event_pt = telephone_event_pt
        self.clock_rate = clock_rate
        self.remote: Address = remote
        self.latched: Address | None = None
        # §5.1: random initial sequence number and timestamp; §8: random SSRC.
        self.ssrc = ssrc if ssrc is not None else r.getrandbits(32)
        self._seq = r.getrandbits(16)
        self._ts = r.getrandbits(32)
        self._talkspurt_start = True
        self.remote_ssrc: int | None = None
        self.stats = ReceiveStats(clock_rate)
        self.dtmf = DtmfReceiver()
        self.telephone_events_seen = False
        self.last_received: float | None = None
        self.packets_sent = 0
        self.octets_sent = 0
        self.packets_received = 0
        self.octets_received = 0
        """Accepted packets and their payload octets (RFC 3550 §6.4.1 counts payload octets), all SSRCs."""

    def update_remote(self, remote: Address, payload_type: int, telephone_event_pt: int | None) -> None:
        """A new offer/answer (re-INVITE): new SDP address, latching starts over."""
        if remote != self.remote:
            self.latched = None
        self.remote = remote
        self.payload_type = payload_type
        self.telephone_event_pt = telephone_event_pt

    @property
    def destination(self) -> Address:
        return self.latched or self.remote

    def source_allowed(self, source: Address) -> bool:
        """Whether a datagram from ``source`` may be kept (before decoding it: a cheap test for floods)."""
        latched = self.latched
        if latched is None or source == latched:
            return True
        host = self.remote[0]
        return source[0] == host and latched[0] != host

    def receive(self, data: bytes, source: Address, now: float) -> RtpEvent | None:
        """Classify one datagram; None for a telephone-event continuation/end of an already reported digit."""
        try:
            pkt = rtp.decode(data)
        except rtp.RtpError as exc:
            return PacketDropped(exc.reason)
        if not self.source_allowed(source):
            return PacketDropped("source")
        is_te = self.telephone_event_pt is not None and pkt.payload_type == self.telephone_event_pt
        if pkt.payload_type != self.payload_type and not is_te:
            return PacketDropped("payload_type")
        if self.latched != source:
            self.latched = source
        if pkt.ssrc != self.remote_ssrc:
            self.remote_ssrc = pkt.ssrc
            self.stats = ReceiveStats(self.clock_rate)
        self.last_received = now
        if not self.stats.update(pkt.sequence, pkt.timestamp, now):
            return PacketDropped("duplicate")
        self.packets_received += 1
        self.octets_received += len(pkt.payload)
        if is_te:
            try:
                digit = self.dtmf.feed(pkt.ssrc, pkt.timestamp, pkt.payload)
            except ValueError:
                return PacketDropped("telephone_event")
            self.telephone_events_seen = True
            return DigitReceived(digit) if digit else None
        return AudioReceived(pkt.payload, pkt.timestamp)

    def build(self, payload: bytes) -> bytes:
        """The next outgoing packet carrying one 20 ms frame (timestamp advances by the frame's samples)."""
        head = rtp.encode_header(self.payload_type, self._seq, self._ts, self.ssrc, self._talkspurt_start)
        self._talkspurt_start = False
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + len(payload)) & 0xFFFFFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return head + payload

    @property
    def last_timestamp(self) -> int:
        """RTP timestamp of the frame period just sent or skipped (for an SR built in the same clock slot,
        RFC 3550 §6.4.1: it must correspond to the SR's NTP time)."""
        return (self._ts - SAMPLES_PER_FRAME) & 0xFFFFFFFF

    def summary(self) -> dict[str, int | float]:
        """Per-call statistics for the call-end log line and the message envelope.

        Sender counts as in an SR (RFC 3550 §6.4.1: payload octets), receive counts over the whole call;
        ``lost``, ``loss_fraction`` (cumulative, §A.3) and ``jitter_ms`` (§A.8) are of the current SSRC
        (statistics restart when the peer changes SSRC, §8.2).
        """
        return {
            "packets_sent": self.packets_sent, "octets_sent": self.octets_sent,
            "packets_received": self.packets_received, "octets_received": self.octets_received,
            "expected": self.stats.expected, "lost": self.stats.lost,
            "loss_fraction": round(self.stats.loss_fraction, 6), "jitter_ms": round(self.stats.jitter_ms, 3),
        }

    def skip(self, samples: int = SAMPLES_PER_FRAME) -> None:
        """Advance the timestamp without sending (hold/silence suppression); marks the next talkspurt."""
        self._ts = (self._ts + samples) & 0xFFFFFFFF
        self._talkspurt_start = True
