"""G.711, WAV handling and the in-band DTMF detector (must not fire on speech or our prompts)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testutil import require_binary

from media.audio import g711, tones, wav
from media.audio.goertzel import GoertzelDetector
from media.prompts.catalog import all_texts


def test_g711_round_trip_is_close() -> None:
    pcm = tones.tone((440.0,), 200)
    for law in ("PCMU", "PCMA"):
        back = np.frombuffer(g711.decode(g711.encode(pcm, law), law), "<i2").astype(float)
        orig = np.frombuffer(pcm, "<i2").astype(float)
        assert np.corrcoef(orig, back)[0, 1] > 0.999


def test_ulaw_wav_round_trip() -> None:
    pcm = tones.tone((700.0,), 300)
    ulaw = g711.encode(pcm, "PCMU")
    assert g711.encode(wav.read_wav(wav.ulaw_wav(ulaw)), "PCMU") == ulaw


def test_pcm_wav_resampled_from_22050() -> None:
    t = np.arange(22050) / 22050
    pcm = wav.to_pcm16(np.sin(2 * np.pi * 500 * t) * 8000)
    fmt = b"fmt " + (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + \
        (22050).to_bytes(4, "little") + (44100).to_bytes(4, "little") + (2).to_bytes(2, "little") + \
        (16).to_bytes(2, "little")
    body = b"WAVE" + fmt + b"data" + len(pcm).to_bytes(4, "little") + pcm
    out = wav.read_wav(b"RIFF" + (len(body)).to_bytes(4, "little") + body)
    assert abs(len(out) // 2 - 8000) <= 1


@pytest.mark.parametrize("data", [b"", b"RIFF", b"RIFF\x00\x00\x00\x00WAVE",
                                  b"RIFF\x10\x00\x00\x00WAVEfmt \x02"])
def test_bad_wav_rejected(data: bytes) -> None:
    with pytest.raises(wav.WavError):
        wav.read_wav(data)


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_detects_each_digit(digit: str) -> None:
    pcm = tones.silence_pcm(30) + tones.dtmf(digit, 80) + tones.silence_pcm(30)
    assert GoertzelDetector().feed(pcm) == [digit]


def test_detects_after_g711_and_with_noise() -> None:
    rng = np.random.default_rng(5)
    pcm = tones.dtmf("7", 120) + tones.silence_pcm(60) + tones.dtmf("7", 120)
    noisy = np.frombuffer(pcm, "<i2") + rng.normal(0, 300, len(pcm) // 2)
    coded = g711.decode(g711.encode(wav.to_pcm16(noisy), "PCMA"), "PCMA")
    assert GoertzelDetector().feed(coded) == ["7", "7"]


def test_long_press_is_one_digit_and_short_blip_none() -> None:
    d = GoertzelDetector()
    assert d.feed(tones.dtmf("1", 600)) == ["1"]
    assert GoertzelDetector().feed(tones.silence_pcm(20) + tones.dtmf("1", 20)) == []


def _espeak(text: str, voice: str) -> bytes:
    out = subprocess.run(["espeak-ng", "--stdout", "-v", voice, text], capture_output=True, check=True)
    return wav.read_wav(out.stdout)


@pytest.mark.parametrize("voice", ["en-us", "en-gb", "de", "fr", "cs"])
def test_no_false_digits_on_speech(voice: str) -> None:
    require_binary("espeak-ng")
    text = " ".join(all_texts()[:40])
    assert GoertzelDetector().feed(_espeak(text, voice)) == []


def test_no_false_digits_on_prompts_and_beep() -> None:
    require_binary("espeak-ng")
    pcm = _espeak(" ".join(all_texts()), "en-us") + tones.beep()
    coded = g711.decode(g711.encode(pcm, "PCMU"), "PCMU")
    assert GoertzelDetector().feed(coded) == []


def test_digit_over_speech_still_found() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng missing")
    speech = np.frombuffer(_espeak("hello there", "en-us")[:3200], "<i2").astype(float) * 0.1
    key = np.frombuffer(tones.dtmf("9", 200), "<i2").astype(float)
    mixed = wav.to_pcm16(key + speech[: len(key)])
    assert GoertzelDetector().feed(mixed) == ["9"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(-32768, 32767), min_size=160, max_size=160), st.floats(0.0, 1.0))
def test_energy_gate_never_rejects_a_frame_the_detector_analyses(values: list[int], scale: float) -> None:
    """GoertzelDetector.feed skips quiet frames with the C RMS before numpy: its bound must never be below the
    frame's true energy, or a real digit near the threshold would be lost."""
    pcm = np.array([int(v * scale) for v in values], dtype="<i2")
    total = float(pcm.astype(np.float64) @ pcm.astype(np.float64))
    bound = g711.rms(pcm.tobytes()) + 1
    assert bound * bound * 160 >= total
