"""Receive-side RTP statistics: extended sequence numbers, loss and interarrival jitter (RFC 3550 §6.4.1,
§A.1, §A.3, §A.8).

A sans-IO class fed (sequence, RTP timestamp, arrival time). ``probation`` follows §A.1: a new source is
valid only after ``MIN_SEQUENTIAL`` packets in sequence, which keeps a stray packet from resetting state.
"""

from __future__ import annotations

import dataclasses

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2


@dataclasses.dataclass
class ReceiveStats:
    """Per-SSRC source state of RFC 3550 §A.1 plus jitter (§A.8) in timestamp units."""

    clock_rate: int = 8000
    max_seq: int = 0
    cycles: int = 0
    base_seq: int = 0
    bad_seq: int = RTP_SEQ_MOD + 1
    probation: int = MIN_SEQUENTIAL
    received: int = 0
    duplicates_or_late: int = 0
    jitter: float = 0.0
    _transit: int | None = None
    _initialised: bool = False

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self._transit = None
        self.jitter = 0.0

    def update(self, seq: int, timestamp: int, arrival: float) -> bool:
        """Account one packet (§A.1 ``update_seq``); False only for an exact duplicate of the newest packet.

        Packets in probation or after a sequence jump are still returned True: for voice it is better to
        play/record them than to drop them; only the statistics follow §A.1 strictly.
        """
        if not self._initialised:
            self._init_seq(seq)
            self.max_seq = seq - 1
            self.probation = MIN_SEQUENTIAL
            self._initialised = True
        udelta = (seq - self.max_seq) % RTP_SEQ_MOD
        if self.probation:
            if seq == (self.max_seq + 1) % RTP_SEQ_MOD:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self._count(timestamp, arrival)
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return True
        if udelta == 0:
            self.duplicates_or_late += 1
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                # Two sequential packets after a big jump: the source restarted (§A.1).
                self._init_seq(seq)
            else:
                self.bad_seq = (seq + 1) % RTP_SEQ_MOD
                return True
        else:
            self.duplicates_or_late += 1  # duplicate or reordered: counted, still delivered
        self._count(timestamp, arrival)
        return True

    def _count(self, timestamp: int, arrival: float) -> None:
        self.received += 1
        arrival_ts = int(arrival * self.clock_rate)
        transit = arrival_ts - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            self.jitter += (d - self.jitter) / 16.0  # §A.8
        self._transit = transit

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """§A.3: packets expected from the base sequence number to the highest seen."""
        if not self._initialised or self.probation:
            return 0
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """§A.3 cumulative number of packets lost (may be negative with duplicates; clamped at 0)."""
        return max(0, self.expected - self.received)

    @property
    def loss_fraction(self) -> float:
        exp = self.expected
        return self.lost / exp if exp else 0.0

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000.0 / self.clock_rate
