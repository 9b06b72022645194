"""asyncio glue for sending reliable provisional responses (RFC 3262 §3) on an incoming INVITE.

:class:`ReliableResponder` wraps the sans-IO :class:`~secondnum.sip.reliable.ReliableProvisionals` of one
:class:`~secondnum.sip.endpoint.IncomingRequest`: responses go out through the INVITE server transaction,
retransmissions run on one ``loop.call_at`` timer per INVITE (only INVITEs that use 100rel pay for it), and
PRACKs are matched for the application, which answers them (a B2BUA answers with what the far side said).
The PRACK itself arrives as an in-dialog request, so the early dialog must be in the endpoint's dialog
table (:meth:`~secondnum.sip.dialog.DialogTable.add`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..log import get_logger
from .endpoint import IncomingRequest
from .errors import SipError, SipParseError
from .message import SipResponse
from .reliable import PrackMatch, PrackTimeout, RAck, ReliableProvisionals, Retransmit, rack_of

log = get_logger(__name__)


class ReliableResponder:
    """Reliable 1xx for one incoming INVITE; ``on_timeout(response)`` runs when a PRACK never came."""

    __slots__ = ("_core", "_handle", "_inc", "_loop", "_settled", "on_timeout")

    def __init__(self, inc: IncomingRequest, t1: float,
                 on_timeout: Callable[[SipResponse], None] | None = None) -> None:
        self._inc = inc
        self._core = ReliableProvisionals(inc.request.cseq.seq, t1)
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._settled: asyncio.Event | None = None
        self.on_timeout = on_timeout

    @property
    def core(self) -> ReliableProvisionals:
        return self._core

    def send(self, resp: SipResponse) -> None:
        """Send ``resp`` reliably (now, or once the outstanding one is PRACKed); dropped after the final."""
        if self._core.closed or self._inc.final_sent:
            return
        out = self._core.send(resp, self._loop.time())
        if out is not None:
            self._transmit(out)
        self._arm()

    def match(self, prack: IncomingRequest) -> tuple[PrackMatch, SipResponse | None]:
        """Match a PRACK (§3). On ``NO_MATCH`` it has been answered 481 (400 for a bad RAck); on ``ACKED``
        the application answers it (2xx)."""
        try:
            rack = rack_of(prack.request)
        except SipParseError:
            rack = None
            prack.respond(400, headers=[("Warning", '399 - "Bad RAck"')])
            return PrackMatch.NO_MATCH, None
        if rack is None:
            prack.respond(481)
            return PrackMatch.NO_MATCH, None
        return self.match_rack(rack, prack)

    def match_rack(self, rack: RAck, prack: IncomingRequest | None = None) -> tuple[PrackMatch,
                                                                                      SipResponse | None]:
        result, acked, nxt = self._core.on_prack(rack, self._loop.time())
        if result is PrackMatch.NO_MATCH:
            if prack is not None:
                prack.respond(481)
            return result, None
        if nxt is not None:
            self._transmit(nxt)
        self._arm()
        self._check_settled()
        return result, acked

    def may_send_2xx(self) -> bool:
        return self._core.may_send_2xx()

    async def settled(self, timeout: float) -> bool:
        """Wait until a 2xx may be sent (§3); False on timeout."""
        if self._core.may_send_2xx():
            return True
        if self._settled is None:
            self._settled = asyncio.Event()
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def final_sent(self) -> None:
        """The INVITE got its final response: stop retransmitting."""
        self._core.final_sent()
        self._cancel_timer()
        self._check_settled()

    def close(self) -> None:
        self.final_sent()

    def _check_settled(self) -> None:
        if self._settled is not None and (self._core.may_send_2xx() or self._core.closed):
            self._settled.set()

    def _transmit(self, resp: SipResponse) -> None:
        try:
            self._inc.send(resp)
        except SipError as exc:  # the final response went out meanwhile
            log.info("reliable_1xx_not_sent", call_id=self._inc.request.call_id, error=str(exc))
            self.final_sent()

    def _cancel_timer(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self) -> None:
        self._cancel_timer()
        deadline = self._core.next_deadline()
        if deadline is not None:
            self._handle = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if self._inc.final_sent:
            self.final_sent()
            return
        for ev in self._core.on_timer(self._loop.time()):
            if isinstance(ev, Retransmit):
                if not self._inc.final_sent:
                    self._transmit(ev.response)
            elif isinstance(ev, PrackTimeout):
                log.warning("prack_timeout", call_id=self._inc.request.call_id, status=ev.response.status)
                self._check_settled()
                if self.on_timeout is not None:
                    try:
                        self.on_timeout(ev.response)
                    except Exception:
                        log.exception("prack_timeout_callback_error")
        self._arm()
