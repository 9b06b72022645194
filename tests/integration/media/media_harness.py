"""Test peer for the media server: a UAC on the project's SIP stack with its own RTP socket.

It plays the AS's role: sends INVITEs, receives what the server plays (decoded to PCM), sends audio, RFC 4733
events and SIP INFO, answers REFER with 202 and sends NOTIFY sipfrags, like the AS does in flow C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY
from testutil import require_binary

from media.audio import g711, wav
from media.rtp import packet as rtp
from media.rtp.dtmf import event_payloads
from media.rtp.session import RtpSession
from media.service import MediaService
from media.settings import MediaSettings
from secondnum.sdp import accept_answer, make_audio_offer, parse_sdp
from secondnum.service import RunContext
from secondnum.sip import Dialog, IncomingRequest, SipEndpoint, SipRequest, SipResponse


async def wait_for(pred: Callable[[], object], timeout: float = 30.0, interval: float = 0.05) -> None:
    """Poll ``pred`` on the running loop until it is true; AssertionError after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


def metric(name: str, **labels: str) -> float:
    """A sample of this process's Prometheus registry (0.0 when the series does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def free_port_block(size: int = 40) -> int:
    """An even base port with ``size`` free UDP ports above it (probe; good enough on loopback)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(32000, 60000, 2)
        socks = []
        try:
            for p in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


def media_settings(prompt_dir: Path, **overrides: object) -> MediaSettings:
    base = free_port_block()
    values: dict[str, object] = {
        "sip_port": 0, "api_port": 0, "rtp_port_min": base, "rtp_port_max": base + 39,
        "prompt_dir": prompt_dir, "digit_timeout": 20.0, "rtp_timeout": 30.0,
    }
    values.update(overrides)
    return MediaSettings(**values)  # type: ignore[arg-type]


async def start_service(settings: MediaSettings, mongo_uri: str, database: str) -> MediaService:
    svc = MediaService(settings, RunContext(mongo_uri, database))
    await svc.start()
    return svc


