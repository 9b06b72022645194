"""The ``hss`` component: subscriber store, provisioning API and (optionally) the Sh mirror.

Life cycle (``secondnum.service``): ``start()`` connects mongoengine, ensures the unique indexes, serves the
provisioning API (readiness = MongoDB ping) and, when ``[hss] peer_address`` is set, starts the Sh mirror
that makes the HSS the master of subscriber data (TS 29.328 §4, TS 29.329 §6). Without an HSS, MongoDB is
the master and no Diameter is spoken.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hss_adapter.api.app import build_app
from hss_adapter.api.routes import OnChange
from hss_adapter.models import ensure_connection, ensure_indexes
from hss_adapter.settings import ApiSettings, HssSettings
from hss_adapter.sh.mirror import ShMirror
from secondnum.http import bound_port, serve, set_draining
from secondnum.log import get_logger
from secondnum.service import Config, Endpoint, RunContext

log = get_logger(__name__)

SECTIONS = {"hss", "api"}


def check_config(config: Config) -> None:
    """Validate ``[api]`` and ``[hss]`` (raises ``ConfigError`` naming the key)."""
    config.section(ApiSettings, "api")
    config.section(HssSettings, "hss")


class HssService:
    name = "hss"

    def __init__(self, api: ApiSettings, hss: HssSettings, ctx: RunContext) -> None:
        self.api_settings = api
        self.hss_settings = hss
        self.ctx = ctx
        self.app: web.Application | None = None
        self.runner: web.AppRunner | None = None
        self.mirror: ShMirror | None = None
        self.port = api.port

    async def start(self) -> None:
        ensure_connection(self.ctx.mongo_uri, self.ctx.mongo_database)
        await asyncio.to_thread(ensure_indexes)
        on_change: list[OnChange] = []
        if self.hss_settings.enabled:
            self.mirror = ShMirror(self.hss_settings)
            await self.mirror.start()
            on_change.append(self.mirror.account_changed)
        self.app = build_app(self.api_settings, on_change)
        self.runner = await serve(self.app, self.api_settings.host, self.api_settings.port)
        self.port = bound_port(self.runner)
        log.info("provisioning_api_listening", host=self.api_settings.host, port=self.port,
                 hss=self.hss_settings.peer_address or "none")

    async def drain(self, timeout: float) -> None:
        if self.app is not None:
            set_draining(self.app)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.mirror is not None:
            await self.mirror.stop()
            self.mirror = None

    def endpoints(self) -> list[Endpoint]:
        base = f"http://{self.api_settings.host}:{self.port}"
        found = [
            Endpoint(self.name, "provisioning API (bearer)", f"{base}/api/v1/accounts"),
            Endpoint(self.name, "OpenAPI", f"{base}/api/v1/openapi.json"),
            Endpoint(self.name, "health / metrics", f"{base}/health/ready, {base}/metrics"),
        ]
        if self.hss_settings.enabled:
            found.append(Endpoint(self.name, "Diameter Sh client",
                                  f"{self.hss_settings.peer_address}:{self.hss_settings.peer_port}"))
        return found


def create(config: Config, ctx: RunContext) -> HssService:
    return HssService(config.section(ApiSettings, "api"), config.section(HssSettings, "hss"), ctx)
