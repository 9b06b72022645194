"""Session timers (RFC 4028) enforced by the AS, end to end over UDP with SIPp, the real OCS and SecantusDB.

The test AS accepts intervals down to 2 s (``min_se=2``; the RFC floor of 90 s is only a default) so that a
session of 4-6 s shows refreshes and expiry in a few seconds. Timing is only ever checked as a lower bound.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from as_helpers import caller_keys, cdrs, explain, run_all, start_caller
from as_sipp import Sipp, Traced
from as_stack import CCR_I, CCR_T, DESTINATION, DID, MOBILE, Stack

from secondnum.sip.transaction import TimerConfig

pytestmark = [pytest.mark.sipp, pytest.mark.slow]


def reason(msg: Traced) -> str:
    return msg.header("Reason") or ""


def origin_version(body: str) -> str:
    m = re.search(r"^o=\S+ \S+ (\S+) ", body, re.MULTILINE)
    assert m is not None, body
    return m.group(1)


@pytest.mark.as_settings(min_se=2)
async def test_both_support_timer_refreshes_keep_the_call_up(stack: Stack) -> None:
    """§7-§9: caller and mobile negotiate 6 s, the caller refreshes by UPDATE every 2 s (relayed end to end);
    the call lives past the interval and ends with the caller's own BYE."""
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_timer.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_timer_refresh.xml")
    assert await run_all(caller, target) == [0, 0], explain(caller, target)

    (invite,) = target.received("INVITE")
    assert invite.header("Session-Expires") == "6;refresher=uac"
    assert invite.header("Min-SE") == "2"
    assert "timer" in (invite.header("Supported") or "")
    (ok,) = [m for m in caller.received(200) if m.cseq_method == "INVITE"]
    assert ok.header("Session-Expires") == "6;refresher=uac"
    assert "timer" in (ok.header("Require") or "")

    updates = target.received("UPDATE")
    assert len(updates) == 3  # each caller refresh relayed, none of the AS's own (the caller refreshes)
    assert all(u.header("Session-Expires") == "6;refresher=uac" for u in updates)
    (bye,) = target.received("BYE")
    assert "cause=408" not in reason(bye)
    assert (bye.at - invite.at).total_seconds() > 6  # lived past one interval thanks to the refreshes

    (cdr,) = await cdrs()
    assert cdr.disposition == "answered" and cdr.end_reason == "bye-caller"
    (ccr_t,) = stack.ccr(CCR_T)
    assert (ccr_t.used_seconds or 0) >= 6


@pytest.mark.as_settings(min_se=2)
async def test_refresher_stops_the_as_ends_the_call(stack: Stack) -> None:
    """§10: the caller (refresher) refreshes once and goes quiet: at interval - min(32, interval/3) after
    that refresh the AS sends BYE with Reason cause=408 both ways, CCR-T closes Ro, the CDR says why."""
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_timer.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_timer_stops.xml")
    assert await run_all(caller, target) == [0, 0], explain(caller, target)

    (update,) = target.received("UPDATE")
    for side in (caller, target):
        (bye,) = side.received("BYE")
        assert reason(bye) == 'SIP;cause=408;text="Session timer expired"', bye.headers
        # Not before the expiry: 6 - min(32, 6/3) = 4 s after the refresh (sipp clocks: one machine).
        assert (bye.at - update.at).total_seconds() >= 3.9
    assert not caller.received(200) or all(m.cseq_method != "BYE" for m in caller.received(200))

    (ccr_i,) = stack.ccr(CCR_I)
    (ccr_t,) = stack.ccr(CCR_T)
    assert ccr_t.session_id == ccr_i.session_id and (ccr_t.used_seconds or 0) >= 4
    (cdr,) = await cdrs()
    assert cdr.disposition == "answered" and cdr.end_reason == "session-expired"
    assert cdr.charged_seconds == ccr_t.used_seconds
    assert not stack.server.calls and not stack.server.by_dialog


