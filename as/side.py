"""One side of a B2BUA call: a dialog plus how to reach it, and the in-dialog requests the AS sends on it.

RFC 3261 §12.2.1.1 (requests within a dialog), §13.2.2.4 (ACK for a 2xx), §15.1.1 (BYE). Each side keeps
its own SDP origin (:class:`appserver.sdp_origin.OriginKeeper`) so bodies relayed from the other side stay
consistent for this party (RFC 3264 §8).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable

from appserver.cdr import LegRecord
from appserver.sdp_origin import OriginKeeper
from charging.client import RoSession
from secondnum.log import get_logger
from secondnum.sip import (
    Dialog,
    DialogState,
    SipEndpoint,
    SipError,
    SipRequest,
    SipResponse,
)

log = get_logger(__name__)

BYE_TIMEOUT = 32.0


class Role(enum.StrEnum):
    CALLER = "caller"
    FORWARD = "forward"
    VOICEMAIL = "voicemail"
    OUTGOING = "outgoing"


class Side:
    """A confirmed dialog of the call and what the AS knows about that party."""

    __slots__ = ("dialog", "ep", "origin", "record", "remote_sdp", "ro", "role", "transport")

    def __init__(self, ep: SipEndpoint, dialog: Dialog, transport: str, role: Role, *,
                 record: LegRecord | None = None, ro: RoSession | None = None) -> None:
        self.ep = ep
        self.dialog = dialog
        self.transport = transport
        self.role = role
        self.record = record
        self.ro = ro
        self.origin = OriginKeeper()
        # The session description this party answered with (body, Content-Type), when the AS needs it later
        # (flow C puts the customer back on the menu's media after failed early media).
        self.remote_sdp: tuple[bytes, str | None] | None = None

    @property
    def alive(self) -> bool:
        return self.dialog.state is not DialogState.TERMINATED

    def sdp(self, body: bytes, content_type: str | None) -> bytes:
        """A body on its way to this side: SDP gets our origin for this side."""
        if body and (content_type or "").lower().startswith("application/sdp"):
            return self.origin.rewrite(body)
        return body

    async def request(self, method: str, body: bytes = b"", content_type: str | None = None,
                      headers: Iterable[tuple[str, str]] = ()) -> tuple[SipRequest, SipResponse]:
        """Send an in-dialog request and wait for its final response (408 on timeout/transport error)."""
        req = self.dialog.create_request(method, body, content_type, headers)
        dest, transport = self.dialog.next_hop(self.transport)
        handle = self.ep.request(req, dest, transport)
        try:
            resp = await handle.final_response()
        except SipError:
            resp = req.create_response(408)
        self.dialog.on_response(req, resp)
        return req, resp

    def ack(self, invite: SipRequest, body: bytes = b"", content_type: str | None = None) -> None:
        ack = self.dialog.create_ack(invite.cseq.seq, body, content_type)
        dest, transport = self.dialog.next_hop(self.transport)
        self.ep.send_ack(ack, dest, transport)

    async def bye(self, reason: str | None = None) -> int:
        """Release this side (§15.1.1); returns the BYE's final status (0 when already terminated)."""
        if not self.alive:
            return 0
        headers = [("Reason", reason)] if reason else []
        try:
            _, resp = await self.request("BYE", headers=headers)
        except SipError as exc:
            log.warning("bye_failed", call_id=self.dialog.call_id, error=str(exc))
            resp = None
        self.dialog.terminate()
        with contextlib.suppress(Exception):
            self.ep.dialogs.remove(self.dialog)
        return resp.status if resp is not None else 0

    def forget(self) -> None:
        """The dialog ended (BYE received): stop routing requests to this call."""
        self.dialog.terminate()
        self.ep.dialogs.remove(self.dialog)
