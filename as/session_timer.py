"""Session timers of a bridged call (RFC 4028): one ``loop.call_at`` handle per call, no task of its own.

The decisions are :mod:`secondnum.sip.session_timer` (sans-IO): :func:`~secondnum.sip.session_timer.negotiate`
says who refreshes each leg, :class:`~secondnum.sip.session_timer.SessionTimer` when something is due. This
module arms the earliest deadline of the two legs and acts on it:

* a leg the AS refreshes (``LOCAL``): an UPDATE without a body when the peer allows UPDATE (RFC 4028 §7.4
  prefers it: no offer/answer), else a re-INVITE repeating the last session description the AS sent on that
  leg, both with ``Session-Expires: N;refresher=uac``; a 408/481 to it ends the call (RFC 3261 §12.2.1.2);
* a leg whose party refreshes (``PEER``) and did not by the expiry (§10): the call is released with
  ``Reason: SIP;cause=408;text="Session timer expired"`` (BYE both legs, CCR-T, CDR ``end_reason``
  ``session-expired``: the ordinary teardown of :meth:`appserver.call.Call.teardown`);
* every relayed re-INVITE/UPDATE answered 2xx refreshes both legs (:meth:`CallTimers.relayed`).

A spawned task exists only while the AS sends one of its own refreshes (once per half interval).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from prometheus_client import Counter

from appserver.sdp_origin import description, version
from appserver.side import Side
from secondnum.log import get_logger
from secondnum.sip import SipRequest, SipResponse
from secondnum.sip.session_timer import (
    Due,
    LegTimer,
    Mode,
    SessionExpires,
    SessionTimer,
    after_relayed_refresh,
    allows,
    delta_seconds,
    min_se,
    uac_leg,
)

if TYPE_CHECKING:
    from appserver.call import Call

log = get_logger(__name__)

EXPIRED_REASON = 'SIP;cause=408;text="Session timer expired"'
EXPIRED = "session-expired"

EVENTS = Counter("secondnum_as_session_timer_total",
                 "RFC 4028 events: expired (call ended), refreshed / refresh_failed (the AS's own refreshes)",
                 ["event"])
_EXPIRED, _REFRESHED, _FAILED = (EVENTS.labels(e) for e in ("expired", "refreshed", "refresh_failed"))


class LegState:
    """One leg's timer plus what the AS needs to refresh it."""

    __slots__ = ("content_type", "fallback_sdp", "party_version", "side", "timer", "update")

    def __init__(self, side: Side, timer: SessionTimer, update: bool, fallback_sdp: bytes,
                 content_type: str | None, *, party_version: tuple[bytes, bytes] | None = None) -> None:
        self.side = side
        self.timer = timer
        self.update = update
        self.fallback_sdp = fallback_sdp
        self.content_type = content_type
        self.party_version = party_version
        """o= session id and version of the last description known from this party (RFC 3264 §8)."""


