"""WAV files: read any PCM/µ-law/A-law WAV to 8 kHz 16-bit mono, write µ-law WAV (format tag 7).

Python's ``wave`` module only handles PCM, so the RIFF chunks are parsed here (the fmt chunk per the
Microsoft RIFF spec; µ-law WAVE_FORMAT_MULAW = 7, A-law = 6).
"""

from __future__ import annotations

import struct

import numpy as np
from scipy.signal import resample_poly

from media.audio import g711

FORMAT_PCM = 1
FORMAT_ALAW = 6
FORMAT_MULAW = 7
FORMAT_EXTENSIBLE = 0xFFFE
MAX_WAV_BYTES = 50 * 1024 * 1024


class WavError(ValueError):
    """Not a WAV file we can read (bad RIFF structure or unsupported encoding)."""


def resample_to_8k(samples: np.ndarray, rate: int) -> np.ndarray:
    """Polyphase resampling with an anti-alias filter (``audioop.ratecv`` has none)."""
    if rate == 8000:
        return samples
    from math import gcd

    g = gcd(8000, rate)
    return np.asarray(resample_poly(samples, 8000 // g, rate // g))


def to_pcm16(samples: np.ndarray) -> bytes:
    """Float or int samples (int16 scale) -> clipped 16-bit little-endian bytes."""
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def read_wav(data: bytes) -> bytes:
    """Any supported WAV -> 8 kHz mono 16-bit little-endian PCM."""
    if len(data) > MAX_WAV_BYTES:
        raise WavError("WAV file too large")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    payload: bytes | None = None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8: pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise WavError("fmt chunk too short")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == FORMAT_EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            payload = body
        pos += 8 + size + (size & 1)
    if fmt is None or payload is None:
        raise WavError("WAV lacks a fmt or data chunk")
    tag, channels, rate, bits = fmt
    if channels < 1 or not 4000 <= rate <= 192000:
        raise WavError(f"unsupported WAV: {channels} channels at {rate} Hz")
    if tag == FORMAT_MULAW and bits == 8:
        pcm = np.frombuffer(g711.decode(payload, "PCMU"), "<i2").astype(np.float64)
    elif tag == FORMAT_ALAW and bits == 8:
        pcm = np.frombuffer(g711.decode(payload, "PCMA"), "<i2").astype(np.float64)
    elif tag == FORMAT_PCM and bits == 16:
        pcm = np.frombuffer(payload[: len(payload) // 2 * 2], "<i2").astype(np.float64)
    elif tag == FORMAT_PCM and bits == 8:
        pcm = (np.frombuffer(payload, np.uint8).astype(np.float64) - 128.0) * 256.0
    else:
        raise WavError(f"unsupported WAV encoding: format {tag}, {bits} bits")
    if channels > 1:
        pcm = pcm[: len(pcm) // channels * channels].reshape(-1, channels).mean(axis=1)
    return to_pcm16(resample_to_8k(pcm, rate))


def ulaw_wav(ulaw: bytes, rate: int = 8000) -> bytes:
    """A µ-law WAV (format 7, with the fact chunk non-PCM formats require)."""
    fmt = struct.pack("<HHIIHHH", FORMAT_MULAW, 1, rate, rate, 1, 8, 0)
    fact = struct.pack("<I", len(ulaw))
    pad = b"\x00" if len(ulaw) & 1 else b""
    chunks = (b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", 4) + fact
              + b"data" + struct.pack("<I", len(ulaw)) + ulaw + pad)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def pcm_wav(pcm16: bytes, rate: int = 8000) -> bytes:
    """A 16-bit mono PCM WAV (for tools that cannot read µ-law, e.g. a test UA's player)."""
    fmt = struct.pack("<HHIIHH", FORMAT_PCM, 1, rate, rate * 2, 2, 16)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(pcm16)) + pcm16
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks
