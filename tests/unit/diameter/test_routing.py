"""Routing (RFC 6733 §6.1): Destination-Host, then realm + application, by priority."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from secondnum.diameter.routing import Router


@dataclass
class P:
    host: str
    realm: str
    priority: int = 0
    apps: frozenset[int] = frozenset({4})
    up: bool = True

    def can_route(self, application_id: int) -> bool:
        return self.up and application_id in self.apps


PEERS = [
    P("ocs1", "r1", 0),
    P("ocs2", "r1", 1),
    P("ocs3", "r2", 0),
    P("hss1", "r1", 0, frozenset({16777217})),
    P("down", "r1", -1, up=False),
]

CASES = [
    ("by realm, best priority", 4, "r1", None, (), "ocs1"),
    ("other realm", 4, "r2", None, (), "ocs3"),
    ("destination host wins", 4, "r1", "ocs2", (), "ocs2"),
    ("host in other realm", 4, "r1", "ocs3", (), "ocs3"),
    ("unknown host: realm", 4, "r1", "nope", (), "ocs1"),
    ("avoid primary", 4, "r1", None, ("ocs1",), "ocs2"),
    ("avoid host given", 4, "r1", "ocs2", ("ocs2",), "ocs1"),
    ("application filters", 16777217, "r1", None, (), "hss1"),
    ("down peer never chosen", 4, "r1", "down", (), "ocs1"),
    ("no peer for app", 99, "r1", None, (), None),
    ("no peer in realm", 4, "r9", None, (), None),
    ("all avoided", 4, "r2", None, ("ocs3",), None),
]


@pytest.mark.parametrize(
    ("name", "app", "realm", "host", "avoid", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_select(
    name: str, app: int, realm: str, host: str | None, avoid: tuple[str, ...], expected: str | None
) -> None:
    got = Router().select(PEERS, app, realm, host, avoid)
    assert (got.host if got else None) == expected


def test_round_robin_among_equal_priority() -> None:
    peers = [P("a", "r"), P("b", "r"), P("c", "r", 5)]
    r = Router()
    chosen = {r.select(peers, 4, "r").host for _ in range(4)}  # type: ignore[union-attr]
    assert chosen == {"a", "b"}
