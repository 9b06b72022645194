"""The end of a call closes charging at once (RFC 4006 §5.6), not after the BYE to a vanished party fails.

One party of a bridged call vanishes (its SIPp exits after the ACK; a silent UDP socket then holds its
address, so the AS's BYE is neither answered nor refused), the other hangs up. The AS answers that BYE, sends
its own BYE to the vanished party and, while that BYE is still being retransmitted (T1 = 2 s: Timer F would
fire after 128 s), the OCS must already have the Ro session closed with the seconds talked and the
reservation released, and the CDR must be written. Only then does the test let the silent party answer the
BYE, and the call leaves the AS. Order and state are checked, never a duration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import pytest
from as_helpers import cdrs, explain, start_caller
from as_sipp import Sipp
from as_stack import CCR_I, CCR_T, DID, Stack

from appserver.call import Call
from appserver.side import Side
from charging.ocs import models as ocs_models
from secondnum.sip import SipRequest, parse_message

pytestmark = [pytest.mark.sipp, pytest.mark.slow]


class SilentParty(asyncio.DatagramProtocol):
    """A vanished UA's address: takes every datagram, answers nothing until told to answer the BYE."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.byes: list[tuple[SipRequest, tuple[str, int]]] = []
        self.bye_seen = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = parse_message(data)
        if isinstance(msg, SipRequest) and msg.method == "BYE":
            self.byes.append((msg, addr))
            self.bye_seen.set()

    def answer_bye(self) -> None:
        """200 OK to the BYE (every retransmission shares its branch, so one answer ends the transaction)."""
        assert self.transport is not None and self.byes
        bye, addr = self.byes[-1]
        self.transport.sendto(bye.create_response(200).encode(), addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def silent_party(port: int) -> SilentParty:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_datagram_endpoint(SilentParty, local_addr=("127.0.0.1", port))
    return proto


async def until(check: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``check()`` every 50 ms until it is truthy; fail with ``what`` on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            pytest.fail(what)
        await asyncio.sleep(0.05)


def rated(session_id: str) -> ocs_models.RatedRecord | None:
    return ocs_models.RatedRecord.objects(session_id=session_id).first()  # type: ignore[no-any-return]


@pytest.mark.as_settings(sip_t1=2.0)
@pytest.mark.parametrize("gone", ["mobile", "caller"])
async def test_ccr_t_goes_out_while_the_bye_to_a_vanished_party_is_pending(stack: Stack, gone: str) -> None:
    await stack.provision()
    if gone == "mobile":
        vanishing = await Sipp(stack.workdir, "target", "target_answer_gone.xml", stack.scscf_port).start()
        hanging_up = await start_caller(stack, "caller_answered.xml", pause_ms=4000)
        end_reason = "bye-caller"
    else:
        hanging_up = await Sipp(stack.workdir, "target", "target_answer_bye.xml", stack.scscf_port,
                                pause_ms=4000).start()
        vanishing = await start_caller(stack, "caller_answered_gone.xml")
        end_reason = "bye-forward"
    await until(lambda: any(c.b is not None and c.answered_at for c in stack.server.calls), 60,
                "the call was not answered\n" + explain(vanishing, hanging_up))
    (call,) = stack.server.calls
    assert isinstance(call, Call) and call.a is not None and call.b is not None
    vanished: Side = call.b if gone == "mobile" else call.a

    # The party vanishes; its address keeps silent from now on (no answer, no ICMP error).
    assert await vanishing.wait(60) == 0, explain(vanishing)
    silent = await silent_party(vanishing.port)
    try:
        assert await hanging_up.wait(60) == 0, explain(hanging_up)  # its BYE was answered 200 by the AS
        assert not vanishing.received("BYE")  # the premise: the AS's BYE found nobody

        (ccr_i,) = stack.ccr(CCR_I)
        await until(lambda: (r := rated(ccr_i.session_id)) is not None and r.closed, 60,
                    "the OCS did not get the CCR-T while the BYE to the vanished party was pending")
        # The order under test: the OCS has closed the session, the AS is still waiting for its BYE.
        assert call in stack.server.calls and vanished.alive
        await asyncio.wait_for(silent.bye_seen.wait(), 30)  # the BYE is there (retransmitted, unanswered)

        (ccr_t,) = stack.ccr(CCR_T)
        record = rated(ccr_i.session_id)
        assert record is not None and ccr_t.session_id == ccr_i.session_id
        assert ccr_t.used_seconds is not None and record.used_seconds == ccr_t.used_seconds
        messages = hanging_up.messages()
        ack = next(m for m in messages if m.method == "ACK")
        bye = next(m for m in messages if m.method == "BYE" and m.direction == "sent")
        talked = (bye.at - ack.at).total_seconds()
        assert 3 <= ccr_t.used_seconds <= talked + 2, (ccr_t.used_seconds, talked)
        account = ocs_models.Account.objects(e164=DID).first()
        assert account is not None and account.reserved == 0  # the reservation is released already

        (cdr,) = await cdrs(timeout=30)  # written at the end of the call, not after the BYE
        assert cdr.disposition == "answered" and cdr.end_reason == end_reason
        assert cdr.charged_seconds == ccr_t.used_seconds
        assert vanished.alive and call in stack.server.calls  # still the BYE pending

        silent.answer_bye()  # the party answers after all: the AS's teardown completes
        await until(lambda: not stack.server.calls, 60, "the call did not end after the BYE's 200")
        assert not vanished.alive and not stack.server.by_dialog
        assert len(stack.ccr(CCR_T)) == 1 and len(await cdrs()) == 1  # nothing sent or written twice
    finally:
        silent.close()
        vanishing.kill()
        hanging_up.kill()