@pytest.mark.as_settings(min_se=2, session_expires=4)
async def test_as_refreshes_legs_without_timer_support(stack: Stack) -> None:
    """Neither party supports timers: the AS asks for its own 4 s and refreshes both legs itself at half the
    interval: UPDATE without a body to the mobile (it allows UPDATE), re-INVITE with the last SDP to the
    caller (it does not); the caller's 2xx carries no Session-Expires (it did not ask, §9)."""
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_no_timer.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_no_timer.xml")
    assert await run_all(caller, target) == [0, 0], explain(caller, target)

    (invite,) = target.received("INVITE")
    assert invite.header("Session-Expires") == "4" and invite.header("Min-SE") == "2"
    assert "timer" in (invite.header("Supported") or "")
    ok = next(m for m in caller.received(200) if m.cseq_method == "INVITE")
    assert ok.header("Session-Expires") is None and "timer" not in (ok.header("Require") or "")

    updates = target.received("UPDATE")
    assert len(updates) >= 1, explain(target)
    for u in updates:
        assert u.header("Session-Expires") == "4;refresher=uac" and not u.body
    assert (updates[0].at - invite.at).total_seconds() >= 1.9  # at half the interval, not before

    first, second = caller.received("INVITE")
    for reinvite in (first, second):
        assert reinvite.header("Session-Expires") == "4;refresher=uac"
        assert "m=audio" in reinvite.body
        # The same session description as in our 200 OK: same o= version (RFC 3264 §8).
        assert origin_version(reinvite.body) == origin_version(ok.body)
    assert len(caller.received("ACK")) == 2  # our ACKs to its 2xx (RFC 3261 §13.2.2.4)

    (bye,) = target.received("BYE")
    assert "cause=408" not in reason(bye)
    (cdr,) = await cdrs()
    assert cdr.disposition == "answered" and cdr.end_reason == "bye-caller"


@pytest.mark.as_settings(min_se=10)
async def test_interval_below_min_se_gets_422(stack: Stack) -> None:
    """§9: the caller's Session-Expires 6 is below the AS's Min-SE 10: 422 with Min-SE, no leg, no CCR."""
    await stack.provision()
    caller = await start_caller(stack, "caller_timer_stops.xml")
    await caller.wait(30)
    (resp,) = caller.received(422)
    assert resp.header("Min-SE") == "10"
    assert not stack.ccr(CCR_I)
    (cdr,) = await cdrs()
    assert cdr.status == 422


@pytest.mark.as_settings(min_se=2, session_expires=4)
async def test_far_422_is_retried_with_its_min_se(stack: Stack) -> None:
    """§7.3: the mobile answers the AS's Session-Expires 4 with 422 and Min-SE 8; the AS retries once in the
    same dialog attempt (same Call-ID, CSeq 2) with Session-Expires 8, and the call is set up."""
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_422.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_answered.xml")
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    first, retry = target.received("INVITE")
    assert first.header("Session-Expires") == "4" and first.header("CSeq") == "1 INVITE"
    assert retry.header("Session-Expires") == "8" and retry.header("Min-SE") == "8"
    assert retry.header("CSeq") == "2 INVITE" and retry.header("Call-ID") == first.header("Call-ID")
    assert retry.header("Via") != first.header("Via")  # a new transaction (new branch)
    assert "m=audio" in retry.body
    (cdr,) = await cdrs()
    assert cdr.disposition == "answered" and cdr.end_reason == "bye-caller"
    assert len(stack.ccr(CCR_I)) == 1


@pytest.mark.as_settings(min_se=2, session_expires=4)
async def test_dead_far_end_is_detected_by_the_as_refresh(stack: Stack) -> None:
    """The case session timers exist for: the mobile vanishes after answering (no BYE ever comes). The AS's
    own UPDATE refresh gets no answer, 408 (RFC 3261 §12.2.1.2) ends the call: BYE to the caller with
    Reason cause=408, CCR-T, CDR. Short SIP timers (T1 0.1 s: Timer F 6.4 s) keep the test quick."""
    stack.server.ep.layer.timers = TimerConfig(t1=0.1, t2=0.4)
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_no_timer.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_until_bye.xml")
    for _ in range(200):  # answered and ACKed on both legs
        if any(c.timers is not None for c in stack.server.calls):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the call was not set up\n" + explain(caller, target))
    target.kill()  # the mobile is gone for good
    assert await caller.wait(60) == 0, explain(caller)

    (bye,) = caller.received("BYE")
    assert "cause=408" in reason(bye), bye.headers
    (ccr_t,) = stack.ccr(CCR_T)
    assert (ccr_t.used_seconds or 0) >= 2
    (cdr,) = await cdrs()
    assert cdr.disposition == "answered" and cdr.end_reason == "forward-gone"


