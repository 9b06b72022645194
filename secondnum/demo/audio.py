"""Audio for the demo: what the phone says (espeak-ng), and whether the phone heard a given prompt.

"Heard" is the peak normalised cross-correlation of the expected prompt (the media server's own clips from
its prompt cache, concatenated as it plays them) inside the phone's recording: 1.0 is a bit-exact match;
G.711 round trips and jitter buffers keep a real match above ~0.8, unrelated speech stays below ~0.4.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

from secondnum.demo.errors import DemoError

RATE = 8000


def read_wav(path: Path) -> np.ndarray:
    """Mono 16-bit samples of a WAV (as pjsua2's recorder writes them) as floats."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise DemoError(f"{path}: expected 16-bit PCM")
        frames = w.readframes(w.getnframes())
        samples = np.frombuffer(frames, "<i2").astype(float)
        if w.getnchannels() > 1:
            samples = samples.reshape(-1, w.getnchannels()).mean(axis=1)
        if w.getframerate() != RATE:
            from scipy.signal import resample_poly

            g = np.gcd(RATE, w.getframerate())
            samples = resample_poly(samples, RATE // g, w.getframerate() // g)
    return samples


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())


def speak(text: str, path: Path) -> float:
    """Render ``text`` with espeak-ng into an 8 kHz 16-bit WAV at ``path``; returns its duration (s)."""
    if shutil.which("espeak-ng") is None:
        raise DemoError("espeak-ng is not installed: sudo apt-get install espeak-ng")
    raw = subprocess.run(["espeak-ng", "--stdout", text], check=True, capture_output=True, timeout=30).stdout
    with wave.open(io.BytesIO(raw), "rb") as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(float)
    from scipy.signal import resample_poly

    g = np.gcd(RATE, rate)
    samples = resample_poly(samples, RATE // g, rate // g)
    write_wav(path, samples)
    return len(samples) / RATE


SEGMENT = 2560
"""0.32 s: long prompts are compared piece by piece (see :func:`heard`)."""


def best_xcorr(recorded: np.ndarray, reference: np.ndarray) -> float:
    """How well ``reference`` is found inside ``recorded`` (1.0 = identical), robust to glitches."""
    return heard(recorded, reference)[0]


def heard(recorded: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """(score, offset) of ``reference`` inside ``recorded``.

    A phone's jitter buffer may conceal a late packet or shift the timing by a frame, which spoils one
    correlation over a whole 4 s prompt; so a long reference is cut into 0.32 s pieces, each found on its
    own, and the median piece score counts.
    """
    whole, pos = find(recorded, reference)
    if whole >= 0.95 or len(reference) < 2 * SEGMENT:
        return whole, pos
    pieces = [reference[i:i + SEGMENT] for i in range(0, len(reference) - SEGMENT + 1, SEGMENT)]
    found = [find(recorded, p) for p in pieces if rms(p) > 100]  # a pause between words matches any silence
    if not found:
        return whole, pos
    scores = sorted(score for score, _ in found)
    return max(whole, scores[len(scores) // 2]), found[0][1]


def find_in_order(recorded: np.ndarray, references: list[np.ndarray]) -> list[float]:
    """Match scores of ``references`` found one after the other in ``recorded`` (a spoken sequence such as
    a phone number: each clip is searched for after the end of the previous match)."""
    scores, start = [], 0
    for ref in references:
        score, pos = heard(recorded[start:], ref)
        scores.append(score)
        start += pos + len(ref) // 2
    return scores


def find(recorded: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """(peak normalised cross-correlation, sample offset) of ``reference`` inside ``recorded``."""
    n = len(reference)
    if n == 0 or len(recorded) < n:
        return 0.0, 0
    ref = reference - reference.mean()
    if not np.any(ref):
        return 0.0, 0
    size = 1 << int(np.ceil(np.log2(len(recorded) + n)))
    corr = np.fft.irfft(np.fft.rfft(recorded, size) * np.conj(np.fft.rfft(ref, size)), size)
    corr = corr[: len(recorded) - n + 1]
    csum = np.concatenate(([0.0], np.cumsum(recorded)))
    csum2 = np.concatenate(([0.0], np.cumsum(recorded**2)))
    win_sum = csum[n:] - csum[:-n]
    win_energy = csum2[n:] - csum2[:-n] - win_sum**2 / n
    denom = np.sqrt(np.maximum(win_energy, 1e-9) * float(np.dot(ref, ref)))
    normalised = corr / denom
    pos = int(np.argmax(normalised))
    return float(normalised[pos]), pos


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


def ulaw_to_pcm(data: bytes) -> np.ndarray:
    """G.711 µ-law (ITU-T G.711 §3) to linear samples, vectorised."""
    u = ~np.frombuffer(data, np.uint8).astype(np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(float)
