"""``[as]`` settings of the SIP application server (loaded by :mod:`secondnum.config`).

Defaults run everything on loopback: the S-CSCF trusted at 127.0.0.1, media at ``sip:127.0.0.1:5070``. Every
value can be overridden with ``SECONDNUM_AS__<KEY>`` environment variables. The Ro client towards the OCS
(peer address, default 127.0.0.1:3868, Tx, CCFH of RFC 4006 §8.14) is configured in ``[ro]``
(:class:`charging.settings.RoClientSettings`), the one place the Diameter client settings live.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from typing import Literal

from secondnum.sip.session_timer import TimerConfig
from secondnum.sip.transport import TcpLimits
from secondnum.sip.uri import SipURI

VoicemailCharging = Literal["free", "charged"]


@dataclasses.dataclass(frozen=True)
class AsSettings:
    """``[as]``: ISC peers, own identity, media, charging policy and overload limits."""

    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    """UDP and TCP listen address for ISC (TS 24.229 §5.7)."""
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    api_tokens: list[str] = dataclasses.field(default_factory=list)
    """Bearer tokens for ``/api/v1/cdrs`` (RFC 6750); empty = no authentication (lab use only)."""

    trusted_scscf: list[str] = dataclasses.field(default_factory=lambda: ["127.0.0.1"])
    """Addresses (or CIDR networks) of S-CSCFs allowed to send initial requests (TS 24.229 §5.7.1.1)."""
    scscf_uri: str = "sip:127.0.0.1:5080;lr"
    """S-CSCF URI used as Route for requests the AS originates (``orig`` is added, TS 24.229 §5.7.3)."""
    own_uri: str = "sip:127.0.0.1:5060"
    """Our own SIP URI: recognises our entry in the received Route set and builds Contact."""
    media_uri: str = "sip:127.0.0.1:5070"
    """The media server (vm-deposit / vm-access applications)."""
    domain: str = "secondnum.local"
    """Our IOI for P-Charging-Vector (RFC 7315 §4.6) and the host of generated ICIDs."""

    follow_me_timeout: float = 20.0
    """No-answer timer per follow-me target when the account does not set one (TS 24.604 §4.5.2.6.1)."""
    show_caller_default: bool = False

    ro_crash_recovery: bool = True
    """Keep each open Ro session in MongoDB so that a restarted AS sends the CCR-T a crash left unsent
    (RFC 4006 §5.5 session state; ``charging.client.RoClient(persist=...)``). Written in the background in
    batches (``charging.store.OpenSessionWriter``, ~2 bulk operations per call, within 0.2 s of the CCA-I);
    an operator whose OCS expires stale sessions itself (Validity-Time, Tcc) may still turn it off."""
    voicemail_charging: VoicemailCharging = "free"
    """Voicemail deposit / access legs: ``free`` (no Ro session) or ``charged`` (terminating role)."""

    max_calls: int = 2000
    """Concurrent calls; above it new INVITEs get 503 with Retry-After (RFC 3261 §21.5.4)."""
    max_pending: int = 500
    """Initial INVITEs not answered yet (ringing included); a second guard against bursts."""
    max_setups: int = 100
    """Calls between their INVITE and the first INVITE the AS sends for them (profile lookup, CCR-I). At
    300 calls/s and 20 ms that is ~6; when the OCS or the database slows down it grows (rate x delay), and
    above this limit new INVITEs get 503 + Retry-After instead of waiting for a slow CCA and being diverted
    by Credit-Control-Failure-Handling. Calls in progress are not affected."""
    max_setup_delay: float = 2.0
    """Seconds: new INVITEs also get 503 while the median age of the calls in their set-up stage is above
    this (with at least 5 in it): the rate-independent form of ``max_setups``. Well under the Ro Tx (5 s),
    so that admitted calls get their CCA rather than a Credit-Control-Failure-Handling diversion; 1.0 s
    refused 4 % of a soak at half the clean rate during the dev database's latency spikes."""
    retry_after: int = 5
    max_loop_lag: float = 0.5
    """Seconds of smoothed event-loop lag above which new INVITEs get 503: the honest overload signal of a
    single-threaded server (calls in progress are never refused)."""
    untrusted_rate: float = 20.0
    """New requests per second one untrusted source gets answered (a stateless 403); beyond it, and its
    burst, they are dropped silently so a scanner or a spoofed source cannot use us as a reflector."""
    untrusted_burst: float = 40.0
    tcp_max_connections: int = 512
    """SIP over TCP: inbound connections from untrusted sources, all together; more are closed at accept
    (``secondnum_sip_tcp_refused_total``, a ``sip_tcp_connection_refused`` log line at most once a second)."""
    tcp_max_per_source: int = 8
    """SIP over TCP: inbound connections from one untrusted IP address."""
    tcp_max_per_trusted_source: int = 256
    """SIP over TCP: inbound connections from one ``trusted_scscf`` address, counted apart from the others
    so that a flood can never lock the S-CSCF out."""
    tcp_header_timeout: float = 10.0
    """SIP over TCP: seconds a connection may hold an incomplete message before it is closed (slowloris;
    ``secondnum_sip_tcp_read_timeouts_total``); 0 disables."""
    max_call_seconds: float = 4 * 3600.0
    """Safety net: a bridged call longer than this is released (BYE both sides, CCR-T)."""
    sip_t1: float = 0.5
    """Seconds: SIP timer T1 (RFC 3261 §17.1.1.1, the RTT estimate) of the AS's SIP stack; every
    transaction timer and the reliable-1xx retransmissions/PRACK timeout (64*T1, RFC 3262 §3) derive from
    it. Keep the RFC's 0.5 s in service; tests lower it to see 64*T1 expire in seconds."""

    session_expires: int = 1800
    """Seconds: the session interval the AS asks for on the legs it originates when the caller asked for
    none (RFC 4028 §7.1), and the caller's interval when it supports timers but asked for none (§9). The
    AS refreshes a leg whose party does not (UPDATE, else re-INVITE, at half the interval) and ends the call
    (BYE both legs with ``Reason: SIP;cause=408``, CCR-T) when a party that should refresh stops (§10), so
    a call whose BYE was lost ends within this interval instead of ``max_call_seconds``. 0 = timers only
    when the caller asks for them."""
    min_se: int = 90
    """Seconds: the smallest session interval the AS accepts (RFC 4028 §5): a caller's INVITE asking for less
    gets ``422 Session Interval Too Small`` with ``Min-SE`` (§9), and the AS's own INVITEs carry it. The RFC's
    floor is 90; lower values are for tests only."""

    @functools.cached_property
    def timer_config(self) -> TimerConfig:
        """The session-timer settings as the sans-IO core takes them."""
        return TimerConfig(self.session_expires, self.min_se)

    @functools.cached_property
    def tcp_limits(self) -> TcpLimits:
        """The SIP-over-TCP connection caps as the transport takes them."""
        return TcpLimits(self.tcp_max_connections, self.tcp_max_per_source, self.tcp_max_per_trusted_source,
                         self.tcp_header_timeout)

    def __post_init__(self) -> None:
        if not 0 < self.sip_t1 <= 5:
            raise ValueError("sip_t1 must be in (0, 5] seconds")
        _ = self.tcp_limits  # validates the caps at load time
        for entry in self.trusted_scscf:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"trusted_scscf: {entry!r} is not an IP address or network") from None
        for name in ("scscf_uri", "own_uri", "media_uri"):
            try:
                uri = SipURI.parse(getattr(self, name))
            except Exception as exc:
                raise ValueError(f"{name}: {exc}") from None
            if uri.scheme not in ("sip", "sips") or not uri.host:
                raise ValueError(f"{name}: needs a sip: URI with a host")
        if self.follow_me_timeout <= 0:
            raise ValueError("follow_me_timeout must be positive")
        if self.max_calls <= 0 or self.max_pending <= 0 or self.max_setups <= 0 or self.max_setup_delay <= 0:
            raise ValueError("max_calls, max_pending, max_setups and max_setup_delay must be positive")
        if self.min_se < 1 or self.session_expires < 0 or 0 < self.session_expires < self.min_se:
            raise ValueError("min_se must be >= 1 and session_expires 0 or >= min_se")
        if self.max_loop_lag <= 0 or self.untrusted_rate <= 0 or self.untrusted_burst < 1:
            raise ValueError("max_loop_lag and untrusted_rate must be positive, untrusted_burst >= 1")
