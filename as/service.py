"""``secondnum as``: the application server as a runnable service (life cycle of :mod:`secondnum.service`).

``start()`` connects MongoDB (CDRs), loads the profile cache, connects the Ro client to the OCS, opens the
SIP endpoint (UDP+TCP) and the HTTP surface (CDR API, health, metrics). ``drain()`` refuses new INVITEs with
503 + Retry-After, turns readiness to 503 and lets live calls finish up to the limit, then releases them
(BYE + CCR-T). ``stop()`` closes Ro (DPR) and the sockets.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from mongoengine.connection import ConnectionFailure, get_db

from appserver import api
from appserver.cdr import Cdr
from appserver.server import AppServer
from appserver.settings import AsSettings
from charging.client import RoClient
from charging.settings import RoClientSettings
from hss_adapter.cache import ProfileCache
from secondnum import gctune, http
from secondnum.diameter.peer import PeerState
from secondnum.log import get_logger
from secondnum.mongo import connect, ensure_collections, ping
from secondnum.service import Config, Endpoint, RunContext

log = get_logger(__name__)

SECTIONS = {"as"}


class AsService:
    name = "as"

    def __init__(self, settings: AsSettings, ro_settings: RoClientSettings, ctx: RunContext) -> None:
        self.settings = settings
        self.ro_settings = ro_settings
        self.ctx = ctx
        self.cache: ProfileCache | None = None
        self.ro: RoClient | None = None
        self.server: AppServer | None = None
        self.app: web.Application | None = None
        self.runner: web.AppRunner | None = None
        self.http_port = settings.http_port
        self._recovery: asyncio.Task[None] | None = None

    async def start(self) -> None:
        _ensure_connected(self.ctx.mongo_uri, self.ctx.mongo_database)
        await asyncio.to_thread(ensure_collections, Cdr)
        self.cache = ProfileCache.from_uri(self.ctx.mongo_uri, self.ctx.mongo_database)
        await self.cache.start()
        self.ro = RoClient(self.ro_settings, persist=self.settings.ro_crash_recovery)
        await self.ro.start()
        if self.settings.ro_crash_recovery:
            # CCR-T for the sessions a previous run of this AS left open (crash, SIGKILL).
            self._recovery = asyncio.create_task(self._recover())
        self.server = AppServer(self.settings, self.cache, self.ro)
        await self.server.start()
        self.app = http.make_app("as", tokens=self.settings.api_tokens, readiness={
            "mongo": ping,
            "diameter": self._diameter_open,
            "profiles": self._profiles_ready,
        })
        api.add_routes(self.app)
        self.runner = await http.serve(self.app, self.settings.http_host, self.settings.http_port)
        self.http_port = http.bound_port(self.runner)
        gctune.tune()  # after start-up: the heap so far is frozen (secondnum/gctune.py)

    async def _recover(self) -> None:
        assert self.ro is not None
        try:
            closed = await self.ro.recover_open_sessions()
        except Exception:
            log.exception("ro_recovery_failed")
            return
        if closed:
            log.warning("ro_sessions_recovered", closed=closed)

    async def _diameter_open(self) -> bool:
        if self.ro is None:
            return False
        return any(p.state == PeerState.OPEN.value for p in self.ro.node.peers())

    async def _profiles_ready(self) -> bool:
        return self.cache is not None and self.cache.ready

    async def drain(self, timeout: float) -> None:
        if self.app is not None:
            http.set_draining(self.app)
        if self.server is not None:
            await self.server.drain(timeout)

    async def stop(self) -> None:
        if self._recovery is not None and not self._recovery.done():
            self._recovery.cancel()
        if self.server is not None:
            await self.server.close()
        if self.ro is not None:
            with contextlib.suppress(Exception):
                await self.ro.stop()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.cache is not None:
            with contextlib.suppress(Exception):
                await self.cache.stop()

    def endpoints(self) -> list[Endpoint]:
        s = self.settings
        port = self.server.ep.local_address[1] if self.server is not None else s.sip_port
        return [
            Endpoint("as", "SIP ISC (UDP+TCP)", f"{s.sip_host}:{port}"),
            Endpoint("as", "CDR API / health", f"http://{s.http_host}:{self.http_port}/api/v1/cdrs"),
        ]


def _ensure_connected(uri: str, database: str) -> None:
    """Connect mongoengine unless another component of this process already did (to the same database):
    ``secondnum.mongo.connect`` re-creates the client, which would close the one the others are using."""
    try:
        if get_db().name == database:
            return
    except ConnectionFailure:
        pass
    connect(uri, database)


def create(config: Config, ctx: RunContext) -> AsService:
    return AsService(config.section(AsSettings, "as"), config.section(RoClientSettings, "ro"), ctx)


def check_config(config: Config) -> None:
    config.section(AsSettings, "as")
    config.section(RoClientSettings, "ro")
