"""The built-in OCS: a Diameter Ro server (RFC 4006 §5, TS 32.299 §6.3) on the shared peer layer.

`OcsServer.start()` listens for Diameter peers and serves the REST API; `run_ocs()` runs it until
cancelled (the `secondnum ocs` command). Balances and records live in a `Ledger` (MongoDB by
default); tariffs are cached in a `TariffTable` and reloaded whenever the API changes them.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from diameter.message import Message
from prometheus_client import Counter

from charging.messages import Ccr, build_cca, parse_ccr
from charging.ocs import models
from charging.ocs.ledger import Ledger, MemoryLedger, MongoLedger
from charging.ocs.rating import TariffRule, TariffTable
from charging.settings import OcsSettings
from secondnum.diameter import DiameterNode, PeerInfo, codec
from secondnum.diameter import constants as dc
from secondnum.http import ReadinessCheck, bound_port, make_app, serve
from secondnum.log import get_logger
from secondnum.mongo import ping

log = get_logger(__name__)

OCS_CCR = Counter("secondnum_ocs_ccr_total", "CCRs answered by the built-in OCS", ["type", "result"])
_TYPE_NAME = {1: "initial", 2: "update", 3: "termination"}


def load_tariffs() -> list[TariffRule]:
    return [
        TariffRule(t.prefix, t.price_per_minute, t.increment_seconds, t.connection_fee)
        for t in models.Tariff.objects()
    ]


class OcsServer:
    """Diameter Ro server + REST API; `ledger=MemoryLedger()` runs without MongoDB."""

    def __init__(self, settings: OcsSettings, ledger: Ledger | None = None, *, http: bool = True) -> None:
        self.settings = settings
        self.ledger: Ledger = ledger if ledger is not None else MongoLedger()
        self.tariffs = TariffTable()
        self.node = DiameterNode(settings.origin_host, settings.origin_realm, (dc.APP_RO,))
        self.node.register_handler(dc.APP_RO, dc.CMD_CREDIT_CONTROL, self.on_ccr)
        self._http = http
        self._runner: web.AppRunner | None = None

    @property
    def diameter_port(self) -> int:
        return self.node.listen_port

    @property
    def http_port(self) -> int:
        assert self._runner is not None
        return bound_port(self._runner)

    async def reload_tariffs(self) -> None:
        if isinstance(self.ledger, MemoryLedger):
            return
        self.tariffs.replace(await asyncio.to_thread(load_tariffs))

    async def start(self) -> None:
        await self.reload_tariffs()
        await self.node.start(listen=(self.settings.listen_address, self.settings.listen_port))
        if self._http:
            from charging.ocs.api import install

            readiness: dict[str, ReadinessCheck] = {"diameter": self._diameter_ready}
            if isinstance(self.ledger, MongoLedger):
                readiness["mongo"] = ping
            app = make_app("ocs", tokens=self.settings.api_tokens, readiness=readiness)
            install(app, self)
            self._runner = await serve(app, self.settings.http_address, self.settings.http_port)
            log.info("ocs_http_listening", port=self.http_port)

    async def _diameter_ready(self) -> bool:
        return self.node.is_serving

    async def stop(self) -> None:
        await self.node.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def on_ccr(self, req: Message, peer: PeerInfo) -> Message:
        """CCR → CCA. Refusals: 5030 unknown subscriber, 5031 no tariff, 4012 no credit."""
        try:
            ccr = parse_ccr(req)
        except Exception:  # a decoded but semantically broken CCR (wrong types inside groups)
            log.warning("ocs_bad_ccr", peer=peer.host)
            return codec.new_answer(req, dc.INVALID_AVP_VALUE)
        if not ccr.session_id or not ccr.request_type or ccr.subscription_e164 is None:
            return codec.new_answer(req, dc.MISSING_AVP)  # RFC 4006 §3.1 required AVPs
        if ccr.request_type not in _TYPE_NAME:
            bad = codec.first(req.avps, dc.AVP_CC_REQUEST_TYPE)
            failed = [codec.raw_avp(dc.AVP_FAILED_AVP, codec.encode_avps([bad]))] if bad else []
            return codec.new_answer(req, dc.INVALID_AVP_VALUE, failed)  # EVENT_REQUEST is not offered
        decision = await self.ledger.apply(ccr, self.tariffs, self.settings.grant_seconds)
        OCS_CCR.labels(_TYPE_NAME[ccr.request_type], str(decision.result_code)).inc()
        return self.answer(req, ccr, decision.result_code, decision.granted_seconds, decision.final_unit)

    def answer(self, req: Message, ccr: Ccr, rc: int, granted: int | None, final: bool) -> Message:
        if rc == dc.CREDIT_LIMIT_REACHED and ccr.request_type == dc.CC_REQUEST_UPDATE:
            return build_cca(req, ccr, dc.SUCCESS, mscc_result=rc)
        if rc != dc.SUCCESS or granted is None:
            return build_cca(req, ccr, rc)
        return build_cca(
            req,
            ccr,
            rc,
            granted_seconds=granted,
            validity_seconds=self.settings.validity_seconds,
            final_unit=final,
        )


async def run_ocs(settings: OcsSettings) -> None:
    """Run the OCS until cancelled (MongoDB must be connected as mongoengine's default alias)."""
    ocs = OcsServer(settings)
    await ocs.start()
    try:
        await asyncio.Event().wait()
    finally:
        await ocs.stop()
