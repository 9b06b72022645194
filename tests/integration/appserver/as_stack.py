"""The AS wired to real peers over loopback: SecantusDB, the built-in OCS (Diameter Ro), the profile cache.

SIPp plays the S-CSCF, the far ends and (where the test says so) media. What the OCS received is observed by
wrapping its CCR handler (the real OCS still rates every request).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mongoengine import Document
from mongoengine.base import _document_registry
from mongoengine.connection import get_db

from appserver.server import AppServer
from appserver.settings import AsSettings
from charging.client import RoClient
from charging.messages import Ccr, parse_ccr
from charging.ocs import models as ocs_models
from charging.ocs.server import OcsServer
from charging.settings import DiameterPeerSettings, OcsSettings, RoClientSettings
from hss_adapter import models as hss_models
from hss_adapter import store
from hss_adapter.cache import ProfileCache
from secondnum.diameter import constants as dc
from secondnum.net import free_port

DID = "42027777100"
MOBILE = "42073723123"
PSTN_CALLER = "42075553333"
DESTINATION = "420273333444"
CCR_I, CCR_U, CCR_T = 1, 2, 3  # CC-Request-Type (RFC 4006 §8.3)


@dataclasses.dataclass
class Stack:
    server: AppServer
    ocs: OcsServer
    ro: RoClient | None
    cache: ProfileCache
    ccrs: list[Ccr]
    workdir: Path
    scscf_port: int
    media_port: int
    ocs_gate: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    """Set (open) by default; a test clears it to make the OCS hold every CCR until it is set again."""

    @property
    def sip_port(self) -> int:
        return self.server.ep.local_address[1]

    async def provision(self, **fields: Any) -> None:
        data: dict[str, Any] = {
            "did": DID,
            "answering_mode": "forward_then_voicemail",
            "follow_me": {"targets": [{"uri": f"tel:+{MOBILE}", "ring_timeout": 20}]},
            "aliases": [{"identity": f"{MOBILE}@pstn", "allow_registration": False}],
        }
        data.update(fields)
        await asyncio.to_thread(store.create_account, data)
        await self.cache.wait_for(lambda c: c.lookup_did(DID) is not None, 10)

    def ccr(self, request_type: int) -> list[Ccr]:
        return [c for c in self.ccrs if c.request_type == request_type]


async def build_stack(
    mongo_uri: str,
    tmp_path: Path,
    settings_over: dict[str, Any],
    ro_over: dict[str, Any],
    with_ocs_peer: bool = True,
    balance: int = 1_000_000,
) -> AsyncIterator[Stack]:
    # Documents cache their collection per class; a previous test's (closed) client must not be reused.
    for doc in list(_document_registry.values()):
        if issubclass(doc, Document):
            doc._collection = None
    hss_models.ensure_indexes()
    ocs_models.Account(e164=DID, balance=balance).save()
    ocs_models.Tariff(prefix="", price_per_minute=100, increment_seconds=1).save()
    ocs = OcsServer(OcsSettings(listen_port=0, http_port=0), http=False)
    ccrs: list[Ccr] = []
    original = ocs.on_ccr
    gate = asyncio.Event()
    gate.set()

    async def observed(req: Any, peer: Any) -> Any:
        ccrs.append(parse_ccr(req))
        await gate.wait()  # a slow OCS, when a test closes the gate
        return await original(req, peer)

    ocs.node.register_handler(dc.APP_RO, dc.CMD_CREDIT_CONTROL, observed)
    await ocs.start()
    cache = ProfileCache.from_uri(mongo_uri, get_db().name)  # its own client, as AsService does
    await cache.start()
    ocs_port = ocs.diameter_port if with_ocs_peer else free_port()
    ro_kw: dict[str, Any] = {"tx_seconds": 2.0, **ro_over}
    ro_settings = RoClientSettings(peers=[DiameterPeerSettings(port=ocs_port)], **ro_kw)
    ro = RoClient(ro_settings, persist=False)
    await ro.start()
    scscf_port, media_port = free_port(), free_port()
    settings = AsSettings(
        sip_port=0,
        scscf_uri=f"sip:127.0.0.1:{scscf_port}",
        media_uri=f"sip:127.0.0.1:{media_port}",
        **settings_over,
    )
    server = AppServer(settings, cache, ro)
    await server.start()
    try:
        yield Stack(server, ocs, ro, cache, ccrs, tmp_path, scscf_port, media_port, gate)
    finally:
        await server.close()
        await ro.stop()
        await cache.stop()
        await ocs.stop()
