"""The voicemail legs (flows A.6 and B): the caller's offer goes to media, media's answer to the caller.

Deposit: ``sip:vm-deposit@media;mailbox=<DID>`` with History-Info and Diversion recording why the call
left the DID (TS 24.604 §4.5.2.6.2). Access: ``sip:vm-access@media;mailbox=<DID>;auth=network`` when the
network-asserted identity is an alias of the DID (see media/README.md). Both are free by default; with
``voicemail_charging = "charged"`` they are authorised as terminating legs of the DID (TS 32.299).

Session timers (RFC 4028) as on a forwarded leg: the INVITE continues the caller's Session-Expires or asks
for ``[as] session_expires`` (§7.1), a ``422`` from media is retried once with its Min-SE (§7.3), and the
negotiation of :meth:`appserver.call.Call.answer_caller` then times both legs, so a dead caller or a dead
media leg ends the call (BYE with Reason, CCR-T, CDR) instead of waiting for media's RTP timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from appserver import legs
from appserver.call import Call
from appserver.cdr import Disposition, Flow
from appserver.diversion import DiversionCause, add_retarget, diversion_headers
from appserver.outleg import CANCEL_REASONS, OutLeg, charge, close_charging, connect, reject, release_late
from appserver.side import Role
from charging.client import ChargingRefused, RoleOfNode, RoSession
from secondnum.identity import tel_uri
from secondnum.log import get_logger
from secondnum.sip import Diversion, HistoryInfoEntry, SipError, SipURI, uri_destination

log = get_logger(__name__)


async def divert_to_voicemail(call: Call, cause: DiversionCause, history: list[HistoryInfoEntry],
                              parent: str) -> None:
    """Retarget the call from the DID to its mailbox for ``cause`` (RFC 7044 §9.3, RFC 5806 §3)."""
    if call.record.flow is not Flow.FORWARD:
        call.record.flow = Flow.VOICEMAIL_DEPOSIT
    call.record.diversion_reason = cause.reason
    uri = legs.media_uri(call.server.media_uri, "vm-deposit", call.record.did)
    history = add_retarget(history, parent, uri, cause)
    try:
        received = call.invite.diversion
    except SipError:
        received = []
    await to_media(call, uri, cause, history, diversion_headers(received, call.invite.uri, cause))


async def to_media(call: Call, uri: SipURI, cause: DiversionCause | None,
                   history: Sequence[HistoryInfoEntry], diversion: Sequence[Diversion]) -> None:
    """INVITE media with the caller's offer; answer the caller with media's answer."""
    server = call.server
    if call.inc.cancelled.is_set():
        call.record.disposition = Disposition.CANCELLED
        call.release("caller-cancel", None)
        return
    session: RoSession | None = None
    if server.settings.voicemail_charging == "charged":
        try:
            session = await charge(call, RoleOfNode.TERMINATING, _calling(call), tel_uri(call.record.did),
                                   "voicemail")
        except ChargingRefused as exc:
            reject(call, exc.sip_status, None, [("Reason", exc.reason)])
            return
    media_dest, media_transport = uri_destination(server.media_uri, "udp")
    timer = legs.session_timer_headers(call.invite, server.settings.timer_config)  # RFC 4028 §7.1
    req = legs.voicemail_invite(
        ruri=uri, caller_from=call.invite.from_, caller_pai=call.isc.asserted,
        contact=server.ep.local_contact(transport=media_transport), call_id=legs.new_call_id(server.host),
        pcv=legs.routed_charging_vector(call.isc.charging_vector, server.settings.domain),
        history=history, diversion=diversion,
        body=call.invite.body, content_type=call.invite.content_type if call.invite.body else None,
        privacy=call.record.privacy, timer=timer)
    record = call.record.leg(Role.VOICEMAIL, req.call_id, req.raw_uri, str(req.from_.uri),
                             req.headers.get("p-asserted-identity") or "")
    leg = OutLeg(req, server.ep.request(req, media_dest, media_transport), record)
    call.leg_sent()
    retried = False
    while True:
        cancelled = asyncio.create_task(call.inc.cancelled.wait())
        final_task = asyncio.create_task(leg.handle.final_response())
        try:
            await asyncio.wait({cancelled, final_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancelled.cancel()
        if not final_task.done():
            final_task.cancel()
            server.ep.cancel(leg.handle, CANCEL_REASONS[487])
            call.record.disposition = Disposition.CANCELLED
            call.release("caller-cancel", None)
            await close_charging(session)
            server.spawn(release_late(call, leg))
            return
        try:
            leg.final = final_task.result()
        except SipError:
            leg.final = leg.request.create_response(408)
        retry = legs.retried_after_422(leg.request, leg.final) \
            if leg.final.status == 422 and not retried else None
        if retry is None:
            break
        # RFC 4028 §7.3: media's Min-SE is above the interval asked for: once more with it.
        log.info("media_retried_422", call_id=call.invite.call_id, session_expires=retry.headers.get(
            "session-expires"))
        retried, leg.request, leg.final = True, retry, None
        leg.handle = server.ep.request(retry, media_dest, media_transport)
    record.status = leg.final.status
    if not leg.final.is_success:
        await close_charging(session)
        log.warning("media_refused", call_id=call.invite.call_id, status=leg.final.status)
        status = leg.final.status if leg.final.status not in (401, 407, 408) else 500
        reject(call, status)
        return
    access = call.record.flow is Flow.VOICEMAIL_ACCESS
    call.record.disposition = Disposition.VOICEMAIL_ACCESS if access else Disposition.VOICEMAIL
    if await connect(call, leg, Role.VOICEMAIL, session):
        log.info("media_answered", call_id=call.invite.call_id, service=uri.user,
                 cause=cause.reason if cause else "")


def _calling(call: Call) -> str:
    return str(call.isc.asserted.uri) if call.isc.asserted is not None else str(call.invite.from_.uri)
