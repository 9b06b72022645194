"""Sans-IO SIP transaction layer (RFC 3261 §17, with the RFC 6026 "Accepted" states).

The layer is fed messages with their source and transport plus ``now`` and returns events; the datagrams it
wants sent accumulate in :meth:`TransactionLayer.take_outgoing`. Timers are absolute deadlines kept in one
heap; the caller asks :meth:`TransactionLayer.next_deadline` and calls :meth:`TransactionLayer.on_timer`
when due.
Nothing here touches sockets or clocks, so unit tests drive it with a fake ``now``.

Transport reliability (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2): over TCP/TLS the request/response
retransmission timers (A, E, G) are not started and D, I, J, K are zero. The UAS core's 2xx retransmission
(§13.3.1.4, Timer L of RFC 6026 for the give-up) runs on every transport because TCP is hop-by-hop only.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from enum import Enum

from . import metrics
from .errors import SipParseError
from .headers import Headers
from .message import MAGIC_COOKIE, SipMessage, SipRequest, SipResponse

Address = tuple[str, int]


@dataclass(slots=True, frozen=True)
class TimerConfig:
    """T1 (RTT estimate), T2 (max non-INVITE retransmit interval), T4 (max network lifetime), §17.1.1.1."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    # §17.2.1: the INVITE server transaction sends 100 Trying unless the TU answers within 200 ms; we send it
    # after ``trying`` seconds without any response (0 = at once). Saves a datagram on fast answers.
    trying: float = 0.1
    # Timer D (§17.1.1.2): how long an INVITE client transaction absorbs final-response retransmissions over
    # UDP; the RFC asks for at least 32 s.
    d: float = 32.0


@dataclass(slots=True)
class Outgoing:
    """A datagram/stream write the layer wants done. ``kind`` is the method or ``"response"`` (for metrics);
    ``message`` is the message object when there is one (not for retransmissions of retired transactions)."""

    data: bytes
    dest: Address
    transport: str
    message: SipMessage | None
    kind: str


def _kind(msg: SipMessage) -> str:
    return msg.method if isinstance(msg, SipRequest) else "response"


# What a request must keep to build an ACK, CANCEL or response from it (§17.1.1.3, §9.1, §8.2.6).
_HUSK_HEADERS = ("via", "max-forwards", "from", "to", "call-id", "cseq", "route")


def _husk(req: SipRequest) -> SipRequest:
    """A stand-in with the Request-URI and the headers of :data:`_HUSK_HEADERS`, no body, no parsed values.

    Transactions live 64*T1 after their final response (Timers J, L, M) only to absorb retransmissions; at
    hundreds of calls per second the full parsed messages kept that long dominate the garbage collector's
    work, so finished transactions keep this husk and the encoded bytes they may have to re-send.
    """
    husk = SipRequest(req.method, req.raw_uri)
    src = req.headers._map
    dst = husk.headers._map
    for name in _HUSK_HEADERS:
        values = src.get(name)
        if values:
            dst[name] = values
    return husk


