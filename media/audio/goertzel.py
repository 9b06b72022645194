"""In-band DTMF detection (ITU-T Q.24 tone pairs) for callers that send no RFC 4733 events.

Per 20 ms frame (160 samples at 8 kHz) the energy at the eight DTMF frequencies is measured: the single-bin
DFT the Goertzel recurrence computes, done here as one matrix product so numpy does the loop (~10 µs per
frame). A frame counts as a digit only when all of these hold, which is what keeps speech, music and our
own prompts from triggering it:

* the frame is loud enough (``min_energy``);
* the strongest row and column tones each beat the other tones of their group by ``peak_ratio``;
* twist (row/column power ratio) stays within ``max_twist_db`` / ``max_reverse_twist_db`` (Q.24);
* the two tones carry at least ``min_tone_fraction`` of the frame's total energy — speech spreads its
  energy over harmonics and formants, a DTMF pair does not;
* the second harmonics of the two tones are weak (voiced speech has strong harmonics).

A digit is reported after ``debounce`` consecutive identical frames and not again until a frame without
it (so a long key press is one digit).
"""

from __future__ import annotations

import numpy as np

from media.audio import g711

ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")


class GoertzelDetector:
    def __init__(self, *, rate: int = 8000, frame: int = 160, min_energy: float = 2.0e5,
                 peak_ratio: float = 6.0, max_twist_db: float = 8.0, max_reverse_twist_db: float = 8.0,
                 min_tone_fraction: float = 0.70, max_harmonic_ratio: float = 0.2, debounce: int = 2) -> None:
        self.frame = frame
        n = np.arange(frame)
        fundamentals = np.array(ROWS + COLS)
        # Real basis (cos rows then sin rows): one small matmul gives all eight bins.
        phase = 2 * np.pi * np.outer(fundamentals, n) / rate
        self._basis = np.vstack([np.cos(phase), np.sin(phase)])
        phase2 = 2 * phase
        self._harmonics = np.vstack([np.cos(phase2), np.sin(phase2)])
        self.min_energy = min_energy * frame / 160
        self.peak_ratio = peak_ratio
        self.max_twist = 10 ** (max_twist_db / 10)
        self.max_reverse_twist = 10 ** (max_reverse_twist_db / 10)
        self.min_tone_fraction = min_tone_fraction
        self.max_harmonic_ratio = max_harmonic_ratio
        self.debounce = debounce
        self._candidate: str | None = None
        self._count = 0
        self._reported: str | None = None

    def classify(self, samples: np.ndarray) -> str | None:
        """The digit present in one frame of float samples (int16 scale), or None."""
        total = float(samples @ samples)
        if total < self.min_energy:
            return None
        y = self._basis @ samples
        power = ((y[:8] * y[:8] + y[8:] * y[8:]) * (2.0 / self.frame)).tolist()
        rows, cols = power[:4], power[4:]
        row_p, col_p = max(rows), max(cols)
        if row_p + col_p < self.min_tone_fraction * total:
            return None  # cheapest rejection first: speech spreads its energy elsewhere
        r, c = rows.index(row_p), cols.index(col_p)
        limit_r, limit_c = row_p / self.peak_ratio, col_p / self.peak_ratio
        if any(p > limit_r for i, p in enumerate(rows) if i != r):
            return None
        if any(p > limit_c for i, p in enumerate(cols) if i != c):
            return None
        if col_p > row_p * self.max_twist or row_p > col_p * self.max_reverse_twist:
            return None
        h = self._harmonics @ samples
        harm = ((h[:8] * h[:8] + h[8:] * h[8:]) * (2.0 / self.frame)).tolist()
        if harm[r] > self.max_harmonic_ratio * row_p or harm[4 + c] > self.max_harmonic_ratio * col_p:
            return None
        return KEYS[r][c]

    def feed(self, pcm16: bytes) -> list[str]:
        """Feed 16-bit little-endian PCM (any length; whole frames are analysed); return new digits."""
        if len(pcm16) == 2 * self.frame:
            # The common case, one RTP frame: reject a quiet frame with the C energy measure before any
            # numpy work (a caller is silent a good part of the time, and this runs for every frame).
            # g711.rms (audioop) truncates to an integer: rms + 1 bounds the true value, so no frame the
            # numpy path would analyse is rejected here.
            bound = g711.rms(pcm16) + 1
            if bound * bound * self.frame < self.min_energy:
                self._candidate, self._count, self._reported = None, 0, None
                return []
        samples = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], "<i2").astype(np.float64)
        digits: list[str] = []
        for start in range(0, len(samples) - self.frame + 1, self.frame):
            d = self.classify(samples[start:start + self.frame])
            if d is None:
                self._candidate, self._count, self._reported = None, 0, None
                continue
            if d == self._candidate:
                self._count += 1
            else:
                self._candidate, self._count = d, 1
            if self._count >= self.debounce and self._reported != d:
                self._reported = d
                digits.append(d)
        return digits
