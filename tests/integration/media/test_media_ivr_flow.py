"""Voicemail access end to end over SIP/RTP: what the server plays is checked against the expected prompt
audio by cross-correlation; keys are sent as RFC 4733 events; the outgoing call uses REFER/NOTIFY."""

from __future__ import annotations

import asyncio
import datetime as dt

import numpy as np
from media_harness import Uac, best_xcorr

from media.audio import g711, tones
from media.prompts.catalog import PHRASES, count_phrase
from media.service import MediaService
from media.store.voicemail import VoicemailStore
from secondnum.sip import IncomingRequest

MB = "42027777100"


def expected(media: MediaService, *texts: str) -> np.ndarray:
    ulaw = b"".join(media.prompts.cached(t) or b"" for t in texts)
    return np.frombuffer(g711.decode(ulaw, "PCMU"), "<i2").astype(float)


async def heard(uac: Uac, reference: np.ndarray, since: int, timeout: float = 60.0) -> int:
    """Wait until ``reference`` has been received after packet ``since``; returns the packet count."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        got = uac.rtp.pcm(since)
        if len(got) >= len(reference) and best_xcorr(got, reference) >= 0.9:
            return len(uac.rtp.received)
        await asyncio.sleep(0.25)
    raise AssertionError(f"expected prompt not heard (best {best_xcorr(uac.rtp.pcm(since), reference):.2f})")


async def keys(uac: Uac, digits: str) -> None:
    for d in digits:
        await uac.rtp.send_digit(d)
        await asyncio.sleep(0.1)


async def test_access_menu_listen_save_and_refused_then_accepted_refer(media: MediaService, uac: Uac) -> None:
    store = VoicemailStore()
    voice = tones.tone((440.0, 660.0), 1000, 6000)
    store.add_message(MB, "42075553333", g711.encode(voice, "PCMU"), dt.datetime(2026, 11, 25, 9, 30,
                                                                                     tzinfo=dt.UTC))
    refers: list[IncomingRequest] = []

    async def on_refer(inc: IncomingRequest) -> None:
        inc.respond(202)
        refers.append(inc)

    uac.on_refer = on_refer
    resp = await uac.call(media.server.endpoint.local_address, "vm-access", params=";auth=network")
    assert resp.status == 200
    intro = expected(media, PHRASES["you_have"], *count_phrase(1, "new_message", "new_messages"),
                     PHRASES["and"], *count_phrase(0, "saved_message", "saved_messages"))
    mark = await heard(uac, intro, 0)
    # A wrong prompt does not pass the same check.
    wrong = expected(media, PHRASES["you_have"], *count_phrase(2, "new_message", "new_messages"))
    assert best_xcorr(uac.rtp.pcm(0), wrong) < 0.9
    # The message itself follows its envelope.
    msg_audio = np.frombuffer(voice, "<i2").astype(float)
    mark = await heard(uac, msg_audio[:4000], mark)
    mark = await heard(uac, expected(media, PHRASES["after_message"]), mark)
    await keys(uac, "2")  # save
    mark = await heard(uac, expected(media, PHRASES["message_saved"]), mark)
    assert store.counts(MB) == (0, 1)
    mark = await heard(uac, expected(media, PHRASES["main_menu"])[:16000], mark)
    # Outgoing call, refused by the AS (NOTIFY sipfrag 403).
    await keys(uac, "4")
    mark = await heard(uac, expected(media, PHRASES["enter_number"])[:8000], mark)
    await keys(uac, "420273333444#")
    for _ in range(300):
        if refers:
            break
        await asyncio.sleep(0.1)
    assert refers and refers[0].request.headers.get("Refer-To") == "<tel:+420273333444>"
    assert (await uac.notify("SIP/2.0 100 Trying", state="active")).status == 200
    assert (await uac.notify("SIP/2.0 403 Forbidden")).status == 200
    mark = await heard(uac, expected(media, PHRASES["call_not_allowed"]), mark)
    # Again, now accepted: media waits for our BYE.
    await keys(uac, "4")
    await keys(uac, "123456#")
    for _ in range(300):
        if len(refers) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(refers) == 2
    assert (await uac.notify("SIP/2.0 200 OK")).status == 200
    await asyncio.sleep(0.5)
    assert media.server.calls and not uac.bye_received.is_set()
    assert (await uac.bye()).status == 200


async def test_pin_required_without_network_auth_and_lock(media: MediaService, uac: Uac) -> None:
    from hss_adapter.store import create_account

    create_account({"did": MB, "voicemail": {"pin": "2468"}})  # the account's PIN is the only PIN
    store = VoicemailStore()
    await uac.call(media.server.endpoint.local_address, "vm-access")
    mark = await heard(uac, expected(media, PHRASES["enter_pin"]), 0)
    for attempt in range(3):
        await keys(uac, "1111#")
        if attempt < 2:
            mark = await heard(uac, expected(media, PHRASES["pin_wrong"]), mark)
    await heard(uac, expected(media, PHRASES["mailbox_locked"]), mark)
    await asyncio.wait_for(uac.bye_received.wait(), 30)
    assert store.box(MB).locked


async def test_account_voicemail_settings_apply(media: MediaService, uac: Uac) -> None:
    """Limits and PIN policy come from the subscriber data's account (hss_adapter), not only defaults."""
    from hss_adapter.store import create_account

    create_account({"did": MB, "voicemail": {"pin": "1357", "pin_required": True, "max_messages": 1}})
    store = VoicemailStore()
    store.add_message(MB, "42075553333", b"\x7f" * 8000, dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC))
    # Deposit: the account allows one message, so the mailbox is full.
    await uac.call(media.server.endpoint.local_address, "vm-deposit")
    await heard(uac, expected(media, PHRASES["mailbox_full"]), 0)
    await asyncio.wait_for(uac.bye_received.wait(), 30)
    # Access: network-authenticated, but the account requires its PIN; the account's PIN opens it.
    second = Uac()
    await second.start()
    try:
        await second.call(media.server.endpoint.local_address, "vm-access", params=";auth=network")
        mark = await heard(second, expected(media, PHRASES["enter_pin"]), 0)
        await keys(second, "1357#")
        await heard(second, expected(media, PHRASES["you_have"]), mark)
        await second.bye()
    finally:
        await second.close()
