"""Request routing (RFC 6733 §6.1): Destination-Host first, then realm + application, by priority.

Only peers whose connection is OPEN and not SUSPECT are candidates (RFC 3539 §3.4.1). Among the
peers of a realm with the lowest priority value, requests are spread round-robin.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PeerConfig:
    """A peer we connect to (or accept from, when `address` is empty)."""

    host: str  # DiameterIdentity, expected Origin-Host in its CEA
    realm: str
    address: str = "127.0.0.1"
    port: int = 3868
    priority: int = 0  # lower = preferred


class RoutablePeer(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def realm(self) -> str: ...
    @property
    def priority(self) -> int: ...
    def can_route(self, application_id: int) -> bool: ...


class Router:
    """Chooses a peer for a request; keeps only round-robin state."""

    def __init__(self) -> None:
        self._rr = itertools.count()

    def select(
        self,
        peers: Iterable[RoutablePeer],
        application_id: int,
        realm: str | None,
        host: str | None = None,
        avoid: Collection[str] = (),
    ) -> RoutablePeer | None:
        candidates = [p for p in peers if p.host not in avoid and p.can_route(application_id)]
        if host is not None:
            for p in candidates:
                if p.host == host:
                    return p
        if realm is not None:
            candidates = [p for p in candidates if p.realm == realm]
        if not candidates:
            return None
        best = min(p.priority for p in candidates)
        top = [p for p in candidates if p.priority == best]
        return top[next(self._rr) % len(top)]
