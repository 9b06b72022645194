"""The asyncio SIP endpoint: transports + one sans-IO transaction layer + one timer + dialog table.

Applications give a handler coroutine; it receives an :class:`IncomingRequest` for every new server
transaction and for every ACK to a 2xx. Client requests go through :meth:`SipEndpoint.request`, which returns
a :class:`ClientTransactionHandle` whose final response can be awaited. See ``README.md`` in this package.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from secondnum.entropy import random_hex

from ..log import get_logger
from . import metrics
from .dialog import B2BUATable, Dialog, DialogTable, uri_destination
from .errors import (
    AckTimeoutError,
    BadHeaderError,
    MessageTooLargeError,
    SipError,
    SipParseError,
    SipTransportError,
    TransactionTimeoutError,
)
from .fields import Warning
from .headers import Headers
from .message import SipMessage, SipRequest, SipResponse, new_branch, new_tag
from .parser import DEFAULT_MAX_SIZE, parse_message
from .transaction import (
    AckReceived,
    AckTimeout,
    Address,
    CancelReceived,
    ClientInviteTransaction,
    ClientTransaction,
    Event,
    RequestReceived,
    ResponseReceived,
    ServerInviteTransaction,
    ServerTransaction,
    TimerConfig,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TxState,
)
from .transport import SipTransport, TcpLimits
from .uri import NameAddr, SipURI, parse_name_addr

log = get_logger(__name__)

Handler = Callable[["IncomingRequest"], Awaitable[None]]

Screen = Callable[[SipRequest, "Address", str], "int | None"]
"""Called for each new out-of-dialog request before any transaction exists: ``None`` admits it, ``DROP``
discards it silently, a status code (>= 300) answers it statelessly. Refusing here keeps no state and sends
one datagram, so a scanner or a spoofed source cannot make us retransmit (RFC 3261 §17.2.1 Timer G would
repeat a transaction's final response up to 11 times towards a source that never ACKs)."""

DROP = 0

_MF_ZERO_OK = frozenset({"ACK", "CANCEL", "OPTIONS"})
# ACK and CANCEL belong to a transaction that was admitted (or refused) already.
_NEVER_SCREENED = frozenset({"ACK", "CANCEL"})

# Requests whose 1xx/2xx establish a dialog and therefore carry a Contact (§12.1.1, RFC 6665, RFC 3515).
_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})


