"""Issue 9, MongoDB down: a voicemail deposit is still taken (default greeting, no full check), spooled to
disk, and written to GridFS once the *same* database (same data folder, same port) is back.

Real components only: a SecantusDB process of its own that the test stops and starts again, the media
service, pjsua2 as the caller, the project's SIP UAC for the short calls.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import mongoengine
import numpy as np
import pytest
from media_harness import (
    Uac,
    heard,
    media_settings,
    metric,
    prompt_match,
    run_pjsua,
    speech_wav,
    start_service,
    wait_for,
)

from hss_adapter.store import create_account
from media.audio import g711
from media.prompts.cache import trim_silence
from media.prompts.catalog import PHRASES, digit_words
from media.service import MediaService
from media.store.voicemail import VoicemailStore
from secondnum.mongo import EmbeddedMongo, connect

pytestmark = [pytest.mark.pjsua, pytest.mark.slow]

MB = "42027777100"
DISABLED = "42027777199"
DB = "outage"


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def database(tmp_path: Path) -> Iterator[EmbeddedMongo]:
    """A SecantusDB on a data folder and a fixed port, so a restart is the same database at the same URI."""
    server = EmbeddedMongo(tmp_path / "db", port=_free_tcp_port())
    server.start()
    connect(server.uri, DB)
    try:
        yield server
    finally:
        mongoengine.disconnect()
        server.stop()


@pytest.fixture
async def outage_media(database: EmbeddedMongo, prompt_dir: Path,
                       tmp_path: Path) -> AsyncIterator[MediaService]:
    # A private prompt folder (a copy of the session's), so that this test's spool (<prompt_dir>/../spool)
    # is its own and nothing it leaves can reach another test's service.
    prompts = tmp_path / "media" / "prompts"
    shutil.copytree(prompt_dir, prompts, dirs_exist_ok=True)
    svc = await start_service(media_settings(prompts, spool_retry_interval=1.0), database.uri, DB)
    try:
        yield svc
    finally:
        await svc.stop()


def prompt(media: MediaService, *texts: str) -> np.ndarray:
    ulaw = b"".join(media.prompts.cached(t) or b"" for t in texts)
    return np.frombuffer(g711.decode(ulaw, "PCMU"), "<i2").astype(float)


def _events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


async def _announced_and_released(media: MediaService, mailbox: str, service: str) -> Uac:
    uac = Uac()
    await uac.start()
    resp = await uac.call(media.server.endpoint.local_address, service, mailbox)
    assert resp.status == 200
    await asyncio.wait_for(uac.bye_received.wait(), 60)  # announcement, then media hangs up
    return uac


async def test_deposit_while_mongodb_down_is_spooled_then_written(
        database: EmbeddedMongo, outage_media: MediaService, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    media = outage_media
    caplog.set_level(logging.INFO, logger="media")
    create_account({"did": DISABLED, "voicemail": {"enabled": False}})
    # While MongoDB is up, a call reads the account (voicemail disabled) and media remembers it.
    uac = await _announced_and_released(media, DISABLED, "vm-deposit")
    await uac.close()
    assert media.server.last_known.get(DISABLED)[0]
    spooled_before = metric("secondnum_media_messages_spooled_total")

    database.stop()  # SIGTERM: MongoDB is down from here on

    # The last-known settings still apply: disabled voicemail is announced, nothing is spooled.
    uac = await _announced_and_released(media, DISABLED, "vm-deposit")
    heard_disabled = uac.rtp.pcm()
    await uac.close()
    assert prompt_match(heard_disabled, prompt(media, PHRASES["mailbox_unavailable"])) >= 0.8
    assert not media.server.db_up
    # The menu cannot work without the database: it says so and hangs up instead of failing silently.
    uac = await _announced_and_released(media, MB, "vm-access")
    assert prompt_match(uac.rtp.pcm(), prompt(media, PHRASES["mailbox_unavailable"])) >= 0.8
    await uac.close()

    # A real UA leaves a message: default greeting naming the number, beep, speech, hang up.
    speech, speech_pcm = speech_wav(tmp_path, "Hello, the database is down but this message must survive.")
    greeting = prompt(media, PHRASES["greeting_default_1"], *digit_words(MB), PHRASES["greeting_default_2"])
    talk_at = len(greeting) / 8000 + 2.0  # greeting + 0.4 s beep + margin
    rec = tmp_path / "heard.wav"
    result = await run_pjsua({"uri": f"sip:vm-deposit@{media.server.endpoint.local_address[0]}:"
                                     f"{media.server.endpoint.local_address[1]};mailbox={MB}",
                              "record": str(rec),
                              "steps": [{"at": talk_at, "play": str(speech)},
                                        {"at": talk_at + len(speech_pcm) / 8000 + 1.5, "hangup": True}]})
    assert result["connected"]
    assert prompt_match(heard(rec), greeting[: 5 * 8000]) >= 0.8   # the default greeting was played
    await wait_for(lambda: media.server.spool.pending() == 1, timeout=30)
    assert metric("secondnum_media_messages_spooled_total") == spooled_before + 1
    events = _events(caplog)
    assert "database_unavailable" in events and "deposit_without_database" in events
    assert "message_spooled" in events and "message_stored" not in events

    database.start()  # same data folder, same port
    store = VoicemailStore()
    await wait_for(lambda: media.server.spool.pending() == 0 and bool(store.list_messages(MB)), timeout=90)
    msgs = store.list_messages(MB)
    assert len(msgs) == 1 and msgs[0].caller == "42073723123" and msgs[0].state == "new"
    stored = np.frombuffer(g711.decode(store.audio(MB, msgs[0].id), "PCMU"), "<i2").astype(float)
    assert msgs[0].duration_ms == len(stored) // 8
    spoken = np.frombuffer(trim_silence(stored.astype("<i2").tobytes()), "<i2").astype(float)[8000:]
    assert abs(len(spoken) + 8000 - len(speech_pcm)) < 4000   # the speech, without the leading wait
    assert prompt_match(speech_pcm, spoken) >= 0.8
    assert msgs[0].rtp["packets_received"] > 100               # the call's RTP statistics came along
    events = _events(caplog)
    assert "database_available_again" in events and "spooled_message_imported" in events
    assert media.server.db_up
