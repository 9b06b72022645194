"""ISC admission and failure paths: untrusted source, unknown/suspended DID, answering modes, busy, CANCEL,
OCS refusal, OCS down under each CCFH mode (RFC 4006 §8.14)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from as_helpers import caller_keys, cdrs, explain, run_all, start_caller
from as_sipp import Sipp
from as_stack import CCR_I, CCR_T, DID, MOBILE, Stack

from secondnum.net import free_port

pytestmark = [pytest.mark.sipp, pytest.mark.slow]


def final_status(caller: Sipp) -> int | None:
    finals = [
        m.status
        for m in caller.messages()
        if m.direction == "received"
        and m.status is not None
        and m.status >= 200
        and m.cseq_method == "INVITE"
    ]
    return finals[-1] if finals else None


async def rejected_call(stack: Stack, transport: str = "udp", **keys: str) -> Sipp:
    caller = await start_caller(stack, "caller_rejected.xml", transport, keys={**caller_keys(stack), **keys})
    assert await caller.wait() == 0, explain(caller)
    return caller


@pytest.mark.as_settings(trusted_scscf=["10.20.30.0/24"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_untrusted_source_gets_403_and_a_log_line(
    stack: Stack, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    await stack.provision()
    with caplog.at_level(logging.WARNING, logger="appserver.server"):
        caller = await rejected_call(stack, transport, pai=MOBILE)  # even the customer's identity
    assert final_status(caller) == 403
    assert any(r.getMessage() == "isc_untrusted_source" for r in caplog.records)
    assert stack.ccrs == []


async def test_unknown_did_gets_404(stack: Stack) -> None:
    caller = await rejected_call(stack)
    assert final_status(caller) == 404
    (cdr,) = await cdrs()
    assert cdr.disposition == "rejected" and cdr.status == 404


async def test_suspended_account_gets_403(stack: Stack) -> None:
    await stack.provision(status="suspended")
    caller = await rejected_call(stack)
    assert final_status(caller) == 403


async def test_reject_mode_declines(stack: Stack) -> None:
    await stack.provision(answering_mode="reject")
    caller = await rejected_call(stack)
    assert final_status(caller) == 603


async def test_voicemail_only_goes_straight_to_media(stack: Stack) -> None:
    await stack.provision(answering_mode="voicemail_only")
    media = await Sipp(stack.workdir, "media", "media_deposit.xml", stack.media_port).start()
    caller = await start_caller(stack, "caller_answered.xml")
    assert await run_all(caller, media) == [0, 0], explain(caller, media)
    (vm,) = media.received("INVITE")
    assert ";cause=302>;index=1.1;mp=1" in ",".join(vm.all("History-Info"))
    assert vm.header("Diversion") == f"<tel:+{DID}>;reason=unconditional;counter=1"
    assert stack.ccrs == []


async def test_busy_target_diverts_with_486(stack: Stack) -> None:
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_busy.xml", stack.scscf_port).start()
    media = await Sipp(stack.workdir, "media", "media_deposit.xml", stack.media_port).start()
    caller = await start_caller(stack, "caller_answered.xml")
    assert await run_all(caller, target, media) == [0, 0, 0], explain(caller, target, media)
    (vm,) = media.received("INVITE")
    assert ";cause=486>;index=1.2;mp=1" in ",".join(vm.all("History-Info"))
    assert vm.header("Diversion") == f"<tel:+{DID}>;reason=user-busy;counter=1"
    (cdr,) = await cdrs()
    assert cdr.diversion_reason == "user-busy" and cdr.disposition == "voicemail"


async def test_forward_only_busy_returns_486(stack: Stack) -> None:
    await stack.provision(answering_mode="forward_only")
    target = await Sipp(stack.workdir, "target", "target_busy.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_rejected.xml")
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    assert final_status(caller) == 486
    (cdr,) = await cdrs()
    assert cdr.disposition == "busy"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_cancel_during_forwarding(stack: Stack, transport: str) -> None:
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_noanswer.xml", stack.scscf_port, transport).start()
    caller = await start_caller(stack, "caller_cancel.xml", transport, pause_ms=800)
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    (cancel,) = target.received("CANCEL")
    assert "cause=487" in (cancel.header("Reason") or "")
    (ccr_i,) = stack.ccr(CCR_I)
    (ccr_t,) = stack.ccr(CCR_T)
    assert ccr_t.session_id == ccr_i.session_id and (ccr_t.used_seconds or 0) == 0
    (cdr,) = await cdrs()
    assert cdr.disposition == "cancelled" and cdr.answer_at is None


@pytest.mark.ocs_balance(0)
async def test_ocs_refusal_on_forward_only(stack: Stack) -> None:
    """4012 on the forwarded leg's CCR-I: no leg is placed, the caller gets 402 with a Reason."""
    await stack.provision(answering_mode="forward_only")
    caller = await rejected_call(stack)
    assert final_status(caller) == 402
    finals = [m for m in caller.messages() if m.status == 402]
    assert "DIAMETER;cause=4012" in (finals[0].header("Reason") or "")


