"""Flow A: 181 to the caller, CCR-I for the forwarded leg, ring the follow-me targets through the S-CSCF.

The decisions (which target next, when a no-reply timer fires, who won a fork) are the sans-IO
:class:`appserver.forwarding.Forwarder`; this module turns its actions into SIP: an INVITE per target with
the S-CSCF's ``odi`` Route (TS 24.229 §5.7.5), CANCEL with a Reason (RFC 3326), the winner linked to the
caller, or the voicemail diversion (TS 24.604 §4.5.2.6).
"""

from __future__ import annotations

import asyncio
from typing import Literal

from appserver import legs, privacy
from appserver.call import Call
from appserver.cdr import Disposition, Flow
from appserver.decision import Forward
from appserver.diversion import DiversionCause, add_retarget, diversion_headers, mark_failed
from appserver.forwarding import Action, CancelLeg, Connect, Divert, Fail, Forwarder, ReleaseLate, StartLeg
from appserver.outleg import CANCEL_REASONS, OutLeg, charge, close_charging, connect, reject, release_late
from appserver.side import Role
from appserver.voicemail import divert_to_voicemail
from charging.client import ChargingRefused, RoleOfNode, RoSession
from secondnum.log import get_logger
from secondnum.sip import (
    ClientTransactionHandle,
    HistoryInfoEntry,
    SipError,
    SipResponse,
    SipURI,
    uri_destination,
)
from secondnum.sip.reliable import Verdict, is_reliable

log = get_logger(__name__)

EventKind = Literal["prov", "final", "error", "cancel"]
Event = tuple[EventKind, int, SipResponse | None]