class RtpPeer(asyncio.DatagramProtocol):
    """The UAC's media: records what arrives (as PCM), sends frames/events on demand."""

    def __init__(self) -> None:
        self.received: list[tuple[float, rtp.RtpPacket, tuple[str, int]]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.session: RtpSession | None = None
        self.law: g711.Law = "PCMU"
        self.busy = False
        """True while send_audio/send_digit own the stream (the background silence pauses)."""
        self._keepalive: asyncio.Task[None] | None = None

    def start_silence(self) -> None:
        """Send silence every 20 ms like a real phone does, whenever nothing else is being sent."""
        if self._keepalive is None:
            self._keepalive = asyncio.get_running_loop().create_task(self._silence_loop())

    def stop_silence(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None

    async def _silence_loop(self) -> None:
        frame = g711.silence(160, self.law)
        while True:
            await asyncio.sleep(0.02)
            if not self.busy and self.session is not None and self.transport is not None:
                self.transport.sendto(self.session.build(frame), self.session.remote)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        with contextlib.suppress(rtp.RtpError):
            self.received.append((time.monotonic(), rtp.decode(data), (str(addr[0]), int(addr[1]))))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def pcm(self, since: int = 0) -> np.ndarray:
        """Audio received so far (from packet ``since``) as float samples; telephone-events skipped."""
        payloads = [p.payload for _, p, _ in self.received[since:] if p.payload_type in (0, 8)]
        data = g711.decode(b"".join(payloads), self.law)
        return np.frombuffer(data, "<i2").astype(np.float64)

    def send_raw(self, data: bytes, dest: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, dest)

    async def send_audio(self, pcm16: bytes, realtime: bool = True) -> None:
        """Send 16-bit PCM as 20 ms G.711 packets (paced in real time by default)."""
        assert self.session is not None and self.transport is not None
        ulaw = g711.encode(pcm16, self.law)
        self.busy = True
        try:
            await self._send_ulaw(ulaw, realtime)
        finally:
            self.busy = False

    async def _send_ulaw(self, ulaw: bytes, realtime: bool) -> None:
        assert self.session is not None and self.transport is not None
        start = time.monotonic()
        for n, i in enumerate(range(0, len(ulaw), 160)):
            self.transport.sendto(self.session.build(ulaw[i:i + 160].ljust(160, ulaw[:1] or b"\xff")),
                                  self.session.remote)
            if realtime:
                delay = start + (n + 1) * 0.02 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

    async def send_digit(self, digit: str, te_pt: int = 101) -> None:
        """An RFC 4733 event: packets 20 ms apart sharing one timestamp, end packet sent three times."""
        assert self.session is not None and self.transport is not None
        s = self.session
        ts = s._ts
        self.busy = True
        try:
            for payload, marker in event_payloads(digit):
                head = rtp.encode_header(te_pt, s._seq, ts, s.ssrc, marker)
                self.transport.sendto(head + payload, s.remote)
                s._seq = (s._seq + 1) & 0xFFFF
                await asyncio.sleep(0.02)
            s._ts = (s._ts + 800) & 0xFFFFFFFF
        finally:
            self.busy = False


class Uac:
    """The AS side of a call to the media server."""

    def __init__(self) -> None:
        self.endpoint = SipEndpoint(self._handle, host="127.0.0.1", port=0, user_agent="test-as")
        self.requests: asyncio.Queue[IncomingRequest] = asyncio.Queue()
        self.on_refer: Callable[[IncomingRequest], Awaitable[None]] | None = None
        self.byes: list[SipRequest] = []
        self.bye_received = asyncio.Event()
        self.rtp = RtpPeer()
        self.dialog: Dialog | None = None
        self.invite: SipRequest | None = None
        self.server: tuple[str, int] = ("127.0.0.1", 0)

    async def start(self) -> None:
        await self.endpoint.start()
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self.rtp, local_addr=("127.0.0.1", 0))

    async def close(self) -> None:
        self.rtp.stop_silence()
        if self.rtp.transport is not None:
            self.rtp.transport.close()
        await self.endpoint.close()

    async def _handle(self, inc: IncomingRequest) -> None:
        method = inc.request.method
        if method == "BYE":
            inc.respond(200)
            self.byes.append(inc.request)
            self.bye_received.set()
        elif method == "REFER" and self.on_refer is not None:
            await self.on_refer(inc)
        elif method != "ACK":
            self.requests.put_nowait(inc)

    def offer(self, fmts: str = "0 8 101") -> bytes:
        sd = make_audio_offer(local_host="127.0.0.1", local_port=self.rtp.port, session_id="42")
        sd.media[0].formats = fmts.split()
        return sd.encode()

    async def call(self, server: tuple[str, int], service: str = "vm-deposit", mailbox: str = "42027777100",
                   *, params: str = "", sdp: bytes | None = b"", headers: list[tuple[str, str]] | None = None,
                   caller: str = "tel:+42075553333") -> SipResponse:
        self.server = server
        body = self.offer() if sdp == b"" else (sdp or b"")
        uri = f"sip:{service}@{server[0]}:{server[1]};mailbox={mailbox}{params}"
        req = self.endpoint.new_request(
            "INVITE", uri, f"<{caller}>", f"<sip:{service}@{server[0]}>",
            headers=[("P-Asserted-Identity", f"<{caller}>"), *(headers or [])], body=body,
            content_type="application/sdp" if body else None)
        self.invite = req
        handle = self.endpoint.request(req, server, "udp")
        resp = await asyncio.wait_for(handle.final_response(), 30)
        if resp.is_success:
            self.dialog = Dialog.from_uac(req, resp, self.endpoint.local_contact())
            self.endpoint.dialogs.add(self.dialog)
            answer_body = b""
            if resp.body and not body:
                # We sent no offer: the 200 carries media's offer; answer it in the ACK (RFC 3264 §5).
                answer_body = self.offer()
            ack = self.dialog.create_ack(req.cseq.seq, body=answer_body,
                                         content_type="application/sdp" if answer_body else None)
            self.endpoint.send_ack(ack, server, "udp")
            if resp.body:
                mine = parse_sdp(answer_body or body)
                neg = accept_answer(mine, parse_sdp(resp.body))
                self.rtp.law = "PCMA" if neg.codec.encoding == "PCMA" else "PCMU"
                self.rtp.session = RtpSession(neg.codec.payload_type, neg.telephone_event_pt,
                                              (neg.remote_host, neg.remote_port))
                self.rtp.start_silence()
        return resp

    async def in_dialog(self, method: str, body: bytes = b"", content_type: str | None = None,
                        headers: list[tuple[str, str]] | None = None) -> SipResponse:
        assert self.dialog is not None
        req = self.dialog.create_request(method, body=body, content_type=content_type, headers=headers or [])
        resp = await asyncio.wait_for(self.endpoint.request(req, self.server, "udp").final_response(), 30)
        if method == "INVITE" and resp.is_success:
            self.endpoint.send_ack(self.dialog.create_ack(req.cseq.seq), self.server, "udp")
        return resp

    async def bye(self) -> SipResponse:
        return await self.in_dialog("BYE")

    async def notify(self, status_line: str, state: str = "terminated") -> SipResponse:
        assert self.dialog is not None
        req = self.dialog.create_refer_notify(status_line, state=state)
        return await asyncio.wait_for(self.endpoint.request(req, self.server, "udp").final_response(), 30)


PJSUA_SCRIPT = Path(__file__).with_name("pjsua_call.py")


def has_beep(uac: Uac) -> bool:
    """The last 200 ms the UAC heard are the 1 kHz record beep (after the greeting), loud enough."""
    pcm = uac.rtp.pcm()
    if len(pcm) < 1600:
        return False
    tail = pcm[-1600:]
    spec = np.abs(np.fft.rfft(tail))
    peak = np.argmax(spec) * 8000 / len(tail)
    return bool(990 < peak < 1010 and np.sqrt(np.mean(tail ** 2)) > 2000)


async def run_pjsua(plan: dict[str, object], timeout: float = 120) -> dict[str, object]:
    pytest.importorskip("pjsua2", reason="pjsua2-python is not installed")
    plan.setdefault("rtp_port", free_port_block(12))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(PJSUA_SCRIPT), json.dumps(plan), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def heard(path: Path) -> np.ndarray:
    return np.frombuffer(wav.read_wav(path.read_bytes()), "<i2").astype(float)


def speech_wav(tmp_path: Path, text: str) -> tuple[Path, np.ndarray]:
    require_binary("espeak-ng")
    cmd = ["espeak-ng", "--stdout", "-v", "en-gb", text]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    pcm = wav.read_wav(raw)
    path = tmp_path / f"speech{abs(hash(text)) % 1000}.wav"
    path.write_bytes(wav.pcm_wav(pcm))
    return path, np.frombuffer(pcm, "<i2").astype(float)


def xcorr_peak(recorded: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """Peak normalised cross-correlation of ``reference`` inside ``recorded`` and its offset."""
    if len(recorded) < len(reference) or not len(reference):
        return 0.0, 0
    ref = reference - reference.mean()
    ref_energy = float(np.dot(ref, ref))
    if ref_energy <= 0:
        return 0.0, 0
    n = len(ref)
    size = 1 << int(np.ceil(np.log2(len(recorded) + n)))
    corr = np.fft.irfft(np.fft.rfft(recorded, size) * np.conj(np.fft.rfft(ref, size)), size)
    corr = corr[: len(recorded) - n + 1]
    csum = np.concatenate(([0.0], np.cumsum(recorded)))
    csum2 = np.concatenate(([0.0], np.cumsum(recorded ** 2)))
    win_sum = csum[n:] - csum[:-n]
    win_energy = csum2[n:] - csum2[:-n] - win_sum ** 2 / n
    ncc = corr / np.sqrt(np.maximum(win_energy, 1e-3) * ref_energy)
    ncc[win_energy < 1e-3 * ref_energy] = 0.0  # silent windows cannot match a voiced piece
    idx = int(np.argmax(ncc))
    return float(ncc[idx]), idx


def best_xcorr(recorded: np.ndarray, reference: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``reference`` inside ``recorded`` (1.0 = identical)."""
    return xcorr_peak(recorded, reference)[0]


def _peaks(recorded: np.ndarray, piece: np.ndarray, count: int) -> list[int]:
    """Offsets of up to ``count`` distinct places where ``piece`` correlates ≥ 0.9 with ``recorded``."""
    found: list[int] = []
    n = len(piece)
    start = 0
    # Scan in 2 s blocks so a piece repeated in several prompts ("Message from", "Message saved") yields
    # one candidate per occurrence.
    while start < len(recorded) - n and len(found) < count:
        block = recorded[start:start + 16000 + n]
        score, idx = xcorr_peak(block, piece)
        if score >= 0.9:
            found.append(start + idx)
        start += 16000
    return found


def _follow(recorded: np.ndarray, pieces: list[np.ndarray | None], start: int, n: int) -> int:
    pos = start
    found = 0
    for piece in pieces:
        if piece is None:
            pos += n
            continue
        lo, hi = max(0, pos - n), min(len(recorded), pos + 3 * n)
        score, idx = xcorr_peak(recorded[lo:hi], piece)
        if score >= 0.9:
            found += 1
            pos = lo + idx + n
        else:
            pos += n
    return found


def prompt_match(recorded: np.ndarray, reference: np.ndarray, piece_ms: int = 100,
                 min_rms: float = 300.0) -> float:
    """Fraction of the reference's voiced 100 ms pieces found, in order, in ``recorded`` with a normalised
    cross-correlation ≥ 0.9 (the best of the paths starting at each place the first piece occurs).

    A receiving UA's jitter buffer may drop or insert a frame (clock drift, a late burst under CPU load),
    which breaks one long correlation without changing what was heard; piecewise matching along a monotone
    path tolerates that and still rejects a different prompt (its pieces do not correlate).
    """
    n = piece_ms * 8
    pieces: list[np.ndarray | None] = []
    for i in range(0, len(reference) - n + 1, n):
        piece = reference[i:i + n]
        pieces.append(piece if np.sqrt(np.mean(piece ** 2)) >= min_rms else None)
    voiced = [p for p in pieces if p is not None]
    if not voiced:
        return 0.0
    first = next(i for i, p in enumerate(pieces) if p is not None)
    best = 0
    for start in _peaks(recorded, voiced[0], 8):
        best = max(best, _follow(recorded, pieces[first:], start, n))
    return best / len(voiced)
