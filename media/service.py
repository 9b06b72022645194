"""The media component's life cycle (``secondnum.service`` contract): prompts, SIP, RTP, REST API."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from hss_adapter.store import adopt_voicemail_pin_hash
from media.api import build_app
from media.prompts.cache import PromptCache
from media.prompts.catalog import all_texts
from media.prompts.tts import EspeakEngine, FallbackEngine, GttsEngine, TtsEngine
from media.rtp.engine import RtpEngine
from media.settings import MediaSettings
from media.sipserver import MediaServer
from media.store.voicemail import VoicemailStore
from secondnum import http
from secondnum.log import get_logger
from secondnum.mongo import connect, ping
from secondnum.service import Config, Endpoint, RunContext

log = get_logger(__name__)

SECTIONS = {"media"}


def make_engine(settings: MediaSettings) -> TtsEngine:
    espeak = EspeakEngine(settings.espeak_voice, settings.espeak_speed)
    if settings.tts_engine == "gtts":
        gtts = GttsEngine(settings.gtts_lang, settings.gtts_tld, settings.gtts_timeout)
        return FallbackEngine(gtts, espeak)
    return espeak


def render_prompts(cache: PromptCache) -> int:
    """Render every fixed prompt (blocking: run in a thread), logging progress every 10 clips."""
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            log.info("prompts_rendering", done=done, total=total)

    count = cache.render_all(all_texts(), progress)
    log.info("prompts_ready", rendered=count, total=len(set(all_texts())),
             seconds=round(time.monotonic() - started, 2), dir=str(cache.directory))
    return count


class MediaService:
    name = "media"

    def __init__(self, settings: MediaSettings, ctx: RunContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.store = VoicemailStore(settings.max_messages)
        self.prompts = PromptCache(settings.prompt_dir, make_engine(settings))
        self.engine = RtpEngine(settings.rtp_host, settings.rtp_port_min, settings.rtp_port_max,
                                rtcp_interval=settings.rtcp_interval)
        self.server = MediaServer(settings, self.store, self.prompts, self.engine)
        self.app: web.Application | None = None
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        connect(self.ctx.mongo_uri, self.ctx.mongo_database)
        await asyncio.to_thread(render_prompts, self.prompts)
        await self._startup_store_work()
        self.engine.start()
        await self.server.start()
        self.app = build_app(self.store, self.settings.api_tokens)
        http.add_readiness(self.app, "mongo", ping)
        self.runner = await http.serve(self.app, self.settings.api_host, self.settings.api_port)

    async def _startup_store_work(self) -> None:
        """Indexes, spooled messages and the one-time legacy-PIN migration; MongoDB down only postpones them
        (the spool drainer imports later; the migration runs at the next start)."""
        try:
            await asyncio.to_thread(self.store.ensure_indexes)
            imported = await asyncio.to_thread(self.server.import_spool)
            if imported:
                log.warning("spooled_messages_imported", count=imported)
            await asyncio.to_thread(self.store.migrate_legacy_pins, adopt_voicemail_pin_hash)
        except Exception as exc:
            log.error("startup_store_work_postponed", error=repr(exc)[:200],
                      spooled=self.server.spool.pending())
            self.server.set_db_up(False, repr(exc)[:200])

    async def drain(self, timeout: float) -> None:
        """Refuse new INVITEs (503 + Retry-After), let live calls and recordings finish."""
        self.server.draining = True
        if self.app is not None:
            http.set_draining(self.app)
        waiters = [asyncio.ensure_future(c.done.wait()) for c in self.server.calls.values()]
        if waiters:
            _, pending = await asyncio.wait(waiters, timeout=timeout)
            for w in pending:
                w.cancel()
        log.info("media_drained", remaining_calls=len(self.server.calls))

    async def stop(self) -> None:
        await self.server.close()
        self.engine.stop()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def api_port(self) -> int:
        return http.bound_port(self.runner) if self.runner is not None else self.settings.api_port

    def endpoints(self) -> list[Endpoint]:
        sip_host, sip_port = self.server.endpoint.local_address
        s = self.settings
        return [
            Endpoint("media", "SIP (UDP+TCP)", f"{sip_host}:{sip_port}"),
            Endpoint("media", "RTP", f"{s.rtp_host}:{s.rtp_port_min}-{s.rtp_port_max}"),
            Endpoint("media", "REST API", f"http://{s.api_host}:{self.api_port}/api/mailboxes/"),
        ]


def create(config: Config, ctx: RunContext) -> MediaService:
    return MediaService(config.section(MediaSettings, "media"), ctx)


def check_config(config: Config) -> None:
    config.section(MediaSettings, "media")