class CallTimers:
    """The session timers of both legs of one call and the single timer handle that serves them."""

    __slots__ = ("_handle", "_loop", "call", "legs")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.legs: list[LegState] = []
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, side: Side, leg: LegTimer, *, peer_allows_update: bool, sdp: bytes = b"",
            content_type: str | None = None, party_sdp: bytes = b"") -> None:
        """A leg's timer from now (its 2xx has just been exchanged, §10); arm them with :meth:`start`.
        ``sdp``: what the AS offered that party (repeated by a re-INVITE refresh when nothing went through
        the leg's origin keeper); ``party_sdp``: that party's own last description, if known."""
        timer = SessionTimer(leg.mode, leg.interval, self._loop.time())
        self.legs.append(LegState(side, timer, peer_allows_update, sdp, content_type,
                                  party_version=version(party_sdp)))

    def start(self) -> None:
        self._arm()

    def relayed(self, requester: Side, response: SipResponse) -> None:
        """A re-INVITE/UPDATE from ``requester`` relayed across got a 2xx: a session refresh on both legs
        (§10). A Session-Expires in it (end to end) gives the new interval of the legs that are not the AS's
        own, and its refresher who refreshes from now on (:func:`after_relayed_refresh`)."""
        if not response.is_success or not self.legs:
            return
        se = SessionExpires.parse(response.headers.get("session-expires")) \
            if "session-expires" in response.headers else None
        legs = self.legs
        if se is not None and len(legs) == 2 and (legs[0].side is requester or legs[1].side is requester):
            modes = after_relayed_refresh((legs[0].timer.mode, legs[1].timer.mode),
                                          0 if legs[0].side is requester else 1, se)
            legs[0].timer.mode, legs[1].timer.mode = modes
        now = self._loop.time()
        interval = se.delta if se is not None else None
        for leg in legs:
            leg.timer.refreshed(now, interval if leg.timer.mode is not Mode.LOCAL else None)
        self._arm()

    def missing_fields(self, side: Side, response: SipResponse) -> list[tuple[str, str]]:
        """Session-Expires for the 2xx the AS relays to ``side``'s refresh when the far 2xx had none (its
        party does not do timers): without it the refresher would take the session timer as gone (§7.4).
        ``uac`` when that party refreshes (then ``Require: timer``, §9), ``uas`` when the AS does."""
        if not response.is_success or "session-expires" in response.headers:
            return []
        for leg in self.legs:
            if leg.side is side:
                interval = int(leg.timer.interval)
                if leg.timer.mode is Mode.PEER:
                    return [("Session-Expires", f"{interval};refresher=uac"), ("Require", "timer")]
                return [("Session-Expires", f"{interval};refresher=uas")]
        return []

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.legs.clear()

    # --- the one timer handle ------------------------------------------------------------------------
    def _arm(self) -> None:
        first: float | None = None
        for leg in self.legs:
            d = leg.timer.deadline
            if d is not None and (first is None or d < first):
                first = d
        handle = self._handle
        if handle is not None:
            if first is not None and handle.when() == first:
                return
            handle.cancel()
            self._handle = None
        if first is not None:
            self._handle = self._loop.call_at(first, self._fire)

    def _fire(self) -> None:
        self._handle = None
        call = self.call
        if call.ended.is_set():
            return
        now = self._loop.time()
        for leg in self.legs:
            due = leg.timer.poll(now)
            if due is Due.EXPIRED:
                log.warning("session_timer_expired", call_id=call.invite.call_id, role=str(leg.side.role),
                            interval=leg.timer.interval)
                _EXPIRED.inc()
                call.release(EXPIRED, EXPIRED_REASON)
                return
            if due is Due.REFRESH:
                call.server.spawn(self._guarded_refresh(leg))
        self._arm()

    async def _guarded_refresh(self, leg: LegState) -> None:
        try:
            await self._refresh(leg)
        except Exception:  # a refresh must never take the call (or the server) down with it
            log.exception("session_refresh_failed", call_id=self.call.invite.call_id, role=str(leg.side.role))
            leg.timer.refresh_failed(self._loop.time())
            if not self.call.ended.is_set():
                self._arm()

    async def _refresh(self, leg: LegState) -> None:
        """Our own session refresh on one leg (§7.4 as the refresher of a UAC leg, §9 of a UAS leg)."""
        call, side, timer = self.call, leg.side, leg.timer
        if call.ended.is_set() or not side.alive or (side is not call.a and side is not call.b):
            return
        if call.relay_lock.locked():
            # An offer is being relayed (RFC 3261 §14.1: no second INVITE meanwhile); its 2xx refreshes
            # both legs, else we try again soon.
            timer.refresh_failed(self._loop.time())
            self._arm()
            return
        headers = [("Session-Expires", f"{int(timer.interval)};refresher=uac"), ("Supported", "timer")]
        if leg.update or not (side.origin.sent or leg.fallback_sdp):
            # No offer in it: nothing to serialise with relayed offers (RFC 3311 §5.1). Also the way when we
            # have no session description of ours to repeat: an offerless re-INVITE would need an answer
            # in our ACK (a 405/501 to such an UPDATE just fails the refresh).
            out, resp = await side.request("UPDATE", headers=headers)
        else:
            # A re-INVITE is an offer: hold the relay lock so that an offer arriving meanwhile gets 491
            # (RFC 3261 §14.2) instead of crossing ours.
            async with call.relay_lock:
                body = side.origin.sent or side.sdp(leg.fallback_sdp, leg.content_type)
                ctype = leg.content_type or "application/sdp"
                out, resp = await side.request("INVITE", body, ctype if body else None, headers)
                if resp.is_success:
                    side.ack(out)
                    if _new_version(leg, resp.body) and not call.ended.is_set():
                        await self._pass_on_change(side, resp)
        if call.ended.is_set():
            return
        log.info("session_refreshed", call_id=call.invite.call_id, role=str(side.role), method=out.method,
                 status=resp.status)
        (_REFRESHED if resp.is_success else _FAILED).inc()
        if resp.is_success:
            se = delta_seconds(resp.headers.get("session-expires")) \
                if "session-expires" in resp.headers else None
            timer.refreshed(self._loop.time(), se)
        elif resp.status in (408, 481):
            call.check_peer_gone(resp.status, side)
            return
        else:
            if resp.status == 422:  # RFC 4028 §7.3 (the peer raised its minimum): retry with its Min-SE
                floor = min_se(resp)
                if floor is not None and floor > timer.interval:
                    timer.interval = float(floor)
            elif resp.status in (405, 501) and leg.update:
                leg.update = False  # UPDATE refused after all (RFC 3311 §5.2): refresh by re-INVITE
            timer.refresh_failed(self._loop.time())
        self._arm()

    async def _pass_on_change(self, side: Side, answer: SipResponse) -> None:
        """The party answered our refresh offer with a changed session description (RFC 3264 §8: it may
        change its media in any answer): the other party still has the old one, so it gets the new one in a
        re-INVITE (the relay lock is held), and if its answer changes what this party has, that goes back the
        same way, once (no ping-pong). A 408/481 ends the call as for any in-dialog request."""
        call = self.call
        peer = call.peer_of(side)
        if peer is None or not peer.alive or not _changed(call, peer, answer.body):
            return
        log.info("session_refresh_answer_changed", call_id=call.invite.call_id, role=str(side.role))
        back = await self._reoffer(peer, answer)
        if back is None or not back.body or not side.alive:
            return
        peer_leg = next((leg for leg in self.legs if leg.side is peer), None)
        if (peer_leg is None or _new_version(peer_leg, back.body)) and _changed(call, side, back.body):
            await self._reoffer(side, back)

    async def _reoffer(self, to: Side, source: SipResponse) -> SipResponse | None:
        """re-INVITE ``to`` with the description of ``source`` and ACK its 2xx; None if the call ended."""
        call = self.call
        body, ctype = source.body, source.content_type
        headers = [("Allow", call.server.allow)]
        leg = next((leg for leg in self.legs if leg.side is to), None)
        if leg is not None:
            # Every re-INVITE is a refresh (§10) and one without Session-Expires would turn the party's timer
            # off (§9): keep the leg's interval and refresher (the party itself when it refreshes).
            refresher = "uas" if leg.timer.mode is Mode.PEER else "uac"
            headers += [("Session-Expires", f"{int(leg.timer.interval)};refresher={refresher}"),
                        ("Supported", "timer")]
        out, resp = await to.request("INVITE", to.sdp(body, ctype), ctype, headers)
        if not resp.is_success:
            call.check_peer_gone(resp.status, to)
            return None
        to.ack(out)
        if leg is not None:
            leg.timer.refreshed(self._loop.time())
            self._arm()
        return None if call.ended.is_set() else resp


