"""Our SIP endpoint against real SIPp over UDP and TCP on 127.0.0.1 (RFC 3261 on the wire).

SIPp as UAC against a small UAS on our endpoint, and our UAC against SIPp as UAS: basic call, re-INVITE,
CANCEL, and retransmissions (a silent UAS, a dropped 200, a dropped ACK).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from testutil import require_binary

from secondnum.net import free_port
from secondnum.sip import Dialog, IncomingRequest, SipEndpoint, SipRequest, TimerConfig
from secondnum.sip import metrics as sip_metrics

pytestmark = pytest.mark.sipp

SCENARIOS = Path(__file__).parent / "scenarios"
SDP = b"v=0\r\no=as 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8\r\n"
SIPP_TRANSPORT = {"udp": "u1", "tcp": "t1"}




async def run_sipp(tmp: Path, scenario: str, *, port: int, transport: str, target: str | None = None,
                   calls: int = 1, extra: tuple[str, ...] = (), timeout: int = 60) -> tuple[int, str]:
    """Run SIPp in the foreground; returns (exit code, stdout+stderr+error log)."""
    sipp = require_binary("sipp")
    err_file = tmp / f"{scenario}.{transport}.errors.log"
    args = [sipp, "-sf", str(SCENARIOS / f"{scenario}.xml"), "-m", str(calls), "-i", "127.0.0.1",
            "-p", str(port), "-t", SIPP_TRANSPORT[transport], "-trace_err", "-error_file", str(err_file),
            "-timeout", f"{timeout}s", "-timeout_error", "-nostdin", "-nd", *extra]
    if target:
        args.append(target)
    proc = await asyncio.create_subprocess_exec(*args, cwd=tmp, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout + 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    errors = err_file.read_text(errors="replace") if err_file.exists() else ""
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")[-3000:] + "\n--- errors ---\n" + errors[-5000:]


class SmallUas:
    """A UAS on our endpoint: ``answer@`` answers (and accepts re-INVITEs), ``ring@`` rings until CANCEL."""

    def __init__(self) -> None:
        self.ep = SipEndpoint(self.handle, port=0, timers=TimerConfig(t1=0.5))
        self.log: list[str] = []
        self.acked = 0
        self.cancelled = 0

    async def handle(self, inc: IncomingRequest) -> None:
        req = inc.request
        self.log.append(req.method)
        if req.method == "INVITE" and inc.dialog is None:
            inc.respond(180)
            if req.uri.user == "ring":
                await inc.cancelled.wait()
                self.cancelled += 1
                return
            dialog = Dialog.from_uas(req, inc.to_tag, self.ep.local_contact(transport=inc.transport))
            self.ep.dialogs.add(dialog)
            inc.respond(200, body=SDP, content_type="application/sdp")
            dialog.confirm()
            await inc.wait_ack()
            self.acked += 1
        elif req.method == "INVITE":
            inc.respond(200, body=SDP, content_type="application/sdp")
            await inc.wait_ack()
            self.acked += 1
        elif req.method == "BYE":
            inc.respond(200)
            if inc.dialog is not None:
                self.ep.dialogs.remove(inc.dialog)
        elif req.method != "ACK":
            inc.respond(200)


@pytest.fixture
async def uas() -> object:
    server = SmallUas()
    await server.ep.start()
    yield server
    await server.ep.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipp_uac_call_with_reinvite(uas: SmallUas, tmp_path: Path, transport: str) -> None:
    rc, out = await run_sipp(tmp_path, "uac_reinvite", port=free_port(), transport=transport,
                             target=f"127.0.0.1:{uas.ep.port}", calls=5, extra=("-r", "5"))
    assert rc == 0, out
    assert uas.acked == 10  # 5 initial INVITEs + 5 re-INVITEs, each ACKed
    assert uas.log.count("BYE") == 5 and len(uas.ep.dialogs) == 0


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipp_uac_cancel(uas: SmallUas, tmp_path: Path, transport: str) -> None:
    rc, out = await run_sipp(tmp_path, "uac_cancel", port=free_port(), transport=transport,
                             target=f"127.0.0.1:{uas.ep.port}", calls=3)
    assert rc == 0, out
    assert uas.cancelled == 3


async def test_sipp_uac_lost_200_is_retransmitted_by_our_uas(uas: SmallUas, tmp_path: Path) -> None:
    before = sip_metrics.RETRANSMISSIONS.labels("response")._value.get()
    rc, out = await run_sipp(tmp_path, "uac_late_ack", port=free_port(), transport="udp",
                             target=f"127.0.0.1:{uas.ep.port}", calls=2)
    assert rc == 0, out
    assert uas.acked == 2
    assert sip_metrics.RETRANSMISSIONS.labels("response")._value.get() > before


async def test_sipp_uac_random_loss(uas: SmallUas, tmp_path: Path) -> None:
    """``-lost 10``: SIPp drops 10 % of what it sends and receives; both sides' retransmissions recover."""
    rc, out = await run_sipp(tmp_path, "uac_reinvite", port=free_port(), transport="udp",
                             target=f"127.0.0.1:{uas.ep.port}", calls=10, extra=("-lost", "10", "-r", "10"),
                             timeout=120)
    assert rc == 0, out


