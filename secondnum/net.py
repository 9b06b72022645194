"""Small socket helpers for the tools that start servers on loopback (the demo, tests, benchmarks)."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1", *, udp: bool = True, tcp: bool = True) -> int:
    """A port number free on ``host`` right now, for UDP and/or TCP.

    SIP listens on UDP and TCP with one port number (RFC 3261 §18), so by default both must be free. The
    port is released before returning: a caller racing other processes binds it promptly.
    """
    if not (udp or tcp):
        raise ValueError("ask for udp, tcp or both")
    first, second = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if tcp else (socket.SOCK_DGRAM, None)
    if not udp:
        second = None
    for _ in range(100):
        with socket.socket(socket.AF_INET, first) as a:
            a.bind((host, 0))
            port = int(a.getsockname()[1])
            if second is None:
                return port
            with socket.socket(socket.AF_INET, second) as b:
                try:
                    b.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no free port on {host}")
