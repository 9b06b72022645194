"""What every setup flow shares: an outgoing leg in progress, charging it, refusing the call, and cleaning up.

RFC 3261 §9.1 (CANCEL and the 2xx that may cross it), RFC 3326 (Reason in CANCEL/BYE), TS 32.299 §6.3.2
(CCR-Initial before a chargeable leg is placed), RFC 4006 §8.14 (failure handling is the Ro client's).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Sequence

from appserver.call import Call
from appserver.cdr import Disposition, LegRecord
from appserver.side import Role, Side
from charging.client import ChargingRequest, RoleOfNode, RoSession
from secondnum.log import get_logger
from secondnum.sip import ClientTransactionHandle, Dialog, SipError, SipRequest, SipResponse

log = get_logger(__name__)

CANCEL_REASONS = {
    200: 'SIP;cause=200;text="Call completed elsewhere"',
    408: 'SIP;cause=408;text="No answer"',
    487: 'SIP;cause=487;text="Request terminated"',
    500: 'SIP;cause=500;text="No PRACK"',  # the caller never PRACKed our reliable 18x (RFC 3262 §3)
    600: 'SIP;cause=600;text="Busy everywhere"',
}


@dataclasses.dataclass(slots=True)
class OutLeg:
    """An initial INVITE the AS sent, until it is answered or ends."""

    request: SipRequest
    handle: ClientTransactionHandle
    record: LegRecord
    history_index: str = ""
    task: asyncio.Task[None] | None = None
    final: SipResponse | None = None


def reject(call: Call, status: int, reason: str | None = None,
           headers: Sequence[tuple[str, str]] = ()) -> None:
    """Answer the caller's INVITE with a final error (once) and end the call."""
    if not call.inc.final_sent:
        call.inc.respond(status, reason, headers=headers)
    call.record.status = status
    if call.record.disposition is Disposition.FAILED and status in (403, 404, 603):
        call.record.disposition = Disposition.REJECTED
    call.release(f"rejected-{status}", None)


async def charge(call: Call, role: RoleOfNode, calling: str, called: str, leg: str) -> RoSession | None:
    """CCR-Initial for a leg charged to the DID; raises :class:`charging.client.ChargingRefused`."""
    ro = call.server.ro
    if ro is None:
        return None
    icid = call.isc.charging_vector.icid_value if call.isc.charging_vector else call.record.icid
    request = ChargingRequest(subscription_e164=call.record.did, role_of_node=role, calling=calling,
                              called=called, icid=icid, requested_party=None, sip_method="INVITE")
    session = await ro.start_session(request, on_release=call.on_ro_release)
    log.info("ro_session_started", call_id=call.invite.call_id, session=session.session_id, leg=leg,
             role=role.name, unmetered=session.unmetered)
    return session


async def close_charging(session: RoSession | None) -> None:
    """CCR-Termination with no used units for a leg that was never answered."""
    if session is not None:
        try:
            await session.terminate(0)
        except Exception:
            log.exception("ccr_t_failed", session=session.session_id)


async def release_late(call: Call, leg: OutLeg) -> None:
    """A leg answered after we stopped wanting it: ACK and BYE it (RFC 3261 §9.1 race, §16.7)."""
    try:
        final = leg.final or await leg.handle.final_response()
    except SipError:
        return
    if not final.is_success:
        return
    with contextlib.suppress(SipError):
        contact = call.server.ep.local_contact(transport=leg.handle.transport)
        side = Side(call.server.ep, Dialog.from_uac(leg.request, final, contact), leg.handle.transport,
                    Role.FORWARD)
        side.ack(leg.request)
        await side.bye('SIP;cause=200;text="Call completed elsewhere"')


async def connect(call: Call, leg: OutLeg, role: Role, session: RoSession | None) -> bool:
    """The far side answered: make it side ``b``, answer the caller with its body, ACK both (§13.2.2.4).

    With the offer in the caller's INVITE the far side is ACKed at once; with an offerless INVITE the far
    side's 200 carried the offer, so its ACK waits for the caller's answer in the caller's ACK.
    """
    final = leg.final
    assert final is not None and final.is_success
    transport = leg.handle.transport
    early = call.early.adopt_far(leg.request.call_id, final) if call.early is not None else None
    if early is not None:
        # The early dialog of a reliable 18x (RFC 3262): same dialog, its CSeq and SDP origin go on.
        early.dialog.on_response(leg.request, final)
        early.record, early.ro = leg.record, session
        b = early
    else:
        dialog = Dialog.from_uac(leg.request, final, call.server.ep.local_contact(transport=transport))
        b = Side(call.server.ep, dialog, transport, role, record=leg.record, ro=session)
    call.b = b
    call.attach(b)
    if final.body:
        b.remote_sdp = (final.body, final.content_type)
    leg.record.answer_at = call.now()
    if session is not None:
        leg.record.ro_session_id = session.session_id
        call.charged(session, b)
    offer_in_invite = bool(call.invite.body)
    if offer_in_invite or call.inc.cancelled.is_set() or call.inc.final_sent:
        b.ack(leg.request)
    if call.inc.cancelled.is_set() or call.inc.final_sent:
        call.release("caller-cancel", 'SIP;cause=487;text="Caller cancelled"')
        return False
    if not await call.answer_caller(final, leg.request.call_id, leg.request):
        return False
    if not offer_in_invite:
        ack = await call.inc.wait_ack()
        body = b.sdp(ack.body, ack.content_type)
        b.ack(leg.request, body, ack.content_type if body else None)
    call.mark_answered(session, b)
    return True
