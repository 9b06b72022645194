"""Flow C: the customer's outgoing call from the voicemail menu, placed by the AS on behalf of the DID.

Media sends REFER inside the vm-access dialog (RFC 3515 §2.4); the AS answers 202, reports progress with
NOTIFY ``message/sipfrag`` (RFC 3515 §2.4.4-§2.4.5), authorises the call as an originating call of the DID
(TS 32.299, Role-Of-Node ORIGINATING), sends it to the S-CSCF with ``orig`` on the Route and the DID as
P-Asserted-Identity (TS 24.229 §5.7.3) and the customer's Privacy (OIR, TS 24.607; see
:func:`appserver.privacy.outgoing_leg`), bridges the customer with a re-INVITE (third-party call control,
RFC 3725 §4.2) and releases the media leg. A refusal by the OCS (4012 -> 402, 4010 -> 403) goes back to
media as the sipfrag status, so media can say so and offer the menu again.
"""

from __future__ import annotations

import asyncio
import contextlib

from appserver import legs, privacy
from appserver.call import Call
from appserver.cdr import Disposition, Flow
from appserver.outleg import CANCEL_REASONS, OutLeg, charge, close_charging, release_late
from appserver.session_timer import time_own_leg
from appserver.side import Role, Side
from charging.client import ChargingRefused, RoleOfNode, RoSession
from secondnum.identity import IdentityError, canonical, tel_uri
from secondnum.log import get_logger
from secondnum.sip import (
    ClientTransactionHandle,
    Dialog,
    IncomingRequest,
    SipError,
    SipResponse,
    SipURI,
    uri_destination,
)
from secondnum.sip.message import REASON_PHRASES
from secondnum.sip.reliable import Verdict, is_reliable

log = get_logger(__name__)


def _sipfrag(status: int, reason: str | None = None) -> str:
    return f"SIP/2.0 {status} {reason or REASON_PHRASES.get(status, 'Unknown')}"


async def on_refer(call: Call, inc: IncomingRequest, side: Side) -> None:
    """REFER from media inside the vm-access dialog (RFC 3515 §2.4): place the customer's outgoing call."""
    if side is not call.b or side.role is not Role.VOICEMAIL or call.record.flow is not Flow.VOICEMAIL_ACCESS:
        log.warning("refer_refused", call_id=inc.request.call_id, role=str(side.role))
        inc.respond(403, headers=[("Warning", '399 secondnum-as "REFER only from the voicemail menu"')])
        return
    try:
        refer_to = inc.request.refer_to
    except SipError:
        refer_to = None
    if refer_to is None:
        inc.respond(400, headers=[("Warning", '399 secondnum-as "Bad Refer-To"')])
        return
    if call.outgoing_task is not None and not call.outgoing_task.done():
        inc.respond(491, headers=[("Retry-After", "2")])
        return
    inc.respond(202)
    call.outgoing_task = asyncio.create_task(_outgoing(call, side, refer_to.uri))


async def _notify(media: Side, status_line: str, final: bool) -> None:
    """RFC 3515 §2.4.4-§2.4.5 NOTIFY with a message/sipfrag body."""
    if not media.alive:
        return
    req = media.dialog.create_refer_notify(status_line, "terminated" if final else "active")
    dest, transport = media.dialog.next_hop(media.transport)
    handle = media.ep.request(req, dest, transport)
    with contextlib.suppress(SipError):
        resp = await handle.final_response()
        media.dialog.on_response(req, resp)


