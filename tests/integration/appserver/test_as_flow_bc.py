"""Flows B (voicemail access by network identity) and C (outgoing call from the menu by REFER)."""

from __future__ import annotations

import pytest
from as_helpers import caller_keys, cdrs, explain, run_all, start_caller
from as_sipp import Sipp
from as_stack import CCR_I, CCR_T, DESTINATION, DID, MOBILE, PSTN_CALLER, Stack

pytestmark = [pytest.mark.sipp, pytest.mark.slow]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_alias_reaches_voicemail_access(stack: Stack, transport: str) -> None:
    await stack.provision()
    media = await Sipp(stack.workdir, "media", "media_deposit.xml", stack.media_port).start()
    caller = await start_caller(stack, "caller_answered.xml", transport, keys=caller_keys(stack, MOBILE))
    codes = await run_all(caller, media)
    assert codes == [0, 0], explain(caller, media)
    (invite,) = media.received("INVITE")
    assert invite.start_line == (
        f"INVITE sip:vm-access@127.0.0.1:{stack.media_port};mailbox={DID};auth=network SIP/2.0"
    )
    assert invite.header("P-Asserted-Identity") == f"<tel:+{MOBILE}>"
    assert 181 not in [m.status for m in caller.messages()]
    assert stack.ccrs == []  # voicemail access is free by default
    (cdr,) = await cdrs()
    assert cdr.flow == "voicemail_access" and cdr.disposition == "voicemail_access"
    assert cdr.caller == MOBILE


async def test_alias_only_in_from_is_not_enough(stack: Stack) -> None:
    """From says the customer's mobile, the network asserts someone else: an ordinary incoming call."""
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_answer.xml", stack.scscf_port).start()
    caller = await start_caller(
        stack,
        "caller_answered.xml",
        keys=caller_keys(stack, caller=MOBILE, pai=PSTN_CALLER),
    )
    codes = await run_all(caller, target)
    assert codes == [0, 0], explain(caller, target)
    (invite,) = target.received("INVITE")
    assert invite.start_line == f"INVITE tel:+{MOBILE} SIP/2.0"
    (cdr,) = await cdrs()
    assert cdr.flow == "forward" and cdr.caller == PSTN_CALLER


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_outgoing_call_from_voicemail_menu(stack: Stack, transport: str) -> None:
    await stack.provision()
    dest = await Sipp(stack.workdir, "dest", "dest_uas.xml", stack.scscf_port).start()
    media = await Sipp(
        stack.workdir, "media", "media_refer.xml", stack.media_port, keys={"dest": DESTINATION, "did": DID}
    ).start()
    caller = await start_caller(
        stack,
        "caller_reinvited.xml",
        transport,
        keys=caller_keys(stack, MOBILE),
        pause_ms=1500,
    )
    codes = await run_all(caller, media, dest)
    assert codes == [0, 0, 0], explain(caller, media, dest)

    (out,) = dest.received("INVITE")
    assert out.start_line == f"INVITE tel:+{DESTINATION} SIP/2.0"
    route = out.header("Route") or ""
    assert route == f"<sip:127.0.0.1:{stack.scscf_port};lr;orig>"
    assert out.header("P-Asserted-Identity") == f"<tel:+{DID}>"
    assert (out.header("From") or "").startswith(f"<tel:+{DID}>;tag=")
    assert out.body == ""  # offerless INVITE: the far end offers, the customer answers (RFC 3725)
    assert "icid-generated-at" in (out.header("P-Charging-Vector") or "")

    frags = [m.body.splitlines()[0] for m in media.received("NOTIFY")]
    assert frags == ["SIP/2.0 100 Trying", "SIP/2.0 180 Ringing", "SIP/2.0 200 OK"]
    notify_states = [m.header("Subscription-State") for m in media.received("NOTIFY")]
    assert notify_states[-1].startswith("terminated")
    assert media.received("BYE")  # the media leg is released

    reinvites = [m for m in caller.received("INVITE")]
    assert len(reinvites) == 1
    body = reinvites[0].body
    assert "m=audio" in body and "RTP/AVP 8 0" in body  # the destination's offer
    assert "o=media 7 8 IN IP4" in body  # origin kept as the customer first saw it, version + 1 (RFC 3264 §8)
    (ack,) = dest.received("ACK")
    assert "RTP/AVP 8" in ack.body  # the customer's answer

    (ccr_i,) = stack.ccr(CCR_I)
    (ccr_t,) = stack.ccr(CCR_T)
    assert ccr_i.subscription_e164 == DID and ccr_i.role_of_node == 0
    assert ccr_i.called == f"tel:+{DESTINATION}"
    assert ccr_t.session_id == ccr_i.session_id and (ccr_t.used_seconds or 0) >= 1
    (cdr,) = await cdrs()
    assert cdr.flow == "outgoing" and cdr.disposition == "answered"
    assert cdr.charged_seconds == ccr_t.used_seconds
    assert {leg.role for leg in cdr.legs} == {"caller", "voicemail", "outgoing"}


