"""SIP over TCP under hostile peers: connection caps, slowloris read timeout, oversize (``SipTransport``).

Real sockets on loopback. 127.0.0.1 plays the trusted S-CSCF, 127.0.0.2 and 127.0.0.3 attackers (every
127/8 address is local on Linux, so each client socket is bound to its source address).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import pytest

from secondnum.sip import metrics
from secondnum.sip.transport import SipTransport, TcpLimits

OPTIONS = (b"OPTIONS sip:as@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2:5099;branch=z9hG4bK-1\r\n"
           b"From: <sip:x@127.0.0.2>;tag=1\r\nTo: <sip:as@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
           b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Server:
    def __init__(self, limits: TcpLimits, max_message_size: int = 65535) -> None:
        self.received: list[tuple[bytes, str]] = []
        self.oversize: list[str] = []
        self.transport = SipTransport(lambda data, src, t: self.received.append((data, src[0])),
                                      max_message_size=max_message_size,
                                      on_oversize=lambda data, src, t: self.oversize.append(src[0]),
                                      tcp_limits=limits, trusted=lambda host: host == "127.0.0.1")

    async def __aenter__(self) -> Server:
        _, self.port = await self.transport.start("127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.close()

    async def connect(self, source: str) -> Conn:
        return await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))


async def closed_by_server(conn: Conn, timeout: float = 10.0) -> bool:
    """True when the server closed (FIN or RST) within ``timeout``; False if it stays open."""
    try:
        data = await asyncio.wait_for(conn[0].read(65536), timeout)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return data == b""


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


async def settle(transport: SipTransport, count: int) -> None:
    assert await eventually(lambda: transport.connections == count), transport.connections


def refused(reason: str) -> float:
    return float(metrics.TCP_REFUSED.labels(reason)._value.get())


async def close_all(conns: list[Conn]) -> None:
    for _, writer in conns:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_per_source_cap_spares_the_trusted_peer() -> None:
    limits = TcpLimits(max_connections=50, max_per_source=3, max_per_trusted_source=6, header_timeout=0)
    async with Server(limits) as srv:
        before = refused("per_source")
        attacker = [await srv.connect("127.0.0.2") for _ in range(5)]
        verdicts = [await closed_by_server(c, 0.5) for c in attacker]
        assert verdicts.count(True) == 2 and verdicts[:3] == [False] * 3
        assert refused("per_source") - before == 2
        trusted = [await srv.connect("127.0.0.1") for _ in range(6)]
        await settle(srv.transport, 3 + 6)
        assert not any([await closed_by_server(c, 0.2) for c in trusted])
        extra = await srv.connect("127.0.0.1")
        assert await closed_by_server(extra)
        # The trusted peer's connections still carry messages.
        trusted[0][1].write(OPTIONS)
        assert await eventually(lambda: bool(srv.received))
        assert srv.received == [(OPTIONS, "127.0.0.1")]
        # Closing attacker connections gives their budget back.
        await close_all(attacker)
        await settle(srv.transport, 6)
        again = [await srv.connect("127.0.0.2") for _ in range(3)]
        assert not any([await closed_by_server(c, 0.3) for c in again])
        await close_all(trusted + again + [extra])


async def test_total_cap_counts_untrusted_sources_only() -> None:
    limits = TcpLimits(max_connections=3, max_per_source=2, max_per_trusted_source=4, header_timeout=0)
    async with Server(limits) as srv:
        before = refused("total")
        conns = [await srv.connect(src) for src in ("127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3")]
        assert [await closed_by_server(c, 0.5) for c in conns] == [False, False, False, True]
        assert refused("total") - before == 1
        trusted = [await srv.connect("127.0.0.1") for _ in range(4)]
        assert not any([await closed_by_server(c, 0.2) for c in trusted])
        await settle(srv.transport, 3 + 4)
        await close_all(conns + trusted)


async def test_slowloris_connection_is_closed_after_header_timeout() -> None:
    limits = TcpLimits(header_timeout=1.0)
    async with Server(limits) as srv:
        before = float(metrics.TCP_READ_TIMEOUTS._value.get())
        slow = await srv.connect("127.0.0.2")
        steady = await srv.connect("127.0.0.3")
        started = time.monotonic()
        closed = False
        for i, byte in enumerate(OPTIONS[:-4]):  # never completes the header section
            slow[1].write(bytes([byte]))
            if i % 10 == 0:  # a well-behaved peer sends complete messages meanwhile
                steady[1].write(OPTIONS)
            try:
                await slow[1].drain()
            except ConnectionResetError:
                closed = True
                break
            if slow[0].at_eof() or time.monotonic() - started > 30:
                break
            await asyncio.sleep(0.05)
        closed = closed or await closed_by_server(slow, 5.0)
        assert closed, "a connection that never completes a message must be closed"
        assert float(metrics.TCP_READ_TIMEOUTS._value.get()) - before == 1
        assert not await closed_by_server(steady, 0.2)
        assert srv.received and all(src == "127.0.0.3" for _, src in srv.received)
        await close_all([slow, steady])


async def test_message_split_over_time_is_not_a_timeout() -> None:
    async with Server(TcpLimits(header_timeout=1.0)) as srv:
        conn = await srv.connect("127.0.0.2")
        for _ in range(3):  # messages complete every 0.6 s, the buffer is never empty for 3.6 s
            conn[1].write(OPTIONS[:50])
            await asyncio.sleep(0.6)
            conn[1].write(OPTIONS[50:] + OPTIONS[:20])
            await asyncio.sleep(0.6)
            conn[1].write(OPTIONS[20:])
        assert not await closed_by_server(conn, 1.5)
        assert len(srv.received) == 6
        await close_all([conn])


@pytest.mark.parametrize("with_header_end", [False, True])
async def test_oversize_message_closes_the_connection(with_header_end: bool) -> None:
    async with Server(TcpLimits(), max_message_size=2000) as srv:
        conn = await srv.connect("127.0.0.2")
        big = OPTIONS.replace(b"Content-Length: 0", b"Content-Length: 5000") if with_header_end else (
            b"OPTIONS sip:as@127.0.0.1 SIP/2.0\r\nX-Pad: " + b"a" * 3000)
        conn[1].write(big)
        assert await closed_by_server(conn)
        assert srv.oversize == ["127.0.0.2"]
        await settle(srv.transport, 0)


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        TcpLimits(max_per_source=0)
    with pytest.raises(ValueError, match="header_timeout"):
        TcpLimits(header_timeout=-1)


def test_tcp_works_under_uvloop() -> None:
    """``secondnum up`` runs on uvloop, whose transports are not asyncio.Transport subclasses: an
    ``isinstance`` assertion in connection_made used to fail every SIP-over-TCP connection there."""
    uvloop = pytest.importorskip("uvloop", reason="uvloop is in the fast extra")

    async def scenario() -> tuple[list[tuple[bytes, str]], bool]:
        async with Server(TcpLimits(max_per_source=1, header_timeout=0)) as srv:
            first = await srv.connect("127.0.0.2")
            first[1].write(OPTIONS)
            second = await srv.connect("127.0.0.2")
            refused_second = await closed_by_server(second)
            await eventually(lambda: bool(srv.received))
            await close_all([first, second])
            return srv.received, refused_second

    received, refused_second = uvloop.run(scenario())
    assert received == [(OPTIONS, "127.0.0.2")]
    assert refused_second


def test_as_settings_carry_the_tcp_limits() -> None:
    from appserver.settings import AsSettings
    from secondnum.config import ConfigError, load_section

    env = {"SECONDNUM_AS__TCP_MAX_PER_SOURCE": "3"}
    settings = load_section(AsSettings, {"as": {"tcp_header_timeout": 2.5}}, "as", env)
    assert settings.tcp_limits == TcpLimits(max_per_source=3, header_timeout=2.5)
    with pytest.raises(ConfigError, match="at least 1"):
        load_section(AsSettings, {"as": {"tcp_max_connections": 0}}, "as", {})



def test_media_settings_carry_the_tcp_limits() -> None:
    from media.settings import MediaSettings
    from secondnum.config import ConfigError, load_section

    settings = load_section(MediaSettings, {"media": {"tcp_max_per_trusted_source": 4}}, "media", {})
    assert settings.tcp_limits == TcpLimits(max_per_trusted_source=4)
    with pytest.raises(ConfigError, match="header_timeout"):
        load_section(MediaSettings, {"media": {"tcp_header_timeout": -1}}, "media", {})
