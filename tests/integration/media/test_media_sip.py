"""The media server's SIP interface over real loopback sockets (README "SIP interface")."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest
from media_harness import Uac, best_xcorr, has_beep, metric, wait_for

from media.audio import g711, tones
from media.call import Call
from media.rtp import packet as rtp
from media.service import MediaService
from media.store.voicemail import VoicemailStore
from secondnum.sip.session_timer import Mode


def sip_addr(media: MediaService) -> tuple[str, int]:
    return media.server.endpoint.local_address


@pytest.mark.parametrize(("service", "mailbox", "params", "status"), [
    ("vm-other", "42027777100", "", 404),
    ("vm-deposit", "abc", "", 400),
    ("vm-deposit", "", "", 400),
])
async def test_bad_request_uris(media: MediaService, uac: Uac, service: str, mailbox: str, params: str,
                                status: int) -> None:
    resp = await uac.call(sip_addr(media), service, mailbox, params=params)
    assert resp.status == status


@pytest.mark.parametrize("sdp", [
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n",
    b"not sdp at all",
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 4000 RTP/AVP 96\r\n",
])
async def test_unusable_offer_gets_488(media: MediaService, uac: Uac, sdp: bytes) -> None:
    resp = await uac.call(sip_addr(media), sdp=sdp)
    assert resp.status == 488
    assert "305" in (resp.headers.get("Warning") or "")


async def test_answer_pcma_and_telephone_event(media: MediaService, uac: Uac) -> None:
    body = uac.offer("8 0 101")
    resp = await uac.call(sip_addr(media), sdp=body)
    assert resp.status == 200
    text = resp.body.decode()
    assert "m=audio" in text and "RTP/AVP 8 101" in text and "telephone-event/8000" in text
    await uac.bye()


async def test_untrusted_source_403(mongo_uri: str, prompt_dir, uac: Uac) -> None:  # type: ignore[no-untyped-def]
    import os

    from media_harness import media_settings, start_service

    svc = await start_service(media_settings(prompt_dir, trusted_sources=["10.9.9.9"]), mongo_uri,
                              os.environ["SECONDNUM_TEST_DB"])
    try:
        assert (await uac.call(sip_addr(svc))).status == 403
    finally:
        await svc.stop()


async def test_draining_refuses_with_503(media: MediaService, uac: Uac) -> None:
    media.server.draining = True
    resp = await uac.call(sip_addr(media))
    assert resp.status == 503 and resp.headers.get("Retry-After") == "30"


async def test_deposit_message_stored_after_hangup(media: MediaService, uac: Uac) -> None:
    resp = await uac.call(sip_addr(media), "vm-deposit")
    assert resp.status == 200
    # Greeting ("The person at <number> ...") then the beep: wait for the 1 kHz beep to start.
    await wait_for(lambda: has_beep(uac), timeout=60)
    voice = tones.tone((300.0, 520.0, 910.0), 2500, 6000)
    await uac.rtp.send_audio(voice)
    await uac.bye()
    store = VoicemailStore()
    await wait_for(lambda: len(store.list_messages("42027777100")) == 1, timeout=30)
    msg = store.list_messages("42027777100")[0]
    assert msg.caller == "42075553333" and msg.state == "new"
    assert 1800 <= msg.duration_ms <= 2600  # recording starts when the beep has been sent
    stored = np.frombuffer(g711.decode(store.audio("42027777100", msg.id), "PCMU"), "<i2").astype(float)
    sent = np.frombuffer(voice, "<i2").astype(float)
    assert best_xcorr(sent, stored[800:8800]) > 0.95          # one second of what was stored ...
    other = np.frombuffer(tones.tone((330.0, 600.0), 2500, 6000), "<i2").astype(float)
    assert best_xcorr(other, stored[800:8800]) < 0.5           # ... and a different sound does not match


async def test_deposit_too_short_is_discarded(media: MediaService, uac: Uac) -> None:
    await uac.call(sip_addr(media), "vm-deposit")
    await wait_for(lambda: has_beep(uac), timeout=60)
    await uac.rtp.send_audio(tones.tone((400.0,), 300, 6000))
    await uac.bye()
    await asyncio.sleep(1.0)
    assert VoicemailStore().list_messages("42027777100") == []
    assert metric("secondnum_media_messages_stored_total") >= 0


async def test_deposit_hash_ends_recording_and_server_hangs_up(media: MediaService, uac: Uac) -> None:
    await uac.call(sip_addr(media), "vm-deposit")
    await wait_for(lambda: has_beep(uac), timeout=60)
    await asyncio.sleep(0.6)  # let the 400 ms beep finish: recording starts after it
    await uac.rtp.send_audio(tones.tone((350.0, 440.0), 1500, 6000))
    await uac.rtp.send_digit("#")
    await asyncio.wait_for(uac.bye_received.wait(), 30)  # "goodbye" then BYE from media
    msgs = VoicemailStore().list_messages("42027777100")
    # 1.5 s of tone; leading silence (our send starts after polling for the beep) is kept, the key is not.
    assert len(msgs) == 1 and 1300 <= msgs[0].duration_ms <= 2300


async def test_bad_rtp_is_dropped_and_counted(media: MediaService, uac: Uac) -> None:
    await uac.call(sip_addr(media), "vm-deposit")
    assert uac.rtp.session is not None
    dest = uac.rtp.session.remote
    before = {r: metric("secondnum_media_rtp_dropped_total", reason=r)
              for r in ("truncated", "payload_type", "source", "version")}
    await uac.rtp.send_audio(tones.silence_pcm(60))                 # latch our source
    uac.rtp.send_raw(b"\x80\x00", dest)                              # truncated
    uac.rtp.send_raw(rtp.RtpPacket(18, 1, 0, 5, b"\x00" * 20).encode(), dest)  # G.729: not negotiated
    uac.rtp.send_raw(struct.pack("!BBHII", 0x40, 0, 1, 2, 3), dest)  # version 1
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:   # a stranger
        other.sendto(rtp.RtpPacket(0, 7, 0, 9, b"\xff" * 160).encode(), dest)
        await wait_for(lambda: metric("secondnum_media_rtp_dropped_total", reason="source")
                       > before["source"])
    for reason in ("truncated", "payload_type", "version"):
        assert metric("secondnum_media_rtp_dropped_total", reason=reason) > before[reason]
    assert media.server.calls  # the call is unaffected
    await uac.bye()


async def test_rtp_timeout_ends_call(mongo_uri: str, prompt_dir, uac: Uac) -> None:  # type: ignore[no-untyped-def]
    import os

    from media_harness import media_settings, start_service

    svc = await start_service(media_settings(prompt_dir, rtp_timeout=2.0), mongo_uri,
                              os.environ["SECONDNUM_TEST_DB"])
    try:
        await uac.call(sip_addr(svc), "vm-access", params=";auth=network")
        uac.rtp.stop_silence()  # the caller goes quiet: no RTP at all
        await asyncio.wait_for(uac.bye_received.wait(), 30)
        await wait_for(lambda: not svc.server.calls)
    finally:
        await svc.stop()


async def test_reinvite_hold_and_info_dtmf(media: MediaService, uac: Uac) -> None:
    await uac.call(sip_addr(media), "vm-access", params=";auth=network")
    hold = uac.offer().replace(b"a=sendrecv", b"a=sendonly")
    resp = await uac.in_dialog("INVITE", hold, "application/sdp")
    assert resp.status == 200 and b"a=recvonly" in resp.body
    resp = await uac.in_dialog("INFO", b"Signal=5\r\nDuration=160\r\n", "application/dtmf-relay")
    assert resp.status == 200
    resp = await uac.in_dialog("INFO", b"Signal=X\r\n", "application/dtmf-relay")
    assert resp.status == 400
    resp = await uac.in_dialog("INFO", b"<xml/>", "application/xml")
    assert resp.status == 415
    await uac.bye()


async def test_session_timer_answered(media: MediaService, uac: Uac) -> None:
    resp = await uac.call(sip_addr(media), "vm-access", params=";auth=network",
                          headers=[("Session-Expires", "120"), ("Supported", "timer")])
    assert resp.headers.get("Session-Expires") == "120;refresher=uac"
    assert "timer" in (resp.headers.get("Require") or "")
    await uac.bye()
    short = Uac()
    await short.start()
    try:
        resp = await short.call(sip_addr(media), "vm-access", headers=[("Session-Expires", "30")])
        assert resp.status == 422 and resp.headers.get("Min-SE") == "90"
    finally:
        await short.close()


def _call_of(media: MediaService, uac: Uac) -> Call:
    assert uac.invite is not None
    return media.server.calls[uac.invite.call_id]


def _make_refresh_due(call: Call) -> None:
    """Moves the dialog's timer back by an interval instead of waiting half of it (>= 45 s with min_se 90)."""
    assert call.timer is not None
    call.timer.last -= call.timer.interval
    call._arm_session_timer()