# --- our UAC against SIPp as UAS -------------------------------------------------------------------------

async def wait_listening(port: int, transport: str, proc_timeout: float = 10.0) -> None:
    """SIPp needs a moment to bind; for TCP poll until it accepts, for UDP give it a short head start."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + proc_timeout
    if transport == "udp":
        await asyncio.sleep(0.5)
        return
    while loop.time() < deadline:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)


@pytest.fixture
async def uac() -> object:
    async def handler(inc: IncomingRequest) -> None:
        if inc.method != "ACK":
            inc.respond(200)

    ep = SipEndpoint(handler, port=0, timers=TimerConfig(t1=0.5))
    await ep.start()
    yield ep
    await ep.close()


def invite(ep: SipEndpoint, port: int, transport: str) -> SipRequest:
    return ep.new_request("INVITE", f"sip:uas@127.0.0.1:{port}", "<sip:uac@127.0.0.1>",
                          f"<sip:uas@127.0.0.1:{port}>", body=SDP, content_type="application/sdp",
                          transport=transport)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_our_uac_call_with_reinvite_against_sipp_uas(uac: SipEndpoint, tmp_path: Path,
                                                           transport: str) -> None:
    port = free_port()
    sipp = asyncio.create_task(run_sipp(tmp_path, "uas_reinvite", port=port, transport=transport))
    await wait_listening(port, transport)
    req = invite(uac, port, transport)
    handle = uac.request(req, ("127.0.0.1", port), transport)
    resp = await handle.final_response()
    assert resp.status == 200 and [p.status for p in handle.provisional] == [180]
    dialog = Dialog.from_uac(req, resp, uac.local_contact(transport=transport))
    uac.send_ack(dialog.create_ack(req.cseq.seq), *dialog.next_hop(transport))
    reinvite = dialog.create_request("INVITE", body=SDP, content_type="application/sdp")
    resp2 = await uac.request(reinvite, *dialog.next_hop(transport)).final_response()
    assert resp2.status == 200
    dialog.on_response(reinvite, resp2)
    uac.send_ack(dialog.create_ack(reinvite.cseq.seq), *dialog.next_hop(transport))
    bye = dialog.create_request("BYE")
    assert (await uac.request(bye, *dialog.next_hop(transport)).final_response()).status == 200
    rc, out = await sipp
    assert rc == 0, out


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_our_uac_cancel_against_sipp_uas(uac: SipEndpoint, tmp_path: Path, transport: str) -> None:
    port = free_port()
    sipp = asyncio.create_task(run_sipp(tmp_path, "uas_cancel", port=port, transport=transport))
    await wait_listening(port, transport)
    handle = uac.request(invite(uac, port, transport), ("127.0.0.1", port), transport)
    uac.cancel(handle)  # before any provisional: deferred until the 180 arrives (§9.1)
    resp = await handle.final_response()
    assert resp.status == 487
    rc, out = await sipp
    assert rc == 0, out


async def test_our_uac_retransmits_invite_to_a_silent_uas(uac: SipEndpoint, tmp_path: Path) -> None:
    port = free_port()
    sent_before = sip_metrics.RETRANSMISSIONS.labels("request")._value.get()
    sipp = asyncio.create_task(run_sipp(tmp_path, "uas_slow", port=port, transport="udp"))
    await wait_listening(port, "udp")
    req = invite(uac, port, "udp")
    resp = await uac.request(req, ("127.0.0.1", port), "udp").final_response()
    assert resp.status == 200
    dialog = Dialog.from_uac(req, resp, uac.local_contact())
    uac.send_ack(dialog.create_ack(req.cseq.seq), *dialog.next_hop())
    bye = dialog.create_request("BYE")
    assert (await uac.request(bye, *dialog.next_hop()).final_response()).status == 200
    rc, out = await sipp
    assert rc == 0, out
    assert sip_metrics.RETRANSMISSIONS.labels("request")._value.get() >= sent_before + 1  # Timer A fired
