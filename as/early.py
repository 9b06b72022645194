"""The early phase of a call across the B2BUA: reliable provisional responses and early UPDATE.

RFC 3262 (100rel/PRACK) and RFC 3311 (UPDATE), as VoLTE uses them with preconditions (RFC 3312, TS 24.229
§5.7.5, §6.1): the far side's reliable 18x with SDP is relayed reliably to the caller (our own RSeq on the
caller's side), the caller's PRACK is relayed as the PRACK of the far side's 18x (bodies both ways), and
UPDATEs in the early dialogs pass in both directions.

* The caller sees one early dialog per To tag the AS uses. The far early dialog whose session description
  reached the caller is *the relayed one*: it gets the caller's tag of the INVITE (the one of our 181) and
  is the only far dialog that receives the caller's PRACKs and UPDATEs. Reliable 18x of other far dialogs
  (simultaneous ringing, forking) are PRACKed by the AS and not relayed.
* A far side answering without an early relay gets a fresh caller tag when the INVITE's tag already
  carries another far side's early offer/answer, so the caller never sees two answers in one dialog.
* Early dialogs are registered in the endpoint's dialog table (PRACK/UPDATE are in-dialog requests) and
  reused when the call is answered (CSeq and SDP origin continuity); the others are dropped at the end.
* The AS's own 181/180 are reliable only when the caller requires 100rel.

Only calls that use 100rel create this object.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
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


class FarEarly:
    """One early dialog of a far side (UAC side of the AS), created by a reliable 18x."""

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
        self.responder: ReliableResponder | None = None
        self.caller_sides: dict[str, Side] = {}
        self.far: dict[tuple[str, str], FarEarly] = {}
        self.receivers: dict[str, ReliableReceiver] = {}
        self.pending: dict[int, tuple[FarEarly, RAck]] = {}
        self.relayed: FarEarly | None = None
        # Flow C: the far early dialog whose offer the customer answered (third-party call control).
        self.bridged: FarEarly | None = None
        self.lock = asyncio.Lock()
        self.prack_relays: set[asyncio.Future[None]] = set()  # caller PRACKs being relayed to a far side
        self.tasks: set[asyncio.Task[None]] = set()

    # --- towards the caller -----------------------------------------------------------------------------
    def send_own(self, status: int, reason: str | None = None) -> None:
        """A 1xx the AS itself sends (181, 180): reliable only when the caller requires 100rel."""
        inc = self.call.inc
        if inc.final_sent:
            return
        if not self.caller_requires_100rel:
            inc.respond(status, reason)
            return
        try:
            self._caller_side(inc.to_tag)
        except SipError as exc:  # e.g. an INVITE without Contact: no early dialog to PRACK in
            log.warning("caller_early_dialog_unusable", call_id=inc.request.call_id, error=str(exc))
            inc.respond(status, reason)
            return
        self._responder().send(inc.create_response(status, reason))

    def _responder(self) -> ReliableResponder:
        if self.responder is None:
            t1 = self.call.server.ep.layer.timers.t1
            self.responder = ReliableResponder(self.call.inc, t1, self._prack_timeout)
        return self.responder

    def _prack_timeout(self, resp: SipResponse) -> None:
        # RFC 3262 §3: no PRACK within 64*T1 -> the INVITE SHOULD be rejected with a 5xx.
        self.call.release("prack-timeout", 'SIP;cause=504;text="No PRACK"')

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
        """A forwarded leg's 1xx (flow A): (verdict, relayed to the caller with its body).

        The first reliable 18x with SDP goes reliably to the caller and is PRACKed when the caller PRACKs
        it; other reliable 1xx are PRACKed at once without a body."""
        verdict, rack, far = self.far_reliable(request, transport, role, resp)
        if far is None or rack is None:
            return verdict, False
        if resp.body and self.relayed is None and self.caller_100rel and not self.call.inc.final_sent:
            try:
                self._relay_reliable(far, rack, resp)
                return verdict, True
            except SipError as exc:  # the caller's early dialog cannot exist (e.g. no Contact)
                log.warning("early_relay_failed", call_id=self.call.invite.call_id, error=str(exc))
        # Not relayed (no body, another far dialog already relayed, or a caller without 100rel).
        self._spawn(self.prack(far, rack, b"", None))
        return verdict, False

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

    def _relay_reliable(self, far: FarEarly, rack: RAck, resp: SipResponse) -> None:
        """The far side's reliable 18x with SDP, reliably to the caller in the INVITE's early dialog."""
        call = self.call
        tag = call.inc.to_tag
        side = self._caller_side(tag)
        self.relayed = far
        far.caller_tag = tag
        headers = [(n, v) for n, v in relayed_headers(resp) if n not in _HOP_BY_HOP]
        others = [t for t in resp.require if t != OPTION_100REL]
        if others:
            headers.append(("Require", ", ".join(others)))
        headers.append(("Allow", call.server.allow))
        body = side.sdp(resp.body, resp.content_type)
        out = call.inc.create_response(resp.status, resp.reason_phrase, headers=headers, body=body,
                                       content_type=resp.content_type if body else None, to_tag=tag)
        self._responder().send(out)  # stamps the RSeq, even when queued behind an outstanding 1xx
        rseq_value = int(out.headers.get("rseq") or 0)
        self.pending[rseq_value] = (far, rack)
        log.info("early_relayed", call_id=call.invite.call_id, leg_call_id=far.leg_call_id,
                 status=resp.status, rseq=rseq_value)

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

    def leg_ended(self, leg_call_id: str) -> None:
        """A far leg got a final non-2xx (or timed out): its early dialogs are gone."""
        for key, far in list(self.far.items()):
            if key[0] == leg_call_id:
                far.side.dialog.terminate()
                self.call.detach(far.side)
                del self.far[key]

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
        if self.responder is None:
            inc.respond(481)
            return
        match, acked = self.responder.match(inc)
        if match is not PrackMatch.ACKED or acked is None:
            return
        entry = self.pending.pop(int(acked.headers.get("rseq") or 0), None)
        if entry is None:  # our own 181/180
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
        relayed = self.relayed
        if relayed is None or relayed.caller_tag is None:
            return None
        if side.role is Role.CALLER:
            return relayed.side if side.dialog.local_tag == relayed.caller_tag else None
        if side is relayed.side:
            return self.caller_sides.get(relayed.caller_tag)
        return None

    # --- answer -------------------------------------------------------------------------------------------
    def answer_tag(self, leg_call_id: str, far_tag: str) -> str:
        """Our To tag for the caller's 2xx when far dialog (``leg_call_id``, ``far_tag``) answered."""
        relayed = self.relayed
        if (relayed is not None and relayed.caller_tag is not None and relayed.leg_call_id == leg_call_id
                and relayed.side.dialog.remote_tag == far_tag):
            return relayed.caller_tag
        tag = self.call.inc.to_tag
        if relayed is not None and relayed.caller_tag == tag:
            # The INVITE's tag holds another far side's early answer: answer in a dialog of its own.
            return new_tag()
        return tag

    def adopt_caller(self, tag: str) -> Side | None:
        """The caller's early dialog ``tag`` becoming the confirmed caller side (CSeq continuity)."""
        return self.caller_sides.pop(tag, None)

    def adopt_far(self, leg_call_id: str, final: SipResponse) -> Side | None:
        """The far early dialog answered by ``final`` (its 2xx), to be the confirmed far side."""
        far = self.far.pop((leg_call_id, final.to.tag or ""), None)
        return far.side if far is not None else None

    async def settled(self, timeout: float) -> bool:
        """RFC 3262 §3: no 2xx while a reliable 1xx with a session description is unacknowledged; and not
        before the caller's PRACK being relayed was answered (its offer/answer precedes the 2xx's)."""
        if self.responder is None:
            return True
        ok = await self.responder.settled(timeout)
        if self.prack_relays:
            _, pending = await asyncio.wait(list(self.prack_relays), timeout=timeout)
            ok = ok and not pending
        return ok

    def final_sent(self) -> None:
        if self.responder is not None:
            self.responder.final_sent()

    def close(self) -> None:
        """The call ends: forget early dialogs nobody adopted, stop retransmissions and PRACK relays."""
        self.final_sent()
        if self.responder is not None:
            self.responder.on_timeout = None  # drop the bound method: no responder <-> early cycle
        for side in [*self.caller_sides.values(), *(f.side for f in self.far.values())]:
            side.dialog.terminate()
            self.call.detach(side)
        self.caller_sides.clear()
        self.far.clear()
        for task in self.tasks:
            task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        async def run() -> None:
            with contextlib.suppress(Exception):
                await coro

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
