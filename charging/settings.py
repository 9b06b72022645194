"""Typed settings of the Ro client (`[ro]`) and the built-in OCS (`[ocs]`).

Defaults are the embedded, loopback-only values that `secondnum up` runs with.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from secondnum.diameter.routing import PeerConfig

Ccfh = Literal["TERMINATE", "CONTINUE", "RETRY_AND_TERMINATE"]


@dataclasses.dataclass(frozen=True)
class DiameterPeerSettings:
    """One OCS peer of the Ro client (RFC 6733 §2.1 peer table entry)."""

    host: str = "ocs.secondnum.local"
    realm: str = "secondnum.local"
    address: str = "127.0.0.1"
    port: int = 3868
    priority: int = 0

    def peer_config(self) -> PeerConfig:
        return PeerConfig(self.host, self.realm, self.address, self.port, self.priority)


@dataclasses.dataclass(frozen=True)
class RoClientSettings:
    """`[ro]`: the AS's Charging Trigger Function (TS 32.299 §6.1, RFC 4006 §5)."""

    origin_host: str = "as.secondnum.local"
    origin_realm: str = "secondnum.local"
    destination_realm: str = "secondnum.local"
    peers: list[DiameterPeerSettings] = dataclasses.field(default_factory=lambda: [DiameterPeerSettings()])
    tx_seconds: float = 5.0
    """RFC 4006 §13 Tx: how long to wait for a CCA before applying failure handling."""
    ccfh: Ccfh = "TERMINATE"
    """RFC 4006 §8.14 Credit-Control-Failure-Handling when the OCS does not send one."""
    quota_request_seconds: float = 8.0
    """Send CCR-Update this long before the granted time (or Validity-Time) runs out."""
    requested_seconds: int = 300
    """Requested-Service-Unit CC-Time."""
    watchdog_seconds: float = 30.0
    """RFC 3539 Tw."""
    reconnect_max_seconds: float = 30.0
    termination_retry_seconds: float = 14400.0
    """How long an unanswered CCR-T is retried (RFC 4006 §5.7; counted from the first attempt, across
    restarts). 4 h: twice the built-in OCS's default Tcc (2 x Validity-Time = 2 h), so that an OCS outage or
    maintenance window of a few hours still gets the used units online; beyond that the CDR is the record."""
    termination_retry_initial_seconds: float = 1.0
    """First delay between CCR-T retries; doubled after each failed attempt (with jitter)."""
    termination_retry_max_interval_seconds: float = 300.0
    """Cap of the CCR-T retry delay."""

    def __post_init__(self) -> None:
        if self.termination_retry_seconds < 0:
            raise ValueError("termination_retry_seconds must be >= 0")
        if not 0 < self.termination_retry_initial_seconds <= self.termination_retry_max_interval_seconds:
            raise ValueError(
                "need 0 < termination_retry_initial_seconds <= termination_retry_max_interval_seconds"
            )


@dataclasses.dataclass(frozen=True)
class OcsSettings:
    """`[ocs]`: the built-in Online Charging System."""

    origin_host: str = "ocs.secondnum.local"
    origin_realm: str = "secondnum.local"
    listen_address: str = "127.0.0.1"
    listen_port: int = 3868
    http_address: str = "127.0.0.1"
    http_port: int = 8083
    grant_seconds: int = 300
    """Largest CC-Time granted per request (less when the balance covers less)."""
    validity_seconds: int = 3600
    """Validity-Time sent with each grant (RFC 4006 §8.33)."""
    session_timeout_seconds: float = 0.0
    """Tcc (RFC 4006 §13): a session with no CCR for this long is expired and its reservation released.
    0 = 2 x `validity_seconds`, the value RFC 4006 §13 suggests so that a transient failure does not
    end a live session (a client that is alive sends a CCR-U at the latest when Validity-Time expires)."""
    expiry_sweep_seconds: float = 30.0
    """How often expired reservations are looked for (release happens up to this late)."""
    api_tokens: list[str] = dataclasses.field(default_factory=list)
    """Bearer tokens for /api/ (none: open, loopback only)."""
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if self.session_timeout_seconds < 0:
            raise ValueError("session_timeout_seconds must be >= 0 (0 = 2 x validity_seconds)")
        if self.expiry_sweep_seconds <= 0:
            raise ValueError("expiry_sweep_seconds must be > 0")

    @property
    def tcc_seconds(self) -> float:
        """Effective session supervision time (Tcc) in seconds."""
        return self.session_timeout_seconds or 2.0 * self.validity_seconds
