"""Child process for the crash-recovery test: opens an Ro session, answers it, then waits to be killed."""

from __future__ import annotations

import asyncio
import sys

from charging.client import ChargingRequest, RoClient, RoleOfNode
from charging.settings import DiameterPeerSettings, RoClientSettings
from secondnum.mongo import connect


async def main(uri: str, db: str, port: int) -> None:
    connect(uri, database=db)
    client = RoClient(RoClientSettings(peers=[DiameterPeerSettings(port=port)]), checkpoint_seconds=0.3)
    await client.start()
    s = await client.start_session(
        ChargingRequest(
            "42027777100", RoleOfNode.ORIGINATING, "tel:+42027777100", "tel:+420273333444", "icid"
        )
    )
    s.answered()
    await asyncio.sleep(0.2)
    print("READY", s.session_id, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
