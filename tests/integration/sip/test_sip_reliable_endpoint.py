"""RFC 3262 through two real endpoints on 127.0.0.1 (UDP, fast timers): our UAS sends a reliable 183 with
:class:`ReliableResponder`, our UAC classifies it with :class:`ReliableReceiver` and PRACKs it in the early
dialog; retransmissions stop at the PRACK, the 2xx waits for it, and a missing PRACK times out (§3)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from secondnum.sip import (
    Dialog,
    DialogState,
    IncomingRequest,
    SipEndpoint,
    SipRequest,
    SipResponse,
    TimerConfig,
)
from secondnum.sip.provisional import ReliableResponder
from secondnum.sip.reliable import PrackMatch, RAck, ReliableReceiver, Verdict

SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n"
T1 = 0.05
FAST = TimerConfig(t1=T1, t2=0.4, t4=0.5)


class ReliableUas:
    """Answers an INVITE with a reliable 183 (SDP), then 200 once PRACKed; 500 when no PRACK comes."""

    def __init__(self) -> None:
        self.ep = SipEndpoint(self.handle, port=0, timers=FAST)
        self.responder: ReliableResponder | None = None
        self.prack_results: list[PrackMatch] = []
        self.timeouts: list[int] = []
        self.answered = asyncio.Event()

    async def handle(self, inc: IncomingRequest) -> None:
        req = inc.request
        if req.method == "INVITE" and inc.dialog is None:
            d = Dialog.from_uas(req, inc.to_tag, self.ep.local_contact(), DialogState.EARLY)
            self.ep.dialogs.add(d)

            def timed_out(resp: SipResponse) -> None:
                self.timeouts.append(resp.status)
                inc.respond(500, headers=[("Reason", 'SIP;cause=504;text="No PRACK"')])

            self.responder = ReliableResponder(inc, T1, timed_out)
            self.responder.send(inc.create_response(183, body=SDP, content_type="application/sdp"))
            assert not self.responder.may_send_2xx()
            if await self.responder.settled(64 * T1 + 1) and not inc.final_sent:
                inc.respond(200, body=SDP, content_type="application/sdp")
                d.confirm()
                self.answered.set()
        elif req.method == "PRACK" and self.responder is not None:
            match, _ = self.responder.match(inc)
            self.prack_results.append(match)
            if match is PrackMatch.ACKED:
                inc.respond(200)
        elif req.method not in ("ACK",):
            inc.respond(200)


@pytest.fixture
async def uas() -> AsyncIterator[ReliableUas]:
    u = ReliableUas()
    await u.ep.start()
    yield u
    await u.ep.close()


@pytest.fixture
async def uac() -> AsyncIterator[SipEndpoint]:
    async def handle(inc: IncomingRequest) -> None:
        if inc.method != "ACK":
            inc.respond(200)

    ep = SipEndpoint(handle, port=0, timers=FAST)
    await ep.start()
    yield ep
    await ep.close()


def _invite(uac: SipEndpoint, uas: ReliableUas) -> SipRequest:
    target = f"sip:bob@127.0.0.1:{uas.ep.port}"
    return uac.new_request("INVITE", target, "<sip:alice@127.0.0.1>", f"<{target}>",
                           headers=[("Supported", "100rel")], body=SDP, content_type="application/sdp")


async def test_reliable_183_retransmitted_until_prack_then_200(uas: ReliableUas, uac: SipEndpoint) -> None:
    handle = uac.request(_invite(uac, uas))
    receiver = ReliableReceiver(1)
    verdicts: list[Verdict] = []
    first: SipResponse | None = None
    first_rack: RAck | None = None
    async for prov in handle.provisionals():
        if prov.status != 183:
            continue
        verdict, rack = receiver.receive(prov)
        verdicts.append(verdict)
        if verdict is Verdict.NEW:
            first, first_rack = prov, rack
        elif first is not None and len(verdicts) >= 3:
            break  # two retransmissions seen (T1, 2T1): now PRACK
    assert first is not None and first_rack is not None
    assert verdicts[0] is Verdict.NEW and set(verdicts[1:]) == {Verdict.IGNORE}
    assert not uas.answered.is_set()  # the 2xx waits for the PRACK of a 1xx with SDP (§3)

    early = Dialog.from_uac(handle.request, first, uac.local_contact())
    uac.dialogs.add(early)
    rseq = int(first.headers.get("rseq") or 0)
    assert str(first_rack) == f"{rseq} 1 INVITE"
    prack = early.create_request("PRACK", headers=[("RAck", str(first_rack))])
    prack_resp = await uac.request(prack, *early.next_hop()).final_response()
    assert prack_resp.status == 200
    final = await asyncio.wait_for(handle.final_response(), 10)
    assert final.status == 200
    early.on_response(handle.request, final)
    uac.send_ack(early.create_ack(1), *early.next_hop())
    assert uas.prack_results == [PrackMatch.ACKED]

    # A second PRACK for the same RSeq matches nothing outstanding any more: 481.
    again = early.create_request("PRACK", headers=[("RAck", f"{rseq} 1 INVITE")])
    assert (await uac.request(again, *early.next_hop()).final_response()).status == 481
    # Retransmissions stopped: no 183 after the PRACK.
    count = sum(1 for p in handle.provisional if p.status == 183)
    await asyncio.sleep(8 * T1)
    assert sum(1 for p in handle.provisional if p.status == 183) == count


async def test_missing_prack_times_out_after_64_t1(uas: ReliableUas, uac: SipEndpoint) -> None:
    handle = uac.request(_invite(uac, uas))
    final = await asyncio.wait_for(handle.final_response(), 64 * T1 + 10)
    assert final.status == 500
    assert uas.timeouts == [183]
    copies = [p for p in handle.provisional if p.status == 183]
    # Sent at 0, then T1, 3T1, 7T1, 15T1, 31T1, 63T1, then the 64*T1 give-up: at most 7 copies (a late
    # timer under load may merge none; it cannot add any).
    assert 2 <= len(copies) <= 7
    assert {p.headers.get("rseq") for p in copies} == {copies[0].headers.get("rseq")}


async def test_prack_with_wrong_rack_gets_481(uas: ReliableUas, uac: SipEndpoint) -> None:
    handle = uac.request(_invite(uac, uas))
    first = None
    async for prov in handle.provisionals():
        if prov.status == 183:
            first = prov
            break
    assert first is not None
    early = Dialog.from_uac(handle.request, first, uac.local_contact())
    uac.dialogs.add(early)
    rseq = int(first.headers.get("rseq") or 0)
    for rack in (f"{rseq + 1} 1 INVITE", f"{rseq} 2 INVITE"):
        bad = early.create_request("PRACK", headers=[("RAck", rack)])
        assert (await uac.request(bad, *early.next_hop()).final_response()).status == 481
    broken = early.create_request("PRACK", headers=[("RAck", "x y z")])
    assert (await uac.request(broken, *early.next_hop()).final_response()).status == 400
    good = early.create_request("PRACK", headers=[("RAck", f"{rseq} 1 INVITE")])
    assert (await uac.request(good, *early.next_hop()).final_response()).status == 200
    assert (await asyncio.wait_for(handle.final_response(), 10)).status == 200
