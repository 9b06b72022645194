"""The AS's own re-INVITE refresh answered with a changed session description (RFC 3264 §8, RFC 4028 §10):
the change is passed on to the other leg, once each way, with that leg's timer fields; an unchanged answer
passes nothing on. The two legs are in-memory stand-ins for :class:`appserver.side.Side` (scripted answers);
the code under test is the real :class:`appserver.session_timer.CallTimers` and origin keepers."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, cast

from appserver.call import Call
from appserver.sdp_origin import OriginKeeper
from appserver.session_timer import CallTimers
from appserver.side import Role, Side
from secondnum.sip import Headers, SipRequest, SipResponse
from secondnum.sip.session_timer import LegTimer, Mode

SDP = "application/sdp"


def sdp(user: str, version: int, port: int, address: str = "192.0.2.1") -> bytes:
    return (f"v=0\r\no={user} 1 {version} IN IP4 {address}\r\ns=-\r\nc=IN IP4 {address}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n").encode()


CALLER_OFFER = sdp("caller", 1, 4000)
FAR_ANSWER = sdp("far", 1, 5000)


class FakeDialog:
    def __init__(self) -> None:
        self.terminated = False

    def terminate(self) -> None:
        self.terminated = True


class FakeSide:
    """What CallTimers uses of a Side: origin keeper, in-dialog requests (scripted answers), ACK."""

    def __init__(self, role: Role, answers: list[tuple[int, bytes]]) -> None:
        self.role = role
        self.origin = OriginKeeper()
        self.dialog = FakeDialog()
        self.answers = answers
        self.sent: list[SipRequest] = []
        self.acked: list[SipRequest] = []

    @property
    def alive(self) -> bool:
        return not self.dialog.terminated

    def sdp(self, body: bytes, content_type: str | None) -> bytes:
        return self.origin.rewrite(body) if body and content_type == SDP else body

    async def request(self, method: str, body: bytes = b"", content_type: str | None = None,
                      headers: Any = ()) -> tuple[SipRequest, SipResponse]:
        h = Headers()
        for name, value in headers:
            h.add(name, value)
        if content_type:
            h.set("content-type", content_type)
        req = SipRequest(method, "sip:party@192.0.2.9", h, body)
        self.sent.append(req)
        status, answer = self.answers.pop(0)
        resp = SipResponse(status, None, Headers(), answer)
        if answer:
            resp.headers.set("content-type", SDP)
        return req, resp

    def ack(self, invite: SipRequest, body: bytes = b"", content_type: str | None = None) -> None:
        self.acked.append(invite)


@dataclasses.dataclass
class FakeServer:
    allow: str = "INVITE, ACK, BYE, UPDATE"


class FakeCall:
    """What CallTimers uses of a Call."""

    def __init__(self, a: FakeSide, b: FakeSide) -> None:
        self.a, self.b = a, b
        self.server = FakeServer()
        self.invite = SipRequest("INVITE", "tel:+42027777100", Headers(), CALLER_OFFER)
        self.invite.headers.set("call-id", "c1")
        self.invite.headers.set("content-type", SDP)
        self.ended = asyncio.Event()
        self.relay_lock = asyncio.Lock()
        self.released: list[str] = []

    def peer_of(self, side: FakeSide) -> FakeSide | None:
        return self.b if side is self.a else self.a if side is self.b else None

    def check_peer_gone(self, status: int, peer: FakeSide) -> None:
        if status in (408, 481):
            peer.dialog.terminate()
            self.released.append(f"{peer.role}-gone")
            self.ended.set()


def bridged(caller_answers: list[tuple[int, bytes]], far_answers: list[tuple[int, bytes]]
            ) -> tuple[FakeCall, FakeSide, FakeSide, CallTimers]:
    """A call as answer_caller leaves it: the far side got the caller's INVITE body as is, the caller got the
    far answer through its keeper; the AS refreshes the caller's leg (LOCAL, re-INVITE: no UPDATE), the far
    side refreshes its own (PEER)."""
    a = FakeSide(Role.CALLER, caller_answers)
    b = FakeSide(Role.FORWARD, far_answers)
    a.sdp(FAR_ANSWER, SDP)
    call = FakeCall(a, b)
    timers = CallTimers(cast(Call, call))
    timers.add(cast(Side, a), LegTimer(Mode.LOCAL, 8), peer_allows_update=False, party_sdp=CALLER_OFFER)
    timers.add(cast(Side, b), LegTimer(Mode.PEER, 8), peer_allows_update=True, party_sdp=FAR_ANSWER)
    return call, a, b, timers


async def refresh_caller(timers: CallTimers) -> None:
    await timers._refresh(timers.legs[0])
    timers.cancel()


async def test_unchanged_answer_passes_nothing_on() -> None:
    call, a, b, timers = bridged([(200, sdp("caller", 1, 4000))], [])
    await refresh_caller(timers)
    assert [r.method for r in a.sent] == ["INVITE"] and a.sent[0].body == FAR_ANSWER  # our last SDP, as is
    assert a.acked == a.sent and not b.sent and not call.released


async def test_same_version_with_another_body_is_no_change() -> None:
    """RFC 3264 §8: the version tells; an answer listing a codec subset under the same version (what many UAs
    send) is the session they had, not something to pass on."""
    subset = sdp("caller", 1, 4000).replace(b"a=rtpmap:0 PCMU/8000\r\n", b"")
    call, a, b, timers = bridged([(200, subset)], [])
    await refresh_caller(timers)
    assert len(a.sent) == 1 and not b.sent and not call.released


async def test_changed_answer_goes_to_the_far_side_once() -> None:
    moved = sdp("caller", 2, 4100, "192.0.2.7")  # new version, new address and port
    call, a, b, timers = bridged([(200, moved)], [(200, sdp("far", 2, 5000))])  # far: same media, new o=
    await refresh_caller(timers)
    assert len(a.sent) == 1  # the far side's answer changed nothing the caller has: nothing goes back
    (reinvite,) = b.sent
    assert reinvite.method == "INVITE" and b.acked == [reinvite]
    assert b"c=IN IP4 192.0.2.7" in reinvite.body and b"m=audio 4100 " in reinvite.body
    # The far side's view of the caller keeps the origin it was first given, one version up (RFC 3264 §8).
    assert b"o=caller 1 2 IN IP4 192.0.2.1" in reinvite.body
    assert reinvite.headers.get("session-expires") == "8;refresher=uas"  # the far side refreshes its leg
    assert "timer" in (reinvite.headers.get("supported") or "")
    assert not call.released


async def test_far_answer_that_changes_too_goes_back_once() -> None:
    moved = sdp("caller", 2, 4100)
    far_moved = sdp("far", 2, 5200)
    call, a, b, timers = bridged([(200, moved), (200, moved)], [(200, far_moved)])
    await refresh_caller(timers)
    first, back = a.sent
    assert first.body == FAR_ANSWER
    assert b"m=audio 5200 " in back.body and b"o=far 1 2 " in back.body
    assert back.headers.get("session-expires") == "8;refresher=uac"  # the AS refreshes the caller's leg
    assert a.acked == [first, back] and len(b.sent) == 1  # once each way, no ping-pong
    assert not call.released


async def test_far_side_gone_ends_the_call() -> None:
    call, a, b, timers = bridged([(200, sdp("caller", 2, 4100))], [(481, b"")])
    await refresh_caller(timers)
    assert call.released == ["forward-gone"] and not b.alive and not b.acked and len(a.sent) == 1


async def test_non_sdp_answer_is_not_compared() -> None:
    call, a, b, timers = bridged([(200, b"not a session description")], [])
    await refresh_caller(timers)
    assert len(a.sent) == 1 and not b.sent and not call.released
