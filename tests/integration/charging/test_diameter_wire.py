"""Bad Diameter input over real TCP (RFC 6733 §7.1.5): each gets its error; only lost framing drops."""

from __future__ import annotations

import struct

import pytest
from ro_helpers import RawPeer

from secondnum.diameter import DiameterNode, codec
from secondnum.diameter import constants as dc


def header(
    length: int, flags: int = 0xC0, code: int = 272, app: int = 4, version: int = 1, hbh: int = 7
) -> bytes:
    return struct.pack("!IIIII", (version << 24) | length, (flags << 24) | code, app, hbh, 99)


def avp(code: int, payload: bytes, flags: int = 0x40, length: int | None = None) -> bytes:
    n = 8 + len(payload) if length is None else length
    return struct.pack("!II", code, (flags << 24) | n) + payload + b"\0" * (-len(payload) % 4)


def msg(*avps: bytes, **kw: int) -> bytes:
    body = b"".join(avps)
    return header(20 + len(body), **kw) + body


SID = avp(dc.AVP_SESSION_ID, b"raw;1")
U32 = struct.pack("!I", 1)

CASES = [
    ("unsupported version", msg(SID, version=2), dc.UNSUPPORTED_VERSION),
    ("E bit on request", msg(SID, flags=0xE0), dc.INVALID_HDR_BITS),
    ("unknown command", msg(SID, code=9999), dc.COMMAND_UNSUPPORTED),
    ("unknown application", msg(SID, app=16777251), dc.APPLICATION_UNSUPPORTED),
    ("AVP length too small", msg(SID, avp(dc.AVP_CC_REQUEST_NUMBER, U32, length=3)), dc.INVALID_AVP_LENGTH),
    ("AVP overruns message", msg(SID, avp(dc.AVP_CC_REQUEST_NUMBER, U32, length=64)), dc.INVALID_AVP_LENGTH),
    ("Unsigned32 of 2 bytes", msg(SID, avp(dc.AVP_CC_REQUEST_NUMBER, b"\0\1")), dc.INVALID_AVP_LENGTH),
    ("invalid UTF-8", msg(avp(dc.AVP_SESSION_ID, b"\xc3\x28")), dc.INVALID_AVP_VALUE),
    ("unknown AVP with M bit", msg(SID, avp(4242, b"zz")), dc.AVP_UNSUPPORTED),
]


@pytest.mark.parametrize(("name", "data", "code"), CASES, ids=[c[0] for c in CASES])
async def test_bad_request_answered_and_connection_kept(
    ocs_node: DiameterNode, name: str, data: bytes, code: int
) -> None:
    peer = await RawPeer.connect(ocs_node.listen_port)
    try:
        peer.send(data)
        raw = await peer.read_app()
        assert raw is not None, "connection dropped"
        ans = codec.decode(raw)
        assert codec.result_code(ans) == code
        assert ans.header.hop_by_hop_identifier == 7
        assert not ans.header.command_flags & dc.FLAG_REQUEST
        assert bool(ans.header.command_flags & dc.FLAG_ERROR) == (3000 <= code < 4000)
        if code in (dc.INVALID_AVP_VALUE, dc.AVP_UNSUPPORTED, dc.INVALID_AVP_LENGTH):
            assert codec.first(ans.avps, dc.AVP_FAILED_AVP) is not None
        # the connection still works
        peer.send(msg(SID, avp(dc.AVP_CC_REQUEST_NUMBER, U32), hbh=8))
        ok = await peer.read_app()
        assert ok is not None and codec.result_code(codec.decode(ok)) == dc.SUCCESS
    finally:
        peer.close()


@pytest.mark.parametrize("length", [8, 22, 0xFFFFFF])
async def test_lost_framing_drops_only_that_connection(ocs_node: DiameterNode, length: int) -> None:
    victim = await RawPeer.connect(ocs_node.listen_port, host="victim.test")
    other = await RawPeer.connect(ocs_node.listen_port, host="other.test")
    try:
        victim.send(header(length) + b"\0" * 8)
        first = await victim.read_app()
        if first is not None:  # 5015 answered before closing when the header was readable
            assert codec.result_code(codec.decode(first)) == dc.INVALID_MESSAGE_LENGTH
        assert await victim.closed()
        other.send(msg(SID, avp(dc.AVP_CC_REQUEST_NUMBER, U32)))
        ok = await other.read_app()
        assert ok is not None and codec.result_code(codec.decode(ok)) == dc.SUCCESS
    finally:
        victim.close()
        other.close()


async def test_garbage_before_cer_drops_connection(ocs_node: DiameterNode) -> None:
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", ocs_node.listen_port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 10) is not None
    writer.close()
    # the node still accepts peers
    peer = await RawPeer.connect(ocs_node.listen_port)
    peer.close()
