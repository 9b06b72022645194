"""Child process for the pending-CCR-T recovery test.

Opens an Ro session, answers it, and on a line ``T`` on stdin sends CCR-T with the given used units
(the test has stopped the OCS by then, so the CCR-T stays pending); prints ``PENDING`` once the
"terminating" record is in MongoDB, then waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys

from charging.client import ChargingRequest, RoClient, RoleOfNode
from charging.settings import DiameterPeerSettings, RoClientSettings
from secondnum.mongo import connect


async def main(uri: str, db: str, port: int, used: int) -> None:
    connect(uri, database=db)
    settings = RoClientSettings(peers=[DiameterPeerSettings(port=port)], tx_seconds=1.0)
    client = RoClient(settings)
    await client.start()
    s = await client.start_session(
        ChargingRequest("42027777100", RoleOfNode.ORIGINATING, "tel:+42027777100", "tel:+420273333444", "i")
    )
    s.answered()
    print("READY", s.session_id, flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    assert line.strip() == "T", line
    await s.terminate(used_seconds=used)
    assert s.session_id in client.retrying
    await client.flush()
    print("PENDING", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