async def _outgoing(call: Call, media: Side, target: SipURI) -> None:
    server = call.server
    await _notify(media, _sipfrag(100), final=False)
    try:
        digits = canonical(str(target))
        if not digits.isdigit():
            raise IdentityError(str(target))
    except IdentityError:
        await _notify(media, _sipfrag(484), final=True)
        return
    destination = SipURI.parse(tel_uri(digits))
    # The customer's own INVITE (the access call) said whether to show them (OIR, TS 24.607): flows.run
    # recorded its priv-values.
    leg_privacy = privacy.outgoing_leg(privacy.Privacy(call.record.privacy) if call.record.privacy else None)
    shown_from = privacy.ANONYMOUS_URI if leg_privacy.anonymous_from else tel_uri(call.record.did)
    record = call.record.leg(Role.OUTGOING, "", str(destination), shown_from, tel_uri(call.record.did))
    try:
        session = await charge(call, RoleOfNode.ORIGINATING, tel_uri(call.record.did), str(destination),
                               "outgoing")
    except ChargingRefused as exc:
        record.status = exc.sip_status
        log.info("outgoing_refused_by_ocs", call_id=call.invite.call_id, result=exc.result_code)
        await _notify(media, _sipfrag(exc.sip_status), final=True)
        return
    timer = legs.session_timer_headers(None, server.settings.timer_config)  # our own (RFC 4028 §7.1)
    req = legs.outgoing_invite(destination=destination, did=call.record.did, scscf=server.scscf_uri,
                               contact=server.ep.local_contact(transport=server.scscf_transport),
                               call_id=legs.new_call_id(server.host), domain=server.settings.domain,
                               supported=[*legs.outgoing_options(call.invite), *(["timer"] if timer else [])],
                               extra=timer, privacy=leg_privacy)
    record.call_id = req.call_id
    dest, transport = uri_destination(server.scscf_uri, server.scscf_transport)
    handle = server.ep.request(req, dest, transport)
    try:
        final = await _await_outgoing(call, media, handle)
    except asyncio.CancelledError:
        server.ep.cancel(handle, CANCEL_REASONS[487])
        server.spawn(release_late(call, OutLeg(req, handle, record)))
        await close_charging(session)
        raise
    record.status = final.status
    early = call.early
    bridged = early.bridged if early is not None else None
    if bridged is not None and early is not None and (
            not final.is_success or bridged.side.dialog.remote_tag != (final.to.tag or "")):
        early.bridged = None
        await _back_to_menu(call, media)  # the customer heard the far end's early media: re-point it
        bridged = None
    if not final.is_success:
        if early is not None:
            early.leg_ended(req.call_id)
        await close_charging(session)
        await _notify(media, _sipfrag(final.status, final.reason_phrase), final=True)
        return
    adopted = early.adopt_far(req.call_id, final) if early is not None else None
    if adopted is not None:  # the early dialog of a reliable 18x: its CSeq and SDP origin go on
        adopted.dialog.on_response(req, final)
        adopted.record, adopted.ro = record, session
        c = adopted
    else:
        dialog = Dialog.from_uac(req, final, server.ep.local_contact(transport=transport))
        c = Side(server.ep, dialog, transport, Role.OUTGOING, record=record, ro=session)
    if session is not None:
        record.ro_session_id = session.session_id
    a = call.a
    if bridged is not None and early is not None and a is not None and a.alive:
        # Offer/answer was completed by the reliable 18x and our PRACK (RFC 3262 §5): nothing to re-INVITE.
        early.bridged = None
        c.ack(req)
    elif a is None or not a.alive or not final.body:
        c.ack(req)
        await _release(c, 'SIP;cause=488;text="No offer"' if not final.body else None, session)
        await _notify(media, _sipfrag(488 if not final.body else 487), final=True)
        return
    else:
        # RFC 3725 §4.2: the destination's offer goes to the customer in a re-INVITE, the answer in our ACK.
        async with call.relay_lock:
            reinvite, resp = await a.request("INVITE", a.sdp(final.body, final.content_type),
                                             "application/sdp", [("Allow", server.allow)])
            if not resp.is_success or not resp.body:
                c.ack(req)
                await _release(c, 'SIP;cause=488;text="Customer refused the media"', session)
                await _notify(media, _sipfrag(resp.status if not resp.is_success else 488), final=True)
                return
            a.ack(reinvite)
            c.ack(req, c.sdp(resp.body, resp.content_type), resp.content_type)
    record.answer_at = call.now()
    call.b = c
    call.attach(c)
    call.record.flow = Flow.OUTGOING
    call.record.disposition = Disposition.ANSWERED
    if session is not None:
        call.charged(session, c)
    call.mark_answered(session, c)
    time_own_leg(call, c, req, final)
    await _notify(media, _sipfrag(200), final=True)
    call.detach(media)
    if media.record is not None:
        media.record.end_at = call.now()
    await media.bye()
    log.info("outgoing_answered", call_id=call.invite.call_id, leg_call_id=req.call_id, to=str(destination))


async def _await_outgoing(call: Call, media: Side, handle: ClientTransactionHandle) -> SipResponse:
    ringing = False
    async for prov in handle.provisionals():
        if is_reliable(prov) and await _reliable_1xx(call, handle, prov) is Verdict.IGNORE:
            continue
        if prov.status in (180, 183) and not ringing:
            ringing = True
            await _notify(media, _sipfrag(prov.status, prov.reason_phrase), final=False)
    try:
        return await handle.final_response()
    except SipError:
        return handle.request.create_response(408)


async def _reliable_1xx(call: Call, handle: ClientTransactionHandle, prov: SipResponse) -> Verdict:
    """PRACK a reliable 18x of the outgoing leg (RFC 3262 §4).

    The INVITE carried no offer, so a reliable 18x with SDP carries the destination's offer and our PRACK
    must carry the answer (RFC 3262 §5): the customer gets the offer in a re-INVITE (third-party call
    control, RFC 3725 §4.2, as for the 200) and hears the destination's early media; its answer goes in
    the PRACK. Later 18x with SDP of other early dialogs are PRACKed without one."""
    early = call.early_dialogs()
    verdict, rack, far = early.far_reliable(handle.request, handle.transport, Role.OUTGOING, prov)
    if far is None or rack is None:
        return verdict
    body, content_type = b"", None
    a = call.a
    if prov.body and early.bridged is None and a is not None and a.alive:
        async with call.relay_lock:
            reinvite, resp = await a.request("INVITE", a.sdp(prov.body, prov.content_type), prov.content_type,
                                             [("Allow", call.server.allow)])
            if resp.is_success:
                a.ack(reinvite)
            if resp.is_success and resp.body:
                early.bridged = far
                body, content_type = far.side.sdp(resp.body, resp.content_type), resp.content_type
        log.info("outgoing_early_media", call_id=call.invite.call_id, leg_call_id=handle.request.call_id,
                 status=resp.status)
    await early.prack(far, rack, body, content_type)
    return verdict


async def _back_to_menu(call: Call, media: Side) -> None:
    """After the destination's early media, put the customer back on the menu's media (re-INVITE with the
    description media answered with; media keeps its view of the customer, whose address did not change)."""
    a = call.a
    if a is None or not a.alive or media.remote_sdp is None:
        return
    body, content_type = media.remote_sdp
    async with call.relay_lock:
        with contextlib.suppress(SipError):
            reinvite, resp = await a.request("INVITE", a.sdp(body, content_type), content_type,
                                             [("Allow", call.server.allow)])
            if resp.is_success:
                a.ack(reinvite)


async def _release(c: Side, reason: str | None, session: RoSession | None) -> None:
    """BYE an outgoing leg we cannot bridge and close its charging together: the CCR-T does not wait for the
    BYE's answer (Timer F when the destination is gone), as in :meth:`Call.teardown`."""
    await asyncio.gather(c.bye(reason), close_charging(session))