@pytest.mark.as_settings(min_se=2, session_expires=6)
async def test_far_refresher_goes_silent_the_as_ends_the_call(stack: Stack) -> None:
    """§10 on the far leg: the mobile chose to refresh (refresher=uas) and never does. The AS, which keeps the
    caller's leg alive itself (re-INVITE: the caller supports neither timers nor UPDATE), releases the call
    4 s (6 - min(32, 6/3)) after the answer with Reason cause=408 both ways."""
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_timer_silent.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_until_bye.xml")
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    for side in (caller, target):
        (bye,) = side.received("BYE")
        assert reason(bye) == 'SIP;cause=408;text="Session timer expired"', bye.headers
    (invite,) = target.received("INVITE")
    (bye,) = target.received("BYE")
    assert (bye.at - invite.at).total_seconds() >= 3.9
    assert len(caller.received("INVITE")) >= 1  # the AS's own refresh of the caller's leg at 3 s
    (cdr,) = await cdrs()
    assert cdr.end_reason == "session-expired"
    assert len(stack.ccr(CCR_T)) == 1


@pytest.mark.as_settings(min_se=2)
async def test_caller_refreshes_towards_a_far_end_without_timers(stack: Stack) -> None:
    """The caller refreshes (6 s, refresher=uac), the mobile does not do timers: its 2xx to the relayed UPDATE
    has no Session-Expires, so the AS adds one to the caller's 2xx (else the caller would take the timer as
    gone, §7.4) and keeps watching the caller; the refreshes reach the mobile, which keeps its leg alive."""
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_no_timer.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_timer_refresh.xml")
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    (ok,) = [m for m in caller.received(200) if m.cseq_method == "INVITE"]
    assert ok.header("Session-Expires") == "6;refresher=uac" and "timer" in (ok.header("Require") or "")
    refreshed = [m for m in caller.received(200) if m.cseq_method == "UPDATE"]
    assert len(refreshed) == 3
    for m in refreshed:
        assert m.header("Session-Expires") == "6;refresher=uac" and "timer" in (m.header("Require") or "")
    assert len(target.received("UPDATE")) >= 3
    (cdr,) = await cdrs()
    assert cdr.end_reason == "bye-caller"


@pytest.mark.as_settings(min_se=2)
async def test_expiry_with_a_dead_caller_charges_up_to_the_release(stack: Stack) -> None:
    """The caller refreshes once and dies. At the expiry the AS releases: the mobile gets its BYE at once, the
    BYE to the dead caller fails only after Timer F, and that wait is neither charged nor in the CDR."""
    stack.server.ep.layer.timers = TimerConfig(t1=0.1, t2=0.4)  # Timer F 6.4 s
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_timer.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_timer_stops.xml")
    for _ in range(400):
        if target.received("UPDATE"):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("no refresh reached the mobile\n" + explain(caller, target))
    caller.kill()
    assert await target.wait(60) == 0, explain(target)
    (bye,) = target.received("BYE")
    assert reason(bye) == 'SIP;cause=408;text="Session timer expired"'
    (cdr,) = await cdrs(timeout=30)
    assert cdr.end_reason == "session-expired"
    (ccr_t,) = stack.ccr(CCR_T)
    (ack,) = target.received("ACK")
    talked = (bye.at - ack.at).total_seconds()
    # Charged up to the release (ceil, +1 for the ACK's travel), not up to the failed BYE 6.4 s later.
    assert ccr_t.used_seconds is not None and ccr_t.used_seconds <= talked + 2, (ccr_t.used_seconds, talked)
    assert cdr.end_at is not None and cdr.answer_at is not None
    assert (cdr.end_at - cdr.answer_at).total_seconds() <= talked + 2


