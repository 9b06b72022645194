"""Functional tests with a real SIP UA: pjsua2 (null sound device) in a subprocess calls the media server,
records everything it hears, plays WAV files, sends DTMF (RFC 4733 / SIP INFO / in-band tones)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from media_harness import heard, prompt_match, run_pjsua, speech_wav

from media.audio import g711, tones, wav
from media.prompts.cache import trim_silence
from media.prompts.catalog import PHRASES, digit_words
from media.service import MediaService
from media.store.voicemail import VoicemailStore

pytestmark = [pytest.mark.pjsua, pytest.mark.slow]

MB = "42027777100"


def prompt(media: MediaService, *texts: str) -> np.ndarray:
    ulaw = b"".join(media.prompts.cached(t) or b"" for t in texts)
    return np.frombuffer(g711.decode(ulaw, "PCMU"), "<i2").astype(float)


def uri(media: MediaService, service: str, extra: str = "") -> str:
    host, port = media.server.endpoint.local_address
    return f"sip:{service}@{host}:{port};mailbox={MB}{extra}"


async def test_deposit_default_greeting_heard(media: MediaService, tmp_path: Path) -> None:
    rec = tmp_path / "heard.wav"
    result = await run_pjsua({"uri": uri(media, "vm-deposit"), "record": str(rec),
                              "steps": [{"at": 7, "hangup": True}]})
    assert result["connected"]
    got = heard(rec)
    greeting = prompt(media, PHRASES["greeting_default_1"], *digit_words(MB), PHRASES["greeting_default_2"])
    assert prompt_match(got, greeting[: 5 * 8000]) >= 0.8
    assert prompt_match(got, prompt(media, PHRASES["mailbox_full"])) < 0.3  # a wrong prompt fails


async def test_deposit_message_from_wav_stored(media: MediaService, tmp_path: Path) -> None:
    speech, speech_pcm = speech_wav(tmp_path, "Hello, this is a test message about tomorrow's meeting.")
    store = VoicemailStore()
    store.set_greeting(MB, g711.encode(tones.tone((500.0,), 800, 5000), "PCMU"))
    rec = tmp_path / "heard.wav"
    talk = len(speech_pcm) / 8000
    # Greeting 0.8 s + beep 0.4 s: speak from 2.5 s, hang up 1.5 s after the speech ends.
    result = await run_pjsua({"uri": uri(media, "vm-deposit"), "record": str(rec),
                              "steps": [{"at": 2.5, "play": str(speech)}, {"at": 4 + talk, "hangup": True}]})
    assert result["connected"]
    for _ in range(100):
        if store.list_messages(MB):
            break
        await asyncio.sleep(0.1)
    msgs = store.list_messages(MB)
    assert len(msgs) == 1 and msgs[0].caller == "42073723123"
    stored = np.frombuffer(g711.decode(store.audio(MB, msgs[0].id), "PCMU"), "<i2").astype(float)
    # The caller's leading silence is recorded too; compare the spoken part, chunk by chunk, from its
    # second second on (pjsua's WAV player loses a few frames while it starts: seen as a 100 ms hole).
    spoken = np.frombuffer(trim_silence(stored.astype("<i2").tobytes()), "<i2").astype(float)[8000:]
    assert abs(len(spoken) + 8000 - len(speech_pcm)) < 4000
    assert prompt_match(speech_pcm, spoken) >= 0.8
    other, _ = speech_wav(tmp_path, "Completely different words are spoken here instead.")
    other_pcm = heard(other)
    assert prompt_match(other_pcm, spoken) < 0.3


@pytest.mark.parametrize("method", ["rfc2833", "info", "inband"])
async def test_access_navigate_with_dtmf(media: MediaService, tmp_path: Path, method: str) -> None:
    store = VoicemailStore()
    voice = tones.tone((440.0, 660.0), 1000, 6000)
    store.add_message(MB, "42075553333", g711.encode(voice, "PCMU"),
                      dt.datetime(2026, 11, 25, 9, 30, tzinfo=dt.UTC))
    rec = tmp_path / "heard.wav"
    if method == "inband":
        steps: list[dict[str, object]] = []
        for at, digit in ((8, "#"), (11, "2")):
            path = tmp_path / f"dtmf_{ord(digit)}.wav"
            path.write_bytes(wav.pcm_wav(tones.dtmf(digit, 150) + tones.silence_pcm(100)))
            steps.append({"at": at, "play": str(path)})
    else:
        steps = [{"at": 8, "dtmf": "#", "method": method}, {"at": 11, "dtmf": "2", "method": method}]
    steps.append({"at": 17, "hangup": True})
    result = await run_pjsua({"uri": uri(media, "vm-access", ";auth=network"), "record": str(rec),
                              "steps": steps})
    assert result["connected"]
    assert store.counts(MB) == (0, 1)  # "#" skipped to the end of the message, "2" saved it
    got = heard(rec)
    assert prompt_match(got, prompt(media, PHRASES["message_saved"])) >= 0.8
    assert prompt_match(got, prompt(media, PHRASES["call_not_allowed"])) < 0.3


async def test_pjsua_pin_prompt_without_network_auth(media: MediaService, tmp_path: Path) -> None:
    from hss_adapter.store import create_account

    create_account({"did": MB, "voicemail": {"pin": "2468"}})  # set through the provisioning API's store
    rec = tmp_path / "heard.wav"
    steps = [{"at": 4, "dtmf": "2468#"}, {"at": 12, "hangup": True}]
    result = await run_pjsua({"uri": uri(media, "vm-access"), "record": str(rec), "steps": steps})
    assert result["connected"]
    got = heard(rec)
    assert prompt_match(got, prompt(media, PHRASES["enter_pin"])) >= 0.8
    assert prompt_match(got, prompt(media, PHRASES["you_have"])) >= 0.8  # the right PIN opened the mailbox
    assert prompt_match(got, prompt(media, PHRASES["pin_wrong"])) < 0.3