def install_uvloop() -> bool:
    """Use uvloop's event loop policy when it is installed (call before the loop is created)."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


class IncomingRequest:
    """A request delivered to the application (a new server transaction, or an ACK for a 2xx)."""

    __slots__ = ("_ack", "_ack_timed_out", "_ack_waiter", "_cancel_event", "_cancelled", "_endpoint",
                 "_to_tag", "dialog",
                 "request", "source", "transport", "tx")

    def __init__(self, endpoint: SipEndpoint, request: SipRequest, source: Address, transport: str, *,
                 tx: ServerTransaction | None, dialog: Dialog | None) -> None:
        self._endpoint = endpoint
        self.request = request
        self.source = source
        self.transport = transport
        self.tx = tx
        self.dialog = dialog
        self._cancelled = False
        self._cancel_event: asyncio.Event | None = None
        self._to_tag: str | None = None
        self._ack: SipRequest | None = None
        self._ack_timed_out = False
        self._ack_waiter: asyncio.Future[SipRequest] | None = None

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def cancelled(self) -> asyncio.Event:
        """Set when a CANCEL matched this INVITE (§9.2). Created on first use: most requests never need it."""
        if self._cancel_event is None:
            self._cancel_event = asyncio.Event()
            if self._cancelled:
                self._cancel_event.set()
        return self._cancel_event

    def _cancel(self) -> None:
        self._cancelled = True
        if self._cancel_event is not None:
            self._cancel_event.set()

    @property
    def to_tag(self) -> str:
        """Our To tag: the request's if in-dialog, else one generated once for this transaction (§8.2.6.2)."""
        if self._to_tag is None:
            self._to_tag = self.request.to.tag or new_tag()
        return self._to_tag

    @property
    def final_sent(self) -> bool:
        return self.tx is not None and self.tx.final_sent

    def create_response(self, status: int, reason: str | None = None, *,
                        headers: Iterable[tuple[str, str]] = (), body: bytes = b"",
                        content_type: str | None = None, to_tag: str | None = None) -> SipResponse:
        """Build (without sending) a response; dialog-creating 1xx/2xx get our tag and a Contact."""
        req = self.request
        tag = to_tag or (self.to_tag if status > 100 else None)
        resp = req.create_response(status, reason, to_tag=tag, headers=headers, body=body,
                                   content_type=content_type)
        if (req.method in _DIALOG_CREATING and 100 < status < 300 and "contact" not in resp.headers):
            resp.headers.set("contact", f"<{self._endpoint.local_contact(transport=self.transport)}>")
        return resp

    def respond(self, status: int, reason: str | None = None, *, headers: Iterable[tuple[str, str]] = (),
                body: bytes = b"", content_type: str | None = None, to_tag: str | None = None) -> SipResponse:
        """Create and send a response through the transaction (2xx to INVITE: retransmitted until ACK)."""
        resp = self.create_response(status, reason, headers=headers, body=body, content_type=content_type,
                                    to_tag=to_tag)
        self.send(resp)
        return resp

    def send(self, resp: SipResponse) -> None:
        if self.tx is None:
            raise SipError("ACK cannot be answered")
        if self.tx.final_sent and not (isinstance(self.tx, ServerInviteTransaction) and resp.is_success):
            raise SipError(f"a final response was already sent to {self.request.method}")
        self._endpoint._send_response(self.tx, resp)

    async def wait_ack(self) -> SipRequest:
        """Wait for the ACK of our 2xx (§13.3.1.4); raises :class:`AckTimeoutError` after 64*T1."""
        if self._ack is not None:
            return self._ack
        if self._ack_timed_out:
            raise AckTimeoutError("no ACK for 2xx")
        if self._ack_waiter is None:
            self._ack_waiter = asyncio.get_running_loop().create_future()
        return await asyncio.shield(self._ack_waiter)

    def _ack_arrived(self, ack: SipRequest) -> None:
        self._ack = ack
        if self._ack_waiter is not None and not self._ack_waiter.done():
            self._ack_waiter.set_result(ack)

    def _ack_timeout(self) -> None:
        self._ack_timed_out = True
        if self._ack_waiter is not None and not self._ack_waiter.done():
            self._ack_waiter.set_exception(AckTimeoutError("no ACK for 2xx"))

    def __repr__(self) -> str:
        src = f"{self.transport}:{self.source[0]}:{self.source[1]}"
        return f"<IncomingRequest {self.request.method} from {src}>"


class _AcceptedInvite:
    """What an INVITE client transaction in the Accepted state (RFC 6026 §8.4) needs from its TU (Timer M).

    The ACKs to re-send per To tag (§13.2.2.4), the request's husk (to ACK and BYE the 2xx of another fork)
    and the tag the application has yet to ACK. The transaction keeps this, not the
    :class:`ClientTransactionHandle`, for those 64*T1: the handle holds the full request, the responses and
    the TU's callbacks, and through them the whole call, which would otherwise outlive the call by 32 s.
    """

    __slots__ = ("_acks", "final_tag", "request", "transport", "tx")

    def __init__(self, handle: ClientTransactionHandle, request: SipRequest, final_tag: str) -> None:
        self._acks = handle._acks  # shared: ACKs the application sends later land here too
        self.request = request
        self.transport = handle.transport
        self.final_tag = final_tag
        self.tx = handle.tx


