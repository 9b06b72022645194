"""`secondnum up` demo data for the OCS: idempotent, and the seeded DID can place a charged call."""

from __future__ import annotations

import os

from charging.client import ChargingRequest, RoClient, RoleOfNode
from charging.ocs import OcsServer, models
from charging.ocs.seed import DEMO_BALANCE, seed_demo_balance
from charging.settings import DiameterPeerSettings, OcsSettings, RoClientSettings
from secondnum.service import RunContext


async def test_seed_is_idempotent_and_usable(mongo_uri: str) -> None:
    ctx = RunContext(mongo_uri=mongo_uri, mongo_database=os.environ["SECONDNUM_TEST_DB"])
    await seed_demo_balance(ctx, "42027777100")
    models.Account.objects(e164="42027777100").update_one(inc__balance=-1)
    await seed_demo_balance(ctx, "42027777100")  # must not reset the balance or duplicate tariffs
    assert models.Account.objects.get(e164="42027777100").balance == DEMO_BALANCE - 1
    assert models.Tariff.objects.count() == 3

    ocs = OcsServer(OcsSettings(listen_port=0), http=False)
    await ocs.start()
    client = RoClient(RoClientSettings(peers=[DiameterPeerSettings(port=ocs.diameter_port)]))
    await client.start()
    try:
        s = await client.start_session(
            ChargingRequest("42027777100", RoleOfNode.ORIGINATING, "tel:+42027777100", "tel:+420273333444")
        )
        assert s.granted_seconds == 300
        await s.terminate(used_seconds=60)
        assert models.Account.objects.get(e164="42027777100").balance == DEMO_BALANCE - 1 - 100
    finally:
        await client.stop()
        await ocs.stop()
