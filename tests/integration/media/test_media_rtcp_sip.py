"""RTCP in a real call (SIP + RTP + RTCP over loopback): reports go to the offer's ``a=rtcp:`` address
(RFC 3605), the caller's report about our stream ends up in the message's stored RTP statistics."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
from media_harness import Uac, media_settings, start_service, wait_for

from media.audio import tones
from media.rtp import rtcp
from media.store.voicemail import VoicemailStore
from secondnum.sdp import make_audio_offer


class RtcpPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.packets: list[tuple[list[rtcp.RtcpPacket], tuple[str, int]]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.packets.append((rtcp.decode(data), (str(addr[0]), int(addr[1]))))


def _beeping(uac: Uac) -> bool:
    pcm = uac.rtp.pcm()
    if len(pcm) < 1600:
        return False
    spec = np.abs(np.fft.rfft(pcm[-1600:]))
    return bool(990 < np.argmax(spec) * 8000 / 1600 < 1010 and np.sqrt(np.mean(pcm[-1600:] ** 2)) > 2000)


async def test_reports_to_a_rtcp_address_and_peer_view_stored(mongo_uri: str, prompt_dir: Path,
                                                              uac: Uac) -> None:
    svc = await start_service(media_settings(prompt_dir, rtcp_interval=0.3), mongo_uri,
                              os.environ["SECONDNUM_TEST_DB"])
    peer = RtcpPeer()
    await asyncio.get_running_loop().create_datagram_endpoint(lambda: peer, local_addr=("127.0.0.1", 0))
    assert peer.transport is not None
    try:
        rtcp_port = int(peer.transport.get_extra_info("sockname")[1])
        offer = make_audio_offer(local_host="127.0.0.1", local_port=uac.rtp.port, session_id="42")
        offer.media[0].attributes.insert(0, ("rtcp", f"{rtcp_port} IN IP4 127.0.0.1"))
        resp = await uac.call(svc.server.endpoint.local_address, "vm-deposit", sdp=offer.encode())
        assert resp.status == 200 and b"a=rtcp" not in resp.body
        assert uac.rtp.session is not None
        media_rtcp = ("127.0.0.1", uac.rtp.session.remote[1] + 1)
        await wait_for(lambda: any(isinstance(p[0], rtcp.SenderReport) for p, _ in peer.packets), 60)
        ours, source = next((p, s) for p, s in peer.packets if isinstance(p[0], rtcp.SenderReport))
        sr = ours[0]
        assert isinstance(sr, rtcp.SenderReport)
        assert source == media_rtcp                               # sent from the RTP port + 1
        # The caller's RR about media's stream, answered at once (DLSR 0).
        block = rtcp.ReportBlock(sr.ssrc, 0, 5, 1000, 16, (sr.ntp_timestamp >> 16) & 0xFFFFFFFF, 0)
        peer.transport.sendto(rtcp.encode(rtcp.ReceiverReport(0x1234, (block,))), media_rtcp)
        await wait_for(lambda: _beeping(uac), 60)
        await uac.rtp.send_audio(tones.tone((300.0, 520.0, 910.0), 2000, 6000))
        await uac.bye()
        store = VoicemailStore()
        await wait_for(lambda: len(store.list_messages("42027777100")) == 1, timeout=30)
        stats = store.list_messages("42027777100")[0].rtp
        assert stats["rtcp_received"] == 1 and stats["rtcp_sent"] >= 1 and stats["rtcp_dropped"] == 0
        assert stats["peer_cumulative_lost"] == 5 and stats["peer_jitter_ms"] == 2.0
        assert stats["rtt_ms"] is not None and stats["rtt_ms"] >= 0
        assert stats["packets_received"] > 0                      # the RTP part is still there
        await wait_for(lambda: isinstance(peer.packets[-1][0][-1], rtcp.Bye), timeout=30)  # call released
    finally:
        peer.transport.close()
        await svc.stop()