class ForwardAttempt:
    """One follow-me attempt of one call."""

    def __init__(self, call: Call, fwd: Forward, history: list[HistoryInfoEntry], parent: str) -> None:
        self.call = call
        self.fwd = fwd
        self.history = history
        self.parent = parent
        self.forwarder = Forwarder(fwd.targets, fwd.order, fwd.then_voicemail)
        self.legs: dict[int, OutLeg] = {}
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.session: RoSession | None = None
        self.ringing_sent = False
        asked = privacy.Privacy(call.record.privacy) if call.record.privacy else None  # set by flows.run
        self.privacy = privacy.forward_leg(asked, fwd.present_did)

    async def run(self) -> None:
        call = self.call
        call.record.flow = Flow.FORWARD
        call.send_provisional(181, "Call Is Being Forwarded")
        called = self.fwd.targets[0].uri if self.fwd.targets else ""
        try:
            calling = str(call.isc.asserted.uri) if call.isc.asserted else str(call.invite.from_.uri)
            self.session = await charge(call, RoleOfNode.FORWARDING, calling, called, "forward")
        except ChargingRefused as exc:
            log.info("forward_refused_by_ocs", call_id=call.invite.call_id, result=exc.result_code)
            if self.fwd.then_voicemail:
                await divert_to_voicemail(call, DiversionCause.UNREACHABLE, self.history, self.parent)
            else:
                reject(call, exc.sip_status, None, [("Reason", exc.reason)])
            return
        if call.inc.cancelled.is_set() or call.ended.is_set():  # CANCEL or release during the CCR-I
            await self._finish(None)
            return
        watcher = asyncio.create_task(self._watch_cancel())
        try:
            outcome = await self._loop()
        finally:
            watcher.cancel()
            for leg in self.legs.values():
                if leg.task is not None and not leg.task.done():
                    call.server.spawn(release_late(call, leg))
        await self._finish(outcome)

    async def _loop(self) -> Connect | Divert | Fail | None:
        forwarder = self.forwarder
        actions = forwarder.start(self.call.loop_time)
        while True:
            outcome = self._apply(actions)
            if outcome is not None:
                return outcome
            deadline = forwarder.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.call.loop_time)
            try:
                kind, leg_id, resp = await asyncio.wait_for(self.events.get(), timeout)
            except TimeoutError:
                actions = forwarder.on_timer(self.call.loop_time)
                continue
            actions = self._on_event(kind, leg_id, resp)
            if kind == "cancel":
                self._apply(actions)
                return None

    def _on_event(self, kind: EventKind, leg_id: int, resp: SipResponse | None) -> list[Action]:
        now = self.call.loop_time
        if kind == "cancel":
            actions = self.forwarder.on_caller_cancel()
            if self.call.release_reason == "prack-timeout":  # tell the far legs why (RFC 3326)
                actions = [CancelLeg(a.leg, 500) if isinstance(a, CancelLeg) else a for a in actions]
            return actions
        leg = self.legs[leg_id]
        if kind == "prov" and resp is not None:
            if is_reliable(resp):  # RFC 3262: PRACK it, relay it with its SDP (appserver.early)
                verdict, relayed = self.call.early_dialogs().far_provisional(
                    leg.request, leg.handle.transport, Role.FORWARD, resp)
                if verdict is Verdict.IGNORE:
                    return []
                if relayed and resp.status == 180:
                    self.ringing_sent = True  # the caller got this 180 itself, reliably, with its SDP
            elif resp.body and resp.status > 100 and self.call.early_dialogs().far_unreliable(
                    leg.request, leg.handle.transport, Role.FORWARD, resp) and resp.status == 180:
                self.ringing_sent = True  # early media in an unreliable 180 (RFC 3960 §2): relayed as is
            if resp.status == 180 and not self.ringing_sent and not self.call.inc.final_sent:
                early = self.call.early
                if early is not None:  # in the caller early dialog of that far dialog (appserver.early)
                    early.send_own(180, None, early.ringing_tag(leg.request.call_id, resp.to.tag or ""))
                else:
                    self.call.send_provisional(180)
                self.ringing_sent = True
            return self.forwarder.on_provisional(leg_id, resp.status, now)
        if kind == "final" and resp is not None:
            leg.final = resp
            leg.record.status = resp.status
            if resp.is_success:
                return self.forwarder.on_answer(leg_id, now)
            self.history = mark_failed(self.history, leg.history_index, resp.status)
            actions = self.forwarder.on_failure(leg_id, resp.status, now)
        else:
            leg.record.status = 408  # Timer B or a transport error: no final response (RFC 3261 §8.1.3.1)
            actions = self.forwarder.on_failure(leg_id, 408, now)
        if self.call.early is not None:
            # RFC 6228: a 199 for its early dialogs unless the caller's final response follows at once.
            self.call.early.leg_ended(leg.request.call_id, resp,
                                      notify=not any(isinstance(a, Fail) for a in actions))
        return actions

    def _apply(self, actions: list[Action]) -> Connect | Divert | Fail | None:
        result: Connect | Divert | Fail | None = None
        for action in actions:
            if isinstance(action, StartLeg):
                self._start_leg(action)
            elif isinstance(action, CancelLeg):
                leg = self.legs[action.leg]
                self.history = mark_failed(self.history, leg.history_index, action.status)
                self.call.server.ep.cancel(leg.handle, CANCEL_REASONS.get(action.status))
            elif isinstance(action, ReleaseLate):
                self.call.server.spawn(release_late(self.call, self.legs[action.leg]))
            else:
                result = action
        return result

    def _start_leg(self, action: StartLeg) -> None:
        call, server = self.call, self.call.server
        target = SipURI.parse(action.target.uri)
        self.history = add_retarget(self.history, self.parent, target, DiversionCause.UNCONDITIONAL)
        try:
            received = call.invite.diversion
        except SipError:
            received = []
        route = list(call.isc.return_route) or [server.scscf_route]
        supported, require = legs.passed_options(call.invite)
        extra = legs.session_timer_headers(call.invite, server.settings.timer_config)
        if extra and "timer" not in supported:
            supported = [*supported, "timer"]  # RFC 4028 §7.1: a UAC asking for a timer supports it
        req = legs.forward_invite(
            target=target, did=call.record.did, caller_from=call.invite.from_, caller_pai=call.isc.asserted,
            present_did=self.fwd.present_did, return_route=route,
            contact=server.ep.local_contact(transport=call.inc.transport),
            call_id=legs.new_call_id(server.host),
            pcv=legs.routed_charging_vector(call.isc.charging_vector, server.settings.domain),
            history=self.history,
            diversion=diversion_headers(received, call.invite.uri, DiversionCause.UNCONDITIONAL),
            body=call.invite.body, content_type=call.invite.content_type if call.invite.body else None,
            supported=supported, require=require, extra=extra, privacy=self.privacy)
        dest, transport = uri_destination(route[0].uri, call.inc.transport)
        handle = server.ep.request(req, dest, transport)
        call.leg_sent()
        record = call.record.leg(Role.FORWARD, req.call_id, req.raw_uri, str(req.from_.uri),
                                 req.headers.get("p-asserted-identity") or "")
        leg = OutLeg(req, handle, record, self.history[-1].index)
        leg.task = asyncio.create_task(self._watch(action.leg, handle))
        self.legs[action.leg] = leg
        log.info("forward_leg_started", call_id=call.invite.call_id, leg_call_id=req.call_id,
                 target=str(target), timeout=action.target.timeout)

    async def _watch(self, leg_id: int, handle: ClientTransactionHandle) -> None:
        retried = False
        while True:
            async for prov in handle.provisionals():
                self.events.put_nowait(("prov", leg_id, prov))
            try:
                final = await handle.final_response()
            except SipError:
                self.events.put_nowait(("error", leg_id, None))
                return
            if final.status == 422 and not retried:
                retry = self._retry_422(leg_id, final)
                if retry is not None:
                    handle, retried = retry, True
                    continue
            self.events.put_nowait(("final", leg_id, final))
            return

    def _retry_422(self, leg_id: int, resp: SipResponse) -> ClientTransactionHandle | None:
        """RFC 4028 §7.3: 422 Session Interval Too Small: the same INVITE once more (same Call-ID, next
        CSeq) with Session-Expires raised to the far side's Min-SE."""
        leg = self.legs[leg_id]
        if self.call.ended.is_set() or self.call.inc.cancelled.is_set():
            return None
        req = legs.retried_after_422(leg.request, resp)
        if req is None:
            return None
        leg.request = req
        leg.handle = self.call.server.ep.request(req, leg.handle.dest, leg.handle.transport)
        log.info("forward_leg_retried_422", call_id=self.call.invite.call_id, leg_call_id=req.call_id,
                 session_expires=req.headers.get("session-expires"))
        return leg.handle

    async def _watch_cancel(self) -> None:
        """The caller's CANCEL, or the call released while ringing (drain limit, max duration)."""
        waits = {asyncio.ensure_future(self.call.inc.cancelled.wait()),
                 asyncio.ensure_future(self.call.ended.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self.events.put_nowait(("cancel", -1, None))

    async def _finish(self, outcome: Connect | Divert | Fail | None) -> None:
        call = self.call
        if outcome is None and not call.inc.cancelled.is_set():  # released while ringing (e.g. drain)
            await close_charging(self.session)
            if not call.inc.final_sent:  # (a PRACK timeout was answered 500 already)
                reject(call, 503, None, [("Retry-After", str(call.server.settings.retry_after))])
        elif outcome is None:  # the caller cancelled
            call.record.disposition = Disposition.CANCELLED
            call.record.status = 487
            call.release("caller-cancel", None)
            await close_charging(self.session)
        elif isinstance(outcome, Connect):
            call.record.disposition = Disposition.ANSWERED
            leg = self.legs[outcome.leg]
            if await connect(call, leg, Role.FORWARD, self.session):
                log.info("forward_answered", call_id=call.invite.call_id, leg_call_id=leg.request.call_id)
        elif isinstance(outcome, Divert):
            await close_charging(self.session)
            await divert_to_voicemail(call, outcome.cause, self.history, self.parent)
        else:
            await close_charging(self.session)
            call.record.diversion_reason = outcome.cause.reason
            call.record.disposition = (Disposition.BUSY if outcome.cause is DiversionCause.BUSY
                                       else Disposition.NO_ANSWER)
            reject(call, outcome.status)