class TxState(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


# --- events ---------------------------------------------------------------------------------------------

@dataclass(slots=True)
class RequestReceived:
    tx: ServerTransaction
    request: SipRequest
    source: Address
    transport: str


@dataclass(slots=True)
class AckReceived:
    """ACK for a 2xx (its own transaction, §17.1.1.3); ``tx`` is the accepted INVITE server tx if matched."""

    request: SipRequest
    source: Address
    transport: str
    tx: ServerInviteTransaction | None


@dataclass(slots=True)
class CancelReceived:
    """A CANCEL matched a pending INVITE server transaction (§9.2); the CANCEL was already answered 200."""

    cancel: SipRequest
    tx: ServerInviteTransaction


@dataclass(slots=True)
class ResponseReceived:
    tx: ClientTransaction
    response: SipResponse
    retransmission: bool = False


@dataclass(slots=True)
class TransactionTimeout:
    """Timer B/F (client, no final response), H (server, no ACK for a non-2xx) or ``cancel`` (§9.1)."""

    tx: Transaction
    timer: str


@dataclass(slots=True)
class AckTimeout:
    """A 2xx to INVITE was never ACKed within 64*T1 (§13.3.1.4): the UAS core should send BYE."""

    tx: ServerInviteTransaction


@dataclass(slots=True)
class TransactionTerminated:
    tx: Transaction


Event = (RequestReceived | AckReceived | CancelReceived | ResponseReceived | TransactionTimeout | AckTimeout
         | TransactionTerminated)


# --- transactions ---------------------------------------------------------------------------------------

class Transaction:
    """State shared by the four machines. ``timers`` maps a timer letter to its absolute deadline."""

    __slots__ = ("_layer", "dest", "key", "reliable", "request", "state", "timers", "transport", "user_data")

    def __init__(self, layer: TransactionLayer, key: tuple[str, ...], request: SipRequest, dest: Address,
                 transport: str) -> None:
        self._layer = layer
        self.key = key
        self.request = request
        self.dest = dest
        self.transport = transport
        self.reliable = transport != "udp"
        self.state = TxState.TRYING
        self.timers: dict[str, float] = {}
        self.user_data: object = None

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def terminated(self) -> bool:
        return self.state is TxState.TERMINATED

    def _start(self, name: str, delay: float, now: float) -> None:
        deadline = now + delay
        self.timers[name] = deadline
        self._layer._schedule(deadline, self, name)

    def _stop(self, *names: str) -> None:
        for n in names:
            self.timers.pop(n, None)

    def _send(self, msg: SipMessage, data: bytes | None = None) -> bytes:
        data = msg.encode() if data is None else data
        self._layer._out.append(Outgoing(data, self.dest, self.transport, msg, _kind(msg)))
        return data

    def _resend(self, data: bytes, kind: str) -> None:
        self._layer._out.append(Outgoing(data, self.dest, self.transport, None, kind))

    def _retire(self) -> None:
        """Drop what a finished server transaction no longer needs: only retransmissions remain to absorb
        (by key) and the encoded response to re-send. The request keeps its method and Request-URI."""
        self.request = SipRequest(self.request.method, self.request.raw_uri)
        self.user_data = None

    def _terminate(self) -> None:
        if self.state is not TxState.TERMINATED:
            self.state = TxState.TERMINATED
            self.timers.clear()
            self._layer._remove(self)

    def fire(self, name: str, now: float) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state.value} {self.key[0]}>"


class ClientTransaction(Transaction):
    """Common part of client transactions (§17.1)."""

    __slots__ = ("_data", "_interval", "last_response")

    def __init__(self, layer: TransactionLayer, key: tuple[str, ...], request: SipRequest, dest: Address,
                 transport: str) -> None:
        super().__init__(layer, key, request, dest, transport)
        self._data = b""
        self._interval = layer.timers.t1
        self.last_response: SipResponse | None = None

    @property
    def branch(self) -> str:
        return self.key[0]

    def _finish(self) -> None:
        """Final response received: keep only what absorbing retransmissions needs (see :func:`_husk`).

        ``user_data`` stays: the TU may need it for events still to come (2xx retransmissions in Accepted).
        """
        self.request = _husk(self.request)
        self.last_response = None

    def receive(self, resp: SipResponse, now: float) -> None:
        raise NotImplementedError