def _new_version(leg: LegState, body: bytes) -> bool:
    """The party's description in ``body`` has another o= version than the last one known from it, which
    is then remembered (RFC 3264 §8: an unchanged description keeps its version, so a codec subset in an
    answer with the same version is no change). Unknown before: remembered, not a change."""
    new = version(body)
    if new is None:
        return False
    old, leg.party_version = leg.party_version, new
    return old is not None and old != new


def _changed(call: Call, side: Side, body: bytes) -> bool:
    """``body`` (from the other party) is not what ``side``'s party was last given (o= line aside)."""
    new = description(body)
    if new is None:
        return False
    seen = side.origin.last_description
    if seen is None and side is call.b and call.invite.body:
        # The far leg of flows A and B was offered the caller's INVITE body as is, not through its keeper:
        # record it now, so that what we pass on keeps the origin that party saw first (RFC 3264 §8).
        side.sdp(call.invite.body, call.invite.content_type)
        seen = side.origin.last_description
    return seen is not None and seen != new


def allows_update(msg: SipRequest | SipResponse) -> bool:
    return allows(msg, "UPDATE")


def time_own_leg(call: Call, side: Side, request: SipRequest, response: SipResponse) -> None:
    """Start the timer of a leg the AS originated on its own (flow C's outgoing leg, §7.4), next to the
    caller's leg timer if there is one."""
    timers = call.timers
    if timers is not None:
        # The leg it replaces (media, after REFER) is gone: its timer must not end or refresh the call.
        timers.legs = [s for s in timers.legs if s.side is call.a]
    leg = uac_leg(request, response)
    if leg is None:
        if timers is not None:
            timers.start()
        return
    if timers is None:
        timers = call.timers = CallTimers(call)
    timers.add(side, leg, peer_allows_update=allows_update(response), party_sdp=response.body)
    timers.start()