@pytest.mark.parametrize(("allow", "method"), [("INVITE, ACK, BYE, CANCEL, UPDATE", "UPDATE"),
                                               ("INVITE, ACK, BYE, CANCEL", "INVITE")])
async def test_session_timer_refresher_uas_media_refreshes(media: MediaService, uac: Uac, allow: str,
                                                           method: str) -> None:
    """RFC 4028 §9: an explicit refresher=uas is kept, and media refreshes (§10): UPDATE when the AS allows
    it, else a re-INVITE repeating media's SDP; the AS's 2xx restarts media's timer."""
    resp = await uac.call(sip_addr(media), "vm-access", params=";auth=network",
                          headers=[("Session-Expires", "120;refresher=uas"), ("Supported", "timer"),
                                   ("Allow", allow)])
    assert resp.status == 200 and resp.headers.get("Session-Expires") == "120;refresher=uas"
    assert "timer" not in (resp.headers.get("Require") or "")
    call = _call_of(media, uac)
    await wait_for(lambda: call.timer is not None)
    assert call.timer is not None
    before = call.timer.last
    _make_refresh_due(call)
    inc = await asyncio.wait_for(uac.requests.get(), 30)
    refresh = inc.request
    assert refresh.method == method
    assert refresh.headers.get("Session-Expires") == "120;refresher=uac"
    assert "timer" in (refresh.headers.get("Supported") or "")
    if method == "INVITE":
        assert refresh.body == resp.body  # our SDP unchanged (RFC 3264 §8)
    inc.respond(200, headers=[("Session-Expires", "120;refresher=uac"), ("Supported", "timer")],
                body=uac.offer() if method == "INVITE" else b"",
                content_type="application/sdp" if method == "INVITE" else None)
    await wait_for(lambda: call.timer is not None and call.timer.last > before)
    assert call.timer is not None and call.timer.mode is Mode.LOCAL
    assert not uac.byes
    assert (await uac.bye()).status == 200


