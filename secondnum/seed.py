"""Demo data provisioned by ``secondnum up`` on start (idempotent).

The seed document's example: account (DID) 42027777100 for a customer whose mobile is 42073723123, alias
``42073723123@pstn`` with "Allow authentication/registration" off, answering mode "Forward then voicemail",
follow-me to the mobile (20 s), voicemail on. Balances and tariffs belong to the charging component, which
is asked to seed its side through a hook below.
"""

from __future__ import annotations

import asyncio
from typing import Any

from secondnum.log import get_logger
from secondnum.service import RunContext

log = get_logger(__name__)

DEMO_DID = "42027777100"
DEMO_MOBILE = "42073723123"

DEMO_ACCOUNT: dict[str, Any] = {
    "did": DEMO_DID,
    "display_name": "John (2nd number)",
    "status": "active",
    "answering_mode": "forward_then_voicemail",
    "follow_me": {
        "targets": [{"uri": f"tel:+{DEMO_MOBILE}", "ring_timeout": 20}],
        "ring_order": "sequential",
    },
    "caller_id_presentation": "did",
    "voicemail": {"enabled": True},
    "aliases": [{"identity": f"{DEMO_MOBILE}@pstn", "allow_registration": False}],
}


def _seed_subscriber() -> bool:
    # Imported here: the CLI imports this module for `up` only, keep its import graph light.
    from hss_adapter import store
    from hss_adapter.models import ensure_indexes

    ensure_indexes()
    if store.profile_of(DEMO_DID) is not None:
        return False
    try:
        store.create_account(DEMO_ACCOUNT)
    except store.DuplicateError:  # a concurrent start created it first: same data, fine
        return False
    return True


async def seed_demo_data(ctx: RunContext) -> None:
    """Create the demo account unless it exists, then let charging seed its balance (if it can)."""
    from hss_adapter.models import ensure_connection

    ensure_connection(ctx.mongo_uri, ctx.mongo_database)
    created = await asyncio.to_thread(_seed_subscriber)
    log.info("seed_subscriber", did=DEMO_DID, account_created=created)
    await _seed_charging(ctx)


async def _seed_charging(ctx: RunContext) -> None:
    # --- charging hook: balances and tariffs belong to the charging component (charging/README.md) ---------
    from charging.ocs.seed import seed_demo_balance

    await seed_demo_balance(ctx, DEMO_DID)
