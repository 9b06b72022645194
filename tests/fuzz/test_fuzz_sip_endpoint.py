"""The real entry point, over loopback sockets: SipEndpoint fed mutated IMS traffic on UDP and TCP.

The handler answers every request (180 then a final for INVITE), as the AS does. After the burst and once
every timer (64*T1 with a short T1) has run out, the endpoint must hold no transaction, no handler task and
no pending client INVITE, and must still answer a clean OPTIONS. Counts go to the fuzz summary.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket

import fuzz_corpus as corpus
import fuzz_targets as ft
from fuzz_strategies import RUNS

from secondnum.sip import IncomingRequest, SipEndpoint, TimerConfig

TIMERS = TimerConfig(t1=0.02, t2=0.08, t4=0.1)  # 64*T1 = 1.28 s: every timer is gone within seconds


def _loopback_seeds(port: int) -> list[bytes]:
    """The corpus with every Via sent-by on this test's socket: replies never leave 127.0.0.1."""
    via = rb"\g<1>SIP/2.0/\g<2> 127.0.0.1:" + str(port).encode() + b";rport;"
    pattern = rb"((?:^|\n)(?:Via|v): )SIP/2.0/(UDP|TCP) [^;\r\n]+;(rport;)?"
    return [re.sub(pattern, via, s) for s in corpus.SIP_SEEDS]


def _clean_options(seeds: list[bytes], branch: str) -> bytes:
    return seeds[corpus.SIP_SEEDS.index(corpus.OPTIONS)].replace(b"z9hG4bK-opt1", branch.encode())


async def _wait_for(sock: socket.socket, marker: bytes, timeout: float = 10.0) -> bytes:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), max(0.01, end - loop.time()))
        except TimeoutError:
            break
        if marker in data:
            return data
    return b""


def _busy(ep: SipEndpoint) -> bool:
    return bool(ep.layer.server_transactions or ep.layer.client_transactions or ep._tasks)


async def test_endpoint_leaks_nothing_after_mutated_traffic() -> None:
    handled = 0

    async def handler(inc: IncomingRequest) -> None:
        nonlocal handled
        handled += 1
        if inc.method == "ACK":
            return
        if inc.method == "INVITE":
            inc.respond(180)
            await asyncio.sleep(0.01)
            if inc.final_sent:  # CANCELled meanwhile: the endpoint already sent 487
                return
            inc.respond(random.choice((200, 486, 603)))
            return
        inc.respond(200)

    ep = SipEndpoint(handler, port=0, timers=TIMERS)
    await ep.start()
    rng = random.Random(4475)  # RFC 4475, the SIP torture tests
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setblocking(False)
    udp.bind(("127.0.0.1", 0))
    seeds = _loopback_seeds(udp.getsockname()[1])
    sent = 0
    try:
        port = ep.local_address[1]
        for i in range(600):
            seed = rng.choice(seeds)
            data = seed if rng.random() < 0.3 else ft.apply_ops(seed, ft.random_ops(rng, 4), seeds,
                                                                corpus.SIP_TOKENS)
            udp.sendto(data, ("127.0.0.1", port))
            sent += 1
            if i % 25 == 0:
                await asyncio.sleep(0.005)
        # TCP: a few connections each carrying a mutated stream, some cut mid-message.
        for _ in range(20):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            blob = b"".join(ft.apply_ops(s, ft.random_ops(rng, 2), seeds, corpus.SIP_TOKENS)
                            if rng.random() < 0.5 else s for s in rng.sample(seeds, 3))
            writer.write(blob[: rng.randint(1, len(blob))])
            await writer.drain()
            sent += 1
            writer.close()
            await writer.wait_closed()
        RUNS["sip_endpoint_wire"] += sent

        # Let every transaction finish: INVITE 2xx unACKed -> Timer L, non-2xx -> Timer H, non-INVITE -> J.
        for _ in range(300):  # up to 30 s under CPU contention
            if not _busy(ep):
                break
            await asyncio.sleep(0.1)
        assert ep.layer.server_transactions == 0, list(ep.layer._server.values())[:5]
        assert ep.layer.client_transactions == 0
        assert not ep.layer._accepted
        assert not ep._invites
        assert not ep._tasks
        assert handled > 0

        # Still serving (first empty our socket: the burst's answers may fill its receive buffer).
        drained = 0
        while True:
            try:
                udp.recv(65535)
                drained += 1
            except BlockingIOError:
                break
        assert drained > 0, "the endpoint answered nothing"
        udp.sendto(_clean_options(seeds, "z9hG4bK-after"), ("127.0.0.1", port))
        reply = await _wait_for(udp, b"z9hG4bK-after")
        assert reply.startswith(b"SIP/2.0 200"), reply[:100]
    finally:
        udp.close()
        await ep.close()
