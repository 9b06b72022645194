"""Message recording, sans-IO: fed received frames (any packet size), decides when to stop and trims
trailing silence. Lengths are counted in samples (8 kHz), so 20 ms and 30 ms packets behave the same."""

from __future__ import annotations

from media.audio import g711

RATE = 8000


class Recorder:
    def __init__(self, max_seconds: float, silence_timeout: float, silence_threshold: int = 300) -> None:
        self.max_samples = int(max_seconds * RATE)
        self.silence_samples = int(silence_timeout * RATE)
        self.threshold = silence_threshold
        self._frames: list[bytes] = []
        self._samples = 0
        self._last_voiced = 0
        """Samples up to the end of the last frame above the threshold."""
        self._frame_ends: list[int] = []
        self.voiced_changed = False
        """True when the last frame fed was above the silence threshold."""

    def feed(self, ulaw_frame: bytes) -> str | None:
        """Add one µ-law frame; returns the stop reason when recording must end."""
        return self._add(ulaw_frame, g711.rms(g711.decode(ulaw_frame, "PCMU")))

    def feed_pcm(self, pcm16: bytes) -> str | None:
        """Add one frame of 16-bit PCM (stored as µ-law)."""
        return self._add(g711.encode(pcm16, "PCMU"), g711.rms(pcm16))

    def _add(self, ulaw_frame: bytes, level: int) -> str | None:
        self._frames.append(ulaw_frame)
        self._samples += len(ulaw_frame)
        self._frame_ends.append(self._samples)
        self.voiced_changed = level >= self.threshold
        if self.voiced_changed:
            self._last_voiced = self._samples
        if self._samples >= self.max_samples:
            return "max_length"
        if self._samples - self._last_voiced >= self.silence_samples:
            return "silence"
        return None

    def audio(self, trim_frames: int = 0) -> bytes:
        """The recording without trailing silence and without the last ``trim_frames`` (a key's tone)."""
        end = self._last_voiced
        if trim_frames and len(self._frame_ends) > trim_frames:
            end = min(end, self._frame_ends[-trim_frames - 1])
        elif trim_frames:
            end = 0
        return b"".join(self._frames)[:end]

    @property
    def voiced_seconds(self) -> float:
        return self._last_voiced / RATE