@pytest.mark.as_settings(min_se=2, session_expires=4)
async def test_flow_c_outgoing_leg_is_refreshed_by_the_as(stack: Stack) -> None:
    """Flow C: the leg the AS originates for the customer's outgoing call asks for the AS's own 4 s (§7.1);
    the destination does not do timers, so the AS refreshes that leg (UPDATE, it allows it) while the
    customer, refresher of its own leg for 1800 s, is left alone."""
    await stack.provision()
    dest = await Sipp(stack.workdir, "dest", "dest_timer.xml", stack.scscf_port).start()
    media = await Sipp(
        stack.workdir, "media", "media_refer.xml", stack.media_port, keys={"dest": DESTINATION, "did": DID}
    ).start()
    caller = await start_caller(stack, "caller_reinvited_timer.xml", keys=caller_keys(stack, MOBILE),
                                pause_ms=5000)
    assert await run_all(caller, media, dest) == [0, 0, 0], explain(caller, media, dest)

    (out,) = dest.received("INVITE")
    assert out.header("Session-Expires") == "4" and out.header("Min-SE") == "2"
    assert "timer" in (out.header("Supported") or "")
    updates = dest.received("UPDATE")
    assert len(updates) >= 1, explain(dest)
    assert all(u.header("Session-Expires") == "4;refresher=uac" for u in updates)
    assert len(caller.received("INVITE")) == 1  # only flow C's re-INVITE: no refresh of the customer's leg
    (ok,) = [m for m in caller.received(200) if m.cseq_method == "INVITE"]
    assert ok.header("Session-Expires") == "1800;refresher=uac"
    (cdr,) = await cdrs()
    assert cdr.flow == "outgoing" and cdr.end_reason == "bye-caller"


EXPIRED_REASON = 'SIP;cause=408;text="Session timer expired"'


@pytest.mark.as_settings(min_se=2, voicemail_charging="charged")
async def test_voicemail_caller_stops_refreshing_the_as_ends_the_call(stack: Stack) -> None:
    """Voicemail access gets the forwarded legs' policy (§7.1): the INVITE to media continues the caller's
    6 s with Min-SE and ``timer`` in Supported, media (RFC 4028 UAS) accepts with refresher=uac, the caller
    is told to refresh and its refresh is relayed to media. It refreshes once and goes quiet: BYE with
    Reason cause=408 to the caller and to media, CCR-T of the charged voicemail leg, CDR
    ``session-expired``."""
    await stack.provision()
    media = await Sipp(stack.workdir, "media", "media_timer.xml", stack.media_port).start()
    caller = await start_caller(stack, "caller_timer_stops.xml", keys=caller_keys(stack, MOBILE))
    assert await run_all(caller, media) == [0, 0], explain(caller, media)

    (invite,) = media.received("INVITE")
    assert invite.header("Session-Expires") == "6;refresher=uac" and invite.header("Min-SE") == "2"
    assert "timer" in (invite.header("Supported") or "")
    (ok,) = [m for m in caller.received(200) if m.cseq_method == "INVITE"]
    assert ok.header("Session-Expires") == "6;refresher=uac" and "timer" in (ok.header("Require") or "")
    (update,) = media.received("UPDATE")  # the caller's refresh, relayed end to end
    for side in (caller, media):
        (bye,) = side.received("BYE")
        assert reason(bye) == EXPIRED_REASON, bye.headers
        assert (bye.at - update.at).total_seconds() >= 3.9  # 6 - min(32, 6/3) after the refresh

    (ccr_i,) = stack.ccr(CCR_I)
    (ccr_t,) = stack.ccr(CCR_T)
    assert ccr_t.session_id == ccr_i.session_id and (ccr_t.used_seconds or 0) >= 4
    (cdr,) = await cdrs()
    assert cdr.disposition == "voicemail_access" and cdr.end_reason == "session-expired"
    assert cdr.charged_seconds == ccr_t.used_seconds