class ClientInviteTransaction(ClientTransaction):
    """INVITE client transaction (§17.1.1, Figure 5; RFC 6026 §8.4 Accepted state)."""

    __slots__ = ("_ack_data", "cancel_requested")

    def __init__(self, layer: TransactionLayer, key: tuple[str, ...], request: SipRequest, dest: Address,
                 transport: str) -> None:
        super().__init__(layer, key, request, dest, transport)
        self._ack_data = b""
        self.cancel_requested = False

    def start(self, now: float) -> None:
        t = self._layer.timers
        self.state = TxState.CALLING
        self._data = self._send(self.request)
        if not self.reliable:
            self._start("A", t.t1, now)
        self._start("B", 64 * t.t1, now)

    def receive(self, resp: SipResponse, now: float) -> None:
        layer = self._layer
        st = self.state
        code = resp.status
        if st in (TxState.CALLING, TxState.PROCEEDING):
            self.last_response = resp
            if code < 200:
                self.state = TxState.PROCEEDING
                self._stop("A", "B")
                layer._events.append(ResponseReceived(self, resp))
            elif code < 300:
                # RFC 6026 §8.4: stay to pass 2xx retransmissions to the TU (which re-ACKs) until Timer M.
                self.state = TxState.ACCEPTED
                self._stop("A", "B", "cancel")
                self._start("M", 64 * layer.timers.t1, now)
                layer._events.append(ResponseReceived(self, resp))
                self._finish()
            else:
                self.state = TxState.COMPLETED
                self._stop("A", "B", "cancel")
                self._ack_data = self._send(self._build_ack(resp))
                self._finish()
                if self.reliable:
                    layer._events.append(ResponseReceived(self, resp))
                    self._terminate()
                    return
                self._start("D", layer.timers.d, now)
                layer._events.append(ResponseReceived(self, resp))
        elif st is TxState.ACCEPTED:
            if 200 <= code < 300:
                metrics.RETRANSMISSIONS_RECEIVED.labels("response").inc()
                layer._events.append(ResponseReceived(self, resp, retransmission=True))
        elif st is TxState.COMPLETED and code >= 300:
            metrics.RETRANSMISSIONS_RECEIVED.labels("response").inc()
            self._resend(self._ack_data, "ACK")  # re-send the same ACK (§17.1.1.2)

    def _build_ack(self, resp: SipResponse) -> SipRequest:
        """ACK for a non-2xx final response (§17.1.1.3)."""
        req = self.request
        h = Headers()
        top_via = req.headers.get("via")
        if top_via is not None:
            h.set("via", top_via)
        for name in ("max-forwards", "from", "call-id", "route"):
            values = req.headers.get_raw(name)
            if values:
                h.set(name, values)
        to_values = resp.headers.get_raw("to")
        h.set("to", to_values or req.headers.get_raw("to"))
        h.set("cseq", f"{req.cseq.seq} ACK")
        return SipRequest("ACK", req.raw_uri, h)

    def start_cancel_timer(self, now: float) -> None:
        """§9.1: without a final response 64*T1 after CANCEL, consider the INVITE transaction gone."""
        self.cancel_requested = True
        if self.state in (TxState.CALLING, TxState.PROCEEDING) and "cancel" not in self.timers:
            self._start("cancel", 64 * self._layer.timers.t1, now)

    def fire(self, name: str, now: float) -> None:
        layer = self._layer
        if name == "A" and self.state is TxState.CALLING:
            metrics.RETRANSMISSIONS.labels("request").inc()
            self._resend(self._data, self.request.method)
            self._interval *= 2
            self._start("A", self._interval, now)
        elif name == "B" and self.state is TxState.CALLING:
            metrics.TRANSACTION_TIMEOUTS.labels("B").inc()
            layer._events.append(TransactionTimeout(self, "B"))
            self._terminate()
        elif name == "cancel" and self.state in (TxState.CALLING, TxState.PROCEEDING):
            metrics.TRANSACTION_TIMEOUTS.labels("cancel").inc()
            layer._events.append(TransactionTimeout(self, "cancel"))
            self._terminate()
        elif name in ("D", "M"):
            self._terminate()


class ClientNonInviteTransaction(ClientTransaction):
    """Non-INVITE client transaction (§17.1.2, Figure 6)."""

    __slots__ = ()

    def start(self, now: float) -> None:
        t = self._layer.timers
        self.state = TxState.TRYING
        self._data = self._send(self.request)
        if not self.reliable:
            self._start("E", t.t1, now)
        self._start("F", 64 * t.t1, now)

    def receive(self, resp: SipResponse, now: float) -> None:
        layer = self._layer
        if self.state in (TxState.TRYING, TxState.PROCEEDING):
            self.last_response = resp
            if resp.status < 200:
                self.state = TxState.PROCEEDING
                layer._events.append(ResponseReceived(self, resp))
                return
            self._stop("E", "F")
            self.state = TxState.COMPLETED
            layer._events.append(ResponseReceived(self, resp))
            self._finish()
            if self.reliable:
                self._terminate()
            else:
                self._start("K", layer.timers.t4, now)
        elif self.state is TxState.COMPLETED:
            metrics.RETRANSMISSIONS_RECEIVED.labels("response").inc()

    def fire(self, name: str, now: float) -> None:
        t = self._layer.timers
        if name == "E" and self.state in (TxState.TRYING, TxState.PROCEEDING):
            metrics.RETRANSMISSIONS.labels("request").inc()
            self._resend(self._data, self.request.method)
            self._interval = t.t2 if self.state is TxState.PROCEEDING else min(2 * self._interval, t.t2)
            self._start("E", self._interval, now)
        elif name == "F" and self.state in (TxState.TRYING, TxState.PROCEEDING):
            metrics.TRANSACTION_TIMEOUTS.labels("F").inc()
            self._layer._events.append(TransactionTimeout(self, "F"))
            self._terminate()
        elif name == "K":
            self._terminate()