class ClientTransactionHandle:
    """An outgoing request: await :meth:`final_response`, iterate :meth:`provisionals`."""

    __slots__ = ("_acks", "_cancel_pending", "_final", "_wake", "dest", "on_provisional", "provisional",
                 "request", "transport", "tx")

    def __init__(self, request: SipRequest, dest: Address, transport: str,
                 on_provisional: Callable[[SipResponse], None] | None) -> None:
        self.request = request
        self.dest = dest
        self.transport = transport
        self.tx: ClientTransaction | None = None
        self.on_provisional = on_provisional
        self.provisional: list[SipResponse] = []
        self._final: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        self._final.add_done_callback(_consume)
        self._wake: asyncio.Future[None] | None = None
        self._cancel_pending = False
        self._acks: dict[str, tuple[bytes, SipRequest, Address, str]] = {}

    @property
    def done(self) -> bool:
        return self._final.done()

    async def final_response(self) -> SipResponse:
        """The final response; raises :class:`TransactionTimeoutError` or :class:`SipTransportError`."""
        return await asyncio.shield(self._final)

    async def provisionals(self) -> AsyncIterator[SipResponse]:
        """1xx responses (those already received first); the iteration ends with the final response/error."""
        i = 0
        while True:
            while i < len(self.provisional):
                yield self.provisional[i]
                i += 1
            if self._final.done():
                return
            if self._wake is None:
                self._wake = asyncio.get_running_loop().create_future()
            await self._wake

    def _notify(self) -> None:
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)

    def _provisional(self, resp: SipResponse) -> None:
        self.provisional.append(resp)
        self._notify()
        if self.on_provisional is not None:
            try:
                self.on_provisional(resp)
            except Exception:
                metrics.HANDLER_ERRORS.inc()
                log.exception("sip_provisional_callback_error", call_id=self.request.headers.get("call-id"))

    def _set_final(self, resp: SipResponse) -> None:
        if not self._final.done():
            self._final.set_result(resp)
            self._notify()

    def _fail(self, exc: Exception) -> None:
        if not self._final.done():
            self._final.set_exception(exc)
            self._notify()


def _consume(fut: asyncio.Future[SipResponse]) -> None:
    # Mark the exception as retrieved: an application may legitimately never await a handle.
    if not fut.cancelled():
        fut.exception()


