"""asyncio Diameter node on top of the sans-IO `PeerConnection` (RFC 6733).

One `DiameterNode` per process role: it connects to configured peers (reconnecting with exponential
backoff), optionally listens for incoming peers, routes requests (`routing.Router`), matches answers
by Hop-by-Hop id (§6.2), enforces a Tx timer per request, fails pending requests over to an
alternate peer with the T flag and the same End-to-End id when a connection goes down (§5.5.4),
answers T-flagged duplicates from a cache of recent answers keyed by Origin-Host + End-to-End id
(§6.2, §5.5.4), and dispatches incoming requests to handlers per (application id, command code).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from diameter.message import Message
from diameter.message.avp import Avp
from prometheus_client import Counter

from secondnum.diameter import codec
from secondnum.diameter import constants as dc
from secondnum.diameter.peer import (
    AnswerReceived,
    Event,
    LocalIdentity,
    PeerClosed,
    PeerConnection,
    PeerOpened,
    PeerState,
    ProtocolErrorSent,
    RequestReceived,
)
from secondnum.diameter.routing import PeerConfig, Router
from secondnum.log import get_logger

log = get_logger(__name__)

MESSAGES = Counter(
    "secondnum_diameter_requests_total",
    "Diameter requests by direction",
    ["direction", "application", "command"],
)
TIMEOUTS = Counter("secondnum_diameter_tx_expired_total", "Requests without answer within Tx", ["peer"])
FAILOVERS = Counter("secondnum_diameter_failovers_total", "Requests re-sent to an alternate peer", ["peer"])
PROTOCOL_ERRORS = Counter("secondnum_diameter_protocol_errors_total", "Bad input answered", ["result"])

VENDOR_SPECIFIC_APP_MIN = 16777216  # RFC 6733 §11.3: 3GPP applications are advertised with a vendor


class NoRouteError(Exception):
    """No OPEN peer can take the request (RFC 6733 §6.1.3, DIAMETER_UNABLE_TO_DELIVER)."""


class RequestTimeout(TimeoutError):  # noqa: N818 - public name in README
    """No answer within Tx; `peer_host` is the peer that did not answer."""

    def __init__(self, message: str, peer_host: str | None = None) -> None:
        super().__init__(message)
        self.peer_host = peer_host


@dataclass(frozen=True)
class PeerInfo:
    """Snapshot of a peer for handlers, health and metrics."""

    host: str
    realm: str
    state: str
    address: str = ""
    port: int = 0


Handler = Callable[[Message, PeerInfo], "Message | Awaitable[Message]"]


@dataclass(eq=False)
class _Pending:
    message: Message
    future: asyncio.Future[Message]
    realm: str | None
    host: str | None
    avoid: set[str]
    timer: asyncio.TimerHandle | None = None
    peer: _Peer | None = None


@dataclass(eq=False)
class _Peer:
    host: str
    realm: str
    priority: int = 0
    config: PeerConfig | None = None
    protocols: list[_Protocol] = field(default_factory=list)
    pending: dict[int, _Pending] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    def open_protocol(self) -> _Protocol | None:
        for p in self.protocols:
            if p.conn.can_send:
                return p
        return None

    def can_route(self, application_id: int) -> bool:
        p = self.open_protocol()
        return p is not None and application_id in p.conn.peer_applications

    def info(self) -> PeerInfo:
        states = [p.conn.state for p in self.protocols]
        state = PeerState.OPEN if PeerState.OPEN in states else (states[0] if states else PeerState.CLOSED)
        c = self.config
        return PeerInfo(self.host, self.realm, state.value, c.address if c else "", c.port if c else 0)


class _Protocol(asyncio.Protocol):
    """Glue between an asyncio transport and a `PeerConnection`."""

    def __init__(self, node: DiameterNode, initiator: bool, peer: _Peer | None) -> None:
        self.node = node
        self.loop = node.loop
        self.conn = PeerConnection(
            node.identity,
            initiator=initiator,
            now=self.loop.time(),
            watchdog_interval=node.watchdog_interval,
            ids=node.ids,
            acceptor=node._accepts,
        )
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[bool] = self.loop.create_future()  # result: reconnect wanted
        self.opened = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: duck-typed on purpose.
        self.transport = cast(asyncio.Transport, transport)
        self.node._protocols.add(self)
        self.conn.connection_made(self.loop.time())
        self.flush()

    def data_received(self, data: bytes) -> None:
        was_open = self.conn.state is PeerState.OPEN
        events = self.conn.receive_data(data, self.loop.time())
        if events:
            self.node._on_events(self, events)
        if not was_open and self.conn.state is PeerState.OPEN:
            self.node._peer_open.set()  # also SUSPECT -> OPEN on a late DWA (RFC 3539 §3.4.1)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.node._on_events(self, self.conn.connection_lost())
        self.transport = None

    # helpers ---------------------------------------------------------------------------

    def flush(self) -> None:
        data = self.conn.data_to_send()
        t = self.transport
        if data and t is not None and not t.is_closing():
            t.write(data)
        if self.conn.state is PeerState.CLOSED:
            if t is not None:
                t.close()
            return
        nt = self.conn.next_timer()
        if nt is not None and (self._timer is None or nt < self._timer_at):
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = nt
            self._timer = self.loop.call_at(nt, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        events = self.conn.handle_timer(self.loop.time())
        if events:
            self.node._on_events(self, events)
        self.flush()

    def write(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class DiameterNode:
    """A Diameter client/server node (see README.md in this package for the API)."""

    def __init__(
        self,
        origin_host: str,
        origin_realm: str,
        auth_applications: Iterable[int] = (dc.APP_RO,),
        *,
        host_ip: str = "127.0.0.1",
        product_name: str = "secondnum",
        tx_timeout: float = 5.0,
        watchdog_interval: float = 30.0,
        reconnect_min: float = 1.0,
        reconnect_max: float = 30.0,
        accept_unknown_peers: bool = True,
        duplicate_cache_size: int = 8192,
        duplicate_window: float = 120.0,
    ) -> None:
        apps = tuple(auth_applications)
        self.identity = LocalIdentity(
            origin_host=origin_host,
            origin_realm=origin_realm,
            host_ip=host_ip,
            product_name=product_name,
            auth_applications=tuple(a for a in apps if a < VENDOR_SPECIFIC_APP_MIN),
            vendor_specific_applications=tuple(a for a in apps if a >= VENDOR_SPECIFIC_APP_MIN),
            origin_state_id=int(time.time()) & 0xFFFFFFFF,  # RFC 6733 §8.16: increases at each start
        )
        self.origin_host = origin_host
        self.origin_realm = origin_realm
        self.tx_timeout = tx_timeout
        self.watchdog_interval = watchdog_interval
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.accept_unknown_peers = accept_unknown_peers
        self.ids = codec.IdGenerator()
        self._origin_avps = (
            codec.avp(dc.AVP_ORIGIN_HOST, origin_host.encode()),
            codec.avp(dc.AVP_ORIGIN_REALM, origin_realm.encode()),
        )
        self._peers: dict[str, _Peer] = {}
        self._handlers: dict[tuple[int, int], Handler] = {}
        self._pending: dict[int, _Pending] = {}
        self._answers: OrderedDict[tuple[str, int], tuple[float, bytes]] = OrderedDict()
        """Recent answers by (Origin-Host, End-to-End id), oldest first, each with when it is forgotten."""
        self._answers_max = duplicate_cache_size
        self.duplicate_window = duplicate_window
        """How long an answer is kept for a T-flagged duplicate. A retransmission comes after the sender's
        failover, at worst two watchdog intervals (RFC 3539 §3.4.1, Tw = 30 s) plus Tx after the original:
        120 s covers that. Without a time bound the cache kept its last 8,192 answers for good: after a
        burst, memory held by answers nobody could still ask for (RELIABILITY.md, overload)."""
        self._answers_timer: asyncio.TimerHandle | None = None
        self._protocols: set[_Protocol] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._router = Router()
        self._peer_open = asyncio.Event()
        self._running = False
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set in start()

    # ------------------------------------------------------------------ configuration

    def add_peer(self, config: PeerConfig) -> None:
        """A peer to connect to (and to accept CER from); started by `start()` or at once if running."""
        peer = self._peers.get(config.host)
        if peer is None:
            peer = self._peers[config.host] = _Peer(config.host, config.realm, config.priority, config)
        else:
            peer.config, peer.realm, peer.priority = config, config.realm, config.priority
        if self._running and config.address and peer.task is None:
            peer.task = self.loop.create_task(self._connect_loop(peer))

    def register_handler(self, application_id: int, command_code: int, handler: Handler) -> None:
        """`handler(request, peer)` returns the answer (built with `codec.new_answer`) or an awaitable."""
        self._handlers[(application_id, command_code)] = handler

    @property
    def listen_port(self) -> int:
        assert self._server is not None and self._server.sockets
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def is_serving(self) -> bool:
        """Listening for incoming peers (for readiness checks)."""
        return self._server is not None and self._server.is_serving()

    def peers(self) -> list[PeerInfo]:
        return [p.info() for p in self._peers.values()]

    # ------------------------------------------------------------------ lifecycle

    async def start(self, listen: tuple[str, int] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self._running = True
        if listen is not None:
            self._server = await self.loop.create_server(
                lambda: _Protocol(self, initiator=False, peer=None), listen[0], listen[1]
            )
            log.info(
                "diameter_listening", host=listen[0], port=self.listen_port, origin_host=self.origin_host
            )
        for peer in self._peers.values():
            if peer.config is not None and peer.config.address and peer.task is None:
                peer.task = self.loop.create_task(self._connect_loop(peer))

    async def wait_for_peer(
        self,
        realm: str | None = None,
        host: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        """Until some peer (of `realm` / with `host`) is OPEN; raises TimeoutError."""

        async def _wait() -> None:
            while not any(
                p.open_protocol() is not None
                and (realm is None or p.realm == realm)
                and (host is None or p.host == host)
                for p in self._peers.values()
            ):
                self._peer_open.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._peer_open.wait(), 0.5)

        await asyncio.wait_for(_wait(), timeout)

    async def stop(self) -> None:
        """DPR/DPA with every open peer (RFC 6733 §5.4), then close everything."""
        if self.loop is None:  # never started
            return
        self._running = False
        if self._answers_timer is not None:
            self._answers_timer.cancel()
            self._answers_timer = None
        if self._server is not None:
            self._server.close()
        for peer in self._peers.values():
            if peer.task is not None:
                peer.task.cancel()
        now = self.loop.time()
        closing = []
        for proto in list(self._protocols):
            proto.conn.disconnect(now)
            proto.flush()
            closing.append(proto.closed)
        if closing:
            await asyncio.wait(closing, timeout=2.0)
        for proto in list(self._protocols):
            proto.cancel_timer()
            if proto.transport is not None:
                proto.transport.close()
        for pend in list(self._pending.values()):
            self._finish(pend, exc=NoRouteError("node stopped"))
        tasks = [p.task for p in self._peers.values() if p.task is not None] + list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for peer in self._peers.values():
            peer.task = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # ------------------------------------------------------------------ requests out

    async def send_request(
        self,
        msg: Message,
        destination_realm: str | None = None,
        *,
        destination_host: str | None = None,
        timeout: float | None = None,
        avoid_hosts: Collection[str] = (),
        retransmit: bool = False,
    ) -> Message:
        """Send a request, await its answer (any Result-Code; error answers are returned too).

        Fills Origin-Host/Realm and Destination-Realm/Host when missing (after Session-Id, §8.8),
        keeps an End-to-End id already set (retransmissions, RFC 6733 §6.1.1), and sets the T flag
        when `retransmit`. Raises NoRouteError or RequestTimeout.
        """
        if not self._running:
            raise NoRouteError("node not started")
        msg = _plain(msg)
        h = msg.header
        if h.end_to_end_identifier == 0:
            h.end_to_end_identifier = self.ids.end_to_end()
        if retransmit:
            h.command_flags |= dc.FLAG_RETRANSMIT
        realm = destination_realm
        avps = msg.avps
        if codec.first(avps, dc.AVP_ORIGIN_HOST) is None:
            extra: list[Avp] = list(self._origin_avps)
            if destination_host is not None:
                extra.append(codec.avp(dc.AVP_DESTINATION_HOST, destination_host.encode()))
            if realm is not None and codec.first(avps, dc.AVP_DESTINATION_REALM) is None:
                extra.append(codec.avp(dc.AVP_DESTINATION_REALM, realm.encode()))
            at = 1 if avps and avps[0].code == dc.AVP_SESSION_ID else 0
            msg.avps = [*avps[:at], *extra, *avps[at:]]
        if realm is None:
            realm = codec.text(msg.avps, dc.AVP_DESTINATION_REALM)
        if destination_host is None:
            destination_host = codec.text(msg.avps, dc.AVP_DESTINATION_HOST)
        fut: asyncio.Future[Message] = self.loop.create_future()
        pend = _Pending(msg, fut, realm, destination_host, set(avoid_hosts))
        if not self._dispatch(pend):
            raise NoRouteError(f"no open peer for application {h.application_id} realm {realm}")
        MESSAGES.labels("out", h.application_id, h.command_code).inc()
        pend.timer = self.loop.call_later(
            self.tx_timeout if timeout is None else timeout, self._on_tx_expiry, pend
        )
        return await fut

    def _dispatch(self, pend: _Pending) -> bool:
        h = pend.message.header
        peer = self._router.select(self._peers.values(), h.application_id, pend.realm, pend.host, pend.avoid)
        if peer is None:
            return False
        assert isinstance(peer, _Peer)
        proto = peer.open_protocol()
        assert proto is not None
        hop = self.ids.hop_by_hop()
        h.hop_by_hop_identifier = hop
        pend.peer = peer
        self._pending[hop] = pend
        peer.pending[hop] = pend
        proto.write(codec.encode(pend.message))
        return True

    def _finish(self, pend: _Pending, result: Message | None = None, exc: Exception | None = None) -> None:
        hop = pend.message.header.hop_by_hop_identifier
        self._pending.pop(hop, None)
        if pend.peer is not None:
            pend.peer.pending.pop(hop, None)
        if pend.timer is not None:
            pend.timer.cancel()
        if not pend.future.done():
            if exc is not None:
                pend.future.set_exception(exc)
            else:
                pend.future.set_result(result)

    def _on_tx_expiry(self, pend: _Pending) -> None:
        pend.timer = None
        host = pend.peer.host if pend.peer else None
        TIMEOUTS.labels(host or "").inc()
        self._finish(pend, exc=RequestTimeout(f"no answer from {host} within Tx", host))

    def _failover(self, peer: _Peer) -> None:
        """Re-send requests pending on a failed peer to an alternate one (RFC 6733 §5.5.4)."""
        for hop, pend in list(peer.pending.items()):
            self._pending.pop(hop, None)
            peer.pending.pop(hop, None)
            pend.avoid.add(peer.host)
            FAILOVERS.labels(peer.host).inc()
            pend.message.header.command_flags |= dc.FLAG_RETRANSMIT
            if pend.host == peer.host:
                pend.host = None  # Destination-Host unreachable: route by realm instead
            if not self._dispatch(pend):
                self._finish(pend, exc=NoRouteError(f"peer {peer.host} failed, no alternate"))
            else:
                log.info("diameter_failover", failed=peer.host, to=pend.peer.host if pend.peer else "")

    # ------------------------------------------------------------------ events in

    def _accepts(self, host: str, realm: str) -> bool:
        return self.accept_unknown_peers or host in self._peers

    def _on_events(self, proto: _Protocol, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, AnswerReceived):
                pend = self._pending.get(ev.message.header.hop_by_hop_identifier)
                if pend is None:
                    log.debug("diameter_unmatched_answer", hop=ev.message.header.hop_by_hop_identifier)
                else:
                    self._finish(pend, ev.message)
            elif isinstance(ev, RequestReceived):
                self._on_request(proto, ev.message)
            elif isinstance(ev, PeerOpened):
                self._on_open(proto, ev)
            elif isinstance(ev, PeerClosed):
                self._on_closed(proto, ev)
            elif isinstance(ev, ProtocolErrorSent):
                PROTOCOL_ERRORS.labels(str(ev.result_code)).inc()
                log.warning(
                    "diameter_protocol_error",
                    result_code=ev.result_code,
                    detail=ev.detail,
                    peer=proto.conn.peer_host or "?",
                )

    def _on_open(self, proto: _Protocol, ev: PeerOpened) -> None:
        peer = proto.peer
        if peer is None:  # incoming connection
            peer = self._peers.get(ev.host)
            if peer is None:
                peer = self._peers[ev.host] = _Peer(ev.host, ev.realm)
            proto.peer = peer
        elif ev.host != peer.host:
            log.warning("diameter_peer_identity_mismatch", configured=peer.host, cea=ev.host)
        peer.protocols.append(proto)
        proto.opened = True
        self._peer_open.set()
        log.info("diameter_peer_open", host=ev.host, realm=ev.realm, apps=sorted(ev.applications))

    def _on_closed(self, proto: _Protocol, ev: PeerClosed) -> None:
        self._protocols.discard(proto)
        proto.cancel_timer()
        if proto.transport is not None:
            proto.write(proto.conn.data_to_send())  # the DPA to a peer's DPR goes out before the close
            proto.transport.close()
        if not proto.closed.done():
            proto.closed.set_result(ev.reconnect)
        peer = proto.peer
        if peer is None:
            return
        if proto in peer.protocols:
            peer.protocols.remove(proto)
        log.info("diameter_peer_closed", host=peer.host, reason=ev.reason)
        if peer.open_protocol() is None:
            self._failover(peer)
            if peer.config is None and not peer.protocols:
                self._peers.pop(peer.host, None)

    def _on_request(self, proto: _Protocol, req: Message) -> None:
        h = req.header
        MESSAGES.labels("in", h.application_id, h.command_code).inc()
        peer = proto.peer
        origin = codec.text(req.avps, dc.AVP_ORIGIN_HOST) or (peer.host if peer else "")
        key = (origin, h.end_to_end_identifier)
        if h.command_flags & dc.FLAG_RETRANSMIT:
            entry = self._answers.get(key)
            if entry is not None and entry[0] > self.loop.time():
                cached = entry[1]
                # Same answer, new Hop-by-Hop id (RFC 6733 §6.2: duplicate detection by E2E + origin).
                proto.write(cached[:12] + h.hop_by_hop_identifier.to_bytes(4, "big") + cached[16:])
                return
        handler = self._handlers.get((h.application_id, h.command_code))
        if handler is None:
            known_app = any(app == h.application_id for app, _ in self._handlers)
            rc = dc.COMMAND_UNSUPPORTED if known_app else dc.APPLICATION_UNSUPPORTED
            PROTOCOL_ERRORS.labels(str(rc)).inc()
            proto.conn.error_answer(h, rc, None, f"command {h.command_code} application {h.application_id}")
            proto.flush()
            return
        info = peer.info() if peer else PeerInfo(origin, "", "Open")
        try:
            result = handler(req, info)
        except Exception:
            log.exception("diameter_handler_failed", command=h.command_code)
            self._send_answer(proto, key, self._unable(req))
            return
        if inspect.isawaitable(result):
            task = self.loop.create_task(self._await_answer(proto, key, req, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._send_answer(proto, key, result)

    async def _await_answer(
        self, proto: _Protocol, key: tuple[str, int], req: Message, result: Awaitable[Message]
    ) -> None:
        try:
            answer = await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("diameter_handler_failed", command=req.header.command_code)
            answer = self._unable(req)
        self._send_answer(proto, key, answer)

    def _unable(self, req: Message) -> Message:
        return codec.new_answer(req, dc.UNABLE_TO_COMPLY)

    def _send_answer(self, proto: _Protocol, key: tuple[str, int], answer: Message) -> None:
        answer = _plain(answer)
        avps = answer.avps
        if codec.first(avps, dc.AVP_ORIGIN_HOST) is None:
            at = 1 if avps and avps[0].code == dc.AVP_SESSION_ID else 0
            answer.avps = [*avps[:at], *self._origin_avps, *avps[at:]]
        answer.header.command_flags &= ~(dc.FLAG_REQUEST | dc.FLAG_RETRANSMIT)
        data = codec.encode(answer)
        self._remember_answer(key, data)
        proto.write(data)

    def _remember_answer(self, key: tuple[str, int], data: bytes) -> None:
        now = self.loop.time()
        self._answers[key] = (now + self.duplicate_window, data)
        self._answers.move_to_end(key)
        self._forget_answers(now)
        if self._answers_timer is None:
            self._answers_timer = self.loop.call_at(now + self.duplicate_window, self._expire_answers)

    def _forget_answers(self, now: float) -> None:
        """Drop answers past their window and the oldest beyond the cap (entries are in expiry order)."""
        answers = self._answers
        while answers:
            expires, _ = next(iter(answers.values()))
            if expires > now and len(answers) <= self._answers_max:
                return
            answers.popitem(last=False)

    def _expire_answers(self) -> None:
        # One timer for the whole cache, re-armed at the oldest entry's expiry: an idle node forgets too.
        self._answers_timer = None
        now = self.loop.time()
        self._forget_answers(now)
        if self._answers:
            expires, _ = next(iter(self._answers.values()))
            self._answers_timer = self.loop.call_at(expires, self._expire_answers)

    # ------------------------------------------------------------------ connecting

    async def _connect_loop(self, peer: _Peer) -> None:
        """Keep one connection to a configured peer; exponential backoff between attempts."""
        cfg = peer.config
        assert cfg is not None
        delay = self.reconnect_min
        while self._running:
            if peer.open_protocol() is not None:  # it connected to us
                await asyncio.sleep(self.reconnect_min)
                continue
            try:
                _, proto = await self.loop.create_connection(
                    lambda: _Protocol(self, initiator=True, peer=peer), cfg.address, cfg.port
                )
            except OSError as e:
                log.debug(
                    "diameter_connect_failed", host=cfg.host, address=cfg.address, port=cfg.port, error=str(e)
                )
            else:
                reconnect_wanted = await asyncio.shield(proto.closed)  # stop() awaits it for the DPA
                if proto.opened:
                    delay = self.reconnect_min
                if not reconnect_wanted:  # DPR "do not want to talk to you" (RFC 6733 §5.4.3)
                    delay = self.reconnect_max
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max)


def _plain(msg: Message) -> Message:
    """python-diameter's attribute classes (e.g. `UserDataRequest`) as a plain AVP-list message.

    Their `avps` setter only replaces the extra AVPs, so inserting Origin-* into one would duplicate
    the generated AVPs; a plain `Message` holds exactly what it is given.
    """
    if type(msg) is Message:
        return msg
    return Message(msg.header, list(msg.avps))
