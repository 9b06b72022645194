"""Flow C: the customer's outgoing call from the voicemail menu, placed by the AS on behalf of the DID.

Media sends REFER inside the vm-access dialog (RFC 3515 §2.4); the AS answers 202, reports progress with
NOTIFY ``message/sipfrag`` (RFC 3515 §2.4.4-§2.4.5), authorises the call as an originating call of the DID
(TS 32.299, Role-Of-Node ORIGINATING), sends it to the S-CSCF with ``orig`` on the Route and the DID as
P-Asserted-Identity (TS 24.229 §5.7.3), bridges the customer with a re-INVITE (third-party call control,
RFC 3725 §4.2) and releases the media leg. A refusal by the OCS (4012 -> 402, 4010 -> 403) goes back to
media as the sipfrag status, so media can say so and offer the menu again.
"""

from __future__ import annotations

import asyncio
import contextlib

from appserver import legs
from appserver.call import Call
from appserver.cdr import Disposition, Flow
from appserver.outleg import CANCEL_REASONS, OutLeg, charge, close_charging, release_late
from appserver.side import Role, Side
from charging.client import ChargingRefused, RoleOfNode
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
    record = call.record.leg(Role.OUTGOING, "", str(destination), tel_uri(call.record.did),
                             tel_uri(call.record.did))
    try:
        session = await charge(call, RoleOfNode.ORIGINATING, tel_uri(call.record.did), str(destination),
                               "outgoing")
    except ChargingRefused as exc:
        record.status = exc.sip_status
        log.info("outgoing_refused_by_ocs", call_id=call.invite.call_id, result=exc.result_code)
        await _notify(media, _sipfrag(exc.sip_status), final=True)
        return
    req = legs.outgoing_invite(destination=destination, did=call.record.did, scscf=server.scscf_uri,
                               contact=server.ep.local_contact(transport=server.scscf_transport),
                               call_id=legs.new_call_id(server.host), domain=server.settings.domain)
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
    if not final.is_success:
        await close_charging(session)
        await _notify(media, _sipfrag(final.status, final.reason_phrase), final=True)
        return
    dialog = Dialog.from_uac(req, final, server.ep.local_contact(transport=transport))
    c = Side(server.ep, dialog, transport, Role.OUTGOING, record=record, ro=session)
    if session is not None:
        record.ro_session_id = session.session_id
    a = call.a
    if a is None or not a.alive or not final.body:
        c.ack(req)
        await c.bye('SIP;cause=488;text="No offer"' if not final.body else None)
        await close_charging(session)
        await _notify(media, _sipfrag(488 if not final.body else 487), final=True)
        return
    # RFC 3725 §4.2: the destination's offer goes to the customer in a re-INVITE, the answer in our ACK.
    async with call.relay_lock:
        reinvite, resp = await a.request("INVITE", a.sdp(final.body, final.content_type), "application/sdp",
                                         [("Allow", server.allow)])
        if not resp.is_success or not resp.body:
            c.ack(req)
            await c.bye('SIP;cause=488;text="Customer refused the media"')
            await close_charging(session)
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
    await _notify(media, _sipfrag(200), final=True)
    call.detach(media)
    if media.record is not None:
        media.record.end_at = call.now()
    await media.bye()
    log.info("outgoing_answered", call_id=call.invite.call_id, leg_call_id=req.call_id, to=str(destination))


async def _await_outgoing(call: Call, media: Side, handle: ClientTransactionHandle) -> SipResponse:
    ringing = False
    async for prov in handle.provisionals():
        if prov.status in (180, 183) and not ringing:
            ringing = True
            await _notify(media, _sipfrag(prov.status, prov.reason_phrase), final=False)
    try:
        return await handle.final_response()
    except SipError:
        return handle.request.create_response(408)
