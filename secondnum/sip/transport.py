"""asyncio SIP transports: UDP and TCP on the same host:port (RFC 3261 §18), TLS-ready connection table.

Every received message is handed up with its real source address and transport name (an ACL needs it). TCP
connections are kept in one table keyed by ``(transport, host, port)`` of the remote end, reused for sending
(§18.2.2: responses go back over the connection the request came on) and closed after an idle timeout.
Inbound connections are admitted against :class:`TcpLimits` (a total and a per-source cap, with a separate
budget for trusted peers) and closed when a message stays incomplete for ``header_timeout`` seconds
(slowloris), so a flood of connections or of trickled bytes cannot exhaust descriptors or memory.
Nothing raised by the upper layer or by a broken peer escapes the protocol callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import ipaddress
import socket
import time
from collections.abc import Callable
from typing import Any, cast

from ..log import get_logger
from . import metrics
from .errors import MessageTooLargeError, SipParseError
from .parser import DEFAULT_MAX_SIZE, StreamFramer

log = get_logger(__name__)

MAX_WRITE_BUFFER = 4 * 1024 * 1024

Address = tuple[str, int]
MessageCallback = Callable[[bytes, Address, str], None]
ErrorCallback = Callable[[Address, str], None]


@dataclasses.dataclass(frozen=True, slots=True)
class TcpLimits:
    """Caps on inbound SIP-over-TCP connections (RFC 3261 §18.3 leaves resource limits to the element).

    Untrusted sources share ``max_connections`` and get at most ``max_per_source`` each; a trusted peer
    (the S-CSCF) is counted on its own and gets ``max_per_trusted_source``, so a flood from elsewhere can
    never lock it out. Outbound connections (opened by us) are not capped.
    """

    max_connections: int = 512
    """Inbound connections from untrusted sources, all together."""
    max_per_source: int = 8
    """Inbound connections from one untrusted IP address."""
    max_per_trusted_source: int = 256
    """Inbound connections from one trusted IP address (not counted in ``max_connections``)."""
    header_timeout: float = 10.0
    """Seconds a connection may hold an incomplete message (bytes received, no complete message since)
    before it is closed; 0 disables the check."""

    def __post_init__(self) -> None:
        if min(self.max_connections, self.max_per_source, self.max_per_trusted_source) < 1:
            raise ValueError("TCP connection caps must be at least 1")
        if self.header_timeout < 0:
            raise ValueError("header_timeout must be >= 0")


TrustedPredicate = Callable[[str], bool]


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            self.owner.on_message(data, (str(addr[0]), addr[1]), "udp")
        except Exception:
            log.exception("sip_udp_dispatch_error", src=f"{addr[0]}:{addr[1]}")

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on Linux: the transaction timers deal with the loss.
        metrics.SEND_ERRORS.labels("udp").inc()


class _StreamProtocol(asyncio.Protocol):
    """One TCP connection: framing (§18.3) plus idle tracking."""

    def __init__(self, owner: SipTransport, name: str = "tcp", inbound: bool = True) -> None:
        self.owner = owner
        self.name = name
        self.inbound = inbound
        self.counted: bool | None = None
        """Inbound only: True if counted as a trusted source, False as untrusted, None if not counted."""
        self.framer = StreamFramer(owner.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)
        self.last_activity = time.monotonic()
        self.partial_since: float | None = None
        """When the bytes now buffered started to wait for the rest of their message (None: nothing)."""
        self.pending: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's TCPTransport does not derive from asyncio.Transport (the
        # assertion that stood here failed every SIP-over-TCP connection under uvloop).
        self.transport = cast(asyncio.Transport, transport)
        transport = self.transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = (str(peer[0]), int(peer[1]))
            if self.inbound and not self.owner._admit(self):
                self.closed = True
                transport.abort()
                return
            self.owner._register(self)
        for data in self.pending:
            transport.write(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        now = self.last_activity = time.monotonic()
        try:
            messages = self.framer.feed(data)
        except MessageTooLargeError as exc:
            # Counted by on_oversize (the endpoint answers 513 when it can); the stream cannot resync.
            log.warning("sip_stream_oversize", peer=f"{self.peer[0]}:{self.peer[1]}", error=str(exc),
                        action="close")
            self.owner.on_oversize(bytes(self.framer._buf), self.peer, self.name)
            self.close()
            return
        except SipParseError as exc:
            metrics.PARSE_ERRORS.labels(self.name).inc()
            log.warning("sip_stream_framing_error", peer=f"{self.peer[0]}:{self.peer[1]}", error=str(exc))
            self.close()
            return
        if not self.framer.buffered:
            self.partial_since = None
        elif messages or self.partial_since is None:
            self.partial_since = now
        for msg in messages:
            try:
                self.owner.on_message(msg, self.peer, self.name)
            except Exception:
                log.exception("sip_stream_dispatch_error", peer=f"{self.peer[0]}:{self.peer[1]}")

    def write(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        if self.transport is None:
            self.pending.append(data)
            return
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            # A peer that stopped reading must not make us buffer without bound.
            log.warning("sip_stream_write_buffer_full", peer=f"{self.peer[0]}:{self.peer[1]}")
            self.close()

    def close(self, abort: bool = False) -> None:
        """Close after flushing what is buffered, or at once with ``abort`` (a peer that misbehaves may also
        never read, and its connection would then stay counted until the write buffer drains)."""
        if self.transport is not None and not self.closed:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()
        self.closed = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.owner._unregister(self)
        self.owner._release(self)


class SipTransport:
    """Owns the UDP socket, the TCP listener and the TCP connection table of one endpoint."""

    def __init__(self, on_message: MessageCallback, on_error: ErrorCallback | None = None,
                 max_message_size: int = DEFAULT_MAX_SIZE, tcp_idle_timeout: float = 120.0,
                 on_oversize: MessageCallback | None = None, *, tcp_limits: TcpLimits | None = None,
                 trusted: TrustedPredicate | None = None) -> None:
        self.on_message = on_message
        self.on_error = on_error or (lambda dest, transport: None)
        self.on_oversize = on_oversize or (lambda data, src, transport: None)
        self.max_message_size = max_message_size
        self.tcp_idle_timeout = tcp_idle_timeout
        self.local_address: Address = ("", 0)
        self._udp: asyncio.DatagramTransport | None = None
        # The bound socket itself: a direct non-blocking sendto() skips the event loop's bookkeeping; the
        # transport's buffered sendto() is the fallback when the kernel buffer is full.
        self._udp_sock: socket.socket | None = None
        self._server: asyncio.base_events.Server | None = None
        self._conns: dict[tuple[str, str, int], _StreamProtocol] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._ip_hosts: set[str] = set()
        self.tcp_limits = tcp_limits or TcpLimits()
        self.trusted = trusted or (lambda host: False)
        self._per_source: dict[str, int] = {}
        self._untrusted = 0
        self._refused_log_at = 0.0
        self._refused_unlogged = 0

    async def start(self, host: str, port: int) -> Address:
        """Bind UDP and TCP on the same port; with ``port=0`` pick one free for both."""
        loop = asyncio.get_running_loop()
        last_exc: OSError | None = None
        for _ in range(20):
            server = await loop.create_server(lambda: _StreamProtocol(self), host, port, reuse_address=True,
                                              backlog=1024)
            bound = server.sockets[0].getsockname()
            family = socket.AF_INET6 if ":" in str(bound[0]) else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((host, int(bound[1])))
            except OSError as exc:
                sock.close()
                server.close()
                await server.wait_closed()
                last_exc = exc
                if port != 0 or exc.errno != errno.EADDRINUSE:
                    raise
                continue
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
            udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), sock=sock)
            self._server = server
            self._udp = udp
            self._udp_sock = sock
            self.local_address = (str(bound[0]), int(bound[1]))
            self._sweeper = loop.create_task(self._sweep_idle())
            return self.local_address
        raise last_exc or OSError("could not bind UDP and TCP on one port")

    def _admit(self, conn: _StreamProtocol) -> bool:
        """Accept path: count an inbound connection against :class:`TcpLimits`, or refuse it."""
        host = conn.peer[0]
        limits = self.tcp_limits
        trusted = self.trusted(host)
        count = self._per_source.get(host, 0)
        if trusted:
            reason = "per_trusted_source" if count >= limits.max_per_trusted_source else None
        elif count >= limits.max_per_source:
            reason = "per_source"
        else:
            reason = "total" if self._untrusted >= limits.max_connections else None
        if reason is not None:
            metrics.TCP_REFUSED.labels(reason).inc()
            self._log_refusal(host, reason, count)
            return False
        self._per_source[host] = count + 1
        if not trusted:
            self._untrusted += 1
        conn.counted = trusted
        return True

    def _release(self, conn: _StreamProtocol) -> None:
        if conn.counted is None:
            return
        host = conn.peer[0]
        left = self._per_source.get(host, 1) - 1
        if left > 0:
            self._per_source[host] = left
        else:
            self._per_source.pop(host, None)
        if not conn.counted:
            self._untrusted -= 1
        conn.counted = None

    def _log_refusal(self, host: str, reason: str, count: int) -> None:
        # One line per second at most: a connection flood must not become a log flood.
        now = time.monotonic()
        if now - self._refused_log_at < 1.0:
            self._refused_unlogged += 1
            return
        log.warning("sip_tcp_connection_refused", src=host, reason=reason, from_source=count,
                    untrusted_total=self._untrusted, refused_unlogged=self._refused_unlogged)
        self._refused_log_at = now
        self._refused_unlogged = 0

    def _register(self, conn: _StreamProtocol) -> None:
        self._conns[(conn.name, conn.peer[0], conn.peer[1])] = conn

    def _unregister(self, conn: _StreamProtocol) -> None:
        key = (conn.name, conn.peer[0], conn.peer[1])
        if self._conns.get(key) is conn:
            del self._conns[key]

    @property
    def connections(self) -> int:
        return len(self._conns)

    def send(self, data: bytes, dest: Address, transport: str) -> None:
        """Send without raising; failures are counted, logged and reported through ``on_error``."""
        try:
            host = dest[0]
            if host not in self._ip_hosts:
                # Never let a name reach sendto()/connect(): it would query the resolver on the call path.
                ipaddress.ip_address(host)
                if len(self._ip_hosts) < 4096:
                    self._ip_hosts.add(host)
            if transport == "udp":
                if self._udp is None or self._udp_sock is None:
                    raise OSError("UDP transport closed")
                try:
                    self._udp_sock.sendto(data, dest)
                except (BlockingIOError, InterruptedError):
                    self._udp.sendto(data, dest)
                return
            key = (transport, dest[0], dest[1])
            conn = self._conns.get(key)
            if conn is None or conn.closed:
                if transport != "tcp":
                    raise OSError(f"transport {transport} not available")
                conn = _StreamProtocol(self, transport, inbound=False)
                conn.peer = dest
                self._conns[key] = conn
                asyncio.get_running_loop().create_task(self._connect(conn, dest))
            conn.write(data)
        except (OSError, RuntimeError, ValueError) as exc:
            metrics.SEND_ERRORS.labels(transport).inc()
            log.warning("sip_send_error", dest=f"{dest[0]}:{dest[1]}", transport=transport, error=str(exc))
            self.on_error(dest, transport)

    async def _connect(self, conn: _StreamProtocol, dest: Address) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: conn, dest[0], dest[1])
        except OSError as exc:
            conn.closed = True
            self._unregister(conn)
            metrics.SEND_ERRORS.labels(conn.name).inc()
            log.warning("sip_connect_error", dest=f"{dest[0]}:{dest[1]}", error=str(exc))
            self.on_error(dest, conn.name)

    async def _sweep_idle(self) -> None:
        header_timeout = self.tcp_limits.header_timeout
        interval = max(0.5, min(self.tcp_idle_timeout / 4, header_timeout / 2 or 30.0, 30.0))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            limit = now - self.tcp_idle_timeout
            partial_limit = now - header_timeout if header_timeout else -1.0
            for conn in list(self._conns.values()):
                if conn.partial_since is not None and conn.partial_since < partial_limit:
                    # Slowloris: bytes keep coming (so never idle) but no message completes.
                    metrics.TCP_READ_TIMEOUTS.inc()
                    log.warning("sip_tcp_read_timeout", peer=f"{conn.peer[0]}:{conn.peer[1]}",
                                buffered=conn.framer.buffered, seconds=round(now - conn.partial_since, 1))
                    conn.close(abort=True)
                elif conn.last_activity < limit:
                    log.info("sip_tcp_idle_close", peer=f"{conn.peer[0]}:{conn.peer[1]}")
                    conn.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for conn in list(self._conns.values()):
            conn.close()
        self._conns.clear()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
            self._udp_sock = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
