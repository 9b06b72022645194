"""DiameterNode over loopback TCP: routing, failover with the T flag, duplicates, Tx, reconnect."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from diameter.message import Message
from ro_helpers import RawPeer

from secondnum.diameter import DiameterNode, NoRouteError, PeerConfig, PeerInfo, RequestTimeout, codec
from secondnum.diameter import constants as dc
from secondnum.diameter.peer import PeerState


def ccr(n: int = 0) -> Message:
    return codec.new_request(
        dc.CMD_CREDIT_CONTROL,
        dc.APP_RO,
        [codec.avp(dc.AVP_SESSION_ID, f"as.test;1;{n}"), codec.avp(dc.AVP_CC_REQUEST_NUMBER, n)],
    )


def raw_ccr(e2e: int, hop: int, retransmit: bool = False) -> bytes:
    """A CCR as a raw peer sends it: its own Origin-Host/Realm, the given ids, the T flag if asked."""
    req = ccr(e2e)
    req.avps = [*req.avps, codec.avp(dc.AVP_ORIGIN_HOST, b"raw.test"),
                codec.avp(dc.AVP_ORIGIN_REALM, b"test")]
    req.header.hop_by_hop_identifier, req.header.end_to_end_identifier = hop, e2e
    if retransmit:
        req.header.command_flags |= dc.FLAG_RETRANSMIT
    return codec.encode(req)


class Recorder:
    """A handler recording what reached it; `hold` makes it never answer."""

    def __init__(self, hold: bool = False) -> None:
        self.seen: list[Message] = []
        self.hold = hold
        self.arrived = asyncio.Event()

    async def __call__(self, req: Message, peer: PeerInfo) -> Message:
        self.seen.append(req)
        self.arrived.set()
        if self.hold:
            await asyncio.Event().wait()
        return codec.new_answer(req, dc.SUCCESS)


async def server(host: str, handler: Recorder, port: int = 0, **options: Any) -> DiameterNode:
    node = DiameterNode(host, "test", (dc.APP_RO,), **options)
    node.register_handler(dc.APP_RO, dc.CMD_CREDIT_CONTROL, handler)
    await node.start(listen=("127.0.0.1", port))
    return node


async def client(*peers: PeerConfig, tx: float = 5.0) -> DiameterNode:
    node = DiameterNode("as.test", "test", (dc.APP_RO,), tx_timeout=tx, reconnect_min=0.1, reconnect_max=0.5)
    for p in peers:
        node.add_peer(p)
    await node.start()
    for p in peers:
        await node.wait_for_peer(host=p.host, timeout=10)
    return node


async def test_request_answer_and_origin_avps() -> None:
    rec = Recorder()
    ocs = await server("ocs1.test", rec)
    cli = await client(PeerConfig("ocs1.test", "test", "127.0.0.1", ocs.listen_port))
    try:
        ans = await cli.send_request(ccr(), "test")
        assert codec.result_code(ans) == dc.SUCCESS
        assert codec.text(ans.avps, dc.AVP_ORIGIN_HOST) == "ocs1.test"
        req = rec.seen[0]
        assert req.avps[0].code == dc.AVP_SESSION_ID
        assert codec.text(req.avps, dc.AVP_ORIGIN_HOST) == "as.test"
        assert codec.text(req.avps, dc.AVP_DESTINATION_REALM) == "test"
        assert codec.first(req.avps, dc.AVP_ORIGIN_HOST).is_mandatory  # type: ignore[union-attr]
    finally:
        await cli.stop()
        await ocs.stop()


async def test_priority_and_destination_host() -> None:
    r1, r2 = Recorder(), Recorder()
    o1, o2 = await server("ocs1.test", r1), await server("ocs2.test", r2)
    cli = await client(
        PeerConfig("ocs1.test", "test", "127.0.0.1", o1.listen_port, priority=0),
        PeerConfig("ocs2.test", "test", "127.0.0.1", o2.listen_port, priority=1),
    )
    try:
        for i in range(3):
            await cli.send_request(ccr(i), "test")
        await cli.send_request(ccr(9), "test", destination_host="ocs2.test")
        assert (len(r1.seen), len(r2.seen)) == (3, 1)
    finally:
        await cli.stop()
        await o1.stop()
        await o2.stop()


async def test_failover_resends_with_t_flag_and_same_end_to_end() -> None:
    """RFC 6733 §5.5.4: pending requests of a failed peer go to an alternate one."""
    held, r2 = Recorder(hold=True), Recorder()
    o1, o2 = await server("ocs1.test", held), await server("ocs2.test", r2)
    cli = await client(
        PeerConfig("ocs1.test", "test", "127.0.0.1", o1.listen_port, priority=0),
        PeerConfig("ocs2.test", "test", "127.0.0.1", o2.listen_port, priority=1),
    )
    try:
        pending = asyncio.ensure_future(cli.send_request(ccr(), "test"))
        await asyncio.wait_for(held.arrived.wait(), 10)
        first = held.seen[0].header
        assert not first.command_flags & dc.FLAG_RETRANSMIT
        await o1.stop()  # DPR: the connection goes away with the request unanswered
        ans = await asyncio.wait_for(pending, 10)
        assert codec.text(ans.avps, dc.AVP_ORIGIN_HOST) == "ocs2.test"
        again = r2.seen[0].header
        assert again.command_flags & dc.FLAG_RETRANSMIT
        assert again.end_to_end_identifier == first.end_to_end_identifier
    finally:
        await cli.stop()
        await o2.stop()


async def test_tx_timer_expires() -> None:
    held = Recorder(hold=True)
    ocs = await server("ocs1.test", held)
    cli = await client(PeerConfig("ocs1.test", "test", "127.0.0.1", ocs.listen_port))
    try:
        with pytest.raises(RequestTimeout) as ei:
            await cli.send_request(ccr(), "test", timeout=0.3)
        assert ei.value.peer_host == "ocs1.test"
        assert not cli._pending  # nothing leaks
    finally:
        await cli.stop()
        await ocs.stop()


async def test_no_route() -> None:
    cli = DiameterNode("as.test", "test", (dc.APP_RO,))
    await cli.start()
    try:
        with pytest.raises(NoRouteError):
            await cli.send_request(ccr(), "test")
    finally:
        await cli.stop()


async def test_duplicate_with_t_flag_answered_from_cache() -> None:
    rec = Recorder()
    ocs = await server("ocs1.test", rec)
    peer = await RawPeer.connect(ocs.listen_port)
    try:
        req = ccr()
        req.avps = [
            *req.avps,
            codec.avp(dc.AVP_ORIGIN_HOST, b"raw.test"),
            codec.avp(dc.AVP_ORIGIN_REALM, b"test"),
        ]
        req.header.hop_by_hop_identifier, req.header.end_to_end_identifier = 1, 4242
        peer.send(codec.encode(req))
        a1 = await peer.read_app()
        req.header.hop_by_hop_identifier = 2
        req.header.command_flags |= dc.FLAG_RETRANSMIT
        peer.send(codec.encode(req))
        a2 = await peer.read_app()
        assert a1 is not None and a2 is not None
        assert len(rec.seen) == 1
        assert struct.unpack_from("!I", a2, 12)[0] == 2
        assert a1[:12] == a2[:12] and a1[16:] == a2[16:]
    finally:
        peer.close()
        await ocs.stop()


async def test_duplicate_cache_forgets_answers_after_its_window() -> None:
    """A T-flagged duplicate inside the window gets the cached answer; after it, the request is handled
    again, and the idle node has forgotten every answer without further traffic (its own timer)."""
    rec = Recorder()
    ocs = await server("ocs1.test", rec, duplicate_window=0.4)
    peer = await RawPeer.connect(ocs.listen_port)
    try:
        peer.send(raw_ccr(7, 1))
        assert await peer.read_app() is not None
        peer.send(raw_ccr(7, 2, retransmit=True))
        assert await peer.read_app() is not None
        assert len(rec.seen) == 1  # answered from the cache
        assert len(ocs._answers) == 1
        await asyncio.sleep(0.6)
        assert len(ocs._answers) == 0  # forgotten while idle
        peer.send(raw_ccr(7, 3, retransmit=True))
        assert await peer.read_app() is not None
        assert len(rec.seen) == 2  # past the window: handled as new
    finally:
        peer.close()
        await ocs.stop()


async def test_duplicate_cache_keeps_its_size_cap() -> None:
    rec = Recorder()
    ocs = await server("ocs1.test", rec, duplicate_cache_size=3)
    peer = await RawPeer.connect(ocs.listen_port)
    try:
        for e2e in range(1, 6):
            peer.send(raw_ccr(e2e, e2e))
            assert await peer.read_app() is not None
        assert [k[1] for k in ocs._answers] == [3, 4, 5]
    finally:
        peer.close()
        await ocs.stop()


async def test_reconnects_after_peer_restart() -> None:
    rec = Recorder()
    ocs = await server("ocs1.test", rec)
    port = ocs.listen_port
    cli = await client(PeerConfig("ocs1.test", "test", "127.0.0.1", port))
    try:
        await ocs.stop()
        await asyncio.sleep(0.2)
        with pytest.raises(NoRouteError):
            await cli.send_request(ccr(), "test")
        ocs = await server("ocs1.test", rec, port=port)
        await cli.wait_for_peer(host="ocs1.test", timeout=15)
        assert codec.result_code(await cli.send_request(ccr(1), "test")) == dc.SUCCESS
    finally:
        await cli.stop()
        await ocs.stop()


async def test_handler_exception_gives_5012_and_node_survives() -> None:
    node = DiameterNode("ocs1.test", "test", (dc.APP_RO,))

    def boom(req: Message, peer: PeerInfo) -> Message:
        raise RuntimeError("bug")

    node.register_handler(dc.APP_RO, dc.CMD_CREDIT_CONTROL, boom)
    await node.start(listen=("127.0.0.1", 0))
    cli = await client(PeerConfig("ocs1.test", "test", "127.0.0.1", node.listen_port))
    try:
        for i in range(2):
            assert codec.result_code(await cli.send_request(ccr(i), "test")) == dc.UNABLE_TO_COMPLY
    finally:
        await cli.stop()
        await node.stop()


async def test_unknown_peers_refused_when_configured() -> None:
    node = DiameterNode("ocs1.test", "test", (dc.APP_RO,), accept_unknown_peers=False)
    await node.start(listen=("127.0.0.1", 0))
    try:
        with pytest.raises(AssertionError):
            await RawPeer.connect(node.listen_port, host="stranger.test")
    finally:
        await node.stop()


def test_works_on_uvloop() -> None:
    """uvloop transports are not asyncio.Transport subclasses; the node must not care."""
    uvloop = pytest.importorskip("uvloop", reason="uvloop is the optional [fast] extra")

    async def main() -> int | None:
        rec = Recorder()
        ocs = await server("ocs1.test", rec)
        cli = await client(PeerConfig("ocs1.test", "test", "127.0.0.1", ocs.listen_port))
        try:
            return codec.result_code(await cli.send_request(ccr(), "test"))
        finally:
            await cli.stop()
            await ocs.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) == dc.SUCCESS


async def test_watchdog_suspect_peer_gets_no_requests_then_goes_down() -> None:
    """RFC 3539 §3.4.1 over TCP: a peer that stops answering DWR is SUSPECT (traffic goes to the
    alternate), then DOWN (connection closed by us)."""
    from secondnum.diameter.peer import LocalIdentity, PeerConnection

    closed = asyncio.Event()

    async def mute_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = PeerConnection(LocalIdentity("mute.test", "test"), initiator=False, now=0.0)
        conn.connection_made(0.0)
        head = await reader.readexactly(4)
        body = await reader.readexactly((struct.unpack("!I", head)[0] & 0xFFFFFF) - 4)
        conn.receive_data(head + body, 0.0)
        writer.write(conn.data_to_send())  # CEA; after that: silence
        await reader.read()  # until the node closes the connection
        closed.set()
        writer.close()

    mute = await asyncio.start_server(mute_peer, "127.0.0.1", 0)
    rec = Recorder()
    ocs2 = await server("ocs2.test", rec)
    cli = DiameterNode("as.test", "test", (dc.APP_RO,), watchdog_interval=0.6, reconnect_min=30)
    cli.add_peer(PeerConfig("mute.test", "test", "127.0.0.1", mute.sockets[0].getsockname()[1], priority=0))
    cli.add_peer(PeerConfig("ocs2.test", "test", "127.0.0.1", ocs2.listen_port, priority=1))
    await cli.start()
    try:
        await cli.wait_for_peer(host="mute.test", timeout=10)
        await cli.wait_for_peer(host="ocs2.test", timeout=10)

        async def state_of(host: str, state: str) -> None:
            while not any(p.host == host and p.state == state for p in cli.peers()):  # noqa: ASYNC110
                await asyncio.sleep(0.02)

        await asyncio.wait_for(state_of("mute.test", "Suspect"), 10)
        ans = await cli.send_request(ccr(), "test")
        assert codec.text(ans.avps, dc.AVP_ORIGIN_HOST) == "ocs2.test"
        await asyncio.wait_for(closed.wait(), 10)
        await asyncio.wait_for(state_of("mute.test", "Closed"), 10)
    finally:
        await cli.stop()
        await ocs2.stop()
        mute.close()


async def test_late_dwa_brings_suspect_peer_back() -> None:
    """A DWA arriving while SUSPECT reopens the peer, and `wait_for_peer` notices (RFC 3539 §3.4.1)."""
    from secondnum.diameter.peer import LocalIdentity, PeerConnection

    release = asyncio.Event()

    async def slow_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = PeerConnection(LocalIdentity("slow.test", "test"), initiator=False, now=0.0)
        conn.connection_made(0.0)
        answered_late = False
        while True:
            try:
                head = await reader.readexactly(4)
                body = await reader.readexactly((struct.unpack("!I", head)[0] & 0xFFFFFF) - 4)
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            conn.receive_data(head + body, 0.0)
            if conn.state is PeerState.OPEN and not answered_late and body[1:4] != b"\x00\x01\x01":
                await release.wait()  # hold the first DWA until the node has marked us SUSPECT
                answered_late = True
            writer.write(conn.data_to_send())
        writer.close()

    slow = await asyncio.start_server(slow_peer, "127.0.0.1", 0)
    cli = DiameterNode("as.test", "test", (dc.APP_RO,), watchdog_interval=2.0, reconnect_min=30)
    cli.add_peer(PeerConfig("slow.test", "test", "127.0.0.1", slow.sockets[0].getsockname()[1]))
    await cli.start()
    try:
        await cli.wait_for_peer(host="slow.test", timeout=10)

        async def suspect() -> None:
            while not any(p.state == "Suspect" for p in cli.peers()):  # noqa: ASYNC110
                await asyncio.sleep(0.02)

        await asyncio.wait_for(suspect(), 15)
        with pytest.raises(NoRouteError):
            await cli.send_request(ccr(), "test")
        release.set()
        await cli.wait_for_peer(host="slow.test", timeout=10)
        assert [p.state for p in cli.peers()] == ["Open"]
    finally:
        release.set()
        await cli.stop()
        slow.close()
