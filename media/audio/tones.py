"""Generated tones: the recording beep and DTMF tone pairs (ITU-T Q.23 frequencies)."""

from __future__ import annotations

import numpy as np

from media.audio.wav import to_pcm16

DTMF_FREQS: dict[str, tuple[int, int]] = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}


def tone(freqs: tuple[float, ...], ms: int, amplitude: float = 8000.0, rate: int = 8000) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    signal = sum(np.sin(2 * np.pi * f * t) for f in freqs) * (amplitude / max(1, len(freqs)))
    return to_pcm16(np.asarray(signal))


def beep(ms: int = 400) -> bytes:
    """The 1 kHz "record after the tone" beep (16-bit PCM, 8 kHz)."""
    return tone((1000.0,), ms, 10000.0)


def dtmf(digit: str, ms: int = 100, amplitude: float = 7000.0) -> bytes:
    return tone(tuple(float(f) for f in DTMF_FREQS[digit.upper()]), ms, amplitude * 2)


def silence_pcm(ms: int) -> bytes:
    return b"\x00\x00" * (8 * ms)