class SipEndpoint:
    """UDP+TCP listener, transaction layer, timer and dialog table of one SIP element."""

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", port: int = 5060,
                 timers: TimerConfig | None = None, max_message_size: int = DEFAULT_MAX_SIZE,
                 tcp_idle_timeout: float = 120.0, advertised_host: str | None = None,
                 user_agent: str | None = "secondnum",
                 on_ack_timeout: Callable[[IncomingRequest], None] | None = None,
                 screen: Screen | None = None, tcp_limits: TcpLimits | None = None,
                 tcp_trusted: Callable[[str], bool] | None = None) -> None:
        self.handler = handler
        self.screen = screen
        self.host = host
        self.port = port
        self.advertised_host = advertised_host
        self.user_agent = user_agent
        self.on_ack_timeout = on_ack_timeout
        self.max_message_size = max_message_size
        self.layer = TransactionLayer(timers)
        self.dialogs = DialogTable()
        self.b2bua = B2BUATable()
        self.transport = SipTransport(self._on_message, self._on_send_error, max_message_size,
                                      tcp_idle_timeout, self._on_oversize, tcp_limits=tcp_limits,
                                      trusted=tcp_trusted)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._invites: dict[tuple[str, int], ClientTransactionHandle | _AcceptedInvite] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sent_children: dict[tuple[str, str], object] = {}
        self._received_children: dict[tuple[str, str], object] = {}

    # --- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> Address:
        self._loop = asyncio.get_running_loop()
        addr = await self.transport.start(self.host, self.port)
        self.port = addr[1]
        log.info("sip_endpoint_started", host=addr[0], port=addr[1])
        return addr

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.transport.close()

    @property
    def local_address(self) -> Address:
        return (self.advertised_host or self.transport.local_address[0], self.transport.local_address[1])

    def local_contact(self, user: str | None = None, transport: str | None = None) -> SipURI:
        host, port = self.local_address
        params: dict[str, str | None] = {"transport": transport} if transport and transport != "udp" else {}
        return SipURI("sip", user, host, port, params)

    # --- building requests -----------------------------------------------------------------------------
    def new_request(self, method: str, uri: SipURI | str, from_: NameAddr | str, to: NameAddr | str, *,
                    call_id: str | None = None, cseq: int = 1, headers: Iterable[tuple[str, str]] = (),
                    body: bytes = b"", content_type: str | None = None, contact: bool = True,
                    transport: str = "udp") -> SipRequest:
        """An out-of-dialog request (§8.1.1) with a fresh From tag and Call-ID; Via is added when sent."""
        h = Headers()
        from_na = from_ if isinstance(from_, NameAddr) else parse_name_addr(from_)
        from_na = from_na.copy()
        from_na.params.setdefault("tag", new_tag())
        h.set("max-forwards", "70")
        h.set("from", str(from_na))
        h.set("to", str(to))
        h.set("call-id", call_id or f"{random_hex(12)}@{self.local_address[0]}")
        h.set("cseq", f"{cseq} {method}")
        if contact and method in _DIALOG_CREATING:
            h.set("contact", f"<{self.local_contact(transport=transport)}>")
        for name, value in headers:
            h.add(name, value)
        if content_type:
            h.set("content-type", content_type)
        return SipRequest(method, uri, h, body)

    def _add_via(self, req: SipRequest, transport: str) -> None:
        if "via" not in req.headers:
            host, port = self.local_address
            req.add_header("Via", f"SIP/2.0/{transport.upper()} {host}:{port};branch={new_branch()};rport")
        if "max-forwards" not in req.headers:
            req.set_header("Max-Forwards", "70")
        if self.user_agent and "user-agent" not in req.headers:
            req.headers.set("User-Agent", self.user_agent)

    @staticmethod
    def route_destination(req: SipRequest) -> tuple[Address, str]:
        """First Route entry, else the Request-URI (§8.1.2); IP addresses only (no DNS on call paths)."""
        routes = req.route
        return uri_destination(routes[0].uri if routes else req.uri)

    # --- client side -----------------------------------------------------------------------------------
    def request(self, req: SipRequest, dest: Address | None = None, transport: str | None = None,
                on_provisional: Callable[[SipResponse], None] | None = None) -> ClientTransactionHandle:
        """Send a request in a new client transaction (§17.1). Not for ACK (use :meth:`send_ack`)."""
        if dest is None or transport is None:
            rdest, rtransport = self.route_destination(req)
            dest = dest or rdest
            transport = transport or rtransport
        transport = transport.lower()
        self._add_via(req, transport)
        handle = ClientTransactionHandle(req, dest, transport, on_provisional)
        tx = self.layer.send_request(req, dest, transport, self._now())
        tx.user_data = handle
        handle.tx = tx
        if req.method == "INVITE":
            self._invites[(req.call_id, req.cseq.seq)] = handle
        self._flush([])
        return handle

    def send_ack(self, ack: SipRequest, dest: Address | None = None, transport: str | None = None) -> None:
        """Send the ACK for a 2xx (§13.2.2.4) outside any transaction; re-sent on 2xx retransmissions."""
        if dest is None or transport is None:
            rdest, rtransport = self.route_destination(ack)
            dest = dest or rdest
            transport = transport or rtransport
        transport = transport.lower()
        self._add_via(ack, transport)
        data = self.layer.send_stateless(ack, dest, transport)
        pending = self._invites.get((ack.call_id, ack.cseq.seq))
        if pending is not None:
            pending._acks[ack.to.tag or ""] = (data, ack, dest, transport)
        self._flush([])

    def cancel(self, handle: ClientTransactionHandle,
               reason: str | None = None) -> ClientTransactionHandle | None:
        """CANCEL a pending INVITE (§9.1). Deferred until a provisional arrived; no-op once final."""
        tx = handle.tx
        if not isinstance(tx, ClientInviteTransaction) or handle.done or tx.terminated:
            return None
        if tx.state is TxState.CALLING:
            handle._cancel_pending = True
            return None
        return self._send_cancel(handle, reason)

    def _send_cancel(self, handle: ClientTransactionHandle,
                     reason: str | None = None) -> ClientTransactionHandle:
        inv = handle.request
        h = Headers()
        h.set("via", inv.headers.get_raw("via")[:1])
        for name in ("max-forwards", "from", "to", "call-id", "route"):
            values = inv.headers.get_raw(name)
            if values:
                h.set(name, values)
        h.set("cseq", f"{inv.cseq.seq} CANCEL")
        if reason:
            h.set("reason", reason)
        cancel = SipRequest("CANCEL", inv.raw_uri, h)
        assert isinstance(handle.tx, ClientInviteTransaction)
        self.layer.cancel_started(handle.tx, self._now())
        return self.request(cancel, handle.dest, handle.transport)

    # --- server side -----------------------------------------------------------------------------------
    def _send_response(self, tx: ServerTransaction, resp: SipResponse) -> None:
        if self.user_agent and "server" not in resp.headers and resp.status > 100:
            resp.headers.set("Server", self.user_agent)
        tx.send_response(resp, self._now())
        self._flush([])

    def _respond_stateless(self, req: SipRequest, status: int, source: Address, transport: str,
                           headers: Iterable[tuple[str, str]] = ()) -> None:
        try:
            resp = req.create_response(status, headers=headers, to_tag=new_tag() if status > 100 else None)
            self.layer.send_stateless(resp, source, transport)
        except Exception:
            log.exception("sip_stateless_response_error", status=status)
        self._flush([])

    # --- input -----------------------------------------------------------------------------------------
    def _now(self) -> float:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    def _on_message(self, data: bytes, source: Address, transport: str) -> None:
        try:
            msg = parse_message(data, self.max_message_size, stream=transport != "udp")
        except MessageTooLargeError:
            self._on_oversize(data, source, transport)
            return
        except SipParseError as exc:
            metrics.PARSE_ERRORS.labels(transport).inc()
            log.warning("sip_parse_error", src=f"{source[0]}:{source[1]}", transport=transport,
                        error=str(exc), size=len(data))
            return
        kind = msg.method if isinstance(msg, SipRequest) else "response"
        # labels() takes a lock and builds a key per call: keep the children, as _flush does for sent
        # messages (bounded: the method name comes from the wire).
        key = (kind, transport)
        child = self._received_children.get(key)
        if child is None:
            child = metrics.MESSAGES_RECEIVED.labels(kind, transport)
            if len(self._received_children) < 64:
                self._received_children[key] = child
        child.inc()  # type: ignore[attr-defined]
        try:
            msg.validate()
            if isinstance(msg, SipRequest):
                _ = msg.uri
                mf = msg.max_forwards
                if mf == 0 and msg.method not in _MF_ZERO_OK:
                    # A request that reaches a B2BUA with no hops left is looping (§16.3 step 2); OPTIONS
                    # with Max-Forwards 0 is a legitimate probe of this element (§11) and is answered.
                    self._respond_stateless(msg, 483, source, transport)
                    return
                if self.screen is not None and msg.method not in _NEVER_SCREENED and not msg.to.tag:
                    verdict = self.screen(msg, source, transport)
                    if verdict is not None:
                        metrics.SCREENED.labels(msg.method, str(verdict)).inc()
                        if verdict != DROP:
                            self._respond_stateless(msg, verdict, source, transport)
                        return
            events = self.layer.receive(msg, source, transport, self._now())
        except SipParseError as exc:
            self._bad_message(msg, exc, source, transport)
            return
        self._flush(events)

    def _bad_message(self, msg: SipMessage, exc: SipParseError, source: Address, transport: str) -> None:
        header = exc.header if isinstance(exc, BadHeaderError) else "request"
        log.warning("sip_bad_message", src=f"{source[0]}:{source[1]}", transport=transport, header=header,
                    error=str(exc))
        if not isinstance(msg, SipRequest) or msg.method == "ACK":
            metrics.PARSE_ERRORS.labels(transport).inc()
            return
        if header == "Via" or "via" not in msg.headers:
            metrics.PARSE_ERRORS.labels(transport).inc()
            return  # nowhere to send a response (§18.2.2)
        metrics.BAD_REQUESTS.inc()
        warning = Warning(399, self.local_address[0], f"Bad header: {header}")
        self._respond_stateless(msg, 400, source, transport, [("Warning", str(warning))])

    def _on_oversize(self, data: bytes, source: Address, transport: str) -> None:
        """§18.1.1/§21.5.11: answer 513 when the header section is readable, else just drop."""
        metrics.OVERSIZE.labels(transport).inc()
        log.warning("sip_message_too_large", src=f"{source[0]}:{source[1]}", transport=transport,
                    size=len(data), limit=self.max_message_size)
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return
        try:
            head = data[:end]
            lines = [ln for ln in head.split(b"\r\n")
                     if not ln.lower().startswith((b"content-length", b"l:"))]
            msg = parse_message(b"\r\n".join(lines) + b"\r\n\r\n", max_size=len(head) + 4)
            if isinstance(msg, SipRequest) and msg.method != "ACK":
                msg.validate()
                self._respond_stateless(msg, 513, source, transport)
        except SipParseError:
            return

    def _on_send_error(self, dest: Address, transport: str) -> None:
        """Fail every pending client transaction towards ``dest`` at once (rather than at Timer B/F)."""
        for tx in self.layer.client_transactions_to(dest, transport):
            handle = tx.user_data
            if isinstance(handle, ClientTransactionHandle):
                handle._fail(SipTransportError(f"cannot send to {dest[0]}:{dest[1]}/{transport}"))

    # --- events ----------------------------------------------------------------------------------------
    def _flush(self, events: list[Event]) -> None:
        for ev in events:
            try:
                self._dispatch(ev)
            except Exception:
                log.exception("sip_event_error", kind=type(ev).__name__)
        send = self.transport.send
        for out in self.layer.take_outgoing():
            key = (out.kind, out.transport)
            child = self._sent_children.get(key)
            if child is None:
                child = self._sent_children[key] = metrics.MESSAGES_SENT.labels(*key)
            child.inc()  # type: ignore[attr-defined]
            send(out.data, out.dest, out.transport)
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.layer.next_deadline()
        if deadline is None:
            return
        if self._timer is not None and self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = self._loop or asyncio.get_running_loop()
        self._timer_at = deadline
        self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            events = self.layer.on_timer(self._now())
        except Exception:
            log.exception("sip_timer_error")
            events = []
        self._flush(events)

    def _dispatch(self, ev: Event) -> None:
        if isinstance(ev, RequestReceived):
            self._on_request(ev)
        elif isinstance(ev, ResponseReceived):
            self._on_response(ev)
        elif isinstance(ev, TransactionTerminated):
            tx = ev.tx
            if isinstance(tx, ClientInviteTransaction):
                key = (tx.request.call_id, tx.request.cseq.seq)
                indexed = self._invites.get(key)
                if indexed is not None and indexed.tx is tx:
                    del self._invites[key]
                handle = tx.user_data
                if isinstance(handle, ClientTransactionHandle):
                    handle._fail(SipTransportError("transaction ended without final response"))
            elif isinstance(tx, ClientTransaction):
                handle = tx.user_data
                if isinstance(handle, ClientTransactionHandle):
                    handle._fail(SipTransportError("transaction ended without final response"))
            tx.user_data = None
        elif isinstance(ev, AckReceived):
            self._on_ack(ev)
        elif isinstance(ev, CancelReceived):
            inc = ev.tx.user_data
            if isinstance(inc, IncomingRequest):
                if not ev.tx.final_sent:
                    inc.respond(487)
                inc._cancel()
        elif isinstance(ev, TransactionTimeout):
            tx = ev.tx
            handle = tx.user_data
            if isinstance(handle, ClientTransactionHandle):
                handle._fail(TransactionTimeoutError(ev.timer))
            else:
                log.info("sip_transaction_timeout", timer=ev.timer, method=tx.method,
                         call_id=tx.request.headers.get("call-id"))
        elif isinstance(ev, AckTimeout):
            inc = ev.tx.user_data
            log.warning("sip_ack_timeout", call_id=ev.tx.request.headers.get("call-id"))
            if isinstance(inc, IncomingRequest):
                inc._ack_timeout()
                if self.on_ack_timeout is not None:
                    try:
                        self.on_ack_timeout(inc)
                    except Exception:
                        log.exception("sip_ack_timeout_callback_error")

    def _on_request(self, ev: RequestReceived) -> None:
        req = ev.request
        dialog: Dialog | None = None
        if req.to.tag:
            dialog = self.dialogs.match_request(req)
            if dialog is None:
                ev.tx.send_response(req.create_response(481), self._now())
                return
            if not dialog.on_request(req):
                ev.tx.send_response(req.create_response(500, headers=[("Retry-After", "1")]), self._now())
                return
        inc = IncomingRequest(self, req, ev.source, ev.transport, tx=ev.tx, dialog=dialog)
        ev.tx.user_data = inc
        self._spawn(inc)

    def _on_ack(self, ev: AckReceived) -> None:
        inc_tx = ev.tx
        dialog = self.dialogs.match_request(ev.request) if ev.request.to.tag else None
        if inc_tx is not None and isinstance(inc_tx.user_data, IncomingRequest):
            inc_tx.user_data._ack_arrived(ev.request)
            dialog = dialog or inc_tx.user_data.dialog
            inc_tx.ack_delivered()
        elif dialog is None:
            metrics.STRAY.labels("ack").inc()
            return
        self._spawn(IncomingRequest(self, ev.request, ev.source, ev.transport, tx=None, dialog=dialog))

    def _on_response(self, ev: ResponseReceived) -> None:
        handle = ev.tx.user_data
        resp = ev.response
        if isinstance(handle, _AcceptedInvite):
            if ev.retransmission:
                self._on_2xx_retransmission(handle, resp)
            return
        if not isinstance(handle, ClientTransactionHandle):
            return
        if resp.status < 200:
            handle._provisional(resp)
            if handle._cancel_pending:
                handle._cancel_pending = False
                self._send_cancel(handle)
            return
        handle._set_final(resp)
        tx = ev.tx
        if resp.is_success and isinstance(tx, ClientInviteTransaction):
            # Accepted (RFC 6026 §8.4): keep only what re-ACKing 2xx retransmissions needs.
            accepted = _AcceptedInvite(handle, tx.request, resp.to.tag or "")
            tx.user_data = accepted
            key = (handle.request.call_id, handle.request.cseq.seq)
            if self._invites.get(key) is handle:
                self._invites[key] = accepted
        else:
            tx.user_data = None

    def _on_2xx_retransmission(self, handle: _AcceptedInvite, resp: SipResponse) -> None:
        """RFC 6026 §8.4: re-send our ACK on 2xx retransmission; ACK+BYE a 2xx of another fork (§13.2.2.4)."""
        tag = resp.to.tag or ""
        stored = handle._acks.get(tag)
        if stored is not None:
            data, ack, dest, transport = stored
            metrics.RETRANSMISSIONS.labels("ack").inc()
            self.layer.resend(data, ack, dest, transport)
            return
        if handle.final_tag == tag:
            return  # the application has not ACKed yet
        try:
            extra = Dialog.from_uac(handle.request, resp, self.local_contact())
            ack = extra.create_ack(handle.request.cseq.seq)
            dest, transport = extra.next_hop(handle.transport)
            self._add_via(ack, transport)
            handle._acks[tag] = (self.layer.send_stateless(ack, dest, transport), ack, dest, transport)
            self.request(extra.create_request("BYE"), dest, transport)
            log.info("sip_forked_2xx_released", call_id=handle.request.call_id, to_tag=tag)
        except SipError:
            log.warning("sip_forked_2xx_unusable", call_id=handle.request.call_id)

    def _spawn(self, inc: IncomingRequest) -> None:
        task = asyncio.get_running_loop().create_task(self._run_handler(inc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_handler(self, inc: IncomingRequest) -> None:
        try:
            await self.handler(inc)
        except asyncio.CancelledError:
            raise
        except BadHeaderError as exc:
            # A header the application needed (e.g. P-Served-User) is malformed: the request is bad, not us.
            metrics.BAD_REQUESTS.inc()
            log.warning("sip_bad_header", method=inc.method, header=exc.header, error=str(exc),
                        call_id=inc.request.headers.get("call-id"))
            if inc.tx is not None and not inc.tx.final_sent and not inc.tx.terminated:
                warning = Warning(399, self.local_address[0], f"Bad header: {exc.header}")
                with contextlib.suppress(Exception):
                    inc.respond(400, headers=[("Warning", str(warning))])
        except Exception:
            metrics.HANDLER_ERRORS.inc()
            log.exception("sip_handler_error", method=inc.method, call_id=inc.request.headers.get("call-id"))
            if inc.tx is not None and not inc.tx.final_sent and not inc.tx.terminated:
                with contextlib.suppress(Exception):
                    inc.respond(500)
