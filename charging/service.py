"""`secondnum ocs`: the built-in OCS as a runnable service (see secondnum/service.py)."""

from __future__ import annotations

from charging.ocs.server import OcsServer
from charging.settings import OcsSettings, RoClientSettings
from secondnum.mongo import connect
from secondnum.service import Config, Endpoint, RunContext

SECTIONS = {"ocs", "ro"}  # [ro] is read by the AS (RoClientSettings); declared here with its dataclass


class OcsService:
    name = "ocs"

    def __init__(self, settings: OcsSettings, ctx: RunContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.server = OcsServer(settings)

    async def start(self) -> None:
        connect(self.ctx.mongo_uri, database=self.ctx.mongo_database)
        await self.server.start()

    async def drain(self, timeout: float) -> None:
        """Nothing to drain: open sessions end with the AS's CCR-T, which we keep answering."""

    async def stop(self) -> None:
        await self.server.stop()

    def endpoints(self) -> list[Endpoint]:
        s = self.settings
        return [
            Endpoint("ocs", "Diameter Ro (TCP)", f"{s.listen_address}:{self.server.diameter_port}"),
            Endpoint("ocs", "REST API", f"http://{s.http_address}:{self.server.http_port}/api/v1/"),
        ]


def create(config: Config, ctx: RunContext) -> OcsService:
    return OcsService(config.section(OcsSettings, "ocs"), ctx)


def check_config(config: Config) -> None:
    config.section(OcsSettings, "ocs")
    config.section(RoClientSettings, "ro")
