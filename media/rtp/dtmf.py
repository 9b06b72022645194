"""RFC 4733 telephone-events for DTMF: payload codec, a de-duplicating receiver and a sender.

Payload (RFC 4733 §2.3): event (8 bits), E end bit, R reserved, volume (6 bits), duration (16 bits, in
timestamp units). All packets of one event share the RTP timestamp of its start (§2.5.1.2), and the final
packet is sent three times (§2.5.1.4); the receiver therefore reports a digit once per (SSRC, timestamp).
"""

from __future__ import annotations

import dataclasses
import struct
from collections import deque

EVENT_CHARS = "0123456789*#ABCD"
_PAYLOAD = struct.Struct("!BBH")


@dataclasses.dataclass(frozen=True, slots=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        return EVENT_CHARS[self.event] if 0 <= self.event < len(EVENT_CHARS) else None

    def encode(self) -> bytes:
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | (self.volume & 0x3F),
                             self.duration & 0xFFFF)


def decode_event(payload: bytes) -> TelephoneEvent:
    """Decode the first event block (§2.3); raises ValueError on a short payload."""
    if len(payload) < 4:
        raise ValueError("telephone-event payload shorter than 4 octets")
    event, flags, duration = _PAYLOAD.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


class DtmfReceiver:
    """Turns a stream of telephone-event packets into digits, each reported exactly once.

    The key is the event's RTP timestamp (§2.5.1.2): the start, continuation, end and the end's
    retransmissions all carry it. A digit is reported on the first packet seen of a new key, so a lost
    start packet still yields the digit (from a continuation or end packet).
    """

    def __init__(self, memory: int = 16) -> None:
        self._seen: deque[tuple[int, int]] = deque(maxlen=memory)

    def feed(self, ssrc: int, timestamp: int, payload: bytes) -> str | None:
        ev = decode_event(payload)
        key = (ssrc, timestamp)
        if key in self._seen:
            return None
        self._seen.append(key)
        return ev.digit


def event_payloads(digit: str, duration_ms: int = 100, packet_ms: int = 20, clock_rate: int = 8000,
                   volume: int = 10) -> list[tuple[bytes, bool]]:
    """Payloads (and marker bits) for one digit as a sender emits them (§2.5.1): first packet marked,
    duration growing each packet, the end packet repeated three times. All share one RTP timestamp."""
    event = EVENT_CHARS.index(digit.upper())
    step = clock_rate * packet_ms // 1000
    total = clock_rate * duration_ms // 1000
    out: list[tuple[bytes, bool]] = []
    dur = step
    while dur < total:
        out.append((TelephoneEvent(event, False, volume, dur).encode(), not out))
        dur += step
    end = TelephoneEvent(event, True, volume, total).encode()
    out += [(end, not out)] + [(end, False)] * 2
    return out
