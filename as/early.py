"""The early phase of a call across the B2BUA: reliable provisional responses and early UPDATE.

RFC 3262 (100rel/PRACK) and RFC 3311 (UPDATE), as VoLTE uses them with preconditions (RFC 3312, TS 24.229
§5.7.5, §6.1): the far side's reliable 18x with SDP is relayed reliably to the caller (our own RSeq on the
caller's side), the caller's PRACK is relayed as the PRACK of the far side's 18x (bodies both ways), and
UPDATEs in the early dialogs pass in both directions.

* Each far early dialog whose 18x carries a session description is *linked* to an early dialog of its own
  towards the caller (a To tag of the AS): the first one gets the INVITE's tag (the one of our 181), each
  later one (simultaneous ringing, forking downstream) a fresh tag. The caller thus sees the far early
  dialogs as a forking proxy would show them (RFC 3261 §13.2.2.4, §19.3) and picks the early media to
  render itself (RFC 3960 §3); one caller early dialog never carries two far sides' offer/answer. PRACKs
  and UPDATEs of a caller early dialog go to its linked far dialog and back.
* Reliable 18x (RFC 3262) are relayed reliably, with our own RSeq space per caller early dialog (the caller
  checks RSeq per To tag, §4); the caller's PRACK is relayed as the PRACK of the far 18x. Other reliable
  1xx (no SDP, or a far dialog already linked) are PRACKed by the AS itself.
* Unreliable 18x with SDP (early media, RFC 3261 §13.3.1.1, RFC 3960 §2 gateway model, e.g. a callee or
  a PSTN gateway without 100rel) are relayed unreliably in the linked caller dialog; reliably when the
  caller *requires* 100rel (RFC 3262 §3: then every 1xx we send is reliable; its PRACK is answered by the
  AS). An offerless INVITE gets no such relay: an unreliable 18x cannot carry the offer (§13.2.1).
* A far side answering without an early relay gets the INVITE's tag when it is free, else a fresh one.
* Early dialogs are registered in the endpoint's dialog table (PRACK/UPDATE are in-dialog requests) and
  reused when the call is answered (CSeq and SDP origin continuity); the others are dropped at the end.
* The AS's own 181/180 are reliable only when the caller requires 100rel. The 180 of a ringing far dialog
  goes in the caller early dialog linked to it; for a far dialog without one, in the INVITE's dialog while
  no other far dialog holds it, else in a fresh one that its 2xx then uses too (one caller early dialog per
  far early dialog, as above).
* 199 Early Dialog Terminated (RFC 6228): when a far early dialog linked to a caller early dialog ends with
  a non-2xx (or times out) while the caller's final response does not follow at once (other targets still
  ring, or voicemail answers next in a dialog of its own), a caller that lists ``199`` in Supported/Require
  gets a 199 in that dialog (same To tag, ``Reason`` = the far final response, no body), reliably when that
  dialog uses 100rel (RFC 6228 §8); never after the final response, never for the answered dialog, never
  twice. The dialog then takes no more requests (481) and no 2xx goes in it.

Only calls that use 100rel or get early media create this object.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from appserver.call import relayed_headers
from appserver.side import Role, Side
from secondnum.log import get_logger
from secondnum.sip import (
    Dialog,
    DialogState,
    IncomingRequest,
    SipError,
    SipParseError,
    SipRequest,
    SipResponse,
    new_tag,
)
from secondnum.sip.provisional import ReliableResponder
from secondnum.sip.reliable import OPTION_100REL, PrackMatch, RAck, ReliableReceiver, Verdict, has_option

if TYPE_CHECKING:
    from appserver.call import Call

log = get_logger(__name__)

# Headers of a far 18x that are per hop (ours are set by the responder) or not relayed as they stand.
_HOP_BY_HOP = frozenset({"require", "supported", "rseq"})
PRACK_TIMEOUT_REASON = 'SIP;cause=500;text="No PRACK"'
OPTION_199 = "199"  # RFC 6228 option tag


FarKey = tuple[str, str]
"""A far early dialog: (the leg's Call-ID, the far side's To tag)."""


class CallerTags:
    """Which early dialog towards the caller (a To tag of the AS) shows which far early dialog (sans-IO).

    A forking proxy shows each far early dialog with its own To tag (RFC 3261 §13.2.2.4, §19.3); the AS
    does the same: the INVITE's tag (the one of our 181) goes to the first far dialog whose session
    description is relayed, every other far dialog that shows something gets a fresh tag, and a far
    dialog keeps its tag from its first 180 or 18x to its 2xx. The INVITE's tag also carries our 180 for
    a far dialog that has no tag of its own while no far dialog holds it. A tag ended by a 199 (RFC 6228)
    or holding another far dialog's session description is never given to an answer.
    """

    __slots__ = ("_fresh", "invite_tag", "linked", "shown", "terminated")

    def __init__(self, invite_tag: str, fresh: Callable[[], str] = new_tag) -> None:
        self.invite_tag = invite_tag
        self._fresh = fresh
        self.shown: dict[FarKey, str] = {}
        """Far dialog -> the caller tag its 18x (relayed) or our 180 for it went in (INVITE's tag for
        an unlinked far dialog's 180 is not recorded: it may belong to another far dialog later)."""
        self.linked: set[str] = set()
        """Caller tags carrying a far dialog's session description (one each, RFC 3264)."""
        self.terminated: set[str] = set()
        """Caller tags ended by our 199 (RFC 6228)."""

    def _invite_tag_free(self) -> bool:
        return self.invite_tag not in self.linked and self.invite_tag not in self.terminated

    def link(self, far: FarKey) -> str:
        """The caller tag for ``far``'s session description (its first 18x with SDP relayed)."""
        tag = self.shown.get(far)
        if tag is None:
            tag = self.shown[far] = self.invite_tag if self._invite_tag_free() else self._fresh()
        self.linked.add(tag)
        return tag

    def ringing(self, far: FarKey) -> str:
        """The caller tag for our 180 on behalf of ``far``."""
        tag = self.shown.get(far)
        if tag is None:
            if self._invite_tag_free():
                return self.invite_tag
            tag = self.shown[far] = self._fresh()
        return tag

    def answer(self, far: FarKey) -> str:
        """The caller tag for the 2xx when ``far`` answered (``("", "")``: voicemail, no far dialog)."""
        tag = self.shown.get(far)
        if tag is not None and tag not in self.terminated:
            return tag
        return self.invite_tag if self._invite_tag_free() else self._fresh()

    def ended(self, leg_call_id: str) -> list[str]:
        """The caller tags shown for the far dialogs of a leg that ended (forgotten; linked tags stay
        taken)."""
        keys = [key for key in self.shown if key[0] == leg_call_id]
        return [self.shown.pop(key) for key in keys]


class FarEarly:
    """One early dialog of a far side (UAC side of the AS), created by a reliable 18x or early media;
    ``caller_tag`` is the caller early dialog it is linked to (``None``: not relayed)."""

    __slots__ = ("caller_tag", "leg_call_id", "side")

    def __init__(self, leg_call_id: str, side: Side) -> None:
        self.leg_call_id = leg_call_id
        self.side = side
        self.caller_tag: str | None = None


class EarlyDialogs:
    """Early dialogs of one call (see the module docstring)."""

    def __init__(self, call: Call) -> None:
        self.call = call
        invite = call.invite
        self.caller_100rel = has_option(invite, OPTION_100REL)
        self.caller_requires_100rel = "require" in invite.headers and OPTION_100REL in invite.require
        self.caller_199 = has_option(invite, OPTION_199)
        self.responders: dict[str, ReliableResponder] = {}  # per caller early dialog (To tag)
        self.caller_sides: dict[str, Side] = {}
        self.far: dict[tuple[str, str], FarEarly] = {}
        self.receivers: dict[str, ReliableReceiver] = {}
        self.pending: dict[tuple[str, int], tuple[FarEarly, RAck]] = {}  # (caller tag, our RSeq)
        self.linked: dict[str, FarEarly] = {}  # caller early dialog tag -> the far early dialog behind it
        self.tags = CallerTags(call.inc.to_tag)
        # Flow C: the far early dialog whose offer the customer answered (third-party call control).
        self.bridged: FarEarly | None = None
        self.lock = asyncio.Lock()
        self.prack_relays: set[asyncio.Future[None]] = set()  # caller PRACKs being relayed to a far side
        self.tasks: set[asyncio.Task[None]] = set()

    # --- towards the caller -----------------------------------------------------------------------------
    def send_own(self, status: int, reason: str | None = None, tag: str | None = None) -> None:
        """A 1xx the AS itself sends (181, 180) in caller early dialog ``tag`` (default: the INVITE's):
        reliable only when the caller requires 100rel."""
        inc = self.call.inc
        if inc.final_sent:
            return
        tag = tag or inc.to_tag
        if not self.caller_requires_100rel:
            inc.respond(status, reason, to_tag=tag)
            return
        try:
            self._caller_side(tag)
        except SipError as exc:  # e.g. an INVITE without Contact: no early dialog to PRACK in
            log.warning("caller_early_dialog_unusable", call_id=inc.request.call_id, error=str(exc))
            inc.respond(status, reason, to_tag=tag)
            return
        self._responder(tag).send(inc.create_response(status, reason, to_tag=tag))

    def ringing_tag(self, leg_call_id: str, far_tag: str) -> str:
        """The caller early dialog for the AS's 180 on behalf of far dialog (``leg_call_id``, ``far_tag``)
        (:meth:`CallerTags.ringing`): the far dialog's own, so its 2xx later goes in the same one."""
        return self.tags.ringing((leg_call_id, far_tag))

    def _responder(self, tag: str) -> ReliableResponder:
        responder = self.responders.get(tag)
        if responder is None:
            t1 = self.call.server.ep.layer.timers.t1
            responder = self.responders[tag] = ReliableResponder(self.call.inc, t1, self._prack_timeout)
        return responder

    def _prack_timeout(self, resp: SipResponse) -> None:
        """RFC 3262 §3: no PRACK within 64*T1: the INVITE is rejected with a 5xx; releasing the call
        CANCELs the far legs still ringing (BYE for one already answered) and closes their Ro sessions."""
        call = self.call
        if not call.inc.final_sent:
            call.inc.respond(500, "No PRACK", headers=[("Reason", PRACK_TIMEOUT_REASON)])
            call.record.status = 500
        call.release("prack-timeout", PRACK_TIMEOUT_REASON)

    def _caller_side(self, tag: str) -> Side:
        side = self.caller_sides.get(tag)
        if side is None:
            call = self.call
            dialog = Dialog.from_uas(call.invite, tag, call.server.ep.local_contact(
                transport=call.inc.transport), DialogState.EARLY)
            side = Side(call.server.ep, dialog, call.inc.transport, Role.CALLER)
            self.caller_sides[tag] = side
            call.attach(side)
        return side

    # --- from the far sides -----------------------------------------------------------------------------
    def far_reliable(self, request: SipRequest, transport: str, role: Role,
                     resp: SipResponse) -> tuple[Verdict, RAck | None, FarEarly | None]:
        """Classify a far leg's 1xx (RFC 3262 §4); a new reliable one gets its far early dialog registered.

        ``IGNORE`` = a retransmission or out of order: drop it. ``NEW`` = reliable: PRACK it with the RAck.
        ``UNRELIABLE`` = nothing to do here."""
        receiver = self.receivers.get(request.call_id)
        if receiver is None:
            receiver = self.receivers[request.call_id] = ReliableReceiver(request.cseq.seq)
        try:
            verdict, rack = receiver.receive(resp)
        except SipParseError as exc:
            log.warning("far_bad_rseq", call_id=request.call_id, error=str(exc))
            return Verdict.IGNORE, None, None
        if verdict is not Verdict.NEW or rack is None:
            return verdict, None, None
        far = self._far_early(request, transport, role, resp)
        if far is None:
            return Verdict.IGNORE, None, None
        return verdict, rack, far

    def far_provisional(self, request: SipRequest, transport: str, role: Role,
                        resp: SipResponse) -> tuple[Verdict, bool]:
        """A forwarded leg's reliable 1xx (flow A): (verdict, relayed to the caller with its body).

        The first reliable 18x with SDP of each far early dialog goes to the caller in the caller early
        dialog linked to it (reliably, PRACKed when the caller PRACKs it); other reliable 1xx are PRACKed
        at once without a body."""
        verdict, rack, far = self.far_reliable(request, transport, role, resp)
        if far is None or rack is None:
            return verdict, False
        if resp.body and far.caller_tag is None and not self.call.inc.final_sent:
            try:
                if self.caller_100rel:
                    self._relay(far, resp, rack)
                    return verdict, True
                if self.call.invite.body:  # (an offer in the 18x would need the caller's PRACK)
                    self._relay(far, resp, None)  # a caller without 100rel: unreliable, the AS PRACKs
                    self._spawn(self.prack(far, rack, b"", None))
                    return verdict, True
            except SipError as exc:  # the caller's early dialog cannot exist (e.g. no Contact)
                log.warning("early_relay_failed", call_id=self.call.invite.call_id, error=str(exc))
        # Not relayed (no body, this far dialog already relayed its session description).
        self._spawn(self.prack(far, rack, b"", None))
        return verdict, False

    def far_unreliable(self, request: SipRequest, transport: str, role: Role, resp: SipResponse) -> bool:
        """A forwarded leg's unreliable 18x with SDP (early media): relayed in its linked caller early
        dialog (module docstring); True when relayed."""
        call = self.call
        if call.inc.final_sent or not call.invite.body or not resp.to.tag:
            return False  # offerless INVITE: no offer in an unreliable 18x (RFC 3261 §13.2.1)
        far = self._far_early(request, transport, role, resp)
        if far is None:
            return False
        try:
            self._relay(far, resp, None)
        except SipError as exc:
            log.warning("early_relay_failed", call_id=call.invite.call_id, error=str(exc))
            return False
        return True

    def _far_early(self, request: SipRequest, transport: str, role: Role,
                   resp: SipResponse) -> FarEarly | None:
        key = (request.call_id, resp.to.tag or "")
        far = self.far.get(key)
        if far is None:
            ep = self.call.server.ep
            try:
                dialog = Dialog.from_uac(request, resp, ep.local_contact(transport=transport))
            except SipError as exc:
                log.warning("far_early_dialog_unusable", call_id=request.call_id, error=str(exc))
                return None
            far = self.far[key] = FarEarly(request.call_id, Side(ep, dialog, transport, role))
            self.call.attach(far.side)
        return far

    def _caller_side_for(self, far: FarEarly) -> Side:
        """The caller early dialog linked to ``far``, linked now if needed: the INVITE's tag while no far
        dialog holds it, else a fresh one. Raises :class:`SipError` (nothing linked) when the caller's
        INVITE cannot found a dialog (e.g. no Contact)."""
        tag = far.caller_tag
        if tag is not None:
            return self._caller_side(tag)
        tag = self.tags.link((far.leg_call_id, far.side.dialog.remote_tag))
        side = self._caller_side(tag)
        far.caller_tag = tag
        self.linked[tag] = far
        return side

    def _relay(self, far: FarEarly, resp: SipResponse, rack: RAck | None) -> None:
        """The far side's 18x with SDP to the caller, in the caller early dialog linked to ``far``.

        ``rack`` set: the far 18x was reliable and the caller supports 100rel: reliably, and the caller's
        PRACK becomes the PRACK of the far 18x. Otherwise unreliably, unless the caller requires 100rel."""
        call = self.call
        side = self._caller_side_for(far)
        tag = side.dialog.local_tag
        headers = [(n, v) for n, v in relayed_headers(resp) if n not in _HOP_BY_HOP]
        others = [t for t in resp.require if t != OPTION_100REL] if "require" in resp.headers else []
        if others:
            headers.append(("Require", ", ".join(others)))
        headers.append(("Allow", call.server.allow))
        body = side.sdp(resp.body, resp.content_type)
        out = call.inc.create_response(resp.status, resp.reason_phrase, headers=headers, body=body,
                                       content_type=resp.content_type if body else None, to_tag=tag)
        if rack is None and not self.caller_requires_100rel:
            call.inc.send(out)
            log.info("early_media_relayed", call_id=call.invite.call_id, leg_call_id=far.leg_call_id,
                     status=resp.status, to_tag=tag)
            return
        self._responder(tag).send(out)  # stamps the RSeq, even when queued behind an outstanding 1xx
        rseq_value = int(out.headers.get("rseq") or 0)
        if rack is not None:
            self.pending[(tag, rseq_value)] = (far, rack)
        log.info("early_relayed", call_id=call.invite.call_id, leg_call_id=far.leg_call_id,
                 status=resp.status, rseq=rseq_value, to_tag=tag)

    async def prack(self, far: FarEarly, rack: RAck, body: bytes,
                     content_type: str | None) -> SipResponse | None:
        """PRACK a far reliable 18x in its early dialog (RFC 3262 §4), with the caller's PRACK body."""
        if not far.side.alive:
            return None
        try:
            _, resp = await far.side.request("PRACK", body, content_type if body else None,
                                             [("RAck", str(rack))])
        except SipError as exc:
            log.info("far_prack_failed", leg_call_id=far.leg_call_id, error=str(exc))
            return None
        return resp

    def leg_ended(self, leg_call_id: str, final: SipResponse | None = None, notify: bool = False) -> None:
        """A far leg got a final non-2xx ``final`` (``None``: timed out): its early dialogs are gone. With
        ``notify`` (the caller's final response does not follow at once) the caller early dialogs the AS
        showed for them get a 199 (RFC 6228, module docstring)."""
        for key, far in list(self.far.items()):
            if key[0] == leg_call_id:
                far.side.dialog.terminate()
                self.call.detach(far.side)
                del self.far[key]
        for tag in self.tags.ended(leg_call_id):
            if notify:
                self._terminated(tag, final)

    def _terminated(self, tag: str, final: SipResponse | None) -> None:
        """RFC 6228: 199 Early Dialog Terminated in caller early dialog ``tag`` (as a forking proxy sends it
        for a branch whose final response it does not forward)."""
        call = self.call
        inc = call.inc
        if (not self.caller_199 or tag in self.tags.terminated or inc.final_sent or inc.cancelled.is_set()
                or call.ended.is_set()):
            return
        self.tags.terminated.add(tag)
        status, text = (final.status, final.reason_phrase) if final is not None else (408, "Request Timeout")
        text = text.replace("\\", "").replace('"', "")
        resp = inc.create_response(199, "Early Dialog Terminated", to_tag=tag,
                                   headers=[("Reason", f'SIP;cause={status};text="{text}"')])
        # Reliable when the dialog's 18x were (RFC 6228 §8; RFC 3262 §3 when the caller requires 100rel).
        reliable = tag in self.responders or self.caller_requires_100rel
        if reliable:
            try:
                self._caller_side(tag)  # its PRACK is an in-dialog request of that early dialog
            except SipError:
                reliable = False
        if reliable:
            self._responder(tag).send(resp)
        else:
            inc.send(resp)
        log.info("early_dialog_terminated", call_id=call.invite.call_id, to_tag=tag, cause=status,
                 reliable=reliable)

    # --- in-dialog requests of early dialogs --------------------------------------------------------------
    async def on_request(self, inc: IncomingRequest, side: Side) -> None:
        method = inc.request.method
        if method == "PRACK":
            if side.role is Role.CALLER:
                await self._caller_prack(inc, side)
            else:
                inc.respond(481)  # we never send reliable 1xx towards a far side
            return
        if method == "UPDATE":
            await self._update(inc, side)
            return
        if method == "BYE" and side.role is Role.CALLER:
            # RFC 3261 §15: the caller may end an early dialog with BYE; treat it like its CANCEL.
            inc.respond(200)
            self.call.release("bye-caller-early", None)
            return
        if method == "BYE":
            inc.respond(200)
            side.forget()
            return
        inc.respond(481 if method != "OPTIONS" else 200)

    async def _caller_prack(self, inc: IncomingRequest, side: Side) -> None:
        tag = side.dialog.local_tag
        responder = self.responders.get(tag)
        if responder is None:
            inc.respond(481)
            return
        match, acked = responder.match(inc)
        if match is not PrackMatch.ACKED or acked is None:
            return
        entry = self.pending.pop((tag, int(acked.headers.get("rseq") or 0)), None)
        if entry is None:  # our own 181/180, or early media the far side sent unreliably
            inc.respond(200)
            return
        far, rack = entry
        req = inc.request
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.prack_relays.add(done)
        try:
            resp = await self.prack(far, rack, far.side.sdp(req.body, req.content_type), req.content_type)
            # §3: a PRACK that matches MUST get a 2xx, whatever became of the far side meanwhile.
            if resp is not None and resp.is_success:
                back = side.sdp(resp.body, resp.content_type)
                inc.respond(200, headers=relayed_headers(resp), body=back,
                            content_type=resp.content_type if back else None)
            else:
                inc.respond(200)
        finally:
            self.prack_relays.discard(done)
            done.set_result(None)

    async def _update(self, inc: IncomingRequest, side: Side) -> None:
        """RFC 3311 in the early dialog, relayed to the linked early dialog.

        Relays are serialised: an UPDATE from one side waits until the other side's relayed UPDATE was
        answered, so neither party sees a request while its own offer is pending at the AS; a true glare
        is then settled by the parties themselves (491, RFC 3311 §5.2) and that answer relayed."""
        if side.role is Role.CALLER and side.dialog.local_tag in self.tags.terminated:
            inc.respond(481)  # ended by our 199 (RFC 6228)
            return
        peer = self._peer(side)
        if peer is None or not peer.alive:
            # Not the relayed early dialog: nobody to negotiate with (500 + Retry-After keeps the dialog).
            inc.respond(500, headers=[("Retry-After", "1"), ("Warning", '399 - "Early dialog not relayed"')])
            return
        req = inc.request
        async with self.lock:
            if not peer.alive:
                inc.respond(481)
                return
            body = peer.sdp(req.body, req.content_type)
            _, resp = await peer.request("UPDATE", body, req.content_type if body else None,
                                         relayed_headers(req))
            back = side.sdp(resp.body, resp.content_type)
            inc.respond(resp.status, resp.reason_phrase, headers=relayed_headers(resp), body=back,
                        content_type=resp.content_type if back else None)

    def _peer(self, side: Side) -> Side | None:
        bridged = self.bridged
        if bridged is not None and side is bridged.side:
            return self.call.a
        if side.role is Role.CALLER:
            far = self.linked.get(side.dialog.local_tag)
            return far.side if far is not None else None
        for far in self.linked.values():
            if far.side is side and far.caller_tag is not None:
                return self.caller_sides.get(far.caller_tag)
        return None

    # --- answer -------------------------------------------------------------------------------------------
    def answer_tag(self, leg_call_id: str, far_tag: str) -> str:
        """Our To tag for the caller's 2xx when far dialog (``leg_call_id``, ``far_tag``) answered: its
        linked caller early dialog; else the INVITE's tag, unless that one carries another far side's early
        offer/answer (then a dialog of its own, so the caller never sees two answers in one dialog)."""
        return self.tags.answer((leg_call_id, far_tag))

    def adopt_caller(self, tag: str) -> Side | None:
        """The caller's early dialog ``tag`` becoming the confirmed caller side (CSeq continuity)."""
        return self.caller_sides.pop(tag, None)

    def adopt_far(self, leg_call_id: str, final: SipResponse) -> Side | None:
        """The far early dialog answered by ``final`` (its 2xx), to be the confirmed far side."""
        far = self.far.pop((leg_call_id, final.to.tag or ""), None)
        return far.side if far is not None else None

    async def settled(self, tag: str, timeout: float) -> bool:
        """RFC 3262 §3: no 2xx in caller early dialog ``tag`` while a reliable 1xx with a session
        description is unacknowledged in it; and not before the caller's PRACKs being relayed were answered
        (their offer/answer precedes the 2xx's). Other early dialogs end with the 2xx (§13.2.2.4)."""
        responder = self.responders.get(tag)
        ok = True if responder is None else await responder.settled(timeout)
        if self.prack_relays:
            _, pending = await asyncio.wait(list(self.prack_relays), timeout=timeout)
            ok = ok and not pending
        return ok

    def final_sent(self) -> None:
        for responder in self.responders.values():
            responder.final_sent()

    def close(self) -> None:
        """The call ends: forget early dialogs nobody adopted, stop retransmissions and PRACK relays."""
        self.final_sent()
        for responder in self.responders.values():
            responder.on_timeout = None  # drop the bound method: no responder <-> early cycle
        for side in [*self.caller_sides.values(), *(f.side for f in self.far.values())]:
            side.dialog.terminate()
            self.call.detach(side)
        self.caller_sides.clear()
        self.far.clear()
        self.linked.clear()
        self.tags.shown.clear()
        self.pending.clear()
        for task in self.tasks:
            task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        async def run() -> None:
            with contextlib.suppress(Exception):
                await coro

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