class ServerTransaction(Transaction):
    """Common part of server transactions (§17.2). ``dest`` is where responses go (§18.2.2)."""

    __slots__ = ("_last_data", "final_status", "last_response", "source")

    def __init__(self, layer: TransactionLayer, key: tuple[str, ...], request: SipRequest, dest: Address,
                 transport: str, *, source: Address) -> None:
        super().__init__(layer, key, request, dest, transport)
        self.source = source
        self.last_response: SipResponse | None = None
        self.final_status = 0
        self._last_data = b""

    @property
    def final_sent(self) -> bool:
        return self.final_status >= 200

    def _record(self, resp: SipResponse) -> None:
        self.last_response = resp
        if resp.status >= 200:
            self.final_status = resp.status
        self._last_data = self._send(resp)

    def _retire(self) -> None:
        super()._retire()
        self.last_response = None

    def send_response(self, resp: SipResponse, now: float) -> None:
        raise NotImplementedError

    def retransmitted_request(self) -> None:
        """A retransmission of the request arrived: re-send the last response if any (§17.2.1, §17.2.2)."""
        metrics.RETRANSMISSIONS_RECEIVED.labels("request").inc()
        if self._last_data and self.state is not TxState.TRYING:
            metrics.RETRANSMISSIONS.labels("response").inc()
            self._resend(self._last_data, "response")