@pytest.mark.as_settings(min_se=2, session_expires=4, voicemail_charging="charged")
async def test_dead_media_leg_is_detected_by_the_as_refresh(stack: Stack) -> None:
    """A caller without timer support on voicemail access: the AS asks media for its own 4 s and refreshes the
    media leg itself (UPDATE, media allows it). Media vanishes: the UPDATE gets no answer, 408 ends the call
    (RFC 3261 §12.2.1.2): BYE to the caller with Reason cause=408, CCR-T, CDR ``voicemail-gone``; before,
    only media's RTP timeout would have ended it. T1 0.1 s (Timer F 6.4 s) keeps the test quick."""
    stack.server.ep.layer.timers = TimerConfig(t1=0.1, t2=0.4)
    await stack.provision()
    media = await Sipp(stack.workdir, "media", "media_timer.xml", stack.media_port).start()
    caller = await start_caller(stack, "caller_until_bye.xml", keys=caller_keys(stack, MOBILE))
    for _ in range(400):  # answered and ACKed on both legs, both timed
        if any(c.timers is not None and len(c.timers.legs) == 2 for c in stack.server.calls):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the call was not set up with two timed legs\n" + explain(caller, media))
    media.kill()  # media is gone for good
    assert await caller.wait(60) == 0, explain(caller)

    (invite,) = media.received("INVITE")
    assert invite.header("Session-Expires") == "4" and invite.header("Min-SE") == "2"
    (bye,) = caller.received("BYE")
    assert "cause=408" in reason(bye), bye.headers
    (ccr_t,) = stack.ccr(CCR_T)
    assert (ccr_t.used_seconds or 0) >= 2
    (cdr,) = await cdrs()
    assert cdr.disposition == "voicemail_access" and cdr.end_reason == "voicemail-gone"


@pytest.mark.as_settings(min_se=2, session_expires=4)
async def test_media_422_is_retried_with_its_min_se(stack: Stack) -> None:
    """§7.3 on the voicemail leg: media's minimum (8 s) is above the AS's 4 s; the AS retries once (same
    Call-ID, CSeq 2, new transaction) with Session-Expires 8 and the caller reaches voicemail."""
    await stack.provision()
    media = await Sipp(stack.workdir, "media", "target_422.xml", stack.media_port).start()
    caller = await start_caller(stack, "caller_answered.xml", keys=caller_keys(stack, MOBILE))
    assert await run_all(caller, media) == [0, 0], explain(caller, media)
    first, retry = media.received("INVITE")
    assert first.header("Session-Expires") == "4" and first.header("CSeq") == "1 INVITE"
    assert retry.header("Session-Expires") == "8" and retry.header("Min-SE") == "8"
    assert retry.header("CSeq") == "2 INVITE" and retry.header("Call-ID") == first.header("Call-ID")
    assert retry.header("Via") != first.header("Via")
    (cdr,) = await cdrs()
    assert cdr.disposition == "voicemail_access" and cdr.end_reason == "bye-caller"


@pytest.mark.as_settings(min_se=2, session_expires=4)
async def test_changed_answer_to_the_as_refresh_is_passed_on(stack: Stack) -> None:
    """The AS refreshes the caller (no timer support) by re-INVITE; the caller answers the first one with its
    media moved (new o= version, port 7000, RFC 3264 §8): the mobile gets a re-INVITE with that description
    (the origin it saw first, version + 1, its leg's Session-Expires) and answers unchanged, so nothing goes
    back; the second refresh answer repeats the moved description (same version): nothing more passes."""
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_reinvited.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_moves_on_refresh.xml")
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    invite, reinvite = target.received("INVITE")
    assert "m=audio 7000 " in reinvite.body and "m=audio 7000 " not in invite.body
    assert origin_version(reinvite.body) == str(int(origin_version(invite.body)) + 1)
    assert reinvite.header("Session-Expires") == "4;refresher=uac"  # the AS refreshes the mobile's leg
    assert len(caller.received("INVITE")) == 2  # the AS's two refreshes, nothing passed back
    (cdr,) = await cdrs()
    assert cdr.end_reason == "bye-caller"