async def test_session_timer_kept_by_refresh_without_session_expires(media: MediaService, uac: Uac) -> None:
    """RFC 4028 §9: a refresh without Session-Expires from a peer listing timer keeps the dialog's timer
    (same interval, refresher=uac); one from a peer without timer support turns it off."""
    resp = await uac.call(sip_addr(media), "vm-access", params=";auth=network",
                          headers=[("Session-Expires", "150"), ("Supported", "timer")])
    assert resp.headers.get("Session-Expires") == "150;refresher=uac"
    call = _call_of(media, uac)
    await wait_for(lambda: call.timer is not None)
    for method in ("UPDATE", "INVITE"):
        again = await uac.in_dialog(method, headers=[("Supported", "timer")])
        assert again.status == 200
        assert again.headers.get("Session-Expires") == "150;refresher=uac"
        assert "timer" in (again.headers.get("Require") or "")
        assert call.timer is not None and call.timer.mode is Mode.PEER and call.timer.interval == 150
    bare = await uac.in_dialog("UPDATE")
    assert bare.status == 200 and "session-expires" not in bare.headers
    assert call.timer is None
    assert (await uac.bye()).status == 200


async def test_session_timer_min_se_setting(mongo_uri: str, prompt_dir, uac: Uac) -> None:  # type: ignore[no-untyped-def]
    """[media] min_se decides the 422 (RFC 4028 §9), on the INVITE and on a refresh."""
    import os

    from media_harness import media_settings, start_service

    svc = await start_service(media_settings(prompt_dir, min_se=300), mongo_uri,
                              os.environ["SECONDNUM_TEST_DB"])
    try:
        resp = await uac.call(sip_addr(svc), "vm-access", params=";auth=network",
                              headers=[("Session-Expires", "200"), ("Supported", "timer")])
        assert resp.status == 422 and resp.headers.get("Min-SE") == "300"
        resp = await uac.call(sip_addr(svc), "vm-access", params=";auth=network",
                              headers=[("Session-Expires", "300"), ("Supported", "timer")])
        assert resp.status == 200 and resp.headers.get("Session-Expires") == "300;refresher=uac"
        small = await uac.in_dialog("UPDATE", headers=[("Session-Expires", "120"), ("Supported", "timer")])
        assert small.status == 422 and small.headers.get("Min-SE") == "300"
        assert (await uac.bye()).status == 200
    finally:
        await svc.stop()


async def test_invite_without_sdp_offer_in_200(media: MediaService, uac: Uac) -> None:
    resp = await uac.call(sip_addr(media), "vm-access", params=";auth=network", sdp=None)
    assert resp.status == 200 and b"m=audio" in resp.body
    await wait_for(lambda: len(uac.rtp.received) > 10)  # media starts sending once the ACK answered
    await uac.bye()