class ServerInviteTransaction(ServerTransaction):
    """INVITE server transaction (§17.2.1, Figure 7; RFC 6026 §7.1 Accepted state with Timer L)."""

    __slots__ = ("_ack_key_value", "_interval", "ack_received", "cancelled")

    def __init__(self, layer: TransactionLayer, key: tuple[str, ...], request: SipRequest, dest: Address,
                 transport: str, *, source: Address) -> None:
        super().__init__(layer, key, request, dest, transport, source=source)
        self.state = TxState.PROCEEDING
        self._interval = layer.timers.t1
        self.ack_received = False
        self.cancelled = False
        self._ack_key_value: tuple[str, str, int] | None = None

    def send_response(self, resp: SipResponse, now: float) -> None:
        st = self.state
        t = self._layer.timers
        code = resp.status
        if st is TxState.PROCEEDING:
            self._record(resp)
            if code < 200:
                return
            if code < 300:
                # §13.3.1.4 2xx retransmission by the UAS core until ACK; give up after 64*T1 (Timer L).
                self.state = TxState.ACCEPTED
                self._interval = t.t1
                self._start("G2xx", t.t1, now)
                self._start("L", 64 * t.t1, now)
                key = self._ack_key_value = self._ack_key()
                self._layer._accepted[key] = self
            else:
                self.state = TxState.COMPLETED
                if not self.reliable:
                    self._start("G", t.t1, now)
                self._start("H", 64 * t.t1, now)
        elif st is TxState.ACCEPTED and 200 <= code < 300 and not self.ack_received:
            # A TU may re-send the same 2xx (RFC 6026 §7.1); other responses are ignored.
            self._record(resp)

    def _ack_key(self) -> tuple[str, str, int]:
        req = self.request
        return (req.call_id, req.from_.tag or "", req.cseq.seq)

    def receive_ack(self, ack: SipRequest, now: float) -> bool:
        """ACK within the transaction. Returns True when it is an ACK for a 2xx the TU should see."""
        if self.state is TxState.COMPLETED:
            self.state = TxState.CONFIRMED
            self._stop("G", "H")
            if self.reliable:
                self._terminate()
            else:
                self._start("I", self._layer.timers.t4, now)
                self._retire()
            return False
        if self.state is TxState.ACCEPTED:
            first = not self.ack_received
            self.ack_received = True
            self._stop("G2xx")
            return first
        return False

    def ack_delivered(self) -> None:
        """The TU has seen the ACK for our 2xx: only retransmissions remain to absorb until Timer L."""
        self._retire()

    def send_trying(self, now: float) -> None:
        """100 Trying if nothing was sent yet (§17.2.1); also the answer to an early retransmission."""
        if self.state is TxState.PROCEEDING and self.last_response is None:
            self.send_response(self.request.create_response(100), now)

    def retransmitted_request(self) -> None:
        if self.state is TxState.PROCEEDING and self.last_response is None:
            metrics.RETRANSMISSIONS_RECEIVED.labels("request").inc()
            self.send_trying(0.0)
            return
        if self.state is TxState.CONFIRMED:
            metrics.RETRANSMISSIONS_RECEIVED.labels("request").inc()
            return  # §17.2.1: absorbed once the ACK arrived
        super().retransmitted_request()

    def fire(self, name: str, now: float) -> None:
        t = self._layer.timers
        layer = self._layer
        if name == "trying":
            self.send_trying(now)
        elif name == "G2xx" and self.state is TxState.ACCEPTED and not self.ack_received:
            metrics.RETRANSMISSIONS.labels("response").inc()
            self._resend(self._last_data, "response")
            self._interval = min(2 * self._interval, t.t2)
            self._start("G2xx", self._interval, now)
        elif name == "G" and self.state is TxState.COMPLETED:
            metrics.RETRANSMISSIONS.labels("response").inc()
            self._resend(self._last_data, "response")
            self._interval = min(2 * self._interval, t.t2)
            self._start("G", self._interval, now)
        elif name == "H" and self.state is TxState.COMPLETED:
            metrics.TRANSACTION_TIMEOUTS.labels("H").inc()
            layer._events.append(TransactionTimeout(self, "H"))
            self._terminate()
        elif name == "L" and self.state is TxState.ACCEPTED:
            if not self.ack_received:
                metrics.TRANSACTION_TIMEOUTS.labels("L").inc()
                layer._events.append(AckTimeout(self))
            self._terminate()
        elif name == "I":
            self._terminate()

    def _terminate(self) -> None:
        key = self._ack_key_value
        if key is not None and self._layer._accepted.get(key) is self:
            del self._layer._accepted[key]
        super()._terminate()


class ServerNonInviteTransaction(ServerTransaction):
    """Non-INVITE server transaction (§17.2.2, Figure 8)."""

    __slots__ = ()

    def send_response(self, resp: SipResponse, now: float) -> None:
        if self.state in (TxState.TRYING, TxState.PROCEEDING):
            self._record(resp)
            if resp.status < 200:
                self.state = TxState.PROCEEDING
                return
            self.state = TxState.COMPLETED
            if self.reliable:
                self._terminate()
            else:
                self._start("J", 64 * self._layer.timers.t1, now)
                self._retire()

    def fire(self, name: str, now: float) -> None:
        if name == "J":
            self._terminate()


# --- the layer ------------------------------------------------------------------------------------------

