"""An AS killed with SIGKILL mid-call: the restarted client closes the session with CCR-T (used units)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from charging.client import RoClient
from charging.ocs import OcsServer, models
from charging.settings import DiameterPeerSettings, OcsSettings, RoClientSettings
from charging.store import OpenRoSession

CHILD = Path(__file__).with_name("ro_crash_child.py")


async def test_sigkilled_session_is_closed_after_restart(mongo_uri: str) -> None:
    models.Account(e164="42027777100", balance=100_000).save()
    models.Tariff(prefix="420", price_per_minute=600, increment_seconds=1).save()
    ocs = OcsServer(OcsSettings(listen_port=0, http_port=0))
    await ocs.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        mongo_uri,
        os.environ["SECONDNUM_TEST_DB"],
        str(ocs.diameter_port),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
        assert line and line[0] == "READY", line
        session_id = line[1]
        await asyncio.sleep(2.0)  # the call runs; the child checkpoints every 0.3 s
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert await asyncio.to_thread(lambda: OpenRoSession.objects(session_id=session_id).count()) == 1
        acc = await asyncio.to_thread(lambda: models.Account.objects.get(e164="42027777100"))
        assert acc.reserved > 0  # the OCS still holds the reservation of the dead session

        client = RoClient(RoClientSettings(peers=[DiameterPeerSettings(port=ocs.diameter_port)]))
        await client.start()
        try:
            assert await client.recover_open_sessions() == 1
        finally:
            await client.stop()
        rec = await asyncio.to_thread(lambda: models.RatedRecord.objects.get(session_id=session_id))
        assert rec.closed
        assert [e["type"] for e in rec.events] == [1, 3]
        assert 1 <= rec.used_seconds <= 30
        acc = await asyncio.to_thread(lambda: models.Account.objects.get(e164="42027777100"))
        assert acc.reserved == 0 and acc.balance == 100_000 - rec.charged
        assert await asyncio.to_thread(OpenRoSession.objects.count) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await ocs.stop()
