"""One call through the B2BUA: the caller's side, the current far side, relaying and release.

The setup flows (:mod:`appserver.flows`) end by linking the caller's dialog (side ``a``) with one far side
(``b``: the answered follow-me target, the media server, or the outgoing destination after REFER). From
then on this module keeps the two dialogs linked (RFC 7092 §3.1, TS 24.229 §5.7.5):

* BYE on one side is answered and a BYE is sent on the other (RFC 3261 §15); glare (both BYE at once)
  simply finds the other side already terminated.
* re-INVITE and UPDATE are relayed with their bodies, so media changes pass through (RFC 3261 §14,
  RFC 3311); a second offer while one is in progress gets 491 (RFC 3261 §14.2, RFC 3311 §5.2).
* INFO, NOTIFY, MESSAGE and OPTIONS inside the dialog are relayed with the far end's response.
* A credit release from the Ro client (Final-Unit-Indication consumed, CCR-U refused, ASR) releases both
  sides with a Reason header (RFC 3326) and CCR-Termination reports the used units (RFC 4006 §5.6).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
from typing import TYPE_CHECKING

from prometheus_client import Histogram

from appserver import cdr
from appserver.cdr import CallRecord, Disposition
from appserver.isc import IscRequest
from appserver.session_timer import CallTimers, allows_update
from appserver.side import Role, Side
from charging.client import RoSession
from secondnum.log import get_logger
from secondnum.sip import (
    AckTimeoutError,
    Dialog,
    DialogState,
    IncomingRequest,
    SipError,
    SipMessage,
    SipRequest,
    SipResponse,
)
from secondnum.sip.session_timer import NONE, Negotiated, negotiate

if TYPE_CHECKING:
    from appserver.early import EarlyDialogs
    from appserver.server import AppServer

log = get_logger(__name__)

SETUP = Histogram("secondnum_as_setup_seconds",
                  "Time from the initial INVITE to the first INVITE the AS sends (lookup, decision, CCR-I)",
                  buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5))

RELAYED_HEADERS = ("event", "subscription-state", "reason", "session-expires", "min-se", "require",
                   "supported", "refer-to", "referred-by", "info-package", "recv-info")
CREDIT_REASONS = {
    "final-unit": 'SIP;cause=402;text="Final unit consumed"',
    "credit-exhausted": 'SIP;cause=402;text="Credit exhausted"',
    "abort-session": 'SIP;cause=403;text="Charging session aborted"',
    "ocs-failure": 'SIP;cause=503;text="Charging unavailable"',
}
DRAIN_REASON = 'SIP;cause=503;text="Service shutting down"'


def relayed_headers(msg: SipMessage) -> list[tuple[str, str]]:
    """The end-to-end headers a relayed request or response keeps (the rest is per-dialog, RFC 7092 §3.1)."""
    return [(name, value) for name in RELAYED_HEADERS for value in msg.headers.get_raw(name)]


class Call:
    """State shared by the setup flows and the bridged phase of one call."""

    def __init__(self, server: AppServer, inc: IncomingRequest, isc: IscRequest, record: CallRecord) -> None:
        self.server = server
        self.inc = inc
        self.isc = isc
        self.record = record
        self.invite = inc.request
        self.a: Side | None = None
        self.b: Side | None = None
        self.ended = asyncio.Event()
        self.relay_lock = asyncio.Lock()
        self.release_reason: str | None = None
        self._sip_reason: str | None = None
        self.ro_sessions: list[tuple[RoSession, Side | None]] = []
        self.answered_at: dict[int, float] = {}
        self.outgoing_task: asyncio.Task[None] | None = None
        self._tore_down = False
        self._started = asyncio.get_running_loop().time()
        self._leg_sent = False
        self._setup_done = False
        self.early: EarlyDialogs | None = None  # only calls using 100rel/early UPDATE (appserver.early)
        self.timers: CallTimers | None = None  # RFC 4028 session timers (appserver.session_timer)

    # --- helpers for flows ---------------------------------------------------------------------------
    @property
    def loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    def leg_sent(self) -> None:
        """The first far-side INVITE left: what the AS added to the set-up delay (metric)."""
        if not self._leg_sent:
            self._leg_sent = True
            SETUP.observe(self.loop_time - self._started)
            self.setup_finished()

    def setup_finished(self) -> None:
        """The set-up stage is over (first leg sent, or the call was decided without one). Idempotent."""
        if not self._setup_done:
            self._setup_done = True
            self.server.setups.pop(self, None)

    def attach(self, side: Side) -> None:
        """Register a confirmed dialog so in-dialog requests reach this call."""
        self.server.ep.dialogs.add(side.dialog)
        self.server.by_dialog[side.dialog.id] = (self, side)

    def detach(self, side: Side) -> None:
        self.server.by_dialog.pop(side.dialog.id, None)
        with contextlib.suppress(Exception):
            self.server.ep.dialogs.remove(side.dialog)

    def early_dialogs(self) -> EarlyDialogs:
        """The call's early-dialog relay (RFC 3262/3311), created on first use."""
        if self.early is None:
            from appserver.early import EarlyDialogs  # early imports this module

            self.early = EarlyDialogs(self)
        return self.early

    def send_provisional(self, status: int, reason: str | None = None) -> None:
        """A 1xx of the AS itself (181, 180): reliable only when the caller requires 100rel (RFC 3262)."""
        if "require" in self.invite.headers and "100rel" in self.invite.require:
            self.early_dialogs().send_own(status, reason)
        elif not self.inc.final_sent:
            self.inc.respond(status, reason)

    def caller_side(self, tag: str | None = None) -> Side:
        """The caller's dialog, confirmed by our 2xx (RFC 3261 §12.1.1); the early one when it exists."""
        leg = self.record.leg(Role.CALLER, self.invite.call_id, self.invite.raw_uri,
                              str(self.invite.from_.uri), self.isc.asserted_id or "")
        tag = tag or self.inc.to_tag
        early = self.early.adopt_caller(tag) if self.early is not None else None
        if early is not None:
            early.dialog.confirm()
            early.record = leg
            return early
        dialog = Dialog.from_uas(self.invite, tag, self.server.ep.local_contact(
            transport=self.inc.transport), DialogState.CONFIRMED)
        return Side(self.server.ep, dialog, self.inc.transport, Role.CALLER, record=leg)

    async def answer_caller(self, far: SipResponse, leg_call_id: str = "",
                            far_request: SipRequest | None = None) -> bool:
        """200 OK to the caller with the far side's body; waits for the ACK (RFC 3261 §13.3.1.4).

        With early dialogs (RFC 3262 §3) the 2xx waits for the PRACK of a reliable 1xx carrying SDP and
        goes in the early dialog of the answering far side. Session timers (RFC 4028) are negotiated from
        the caller's INVITE, our ``far_request`` and the far 2xx, and start once the caller ACKed."""
        tag = None
        early = self.early
        if early is not None:
            tag = early.answer_tag(leg_call_id, far.to.tag or "")
            if not await early.settled(tag, 64 * self.server.ep.layer.timers.t1):
                log.warning("caller_prack_missing", call_id=self.invite.call_id)
                if self.ended.is_set():  # PRACK timeout: the caller got a 5xx (appserver.early)
                    return False
        a = self.caller_side(tag)
        body = a.sdp(far.body, far.content_type)
        self.a = a
        self.attach(a)
        settings = self.server.settings
        timers = negotiate(self.invite, far_request, far, settings.timer_config) \
            if settings.session_expires or "session-expires" in self.invite.headers \
            or "session-expires" in far.headers else NONE
        self.inc.respond(200, headers=[("Allow", self.server.allow), *timers.caller_headers],
                         body=body, content_type=far.content_type if body else None, to_tag=tag)
        if early is not None:
            early.final_sent()
        now = cdr.utcnow()
        self.record.answer_at = now
        if a.record is not None:
            a.record.answer_at = now
        try:
            await asyncio.wait_for(self.inc.wait_ack(), 64 * 0.5 + 5)
        except (AckTimeoutError, TimeoutError):
            log.warning("caller_ack_timeout", call_id=self.invite.call_id)
            self.release("ack-timeout", None)
            return False
        if timers.caller is not None or timers.far is not None:
            self.start_timers(timers, far_request, far)
        return True

    def start_timers(self, neg: Negotiated, far_request: SipRequest | None, far: SipResponse) -> None:
        """Arm the legs' session timers (RFC 4028 §10) from the negotiation of :meth:`answer_caller`."""
        timers = self.timers = CallTimers(self)
        if neg.caller is not None and self.a is not None:
            timers.add(self.a, neg.caller, peer_allows_update=allows_update(self.invite),
                       party_sdp=self.invite.body)
        if neg.far is not None and self.b is not None:
            body = far_request.body if far_request is not None else b""
            timers.add(self.b, neg.far, peer_allows_update=allows_update(far), sdp=body, party_sdp=far.body,
                       content_type=far_request.content_type if far_request is not None and body else None)
        timers.start()

    def charged(self, session: RoSession, side: Side | None) -> None:
        self.ro_sessions.append((session, side))

    def on_ro_release(self, session: RoSession, reason: str) -> None:
        """Ro client callback: quota gone or session aborted (RFC 4006 §5.6.2, §8.34)."""
        log.info("call_released_by_charging", call_id=self.invite.call_id, session=session.session_id,
                 reason=reason)
        self.release(reason, CREDIT_REASONS.get(reason, 'SIP;cause=402;text="Charging"'))

    def release(self, reason: str, sip_reason: str | None) -> None:
        """End the bridged call; BYEs are sent by :meth:`teardown`."""
        if self.release_reason is None:
            self.release_reason = reason
            self._sip_reason = sip_reason
        self.ended.set()

    def mark_answered(self, session: RoSession | None, side: Side) -> None:
        self.answered_at[id(side)] = self.loop_time
        if session is not None:
            session.answered()

    # --- in-dialog requests --------------------------------------------------------------------------
    def peer_of(self, side: Side) -> Side | None:
        if side is self.a:
            bridged = self.early.bridged if self.early is not None else None
            if bridged is not None and bridged.side.alive:
                return bridged.side  # flow C early media: the customer talks to the far early dialog
            return self.b
        if side is self.b:
            return self.a
        return None

    async def on_request(self, inc: IncomingRequest, side: Side) -> None:
        method = inc.request.method
        if method == "PRACK" or side.dialog.state is DialogState.EARLY:
            if self.early is None:
                inc.respond(481)
            else:
                await self.early.on_request(inc, side)
            return
        if method == "BYE":
            inc.respond(200)
            self.detach(side)
            side.forget()
            if side.record is not None:
                side.record.end_at = cdr.utcnow()
            self.release(f"bye-{side.role}", None)
            return
        if method == "REFER":
            from appserver.outgoing import on_refer  # outgoing imports this module: import on use

            await on_refer(self, inc, side)
            return
        peer = self.peer_of(side)
        if peer is None or not peer.alive:
            inc.respond(481 if method != "OPTIONS" else 200)
            return
        if method in ("INVITE", "UPDATE"):
            await self._relay_offer(inc, side, peer)
        else:
            await self._relay_simple(inc, side, peer)

    async def _relay_offer(self, inc: IncomingRequest, side: Side, peer: Side) -> None:
        """re-INVITE / UPDATE across the bridge (RFC 3261 §14, RFC 3311); 491 on glare."""
        req = inc.request
        if self.relay_lock.locked():
            inc.respond(491, headers=[("Retry-After", "1")])
            return
        async with self.relay_lock:
            body = peer.sdp(req.body, req.content_type)
            out, resp = await peer.request(req.method, body, req.content_type if body else None,
                                           relayed_headers(req))
            if req.method == "INVITE" and resp.is_success and req.body:
                peer.ack(out)
            headers = relayed_headers(resp)
            if self.timers is not None:  # RFC 4028 §10: a refresh of both legs
                self.timers.relayed(side, resp)
                headers += self.timers.missing_fields(side, resp)
            back = side.sdp(resp.body, resp.content_type)
            inc.respond(resp.status, resp.reason_phrase, headers=headers, body=back,
                        content_type=resp.content_type if back else None)
            self.check_peer_gone(resp.status, peer)
            if req.method == "INVITE" and resp.is_success:
                try:
                    ack = await asyncio.wait_for(inc.wait_ack(), 40)
                except (AckTimeoutError, TimeoutError):
                    self.release("ack-timeout", None)
                    return
                if not req.body:
                    answer = peer.sdp(ack.body, ack.content_type)
                    peer.ack(out, answer, ack.content_type if answer else None)

    async def _relay_simple(self, inc: IncomingRequest, side: Side, peer: Side) -> None:
        req = inc.request
        try:
            _, resp = await peer.request(req.method, req.body, req.content_type, relayed_headers(req))
        except SipError:
            inc.respond(500)
            return
        inc.respond(resp.status, resp.reason_phrase, headers=relayed_headers(resp), body=resp.body,
                    content_type=resp.content_type)
        self.check_peer_gone(resp.status, peer)

    def check_peer_gone(self, status: int, peer: Side) -> None:
        """408/481 to a mid-dialog request: that dialog is gone (RFC 3261 §12.2.1.2), so is the call."""
        if status in (408, 481):
            peer.dialog.terminate()
            self.release(f"{peer.role}-gone", f'SIP;cause={status}')

    # --- the end -------------------------------------------------------------------------------------
    async def teardown(self) -> None:
        """BYE every live side and, without waiting for the BYEs' answers, CCR-T every Ro session with the
        used seconds and write the CDR; returns once the BYEs are answered or failed. Idempotent."""
        if self._tore_down:
            return
        self._tore_down = True
        if self.timers is not None:
            self.timers.cancel()
            self.timers = None
        if self.outgoing_task is not None and not self.outgoing_task.done():
            self.outgoing_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.outgoing_task
        if self.early is not None:
            self.early.close()
            self.early = None  # no call <-> early reference cycle left for the collector
        byes = [side.bye(self._sip_reason) for side in (self.a, self.b) if side is not None and side.alive]
        for side in (self.a, self.b):
            if side is not None:
                self.detach(side)
        # The call ends now, whatever the BYEs do: a BYE to a party that is gone takes Timer F (64*T1) to
        # fail, and neither the charged time nor the OCS reservation (RFC 4006 §5.6: CCR-T when the
        # service ends) nor the CDR may wait for it. The BYEs go out first, the CCR-T in parallel.
        end = cdr.utcnow()
        now = self.loop_time
        *_, closed = await asyncio.gather(*byes, self._close(end, now), return_exceptions=True)
        if isinstance(closed, BaseException):
            log.error("call_close_failed", call_id=self.invite.call_id, error=repr(closed))

    async def _close(self, end: dt.datetime, now: float) -> None:
        """CCR-T of every Ro session with the seconds used up to ``now``, then the CDR (ended at ``end``)."""
        if len(self.ro_sessions) == 1:  # the usual case, without a task per session
            await self._terminate(*self.ro_sessions[0], now)
        else:
            await asyncio.gather(*(self._terminate(session, side, now) for session, side in self.ro_sessions))
        for leg in self.record.legs:
            if leg.end_at is None:
                leg.end_at = end
        self.record.end_at = end
        self.record.end_reason = self.release_reason or self.record.end_reason
        if self.record.answer_at is not None and self.record.disposition is Disposition.FAILED:
            self.record.disposition = Disposition.ANSWERED
        self.server.write_cdr(self.record)

    async def _terminate(self, session: RoSession, side: Side | None, now: float) -> None:
        used = 0
        if side is not None and id(side) in self.answered_at:
            used = math.ceil(now - self.answered_at[id(side)])
        try:
            # Idempotent: after a final-unit release the client has already reported the units.
            await session.terminate(used)
        except Exception:
            log.exception("ccr_t_failed", session=session.session_id)
        if side is not None and side.record is not None:
            side.record.charged_seconds = session.core.total_used

    async def wait_end(self, limit: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), limit)
        if not self.ended.is_set():
            self.release("max-duration", 'SIP;cause=408;text="Maximum call duration"')

    @staticmethod
    def now() -> dt.datetime:
        return cdr.utcnow()
