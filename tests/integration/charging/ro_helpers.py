"""Helpers for Diameter tests over real loopback TCP (imported by the tests in this folder)."""

from __future__ import annotations

import asyncio
import struct

from secondnum.diameter import codec
from secondnum.diameter import constants as dc
from secondnum.diameter.peer import LocalIdentity, PeerConnection


class RawPeer:
    """A hand-driven Diameter peer: real socket, CER done, then raw bytes in and out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(
        cls, port: int, host: str = "raw.test", apps: tuple[int, ...] = (dc.APP_RO,)
    ) -> RawPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        peer = cls(reader, writer)
        conn = PeerConnection(LocalIdentity(host, "test", auth_applications=apps), initiator=True, now=0.0)
        conn.connection_made(0.0)
        writer.write(conn.data_to_send())
        cea = await peer.read()
        assert cea is not None and codec.result_code(codec.decode(cea)) == dc.SUCCESS
        return peer

    async def read(self, timeout: float = 10.0) -> bytes | None:
        try:
            head = await asyncio.wait_for(self.reader.readexactly(4), timeout)
            length = struct.unpack("!I", head)[0] & 0xFFFFFF
            return head + await asyncio.wait_for(self.reader.readexactly(length - 4), timeout)
        except asyncio.IncompleteReadError:
            return None

    async def read_app(self, timeout: float = 10.0) -> bytes | None:
        """Next message that is not a DWR (answered)."""
        while True:
            data = await self.read(timeout)
            if data is None:
                return None
            if struct.unpack_from("!I", data, 4)[0] & 0xFFFFFF == dc.CMD_DEVICE_WATCHDOG:
                continue
            return data

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def closed(self, timeout: float = 10.0) -> bool:
        try:
            return await asyncio.wait_for(self.reader.read(1), timeout) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.writer.close()
