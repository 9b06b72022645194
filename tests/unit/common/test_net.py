"""free_port gives a port that can really be bound, for the protocols asked."""

from __future__ import annotations

import socket

import pytest

from secondnum.net import free_port


@pytest.mark.parametrize(("udp", "tcp"), [(True, True), (True, False), (False, True)])
def test_port_binds(udp: bool, tcp: bool) -> None:
    port = free_port(udp=udp, tcp=tcp)
    kinds = [k for k, on in ((socket.SOCK_DGRAM, udp), (socket.SOCK_STREAM, tcp)) if on]
    socks = [socket.socket(socket.AF_INET, k) for k in kinds]
    try:
        for s in socks:
            s.bind(("127.0.0.1", port))
    finally:
        for s in socks:
            s.close()


def test_nothing_asked_is_an_error() -> None:
    with pytest.raises(ValueError):
        free_port(udp=False, tcp=False)
