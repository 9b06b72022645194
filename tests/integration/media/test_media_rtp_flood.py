"""RTP flood against the media server during a real call (loopback sockets, the service in this process).

The caller (the test UAC, SDP address 127.0.0.1) deposits a voicemail and ends it with an RFC 4733 ``#``
while 127.0.0.2 attacks: first it sends valid-looking RTP before the caller does (it would latch the call:
"RTP bleed"), then it floods junk and valid-looking RTP at the call's RTP and RTCP ports and at unused ports
of the range, from a separate process. The call must behave as if nothing happened (greeting heard, message
stored with the caller's audio, ``#`` honoured), the stranger's packets are counted as dropped for their
source, and the engine's clock keeps running (tick lateness printed: a measurement, not asserted).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
from media_harness import Uac, best_xcorr, has_beep, metric, wait_for
from prometheus_client import REGISTRY

from media.audio import g711, tones
from media.rtp import packet as rtp
from media.service import MediaService
from media.store.voicemail import VoicemailStore

FLOODER = Path(__file__).with_name("rtp_flood_peer.py")
STRANGER = "127.0.0.2"
FLOOD_RATE = int(os.environ.get("SECONDNUM_RTP_FLOOD_RATE", "20000"))
"""Datagrams/s in total over 8 ports: at 20,000/s, 50 per 20 ms at the call's RTP port, twice its inbox."""
FLOOD_SECONDS = 120.0  # an upper bound: the test stops it (SIGTERM) when the call has ended


def _rtcp_dropped() -> float:
    """All ``rtcp_*`` reasons of the dropped counter (junk at the RTCP port fails decoding in many ways)."""
    return sum(s.value for m in REGISTRY.collect() if m.name == "secondnum_media_rtp_dropped"
               for s in m.samples
               if s.name.endswith("_total") and s.labels.get("reason", "").startswith("rtcp_"))


def _lateness() -> tuple[float, float, float]:
    """(ticks, total lateness seconds, ticks later than 5 ms) from the engine's histogram."""
    count = REGISTRY.get_sample_value("secondnum_media_rtp_tick_lateness_seconds_count") or 0.0
    total = REGISTRY.get_sample_value("secondnum_media_rtp_tick_lateness_seconds_sum") or 0.0
    within = REGISTRY.get_sample_value("secondnum_media_rtp_tick_lateness_seconds_bucket", {"le": "0.005"})
    return count, total, count - (within or 0.0)


async def test_call_survives_rtp_bleed_and_flood(media: MediaService, uac: Uac) -> None:
    resp = await uac.call(media.server.endpoint.local_address, "vm-deposit")
    assert resp.status == 200
    uac.rtp.stop_silence()  # the stranger gets to send first
    assert uac.rtp.session is not None
    dest = uac.rtp.session.remote
    call = next(iter(media.server.calls.values()))
    session = call.stream.session
    settings = media.settings
    unused = [p for p in range(settings.rtp_port_min, settings.rtp_port_max + 1)
              if p not in (dest[1], dest[1] + 1)][:6]
    before = {r: metric("secondnum_media_rtp_dropped_total", reason=r)
              for r in ("source", "overflow")}
    rtcp_before = _rtcp_dropped()
    # 1. RTP bleed: valid RTP from a stranger before the caller's first packet latches the stream to it.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as early:
        early.bind((STRANGER, 0))
        for seq in range(5):
            early.sendto(rtp.RtpPacket(0, seq, seq * 160, 0xBAD, b"\x7f" * 160).encode(), dest)
        await wait_for(lambda: session.latched is not None, timeout=10)
    assert session.latched is not None and session.latched[0] == STRANGER
    # Baseline: the clock's lateness and this process's CPU for 2 s with the call up, no flood yet.
    base0, bcpu0, bwall0 = _lateness(), time.process_time(), time.monotonic()
    await asyncio.sleep(2.0)
    base1, bcpu1, bwall1 = _lateness(), time.process_time(), time.monotonic()
    # 2. The flood, then the caller's media starts: the stream must move to the caller's address.
    lat0, cpu0, wall0 = _lateness(), time.process_time(), time.monotonic()
    flood = await asyncio.create_subprocess_exec(
        sys.executable, str(FLOODER), STRANGER, str(FLOOD_SECONDS), str(FLOOD_RATE), str(dest[1]),
        str(dest[1] + 1), *map(str, unused), stdout=asyncio.subprocess.PIPE)
    try:
        await asyncio.sleep(0.5)
        uac.rtp.start_silence()
        await wait_for(lambda: session.latched == ("127.0.0.1", uac.rtp.port), timeout=10)
        await wait_for(lambda: has_beep(uac), timeout=60)  # greeting and beep reach the caller
        await asyncio.sleep(0.6)  # the beep ends; recording starts
        voice = tones.tone((300.0, 520.0, 910.0), 2000, 6000)
        await uac.rtp.send_audio(voice)
        await uac.rtp.send_digit("#")
        await asyncio.wait_for(uac.bye_received.wait(), 60)  # "#" ends the deposit, media hangs up
        flood_running = flood.returncode is None
        flood.terminate()
        out, _ = await asyncio.wait_for(flood.communicate(), 30)
    finally:
        if flood.returncode is None:
            flood.kill()
            await flood.wait()
    lat1, cpu1, wall1 = _lateness(), time.process_time(), time.monotonic()
    sent = json.loads(out)
    dropped = {r: metric("secondnum_media_rtp_dropped_total", reason=r) - before[r] for r in before}
    dropped["rtcp_*"] = _rtcp_dropped() - rtcp_before
    ticks = lat1[0] - lat0[0]
    bticks = base1[0] - base0[0]
    print(f"\nbaseline (no flood): {bticks:.0f} ticks, mean lateness "
          f"{(base1[1] - base0[1]) / max(bticks, 1) * 1000:.2f} ms, {base1[2] - base0[2]:.0f} ticks > 5 ms; "
          f"test process CPU {(bcpu1 - bcpu0) / (bwall1 - bwall0) * 100:.0f} % of a core")
    print(f"flood {sent['sent']} datagrams in {sent['seconds']} s ({sent['sent'] / sent['seconds']:.0f}/s) "
          f"over {2 + len(unused)} ports; dropped {dropped}; media clock: {ticks:.0f} ticks, mean lateness "
          f"{(lat1[1] - lat0[1]) / max(ticks, 1) * 1000:.2f} ms, {lat1[2] - lat0[2]:.0f} ticks > 5 ms; "
          f"test process CPU {(cpu1 - cpu0) / (wall1 - wall0) * 100:.0f} % of a core over "
          f"{wall1 - wall0:.1f} s")
    assert flood_running, "the flood ended before the call"
    msgs = VoicemailStore().list_messages("42027777100")
    assert len(msgs) == 1, "the deposit was not stored"
    assert 1500 <= msgs[0].duration_ms <= 2900, msgs[0].duration_ms
    stored = np.frombuffer(g711.decode(VoicemailStore().audio("42027777100", msgs[0].id), "PCMU"),
                           "<i2").astype(float)
    sent_pcm = np.frombuffer(voice, "<i2").astype(float)
    assert best_xcorr(sent_pcm, stored[800:8800]) > 0.9  # the caller's audio, not the stranger's
    # About half the flood is valid-looking RTP, half junk; a third of it aimed at the call's RTP port.
    assert dropped["source"] > sent["sent"] / (2 + len(unused)) / 2
    assert dropped["rtcp_*"] > 0
    assert dropped["overflow"] == 0
    assert media.server.endpoint.local_address  # the server is still up
