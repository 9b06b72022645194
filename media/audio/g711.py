"""G.711 µ-law / A-law (ITU-T G.711) via ``audioop`` (stdlib on 3.11/3.12, ``audioop-lts`` on ≥ 3.13)."""

from __future__ import annotations

import warnings
from typing import Literal

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

Law = Literal["PCMU", "PCMA"]

ULAW_SILENCE = b"\xff"
ALAW_SILENCE = b"\xd5"


def encode(pcm16: bytes, law: Law) -> bytes:
    """16-bit little-endian linear PCM -> G.711 octets."""
    return audioop.lin2ulaw(pcm16, 2) if law == "PCMU" else audioop.lin2alaw(pcm16, 2)


def decode(g711: bytes, law: Law) -> bytes:
    """G.711 octets -> 16-bit little-endian linear PCM."""
    return audioop.ulaw2lin(g711, 2) if law == "PCMU" else audioop.alaw2lin(g711, 2)


def ulaw_to_alaw(data: bytes) -> bytes:
    """Transcode without leaving the 8-bit domain (prompts are stored µ-law, some calls use A-law)."""
    return audioop.lin2alaw(audioop.ulaw2lin(data, 2), 2)


def silence(samples: int, law: Law) -> bytes:
    return (ULAW_SILENCE if law == "PCMU" else ALAW_SILENCE) * samples


def rms(pcm16: bytes) -> int:
    return int(audioop.rms(pcm16, 2)) if pcm16 else 0
