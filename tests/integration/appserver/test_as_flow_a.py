"""Flow A end to end over UDP and TCP: PSTN caller -> DID -> follow-me through the S-CSCF, or voicemail."""

from __future__ import annotations

import pytest
from as_helpers import OTHER, cdrs, explain, provision_two_targets, run_all, start_caller
from as_sipp import Sipp
from as_stack import CCR_I, CCR_T, DID, MOBILE, PSTN_CALLER, Stack

pytestmark = [pytest.mark.sipp, pytest.mark.slow]

TRANSPORTS = ["udp", "tcp"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_forwarded_call_answered(stack: Stack, transport: str) -> None:
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_answer.xml", stack.scscf_port, transport).start()
    caller = await start_caller(stack, "caller_answered.xml", transport, pause_ms=1500)
    codes = await run_all(caller, target)
    assert codes == [0, 0], explain(caller, target)

    # Caller side: 181 Call Is Being Forwarded before the answer (TS 24.604 §4.5.2.6.2).
    statuses = [m.status for m in caller.messages() if m.direction == "received"]
    assert 181 in statuses and statuses.index(181) < statuses.index(200)

    # The forwarded INVITE as the S-CSCF received it.
    (invite,) = target.received("INVITE")
    assert invite.start_line == f"INVITE tel:+{MOBILE} SIP/2.0"
    routes = ",".join(invite.all("Route"))
    assert "odi=odi-1" in routes and f"127.0.0.1:{stack.scscf_port}" in routes
    assert f"127.0.0.1:{stack.sip_port};lr>" not in routes  # our own entry is consumed
    assert invite.header("P-Asserted-Identity") == f"<tel:+{DID}>"
    assert invite.header("From").startswith(f"<tel:+{DID}>;tag=")
    history = ",".join(invite.all("History-Info"))
    assert f"<tel:+{DID}>;index=1" in history
    assert f"<tel:+{MOBILE};cause=302>;index=1.1;mp=1" in history
    assert invite.header("Diversion") == f"<tel:+{DID}>;reason=unconditional;counter=1"
    assert "icid-value=icid-test-1" in (invite.header("P-Charging-Vector") or "")
    assert invite.header("Call-ID") != caller.messages()[0].header("Call-ID")  # a new dialog (B2BUA)
    # The BYE went from the caller to the target through the AS.
    assert target.received("BYE")

    # Ro: CCR-I and CCR-T for the forwarded leg, charged to the DID in the forwarding role (TS 32.299).
    (ccr_i,) = stack.ccr(CCR_I)
    (ccr_t,) = stack.ccr(CCR_T)
    assert ccr_i.subscription_e164 == DID
    assert ccr_i.role_of_node == 2
    assert ccr_t.session_id == ccr_i.session_id
    assert ccr_t.used_seconds is not None and ccr_t.used_seconds >= 1

    (cdr,) = await cdrs()
    assert cdr.flow == "forward" and cdr.disposition == "answered"
    assert cdr.caller == PSTN_CALLER and cdr.transport == transport
    assert cdr.answer_at is not None and cdr.end_at >= cdr.answer_at
    assert cdr.ro_session_ids == [ccr_i.session_id]
    assert cdr.charged_seconds == ccr_t.used_seconds
    assert [leg.role for leg in cdr.legs] == ["forward", "caller"] or {leg.role for leg in cdr.legs} == {
        "forward",
        "caller",
    }


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_answer_goes_to_voicemail(stack: Stack, transport: str) -> None:
    await stack.provision(follow_me={"targets": [{"uri": f"tel:+{MOBILE}", "ring_timeout": 2}]})
    target = await Sipp(stack.workdir, "target", "target_noanswer.xml", stack.scscf_port, transport).start()
    media = await Sipp(stack.workdir, "media", "media_deposit.xml", stack.media_port, "udp").start()
    caller = await start_caller(stack, "caller_answered.xml", transport, pause_ms=500)
    codes = await run_all(caller, target, media)
    assert codes == [0, 0, 0], explain(caller, target, media)

    (invite,) = target.received("INVITE")
    (cancel,) = target.received("CANCEL")
    # The no-reply timer (2 s for this target) ran before the CANCEL: a lower bound, never an upper one.
    assert (cancel.at - invite.at).total_seconds() >= 1.9
    assert "cause=408" in (cancel.header("Reason") or "")

    (vm,) = media.received("INVITE")
    assert vm.start_line.startswith(f"INVITE sip:vm-deposit@127.0.0.1:{stack.media_port};mailbox={DID}")
    history = ",".join(vm.all("History-Info"))
    assert f"<tel:+{MOBILE};cause=302>;index=1.1;mp=1" in history
    assert ";cause=408>;index=1.2;mp=1" in history
    assert vm.header("Diversion") == f"<tel:+{DID}>;reason=no-answer;counter=1"
    assert vm.header("P-Asserted-Identity") == f"<tel:+{PSTN_CALLER}>"
    assert "m=audio" in vm.body  # the caller's offer passed through

    (ccr_i,) = stack.ccr(CCR_I)
    (ccr_t,) = stack.ccr(CCR_T)
    assert ccr_t.session_id == ccr_i.session_id and (ccr_t.used_seconds or 0) == 0

    (cdr,) = await cdrs()
    assert cdr.disposition == "voicemail" and cdr.diversion_reason == "no-answer"
    assert cdr.charged_seconds == 0
    assert {leg.role for leg in cdr.legs} == {"caller", "forward", "voicemail"}


async def test_simultaneous_forking_cancels_the_loser(stack: Stack) -> None:
    await provision_two_targets(stack)
    target = await Sipp(stack.workdir, "target", "target_fork.xml", stack.scscf_port, calls=2).start()
    caller = await start_caller(stack, "caller_answered.xml")
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    uris = sorted(m.start_line for m in target.received("INVITE"))
    assert uris == [f"INVITE tel:+{OTHER} SIP/2.0", f"INVITE tel:+{MOBILE} SIP/2.0"]
    (cancel,) = target.received("CANCEL")
    assert cancel.start_line == f"CANCEL tel:+{OTHER} SIP/2.0"
    assert "cause=200" in (cancel.header("Reason") or "")  # call completed elsewhere
    assert len(stack.ccr(CCR_I)) == 1  # one Ro session for the whole forwarding attempt
    (cdr,) = await cdrs()
    assert cdr.ro_session_ids == [stack.ccr(CCR_I)[0].session_id]
    assert cdr.disposition == "answered"
    assert sorted(leg.role for leg in cdr.legs) == ["caller", "forward", "forward"]


async def test_sequential_busy_then_next_target(stack: Stack) -> None:
    await provision_two_targets(stack, "sequential")
    target = await Sipp(stack.workdir, "target", "target_seq.xml", stack.scscf_port, calls=2).start()
    caller = await start_caller(stack, "caller_answered.xml")
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    first, second = target.received("INVITE")
    assert first.start_line == f"INVITE tel:+{OTHER} SIP/2.0"
    assert second.start_line == f"INVITE tel:+{MOBILE} SIP/2.0"
    history = ",".join(second.all("History-Info"))
    assert f"<tel:+{OTHER};cause=302>;index=1.1;mp=1" in history
    assert f"<tel:+{MOBILE};cause=302>;index=1.2;mp=1" in history
    (cdr,) = await cdrs()
    assert cdr.disposition == "answered"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_offerless_invite_answer_travels_in_the_ack(stack: Stack, transport: str) -> None:
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_answer.xml", stack.scscf_port, transport).start()
    caller = await start_caller(stack, "caller_offerless.xml", transport)
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    (invite,) = target.received("INVITE")
    assert invite.body == ""
    (ok,) = [m for m in caller.received(200) if m.cseq_method == "INVITE"]
    assert "o=mobile" in ok.body  # the far end's offer reached the caller
    (ack,) = target.received("ACK")
    assert "o=caller" in ack.body and "RTP/AVP 0" in ack.body  # and the caller's answer reached the far end
