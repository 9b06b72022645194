"""Sans-IO Diameter peer connection: RFC 6733 §5.6 state machine and RFC 3539 watchdog.

`PeerConnection` is fed received bytes and the current time and returns events; bytes to send
accumulate in `data_to_send()`. It never touches a socket, a clock or a loop, so every transition
is unit-testable. One instance per transport connection; the node (`node.py`) reconnects.

Handled here: framing (RFC 6733 §3), CER/CEA capability exchange with application intersection
(§5.3, 5010 when nothing in common), DWR/DWA with Tw and the OKAY → SUSPECT → DOWN watchdog
(RFC 3539 §3.4), DPR/DPA (§5.4), protocol errors that the base protocol answers itself
(§7.1.5: 5011, 5015, 3008, 5014, 5004, 5001, 3007), and dropping the connection when framing is
lost. Requests and answers of the applications are handed up as events.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from diameter.message import Message, MessageHeader
from diameter.message.avp import Avp

from secondnum.diameter import codec
from secondnum.diameter import constants as dc


class PeerState(enum.Enum):
    """RFC 6733 §5.6 states as seen by one connection (election is left to the node)."""

    WAIT_CONN_ACK = "Wait-Conn-Ack"
    WAIT_CEA = "Wait-I-CEA"
    WAIT_CER = "Wait-R-CER"  # responder: connection accepted, CER not yet received
    OPEN = "Open"
    SUSPECT = "Suspect"  # RFC 3539 §3.4.1: open, but a DWA is overdue; no new requests
    CLOSING = "Closing"
    CLOSED = "Closed"


@dataclass(frozen=True)
class LocalIdentity:
    """What we advertise in CER/CEA (RFC 6733 §5.3.1)."""

    origin_host: str
    origin_realm: str
    host_ip: str = "127.0.0.1"
    vendor_id: int = 0
    product_name: str = "secondnum"
    auth_applications: tuple[int, ...] = (dc.APP_RO,)
    vendor_specific_applications: tuple[int, ...] = ()  # 3GPP applications (Sh) advertised inside VSAI
    origin_state_id: int = 1

    @property
    def applications(self) -> frozenset[int]:
        return frozenset(self.auth_applications) | frozenset(self.vendor_specific_applications)


@dataclass
class PeerOpened:
    host: str
    realm: str
    applications: frozenset[int]


@dataclass
class RequestReceived:
    message: Message


@dataclass
class AnswerReceived:
    message: Message


@dataclass
class ProtocolErrorSent:
    """We answered bad input with an error (logged by the node)."""

    result_code: int
    detail: str


@dataclass
class PeerClosed:
    reason: str
    reconnect: bool = True  # False after a DPR with Disconnect-Cause DO_NOT_WANT_TO_TALK_TO_YOU


@dataclass
class WatchdogState:
    """RFC 3539 §3.4: Tw timer and whether a DWA is outstanding."""

    interval: float
    deadline: float
    pending: bool = False
    jitter: float = 2.0


Event = PeerOpened | RequestReceived | AnswerReceived | ProtocolErrorSent | PeerClosed


@dataclass
class PeerConnection:
    """One Diameter transport connection, initiator or responder side."""

    local: LocalIdentity
    initiator: bool
    now: float
    watchdog_interval: float = 30.0
    ids: codec.IdGenerator = field(default_factory=codec.IdGenerator)
    acceptor: Callable[[str, str], bool] | None = None  # responder: may this Origin-Host/Realm connect?
    state: PeerState = PeerState.WAIT_CONN_ACK
    peer_host: str | None = None
    peer_realm: str | None = None
    peer_applications: frozenset[int] = frozenset()
    _in: bytearray = field(default_factory=bytearray)
    _out: list[bytes] = field(default_factory=list)
    _watchdog: WatchdogState | None = None
    _close_deadline: float | None = None

    # ------------------------------------------------------------------ inputs

    def connection_made(self, now: float) -> None:
        """Transport is up: the initiator sends CER (RFC 6733 §5.6.1 I-Rcv-Conn-Ack → I-Snd-CER)."""
        self.now = now
        if self.initiator:
            self.state = PeerState.WAIT_CEA
            req = codec.new_request(
                dc.CMD_CAPABILITIES_EXCHANGE, dc.APP_COMMON, self._capabilities(), proxiable=False
            )
            self._send_request(req)
        else:
            self.state = PeerState.WAIT_CER
        self._arm_watchdog(now)

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Bytes from the transport; returns events in arrival order."""
        self.now = now
        self._in += data
        events: list[Event] = []
        while self.state is not PeerState.CLOSED and len(self._in) >= 4:
            try:
                length = codec.frame_length(self._in)
            except codec.DiameterError as e:
                events.extend(self._framing_lost(e))
                break
            if len(self._in) < length:
                break
            frame = bytes(self._in[:length])
            del self._in[:length]
            self._reset_watchdog(now)
            events.extend(self._receive_frame(frame))
        return events

    def connection_lost(self) -> list[Event]:
        if self.state is PeerState.CLOSED:
            return []
        self.state = PeerState.CLOSED
        return [PeerClosed("transport closed")]

    def handle_timer(self, now: float) -> list[Event]:
        """Call at or after `next_timer()` (RFC 3539 §3.4.1 watchdog expiry, §5.4 DPA wait)."""
        self.now = now
        if self._close_deadline is not None and now >= self._close_deadline:
            self.state = PeerState.CLOSED
            return [PeerClosed("no DPA")]
        wd = self._watchdog
        if wd is None or now < wd.deadline or self.state is PeerState.CLOSED:
            return []
        if self.state in (PeerState.WAIT_CEA, PeerState.WAIT_CER):
            self.state = PeerState.CLOSED
            return [PeerClosed("capabilities exchange timed out")]
        if not wd.pending:
            self._send_request(
                codec.new_request(dc.CMD_DEVICE_WATCHDOG, dc.APP_COMMON, self._origin(), proxiable=False)
            )
            wd.pending = True
            wd.deadline = now + self._tw(wd)
            return []
        if self.state is PeerState.OPEN:
            self.state = PeerState.SUSPECT
            wd.deadline = now + self._tw(wd)
            return []
        self.state = PeerState.CLOSED
        return [PeerClosed("watchdog: peer down")]

    def next_timer(self) -> float | None:
        if self.state is PeerState.CLOSED:
            return None
        times = [t for t in (self._close_deadline, self._watchdog and self._watchdog.deadline) if t]
        return min(times) if times else None

    # ------------------------------------------------------------------ outputs

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    @property
    def can_send(self) -> bool:
        """New requests only to an OPEN, non-suspect peer (RFC 3539 §3.4.1)."""
        return self.state is PeerState.OPEN

    def send(self, msg: Message) -> bytes:
        """Queue an application message; returns its encoded form (for the duplicate cache)."""
        data = codec.encode(msg)
        self._out.append(data)
        return data

    def send_raw(self, data: bytes) -> None:
        self._out.append(data)

    def disconnect(self, now: float, cause: int = dc.DISCONNECT_CAUSE_REBOOTING) -> None:
        """Send DPR and wait for DPA (RFC 6733 §5.4) at most 5 s."""
        self.now = now
        if self.state in (PeerState.OPEN, PeerState.SUSPECT):
            avps = [*self._origin(), codec.avp(dc.AVP_DISCONNECT_CAUSE, cause)]
            self._send_request(
                codec.new_request(dc.CMD_DISCONNECT_PEER, dc.APP_COMMON, avps, proxiable=False)
            )
            self.state = PeerState.CLOSING
            self._close_deadline = now + 5.0
        elif self.state is not PeerState.CLOSED:
            self.state = PeerState.CLOSED

    # ------------------------------------------------------------------ internals

    def _tw(self, wd: WatchdogState) -> float:
        # RFC 3539 §3.4.1: Tw jittered by up to ±2 s, never below the 6 s minimum unless configured so.
        return max(0.05, wd.interval + random.uniform(-wd.jitter, wd.jitter))

    def _arm_watchdog(self, now: float) -> None:
        jitter = min(2.0, self.watchdog_interval / 4)
        self._watchdog = WatchdogState(self.watchdog_interval, 0.0, jitter=jitter)
        self._watchdog.deadline = now + self._tw(self._watchdog)

    def _reset_watchdog(self, now: float) -> None:
        wd = self._watchdog
        if wd is not None and not wd.pending:
            wd.deadline = now + self._tw(wd)

    def _origin(self) -> list[Avp]:
        return [
            codec.avp(dc.AVP_ORIGIN_HOST, self.local.origin_host.encode()),
            codec.avp(dc.AVP_ORIGIN_REALM, self.local.origin_realm.encode()),
        ]

    def _capabilities(self) -> list[Avp]:
        """CER/CEA body (RFC 6733 §5.3.1/§5.3.2); 3GPP apps inside Vendor-Specific-Application-Id."""
        avps = [
            *self._origin(),
            codec.avp(dc.AVP_HOST_IP_ADDRESS, self.local.host_ip),
            codec.avp(dc.AVP_VENDOR_ID, self.local.vendor_id),
            codec.avp(dc.AVP_PRODUCT_NAME, self.local.product_name),
            codec.avp(dc.AVP_ORIGIN_STATE_ID, self.local.origin_state_id),
        ]
        if self.local.vendor_specific_applications:
            avps.append(codec.avp(dc.AVP_SUPPORTED_VENDOR_ID, dc.VENDOR_3GPP))
        avps += [codec.avp(dc.AVP_AUTH_APPLICATION_ID, a) for a in self.local.auth_applications]
        avps += [
            codec.grouped(
                dc.AVP_VENDOR_SPECIFIC_APPLICATION_ID,
                [codec.avp(dc.AVP_VENDOR_ID, dc.VENDOR_3GPP), codec.avp(dc.AVP_AUTH_APPLICATION_ID, a)],
            )
            for a in self.local.vendor_specific_applications
        ]
        return avps

    def _send_request(self, req: Message) -> None:
        req.header.hop_by_hop_identifier = self.ids.hop_by_hop()
        req.header.end_to_end_identifier = self.ids.end_to_end()
        self._out.append(codec.encode(req))

    def _answer(self, req: Message | MessageHeader, result: int, avps: Sequence[Avp] = ()) -> None:
        if isinstance(req, MessageHeader):
            req = Message(req, [])
        ans = codec.new_answer(req, result, error=3000 <= result < 4000)
        ans.avps = [*ans.avps, *self._origin(), *avps]
        self._out.append(codec.encode(ans))

    def error_answer(self, header: MessageHeader, result: int, failed_avp: bytes | None, detail: str) -> None:
        """Answer a request we cannot process (RFC 6733 §7.2: E bit for 3xxx, Failed-AVP §7.5)."""
        extra: list[Avp] = []
        if detail:
            extra.append(codec.avp(dc.AVP_ERROR_MESSAGE, detail[:200]))
        if failed_avp is not None:
            extra.append(codec.raw_avp(dc.AVP_FAILED_AVP, failed_avp, mandatory=True))
        ans = codec.new_answer(Message(header, []), result, error=3000 <= result < 4000)
        ans.avps = [*ans.avps, *self._origin(), *extra]
        self._out.append(codec.encode(ans))

    def _framing_lost(self, e: codec.DiameterError) -> list[Event]:
        """5015: answer once if a header is readable, then close (RFC 6733 §7.1.5)."""
        if len(self._in) >= codec.HEADER_LENGTH:
            hdr = codec.decode_header(bytes(self._in[: codec.HEADER_LENGTH]))
            if hdr.command_flags & dc.FLAG_REQUEST:
                self.error_answer(hdr, dc.INVALID_MESSAGE_LENGTH, None, str(e))
        self._in.clear()
        self.state = PeerState.CLOSED
        return [ProtocolErrorSent(e.result_code, str(e)), PeerClosed("framing lost")]

    def _receive_frame(self, frame: bytes) -> list[Event]:
        try:
            msg = codec.decode(frame)
        except codec.DiameterError as e:
            hdr = e.header or codec.decode_header(frame)
            if e.framing_lost:
                return self._framing_lost(e)
            if hdr.command_flags & dc.FLAG_REQUEST:
                self.error_answer(hdr, e.result_code, e.failed_avp, str(e))
                return [ProtocolErrorSent(e.result_code, str(e))]
            return [ProtocolErrorSent(0, f"dropped bad answer: {e}")]
        hdr = msg.header
        is_request = bool(hdr.command_flags & dc.FLAG_REQUEST)
        code = hdr.command_code
        if code == dc.CMD_CAPABILITIES_EXCHANGE:
            return self._on_cer(msg) if is_request else self._on_cea(msg)
        if self.state in (PeerState.WAIT_CER, PeerState.WAIT_CEA):
            # RFC 6733 §5.3: nothing but CER/CEA before the exchange; a request gets 3010.
            if is_request:
                self.error_answer(hdr, dc.UNKNOWN_PEER, None, "capabilities exchange not done")
            return [ProtocolErrorSent(dc.UNKNOWN_PEER, f"command {code} before CER")]
        if code == dc.CMD_DEVICE_WATCHDOG:
            if is_request:
                self._answer(msg, dc.SUCCESS, [codec.avp(dc.AVP_ORIGIN_STATE_ID, self.local.origin_state_id)])
            elif self._watchdog is not None:
                self._watchdog.pending = False
                self._reset_watchdog(self.now)
                if self.state is PeerState.SUSPECT:
                    self.state = PeerState.OPEN
            return []
        if code == dc.CMD_DISCONNECT_PEER:
            if is_request:
                self._answer(msg, dc.SUCCESS)
                cause = codec.value(msg.avps, dc.AVP_DISCONNECT_CAUSE)
                self.state = PeerState.CLOSED
                return [
                    PeerClosed("DPR received", reconnect=cause != dc.DISCONNECT_CAUSE_DO_NOT_WANT_TO_TALK)
                ]
            self.state = PeerState.CLOSED
            return [PeerClosed("DPA received", reconnect=False)]
        if is_request:
            app = hdr.application_id
            if app not in self.local.applications or app not in self.peer_applications:
                self.error_answer(hdr, dc.APPLICATION_UNSUPPORTED, None, f"application {app}")
                return [ProtocolErrorSent(dc.APPLICATION_UNSUPPORTED, f"application {app}")]
            return [RequestReceived(msg)]
        return [AnswerReceived(msg)]

    def _peer_identity(self, msg: Message) -> tuple[str | None, str | None, frozenset[int]]:
        host = codec.text(msg.avps, dc.AVP_ORIGIN_HOST)
        realm = codec.text(msg.avps, dc.AVP_ORIGIN_REALM)
        apps = {int(v) for v in codec.values(msg.avps, dc.AVP_AUTH_APPLICATION_ID)}
        apps |= {int(v) for v in codec.values(msg.avps, dc.AVP_ACCT_APPLICATION_ID)}
        for vsai in (a for a in msg.avps if a.code == dc.AVP_VENDOR_SPECIFIC_APPLICATION_ID):
            apps |= {int(v) for v in codec.values(vsai.value, dc.AVP_AUTH_APPLICATION_ID)}
            apps |= {int(v) for v in codec.values(vsai.value, dc.AVP_ACCT_APPLICATION_ID)}
        if dc.APP_RELAY in apps:
            apps |= self.local.applications
        return host, realm, frozenset(apps)

    def _on_cer(self, msg: Message) -> list[Event]:
        if self.initiator or self.state is not PeerState.WAIT_CER:
            # CER on an open connection or on our own outgoing one: election is not supported.
            self._answer(msg, dc.UNABLE_TO_COMPLY)
            return [ProtocolErrorSent(dc.UNABLE_TO_COMPLY, "unexpected CER")]
        host, realm, apps = self._peer_identity(msg)
        if not host or not realm:
            self.error_answer(msg.header, dc.MISSING_AVP, None, "Origin-Host/Origin-Realm")
            self.state = PeerState.CLOSED
            return [PeerClosed("CER without Origin-Host/Realm", reconnect=False)]
        if self.acceptor is not None and not self.acceptor(host, realm):
            self._answer(msg, dc.UNKNOWN_PEER)
            self.state = PeerState.CLOSED
            return [ProtocolErrorSent(dc.UNKNOWN_PEER, f"peer {host}"), PeerClosed("unknown peer", False)]
        common = apps & self.local.applications
        if not common:
            self._answer(msg, dc.NO_COMMON_APPLICATION, self._capabilities()[2:])
            self.state = PeerState.CLOSED
            return [ProtocolErrorSent(dc.NO_COMMON_APPLICATION, f"peer {host}"), PeerClosed("no common app")]
        self.peer_host, self.peer_realm, self.peer_applications = host, realm, common
        self._answer(msg, dc.SUCCESS, self._capabilities()[2:])
        self.state = PeerState.OPEN
        return [PeerOpened(host, realm, common)]

    def _on_cea(self, msg: Message) -> list[Event]:
        if self.state is not PeerState.WAIT_CEA:
            return []
        rc = codec.result_code(msg)
        host, realm, apps = self._peer_identity(msg)
        common = apps & self.local.applications
        if rc != dc.SUCCESS or not host or not realm or not common:
            self.state = PeerState.CLOSED
            return [PeerClosed(f"CEA refused: {rc}")]
        self.peer_host, self.peer_realm, self.peer_applications = host, realm, common
        self.state = PeerState.OPEN
        return [PeerOpened(host, realm, common)]