@pytest.mark.ocs_balance(0)
async def test_ocs_refusal_then_voicemail(stack: Stack) -> None:
    """Forward-then-voicemail: a refused forwarded leg still lets the caller leave a message (free)."""
    await stack.provision()
    media = await Sipp(stack.workdir, "media", "media_deposit.xml", stack.media_port).start()
    caller = await start_caller(stack, "caller_answered.xml")
    assert await run_all(caller, media) == [0, 0], explain(caller, media)
    assert len(media.received("INVITE")) == 1


@pytest.mark.ocs_down
@pytest.mark.ro_settings(ccfh="TERMINATE")
async def test_ocs_down_ccfh_terminate(stack: Stack) -> None:
    await stack.provision(answering_mode="forward_only")
    caller = await rejected_call(stack)
    assert final_status(caller) == 503


@pytest.mark.ocs_down
@pytest.mark.ro_settings(ccfh="RETRY_AND_TERMINATE")
async def test_ocs_down_ccfh_retry_and_terminate(stack: Stack) -> None:
    await stack.provision(answering_mode="forward_only")
    caller = await rejected_call(stack)
    assert final_status(caller) == 503


@pytest.mark.ocs_down
@pytest.mark.ro_settings(ccfh="CONTINUE")
async def test_ocs_down_ccfh_continue_forwards_unmetered(stack: Stack) -> None:
    await stack.provision(answering_mode="forward_only")
    target = await Sipp(stack.workdir, "target", "target_answer.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_answered.xml")
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    assert stack.ccrs == []
    (cdr,) = await cdrs()
    assert cdr.disposition == "answered"


async def test_malformed_asserted_identity_gets_400_and_service_goes_on(stack: Stack) -> None:
    await stack.provision(answering_mode="reject")
    bad = await Sipp(
        stack.workdir,
        "bad",
        "caller_bad_header.xml",
        free_port(),
        remote=f"127.0.0.1:{stack.sip_port}",
        keys=caller_keys(stack),
    ).start()
    assert await bad.wait() == 0, explain(bad)
    assert final_status(bad) == 400
    good = await rejected_call(stack)  # the next call is served normally
    assert final_status(good) == 603


@pytest.mark.as_settings(max_setups=1)
@pytest.mark.ro_settings(tx_seconds=15.0)
async def test_slow_ocs_backlog_refuses_new_invites_with_503(stack: Stack) -> None:
    """The OCS holds the CCR-I: the call waits in its set-up stage. With ``max_setups = 1`` the next INVITE
    gets 503 + Retry-After at once (not a wait for the CCA and a CCFH diversion); when the OCS answers, the
    first call goes on to ring and be answered, and new INVITEs are admitted again."""
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_answer.xml", stack.scscf_port).start()
    stack.ocs_gate.clear()
    first = await start_caller(stack, "caller_answered.xml", pause_ms=500)
    for _ in range(200):
        if len(stack.server.setups) == 1 and stack.ccrs:
            break
        await asyncio.sleep(0.05)
    assert len(stack.server.setups) == 1
    refused = await Sipp(stack.workdir, "refused", "caller_rejected.xml", free_port(),
                         remote=f"127.0.0.1:{stack.sip_port}", keys=caller_keys(stack)).start()
    assert await refused.wait() == 0, explain(refused)
    (answer,) = [m for m in refused.messages() if m.status and m.status >= 200]
    assert answer.status == 503 and answer.header("Retry-After") == "5"
    stack.ocs_gate.set()
    assert await run_all(first, target) == [0, 0], explain(first, target)
    assert not stack.server.setups
    (cdr,) = await cdrs()
    assert cdr.disposition == "answered"
    # Recovered by itself: the next call is admitted, forwarded and answered.
    target = await Sipp(stack.workdir, "target2", "target_answer.xml", stack.scscf_port).start()
    again = await Sipp(stack.workdir, "again", "caller_answered.xml", free_port(),
                       remote=f"127.0.0.1:{stack.sip_port}", keys=caller_keys(stack), pause_ms=200).start()
    assert await run_all(again, target) == [0, 0], explain(again, target)
    assert len(await cdrs(count=2)) == 2
