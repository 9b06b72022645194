"""Settings of the hss component: ``[api]`` (provisioning REST API) and ``[hss]`` (Diameter Sh).

Defaults are the embedded loopback values of ``secondnum up``: the API on 127.0.0.1:8081 with the
documented development token ``dev-token``, and no HSS (MongoDB is the master, the Sh client stays idle).
"""

from __future__ import annotations

import dataclasses

DEV_TOKEN = "dev-token"


@dataclasses.dataclass(frozen=True)
class ApiSettings:
    """``[api]``: the provisioning REST API."""

    host: str = "127.0.0.1"
    port: int = 8081
    tokens: list[str] = dataclasses.field(default_factory=lambda: [DEV_TOKEN])
    """Bearer tokens accepted on ``/api/`` (RFC 6750 §2.1). Replace the development token in production."""
    max_page: int = 500

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"api.port out of range: {self.port}")
        if not self.tokens:
            raise ValueError("api.tokens must name at least one token")


@dataclasses.dataclass(frozen=True)
class HssSettings:
    """``[hss]``: the Sh client (TS 29.328/29.329). An empty ``peer_address`` means no HSS."""

    peer_address: str = ""
    peer_port: int = 3868
    peer_host: str = "hss.secondnum.local"
    """Diameter identity of the HSS (Destination-Host)."""
    origin_host: str = "as-sh.secondnum.local"
    origin_realm: str = "secondnum.local"
    destination_realm: str = "secondnum.local"
    service_indication: str = "secondnum"
    """Service-Indication of our Repository-Data (TS 29.328 §7.6.1)."""
    subscription_seconds: int = 3600
    """Expiry-Time requested in SNR (TS 29.329 §6.3.16); re-subscribed at 80 % of what the HSS grants."""
    as_server_name: str = "sip:127.0.0.1:5060"
    """Our SIP address as the iFC ApplicationServer/ServerName should name it (issue 7 check)."""
    check_ifc: bool = True
    """Read each account's iFC over Sh once after start-up and log a warning unless one points at us."""
    tx_seconds: float = 5.0
    resync_seconds: float = 300.0
    """Full UDR re-read of every account this often, so a lost PNR cannot leave data stale forever."""

    @property
    def enabled(self) -> bool:
        return bool(self.peer_address)
