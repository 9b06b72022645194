"""TTS engines and the prompt cache. gTTS is exercised for real against a local HTTPS server that answers
its batchexecute request the way Google's does (see known-facts), so no network and no mock of gTTS."""

from __future__ import annotations

import base64
import http.server
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import lameenc
import numpy as np
import pytest
from testutil import require_binary

from media.audio import g711
from media.prompts.cache import PromptCache, cache_key
from media.prompts.tts import EspeakEngine, FallbackEngine, GttsEngine, TtsError


def _mp3_tone(freq: float, seconds: float = 1.0, rate: int = 24000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    pcm = (np.sin(2 * np.pi * freq * t) * 12000).astype("<i2").tobytes()
    enc = lameenc.Encoder()
    enc.set_bit_rate(64)
    enc.set_in_sample_rate(rate)
    enc.set_channels(1)
    enc.set_quality(5)
    return bytes(enc.encode(pcm) + enc.flush())


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    require_binary("openssl")
    d = tmp_path_factory.mktemp("tls")
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    return str(cert), str(key)


class _Handler(http.server.BaseHTTPRequestHandler):
    mp3 = b""
    requests: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).requests.append(self.path + " " + body[:60].decode(errors="replace"))
        b64 = base64.b64encode(self.mp3).decode()
        inner = json.dumps([b64]).replace('"', '\\"')
        payload = f')]}}\'\n\n[["wrb.fr","jQ1olc","{inner}",null,null,null,"generic"]]'
        data = payload.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gtts_server(tls_files: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    _Handler.mp3 = _mp3_tone(440.0)
    _Handler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*tls_files)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _dominant(pcm: bytes) -> float:
    x = np.frombuffer(pcm, "<i2").astype(float)
    spec = np.abs(np.fft.rfft(x))
    return float(np.argmax(spec) * 8000 / len(x))


def test_gtts_through_local_https_server(gtts_server: int) -> None:
    engine = GttsEngine(tld=f"com@127.0.0.1:{gtts_server}", timeout=10)
    pcm = engine.synthesize("You have two new messages.")
    assert _Handler.requests and "batchexecute" in _Handler.requests[0]
    assert 0.9 < len(pcm) / 16000 < 1.3          # one second of audio at 8 kHz
    assert abs(_dominant(pcm) - 440) < 5         # the served tone, decoded and resampled


def test_gtts_unreachable_raises_quickly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = GttsEngine(tld=f"com@127.0.0.1:{port}", timeout=2)
    with pytest.raises(TtsError):
        engine.synthesize("hello")


def test_gtts_stalled_server_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)  # accepts TCP, never speaks TLS
    try:
        engine = GttsEngine(tld=f"com@127.0.0.1:{listener.getsockname()[1]}", timeout=1)
        started = time.monotonic()
        with pytest.raises(TtsError):
            engine.synthesize("hello")
        assert time.monotonic() - started < 30  # bounded (generous under CPU contention)
    finally:
        listener.close()


def test_espeak_engine() -> None:
    require_binary("espeak-ng")
    pcm = EspeakEngine().synthesize("Please leave a message after the tone.")
    assert 1.0 < len(pcm) / 16000 < 5.0
    assert g711.rms(pcm) > 500


def test_fallback_to_espeak_and_primary_rested() -> None:
    require_binary("espeak-ng")
    fb = FallbackEngine(GttsEngine(tld="com@127.0.0.1:9", timeout=1), EspeakEngine(), retry_after=60)
    used, pcm = fb.synthesize_with("Goodbye.")
    assert used.name == "espeak" and len(pcm) > 1000
    assert not fb.primary_usable()


class _Counting:
    """A real engine that counts its calls (to see cache hits)."""

    def __init__(self, inner: EspeakEngine) -> None:
        self.inner, self.calls = inner, 0
        self.name, self.voice, self.language = inner.name, inner.voice, inner.language

    def synthesize(self, text: str) -> bytes:
        self.calls += 1
        return self.inner.synthesize(text)


def test_cache_renders_once_and_survives_restart(tmp_path: Path) -> None:
    require_binary("espeak-ng")
    engine = _Counting(EspeakEngine())
    cache = PromptCache(tmp_path, engine)
    progress: list[tuple[int, int]] = []
    assert cache.render_all(["One.", "Two.", "One."], lambda i, n: progress.append((i, n))) == 2
    assert progress == [(1, 2), (2, 2)] and engine.calls == 2
    clip = cache.get("One.")
    assert engine.calls == 2
    again = PromptCache(tmp_path, engine)
    assert again.get("One.") == clip and engine.calls == 2
    assert sorted(os.listdir(tmp_path)) == sorted(
        f"{cache_key('espeak', 'en-us', 'en', t)}.ul" for t in ("One.", "Two."))


def test_cache_key_depends_on_every_part() -> None:
    base = cache_key("espeak", "en-us", "en", "Hello")
    others = {cache_key("gtts", "en-us", "en", "Hello"), cache_key("espeak", "en-gb", "en", "Hello"),
              cache_key("espeak", "en-us", "de", "Hello"), cache_key("espeak", "en-us", "en", "Hello.")}
    assert len({base, *others}) == 5


def test_gtts_cache_through_fallback(gtts_server: int, tmp_path: Path) -> None:
    require_binary("espeak-ng")
    fb = FallbackEngine(GttsEngine(tld=f"com@127.0.0.1:{gtts_server}", timeout=10), EspeakEngine())
    cache = PromptCache(tmp_path, fb)
    clip = cache.get("Main menu.")
    assert abs(_dominant(g711.decode(clip, "PCMU")) - 440) < 5  # came from "gTTS"
    assert (tmp_path / f"{cache_key('gtts', fb.primary.voice, 'en', 'Main menu.')}.ul").exists()