class TransactionLayer:
    """Matches messages to transactions (§17.1.3, §17.2.3), creates server transactions, runs timers."""

    def __init__(self, timers: TimerConfig | None = None) -> None:
        self.timers = timers or TimerConfig()
        self._client: dict[tuple[str, ...], ClientTransaction] = {}
        self._server: dict[tuple[str, ...], ServerTransaction] = {}
        self._accepted: dict[tuple[str, str, int], ServerInviteTransaction] = {}
        self._heap: list[tuple[float, int, Transaction, str]] = []
        self._seq = itertools.count()
        self._out: list[Outgoing] = []
        self._events: list[Event] = []

    # -- bookkeeping --
    def _schedule(self, deadline: float, tx: Transaction, name: str) -> None:
        heapq.heappush(self._heap, (deadline, next(self._seq), tx, name))

    def _remove(self, tx: Transaction) -> None:
        if isinstance(tx, ClientTransaction):
            self._client.pop(tx.key, None)
        else:
            self._server.pop(tx.key, None)
        self._events.append(TransactionTerminated(tx))

    def _flush(self) -> list[Event]:
        ev = self._events
        self._events = []
        return ev

    @property
    def client_transactions(self) -> int:
        return len(self._client)

    @property
    def server_transactions(self) -> int:
        return len(self._server)

    def client_transactions_to(self, dest: Address, transport: str) -> list[ClientTransaction]:
        """Pending client transactions towards one destination (to fail them on a transport error)."""
        return [tx for tx in self._client.values() if tx.dest == dest and tx.transport == transport]

    def take_outgoing(self) -> list[Outgoing]:
        out = self._out
        self._out = []
        return out

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, _, tx, name = heap[0]
            if tx.timers.get(name) == deadline:
                return deadline
            heapq.heappop(heap)  # stale entry: the timer was stopped or rescheduled
        return None

    def on_timer(self, now: float) -> list[Event]:
        """Fire every timer whose deadline is ``<= now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, tx, name = heapq.heappop(heap)
            if tx.timers.get(name) == deadline:
                del tx.timers[name]
                tx.fire(name, now)
        return self._flush()

    # -- client side --
    def send_request(self, req: SipRequest, dest: Address, transport: str, now: float) -> ClientTransaction:
        """Start a client transaction; the request must carry a top Via with an RFC 3261 branch."""
        if req.method == "ACK":
            raise ValueError("ACK is sent with send_stateless (§17.1.1.3)")
        branch = req.top_via.branch
        if not branch:
            raise ValueError("request has no Via branch")
        key = (branch, req.method)
        tx: ClientTransaction
        if req.method == "INVITE":
            tx = ClientInviteTransaction(self, key, req, dest, transport.lower())
            self._client[key] = tx
            tx.start(now)
        else:
            tx = ClientNonInviteTransaction(self, key, req, dest, transport.lower())
            self._client[key] = tx
            tx.start(now)
        return tx

    def send_stateless(self, msg: SipMessage, dest: Address, transport: str) -> bytes:
        """Queue a message outside any transaction (ACK for 2xx, §13.2.2.4); returns its bytes."""
        data = msg.encode()
        self._out.append(Outgoing(data, dest, transport.lower(), msg, _kind(msg)))
        return data

    def resend(self, data: bytes, msg: SipMessage, dest: Address, transport: str) -> None:
        self._out.append(Outgoing(data, dest, transport, msg, _kind(msg)))

    # -- server side --
    def send_response(self, resp: SipResponse, now: float) -> ServerTransaction | None:
        """Send a response through its server transaction; ``None`` if none matches (then nothing is sent)."""
        tx = self.find_server(resp)
        if tx is None or tx.terminated:
            return None
        tx.send_response(resp, now)
        return tx

    def find_server(self, msg: SipMessage) -> ServerTransaction | None:
        via = msg.top_via
        method = msg.cseq.method
        if method == "ACK":
            method = "INVITE"
        return self._server.get(self._server_key(msg, via.branch, via.sent_by, method))

    @staticmethod
    def _server_key(msg: SipMessage, branch: str | None, sent_by: str, method: str) -> tuple[str, ...]:
        if branch and branch.startswith(MAGIC_COOKIE):
            return (branch, sent_by, method)
        # RFC 2543 peers (§17.2.3 fallback): no usable branch, key on dialog-ish fields.
        return ("2543", msg.call_id, msg.from_.tag or "", str(msg.cseq.seq), sent_by, method)

    def receive(self, msg: SipMessage, source: Address, transport: str, now: float) -> list[Event]:
        """Feed a parsed message; raises :class:`BadHeaderError` if a field needed for matching is broken."""
        if isinstance(msg, SipResponse):
            self._receive_response(msg, now)
        elif isinstance(msg, SipRequest):
            self._receive_request(msg, source, transport.lower(), now)
        return self._flush()

    def _receive_response(self, resp: SipResponse, now: float) -> None:
        branch = resp.top_via.branch or ""
        tx = self._client.get((branch, resp.cseq.method))
        if tx is None:
            metrics.STRAY.labels("response").inc()
            return
        tx.receive(resp, now)

    def _response_dest(self, req: SipRequest, source: Address, transport: str) -> Address:
        """Annotate the top Via (§18.2.1, RFC 3581 §4) and compute where responses go (§18.2.2)."""
        via = req.top_via
        changed = False
        if via.host != source[0]:
            via.params["received"] = source[0]
            changed = True
        if "rport" in via.params:
            via.params["rport"] = str(source[1])
            changed = True
        if changed:
            vias = req.headers.get_all("via")
            vias[0] = str(via)
            req.headers.set("via", vias)
        if transport != "udp" or "rport" in via.params:
            return source
        default = 5061 if transport == "tls" else 5060
        return (via.received or via.host, via.port or default)

    def _receive_request(self, req: SipRequest, source: Address, transport: str, now: float) -> None:
        via = req.top_via
        method = req.method
        cseq = req.cseq
        if cseq.method != method and not (method == "ACK" and cseq.method == "INVITE"):
            raise SipParseError(f"CSeq method {cseq.method} does not match {method}")
        if method == "ACK":
            self._receive_ack(req, source, transport, now)
            return
        key = self._server_key(req, via.branch, via.sent_by, method)
        tx = self._server.get(key)
        if tx is not None:
            tx.retransmitted_request()
            return
        dest = self._response_dest(req, source, transport)
        if method == "INVITE":
            itx = ServerInviteTransaction(self, key, req, dest, transport, source=source)
            self._server[key] = itx
            self._events.append(RequestReceived(itx, req, source, transport))
            if self.timers.trying <= 0:
                itx.send_response(req.create_response(100), now)
            else:
                itx._start("trying", self.timers.trying, now)
            return
        ntx = ServerNonInviteTransaction(self, key, req, dest, transport, source=source)
        self._server[key] = ntx
        if method == "CANCEL":
            self._receive_cancel(req, ntx, now)
            return
        self._events.append(RequestReceived(ntx, req, source, transport))

    def _receive_cancel(self, cancel: SipRequest, ctx: ServerNonInviteTransaction, now: float) -> None:
        """§9.2: match the INVITE by the CANCEL's top Via; answer 200 (or 481) at once."""
        via = cancel.top_via
        invite = self._server.get(self._server_key(cancel, via.branch, via.sent_by, "INVITE"))
        if not isinstance(invite, ServerInviteTransaction):
            ctx.send_response(cancel.create_response(481), now)
            return
        last = invite.last_response
        to_tag = last.to.tag if last is not None and last.status > 100 else None
        ctx.send_response(cancel.create_response(200, to_tag=to_tag), now)
        if invite.state is TxState.PROCEEDING and not invite.cancelled:
            invite.cancelled = True
            self._events.append(CancelReceived(cancel, invite))

    def _receive_ack(self, ack: SipRequest, source: Address, transport: str, now: float) -> None:
        via = ack.top_via
        branch, sent_by = via.branch, via.sent_by
        tx = self._server.get(self._server_key(ack, branch, sent_by, "INVITE"))
        if isinstance(tx, ServerInviteTransaction) and tx.state is TxState.COMPLETED:
            tx.receive_ack(ack, now)  # ACK for a non-2xx: absorbed by the transaction (§17.2.1)
            return
        acc = self._accepted.get((ack.call_id, ack.from_.tag or "", ack.cseq.seq))
        if acc is not None:
            if acc.receive_ack(ack, now):
                self._events.append(AckReceived(ack, source, transport, acc))
            else:
                metrics.RETRANSMISSIONS_RECEIVED.labels("ack").inc()
            return
        self._events.append(AckReceived(ack, source, transport, None))

    def cancel_started(self, tx: ClientInviteTransaction, now: float) -> None:
        tx.start_cancel_timer(now)
