"""The built-in OCS: a Diameter Ro server (RFC 4006 §5, TS 32.299 §6.3) on the shared peer layer.

`OcsServer.start()` listens for Diameter peers and serves the REST API; `run_ocs()` runs it until
cancelled (the `secondnum ocs` command). Balances and records live in a `Ledger` (MongoDB by
default); tariffs are cached in a `TariffTable` and reloaded whenever the API changes them.
A sweeper expires sessions without a CCR for Tcc (`OcsSettings.tcc_seconds`, RFC 4006 §13) and
gives their reservations back (see charging/ocs/rating.py for the late CCR-U/T that may follow).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

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
from secondnum.mongo import ensure_collections, ping

log = get_logger(__name__)

OCS_CCR = Counter("secondnum_ocs_ccr_total", "CCRs answered by the built-in OCS", ["type", "result"])
_TYPE_NAME = {1: "initial", 2: "update", 3: "termination"}
OCS_EXPIRED = Counter(
    "secondnum_ocs_reservations_expired_total", "Sessions expired after Tcc without a CCR (RFC 4006 §13)"
)
OCS_EXPIRED_RELEASED = Counter(
    "secondnum_ocs_expired_released_milli_total", "Reservations given back by expiry (milli-units)"
)
OCS_LATE = Counter(
    "secondnum_ocs_late_reports_total", "CCR-U/T received for a session already expired", ["type"]
)


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
        self._sweeper: asyncio.Task[None] | None = None

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
        if isinstance(self.ledger, MongoLedger):
            await asyncio.to_thread(ensure_collections, models.Account, models.Tariff, models.RatedRecord)
        await self.reload_tariffs()
        await self.node.start(listen=(self.settings.listen_address, self.settings.listen_port))
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop())
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
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
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
        decision = await self.ledger.apply(
            ccr, self.tariffs, self.settings.grant_seconds, self.settings.tcc_seconds
        )
        OCS_CCR.labels(_TYPE_NAME[ccr.request_type], str(decision.result_code)).inc()
        if decision.late:
            OCS_LATE.labels(_TYPE_NAME[ccr.request_type]).inc()
            log.warning(
                "ocs_late_report",
                session=ccr.session_id,
                type=_TYPE_NAME[ccr.request_type],
                used=ccr.used_seconds or 0,
                result=decision.result_code,
            )
        return self.answer(req, ccr, decision.result_code, decision.granted_seconds, decision.final_unit)

    async def sweep(self) -> int:
        """Expire the sessions idle for Tcc now; returns how many (the sweeper calls it periodically)."""
        tcc = self.settings.tcc_seconds
        expired = await self.ledger.expire(time.time(), tcc)
        for ex in expired:
            OCS_EXPIRED.inc()
            OCS_EXPIRED_RELEASED.inc(ex.released)
            log.warning(
                "ocs_reservation_expired",
                session=ex.session_id,
                e164=ex.e164,
                released=ex.released,
                idle_seconds=round(ex.idle_seconds, 1),
            )
        return len(expired)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.expiry_sweep_seconds)
            try:
                await self.sweep()
            except Exception:  # database down: try again next round, keep answering CCRs
                log.exception("ocs_expiry_sweep_failed")

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
