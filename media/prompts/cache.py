"""On-disk prompt cache: G.711 µ-law clips keyed by a hash of (engine, voice, language, text).

A clip is rendered once (blocking: TTS runs in a worker thread, never on the event loop), written
atomically (temporary file + ``os.replace``) and then served from memory. A change of engine, voice,
language or wording yields a new key, so stale audio is never played.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from media.audio import g711
from media.prompts.tts import FallbackEngine, TtsEngine
from secondnum.log import get_logger

log = get_logger(__name__)


CLIP_FORMAT = "ulaw8k-trim1"
"""Part of every key: bump it when the stored clip format (encoding, trimming) changes."""
TRIM_THRESHOLD = 200
TRIM_PAD = 480  # keep 60 ms of silence at each end so concatenated words do not run together


def cache_key(engine: str, voice: str, language: str, text: str) -> str:
    raw = "\x1f".join((CLIP_FORMAT, engine, voice, language, text)).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def trim_silence(pcm16: bytes) -> bytes:
    """Cut the leading/trailing silence TTS engines add (espeak adds ~0.2 s each side) so that numbers
    and dates composed from many clips sound like one phrase."""
    samples = np.frombuffer(pcm16, "<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > TRIM_THRESHOLD)
    if not len(loud):
        return pcm16
    start = max(0, int(loud[0]) - TRIM_PAD)
    end = min(len(samples), int(loud[-1]) + TRIM_PAD)
    return samples[start:end].tobytes()


class PromptCache:
    def __init__(self, directory: str | Path, engine: TtsEngine) -> None:
        self.directory = Path(directory)
        self.engine = engine
        self._memory: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _candidates(self, text: str) -> list[TtsEngine]:
        if isinstance(self.engine, FallbackEngine):
            return [self.engine.primary, self.engine.fallback]
        return [self.engine]

    def _path(self, engine: TtsEngine, text: str) -> Path:
        return self.directory / f"{cache_key(engine.name, engine.voice, engine.language, text)}.ul"

    def cached(self, text: str) -> bytes | None:
        """The clip if already rendered (memory, else disk); never synthesises."""
        if text in self._memory:
            return self._memory[text]
        for engine in self._candidates(text):
            path = self._path(engine, text)
            if path.exists():
                data = path.read_bytes()
                self._memory[text] = data
                return data
        return None

    def get(self, text: str) -> bytes:
        """The µ-law clip for ``text``, synthesising it if needed (blocking). Raises TtsError."""
        found = self.cached(text)
        if found is not None:
            return found
        with self._lock:
            found = self.cached(text)
            if found is not None:
                return found
            if isinstance(self.engine, FallbackEngine):
                used, pcm = self.engine.synthesize_with(text)
            else:
                used, pcm = self.engine, self.engine.synthesize(text)
            data = g711.encode(trim_silence(pcm), "PCMU")
            self._write(self._path(used, text), data)
            self._memory[text] = data
            return data

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def render_all(self, texts: Iterable[str],
                   progress: Callable[[int, int], None] | None = None) -> int:
        """Render every text not cached yet; returns how many were synthesised. Blocking."""
        todo = [t for t in dict.fromkeys(texts) if self.cached(t) is None]
        for i, text in enumerate(todo, 1):
            self.get(text)
            if progress is not None:
                progress(i, len(todo))
        return len(todo)
