"""Text-to-speech engines behind one interface; every engine returns 8 kHz 16-bit mono PCM.

* :class:`EspeakEngine`: ``espeak-ng --stdout`` (offline default, tens of milliseconds per prompt).
* :class:`GttsEngine`: Google Translate TTS through ``gTTS``, always with a timeout; its MP3 is decoded with
  ``miniaudio`` and resampled to 8 kHz with ``scipy.signal.resample_poly``.
* :class:`FallbackEngine`: tries the primary, falls back on *any* error, and after a failure leaves the
  primary alone for ``retry_after`` seconds so that rendering forty prompts does not cost forty timeouts.

Engines are blocking: call them from a worker thread, never on the event loop.
"""

from __future__ import annotations

import io
import subprocess
import threading
import time
from typing import Protocol

import numpy as np

from media.audio.wav import WavError, read_wav, resample_to_8k, to_pcm16
from secondnum.log import get_logger

log = get_logger(__name__)


class TtsError(RuntimeError):
    """The engine could not produce audio for the text."""


class TtsEngine(Protocol):
    name: str
    voice: str
    language: str

    def synthesize(self, text: str) -> bytes:
        """8 kHz mono 16-bit little-endian PCM for ``text``; raises :class:`TtsError`."""
        ...


class EspeakEngine:
    name = "espeak"

    def __init__(self, voice: str = "en-us", speed: int = 150, executable: str = "espeak-ng",
                 timeout: float = 20.0) -> None:
        self.voice = voice
        self.language = voice.split("-", 1)[0]
        self.speed = speed
        self.executable = executable
        self.timeout = timeout

    def synthesize(self, text: str) -> bytes:
        cmd = [self.executable, "--stdout", "-v", self.voice, "-s", str(self.speed), "--", text]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=self.timeout, check=True)
            return read_wav(proc.stdout)
        except (OSError, subprocess.SubprocessError, WavError) as exc:
            raise TtsError(f"espeak-ng failed: {exc}") from exc


class GttsEngine:
    name = "gtts"

    def __init__(self, language: str = "en", tld: str = "com", timeout: float = 5.0) -> None:
        self.language = language
        self.voice = tld
        self.tld = tld
        self.timeout = timeout

    def synthesize(self, text: str) -> bytes:
        import miniaudio
        from gtts import gTTS

        buf = io.BytesIO()
        try:
            gTTS(text, tld=self.tld, lang=self.language, lang_check=False,
                 timeout=self.timeout).write_to_fp(buf)
            decoded = miniaudio.decode(buf.getvalue(), output_format=miniaudio.SampleFormat.SIGNED16,
                                       nchannels=1, sample_rate=48000)
        except Exception as exc:
            raise TtsError(f"gTTS failed: {type(exc).__name__}: {exc}") from exc
        samples = np.asarray(decoded.samples, dtype=np.float64)
        if samples.size == 0:
            raise TtsError("gTTS returned no audio")
        return to_pcm16(resample_to_8k(samples, int(decoded.sample_rate)))


class FallbackEngine:
    """``primary`` with ``fallback`` on any error; the cache keys by the engine that actually spoke."""

    def __init__(self, primary: TtsEngine, fallback: TtsEngine, retry_after: float = 300.0) -> None:
        self.primary = primary
        self.fallback = fallback
        self.retry_after = retry_after
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.name = primary.name
        self.voice = primary.voice
        self.language = primary.language

    def primary_usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def synthesize_with(self, text: str) -> tuple[TtsEngine, bytes]:
        if self.primary_usable():
            try:
                return self.primary, self.primary.synthesize(text)
            except TtsError as exc:
                with self._lock:
                    self._down_until = time.monotonic() + self.retry_after
                log.warning("tts_fallback", engine=self.primary.name, fallback=self.fallback.name,
                            error=str(exc), retry_after=self.retry_after)
        return self.fallback, self.fallback.synthesize(text)

    def synthesize(self, text: str) -> bytes:
        return self.synthesize_with(text)[1]
