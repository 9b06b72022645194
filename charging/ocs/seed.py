"""Demo data for `secondnum up`: a prepaid balance for the seed's DID and a small tariff table.

Called by `secondnum.seed.seed_demo_data` (idempotent: nothing is changed when the data exists).
"""

from __future__ import annotations

import asyncio

from charging.ocs import models
from secondnum.log import get_logger
from secondnum.mongo import connect
from secondnum.service import RunContext

log = get_logger(__name__)

DEMO_BALANCE = 10_000  # 10.000 in milli-units of the currency
DEMO_TARIFFS = (
    # prefix, price per minute (milli), increment (s), connection fee (milli)
    ("", 200, 60, 0),  # default: 0.20/min, per started minute
    ("420", 100, 1, 0),  # domestic: 0.10/min, per second
    ("4207", 150, 1, 0),  # domestic mobile
)


def _seed(did: str) -> tuple[bool, int]:
    created = False
    if models.Account.objects(e164=did).first() is None:
        models.Account(e164=did, balance=DEMO_BALANCE).save()
        created = True
    tariffs = 0
    if models.Tariff.objects.count() == 0:
        for prefix, price, inc, fee in DEMO_TARIFFS:
            models.Tariff(
                prefix=prefix, price_per_minute=price, increment_seconds=inc, connection_fee=fee
            ).save()
            tariffs += 1
    return created, tariffs


async def seed_demo_balance(ctx: RunContext, did: str) -> None:
    connect(ctx.mongo_uri, database=ctx.mongo_database)
    created, tariffs = await asyncio.to_thread(_seed, did.lstrip("+"))
    log.info("seed_charging", did=did, account_created=created, tariffs_created=tariffs)