@pytest.mark.ocs_balance(0)
async def test_outgoing_call_refused_by_ocs(stack: Stack) -> None:
    """4012 DIAMETER_CREDIT_LIMIT_REACHED -> NOTIFY sipfrag 402; no INVITE leaves; the customer stays."""
    await stack.provision()
    media = await Sipp(
        stack.workdir,
        "media",
        "media_refer_refused.xml",
        stack.media_port,
        keys={"dest": DESTINATION, "did": DID},
    ).start()
    caller = await start_caller(stack, "caller_answered.xml", keys=caller_keys(stack, MOBILE), pause_ms=2500)
    codes = await run_all(caller, media)
    assert codes == [0, 0], explain(caller, media)
    frags = [m.body.splitlines()[0] for m in media.received("NOTIFY")]
    assert frags == ["SIP/2.0 100 Trying", "SIP/2.0 402 Payment Required"]
    (ccr_i,) = stack.ccr(CCR_I)
    assert ccr_i.role_of_node == 0
    (cdr,) = await cdrs()
    assert cdr.flow == "voicemail_access"
    assert [leg.status for leg in cdr.legs if leg.role == "outgoing"] == [402]


async def test_outgoing_call_answered_without_an_offer_is_released_with_nothing_charged(stack: Stack) -> None:
    """The destination answers the offerless INVITE without an offer: the AS ACKs and releases it (BYE with
    Reason 488), closes its Ro session with no units, and tells media 488; the customer stays in the menu."""
    await stack.provision()
    dest = await Sipp(stack.workdir, "dest", "dest_no_offer.xml", stack.scscf_port).start()
    media = await Sipp(stack.workdir, "media", "media_refer_refused.xml", stack.media_port,
                       keys={"dest": DESTINATION, "did": DID}).start()
    caller = await start_caller(stack, "caller_answered.xml", keys=caller_keys(stack, MOBILE), pause_ms=2500)
    codes = await run_all(caller, media, dest)
    assert codes == [0, 0, 0], explain(caller, media, dest)
    frags = [m.body.splitlines()[0] for m in media.received("NOTIFY")]
    assert frags == ["SIP/2.0 100 Trying", "SIP/2.0 488 Not Acceptable Here"]
    (bye,) = dest.received("BYE")
    assert bye.header("Reason") == 'SIP;cause=488;text="No offer"'
    assert caller.received("INVITE") == []  # nothing to bridge: the customer is not re-INVITEd
    (ccr_i,) = [c for c in stack.ccr(CCR_I) if c.role_of_node == 0]
    (ccr_t,) = [c for c in stack.ccr(CCR_T) if c.session_id == ccr_i.session_id]
    assert ccr_t.used_seconds == 0
    (cdr,) = await cdrs()
    assert cdr.flow == "voicemail_access"


@pytest.mark.as_settings(voicemail_charging="charged")
async def test_charged_voicemail_access_is_a_terminating_ro_session(stack: Stack) -> None:
    await stack.provision()
    media = await Sipp(stack.workdir, "media", "media_deposit.xml", stack.media_port).start()
    caller = await start_caller(stack, "caller_answered.xml", keys=caller_keys(stack, MOBILE), pause_ms=1200)
    assert await run_all(caller, media) == [0, 0], explain(caller, media)
    (ccr_i,) = stack.ccr(CCR_I)
    (ccr_t,) = stack.ccr(CCR_T)
    assert ccr_i.subscription_e164 == DID and ccr_i.role_of_node == 1  # TERMINATING_ROLE
    assert ccr_t.session_id == ccr_i.session_id and (ccr_t.used_seconds or 0) >= 1
    (cdr,) = await cdrs()
    assert cdr.charged_seconds == ccr_t.used_seconds
