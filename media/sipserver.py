"""The media server's SIP side (a UAS on ``secondnum.sip``): INVITE → SDP answer → :class:`Call`; in-dialog
BYE, re-INVITE/UPDATE, INFO, NOTIFY; REFER is sent from the call. The interface is in ``media/README.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import re
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge

from media import session_timer
from media.audio import g711, tones
from media.call import App, Call, Release
from media.ivr.access import AccessApp
from media.ivr.deposit import DepositApp
from media.ivr.simple import AnnouncementApp
from media.prompts.cache import PromptCache
from media.prompts.catalog import PHRASES
from media.rtp.engine import NoPortError, RtpEngine, RtpStream
from media.rtp.session import RtpSession
from media.settings import MediaSettings
from media.store.account import AccountVoicemail, LastKnown, account_voicemail
from media.store.spool import MessageSpool
from media.store.voicemail import VoicemailStore
from media.trust import source_trusted
from secondnum.identity import IdentityError, canonical, normalise_e164
from secondnum.log import get_logger
from secondnum.mongo import ping
from secondnum.overload import OverloadSettings, SourceRateLimiter
from secondnum.sdp import (
    AudioNegotiation,
    SdpError,
    SessionDescription,
    accept_answer,
    answer_audio,
    make_audio_offer,
    parse_sdp,
)
from secondnum.sip import (
    DROP,
    Dialog,
    DialogState,
    IncomingRequest,
    SipEndpoint,
    SipError,
    SipRequest,
)
from secondnum.sip.session_timer import LegTimer, allows
from secondnum.sip.transaction import Address

log = get_logger(__name__)

SERVICES = ("vm-deposit", "vm-access")
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, NOTIFY"
SUPPORTED_EXTENSIONS = {"timer"}

CALLS = Gauge("secondnum_media_calls", "Calls in progress", ["service"])
INVITES = Counter("secondnum_media_invites_total", "INVITEs answered", ["status"])
DB_UP = Gauge("secondnum_media_database_up", "1 while MongoDB answers media, 0 while it does not")
DEGRADED_CALLS = Counter("secondnum_media_calls_without_database_total",
                         "Calls started while MongoDB did not answer", ["service"])
SPOOL_PENDING = Gauge("secondnum_media_spool_pending", "Messages waiting in the disk spool")
SPOOL_IMPORTED = Counter("secondnum_media_spool_imported_total", "Spooled messages written to MongoDB")

T = TypeVar("T")

_DTMF_RELAY_RE = re.compile(r"^\s*signal\s*=\s*([0-9A-D*#])\s*$", re.I | re.M)
_SIPFRAG_RE = re.compile(r"^\s*SIP/2\.0\s+(\d{3})")


def _warning(host: str, code: int, text: str) -> tuple[str, str]:
    return ("Warning", f'{code} {host} "{text}"')


class MediaServer:
    def __init__(self, settings: MediaSettings, store: VoicemailStore, prompts: PromptCache,
                 engine: RtpEngine) -> None:
        self.settings = settings
        self.store = store
        self.prompts = prompts
        self.engine = engine
        self.endpoint = SipEndpoint(self.handle, host=settings.sip_host, port=settings.sip_port,
                                    user_agent="secondnum-media", screen=self.screen,
                                    tcp_limits=settings.tcp_limits,
                                    tcp_trusted=lambda host: source_trusted(host, settings.trusted_sources))
        limits = OverloadSettings()
        self.untrusted = SourceRateLimiter(limits.source_rate, limits.source_burst)
        self.calls: dict[str, Call] = {}
        self.draining = False
        self._rng = random.SystemRandom()
        self._beep = g711.encode(tones.beep(), "PCMU")
        self._tasks: set[asyncio.Task[None]] = set()
        self.spool = MessageSpool(Path(settings.prompt_dir).parent / "spool")
        self._spool_lock = threading.Lock()
        self._drainer: asyncio.Task[None] | None = None
        self.last_known = LastKnown()
        """Account settings of every mailbox seen, for calls while MongoDB is down."""
        self.db_up = True
        DB_UP.set(1)

    async def start(self) -> None:
        await self.endpoint.start()
        SPOOL_PENDING.set(self.spool.pending())
        self._drainer = asyncio.get_running_loop().create_task(self._drain_spool_forever())

    async def close(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
            self._drainer = None
        for call in list(self.calls.values()):
            call.queue.put_nowait(Release("shutdown"))
        if self.calls:
            await asyncio.wait([asyncio.ensure_future(c.done.wait()) for c in self.calls.values()],
                               timeout=5)
        await self.endpoint.close()

    def loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    async def clip(self, text: str) -> bytes:
        found = self.prompts.cached(text)
        if found is not None:
            return found
        log.warning("prompt_not_prerendered", text=text[:40])
        return await asyncio.to_thread(self.prompts.get, text)

    def forget(self, call: Call) -> None:
        if self.calls.pop(call.call_id, None) is not None:
            CALLS.labels(call.service).dec()
        self.endpoint.dialogs.remove(call.dialog)

    def spool_message(self, mailbox: str, caller: str, audio: bytes, received_at: dt.datetime,
                      call_id: str, *, rtp: Mapping[str, Any] | None = None) -> Path:
        """When the database is unreachable (see :mod:`media.store.spool`); written later by the drainer."""
        path = self.spool.put(mailbox, caller, audio, received_at, call_id, rtp=rtp)
        SPOOL_PENDING.set(self.spool.pending())
        return path

    def import_spool(self) -> int:
        """Write spooled messages to MongoDB (blocking; one importer at a time)."""
        with self._spool_lock:
            try:
                count = self.spool.import_into(self.store)
            finally:
                SPOOL_PENDING.set(self.spool.pending())
        SPOOL_IMPORTED.inc(count)
        return count

    # --- database availability -----------------------------------------------------------------------
    def set_db_up(self, up: bool, error: str = "") -> None:
        """Record whether MongoDB answers; while it does not, calls skip the lookups (no 2 s wait each)."""
        if up == self.db_up:
            return
        self.db_up = up
        DB_UP.set(1 if up else 0)
        if up:
            log.warning("database_available_again", spooled=self.spool.pending())
        else:
            log.error("database_unavailable", error=error,
                      effect="deposits take default greeting/last-known settings and go to the disk spool")

    async def _from_store(self, call: Call, what: str, fn: Callable[[], T]) -> T | None:
        """``fn`` in a worker thread within ``store_lookup_timeout``; None when MongoDB does not answer."""
        if not self.db_up:
            return None
        try:
            result = await asyncio.wait_for(asyncio.to_thread(fn), self.settings.store_lookup_timeout)
        except Exception as exc:  # TimeoutError, ServerSelectionTimeoutError, AutoReconnect, ...
            log.warning("mailbox_lookup_failed", call_id=call.call_id, mailbox=call.mailbox, what=what,
                        error=repr(exc)[:200])
            self.set_db_up(False, repr(exc)[:200])
            return None
        self.set_db_up(True)
        return result

    async def _drain_spool_forever(self) -> None:
        """Every ``spool_retry_interval``: while the database is down or messages wait, ping it; write the
        spooled messages once it answers (README "Voicemail deposit")."""
        while True:
            await asyncio.sleep(self.settings.spool_retry_interval)
            try:
                pending = self.spool.pending()
                if self.db_up and not pending:
                    continue
                if not await ping(timeout=self.settings.store_lookup_timeout):
                    self.set_db_up(False, "ping failed")
                    continue
                self.set_db_up(True)
                if pending:
                    imported = await asyncio.to_thread(self.import_spool)
                    log.warning("spool_drained", imported=imported, remaining=self.spool.pending())
            except Exception as exc:
                log.warning("spool_drain_failed", error=repr(exc)[:200], remaining=self.spool.pending())
                self.set_db_up(False, repr(exc)[:200])

    # --- request dispatch ----------------------------------------------------------------------------
    def screen(self, req: SipRequest, source: Address, transport: str) -> int | None:
        """Only the AS may start dialogs here: others get one stateless 403, or nothing past their rate."""
        if source_trusted(source[0], self.settings.trusted_sources):
            return None
        if not self.untrusted.allow(source[0], asyncio.get_running_loop().time()):
            return DROP
        log.warning("invite_untrusted_source", src=source[0], method=req.method,
                    call_id=req.headers.get("call-id"))
        return 403

    async def handle(self, inc: IncomingRequest) -> None:
        req = inc.request
        if inc.dialog is not None:
            await self._in_dialog(inc)
            return
        if req.method == "INVITE":
            await self._invite(inc)
        elif req.method == "OPTIONS":
            inc.respond(200, headers=[("Allow", ALLOW), ("Accept", "application/sdp")])
        elif req.method == "ACK":
            return
        else:
            inc.respond(405, headers=[("Allow", ALLOW)])

    async def _invite(self, inc: IncomingRequest) -> None:
        req = inc.request
        host = self.endpoint.local_address[0]
        if not source_trusted(inc.source[0], self.settings.trusted_sources):
            log.warning("invite_untrusted_source", src=inc.source[0], call_id=req.call_id)
            self._reject(inc, 403)
            return
        if self.draining or len(self.calls) >= self.settings.max_calls:
            self._reject(inc, 503, [("Retry-After", "30")])
            return
        unsupported = [o for o in req.require if o not in SUPPORTED_EXTENSIONS]
        if unsupported:
            self._reject(inc, 420, [("Unsupported", ", ".join(unsupported))])
            return
        service = req.uri.user or ""
        if service not in SERVICES:
            self._reject(inc, 404)
            return
        try:
            mailbox = normalise_e164(req.uri.params.get("mailbox") or "")
        except IdentityError:
            self._reject(inc, 400, [_warning(host, 399, "mailbox parameter missing or not E.164")])
            return
        if session_timer.too_small(req, self.settings.timer_config):
            # RFC 4028 §9: 422 with our minimum ([media] min_se)
            self._reject(inc, 422, [("Min-SE", str(self.settings.min_se))])
            return
        timer = session_timer.answer(req, self.settings.timer_config)
        offer: SessionDescription | None = None
        try:
            if req.body:
                offer = parse_sdp(req.body)
                probe = answer_audio(offer, local_host=self.settings.rtp_host, local_port=9,
                                     session_id="0")
            else:
                probe = None
        except SdpError as exc:
            log.info("invite_not_acceptable", call_id=req.call_id, error=str(exc))
            self._reject(inc, 488, [_warning(host, 305, "Incompatible media format")])
            return
        law: g711.Law = "PCMU" if probe is None else ("PCMA" if probe.codec.encoding.upper() == "PCMA"
                                                        else "PCMU")
        pt = 0 if probe is None else probe.codec.payload_type
        te = 101 if probe is None else probe.telephone_event_pt
        remote = ("0.0.0.0", 0) if probe is None else (probe.remote_host, probe.remote_port)
        try:
            stream = await self.engine.open(RtpSession(pt, te, remote), law, self.settings.rtp_timeout)
        except NoPortError:
            log.error("rtp_ports_exhausted", call_id=req.call_id)
            self._reject(inc, 503, [("Retry-After", "5")])
            return
        session_id = str(self._rng.getrandbits(40))
        if offer is not None:
            neg = answer_audio(offer, local_host=self.settings.rtp_host, local_port=stream.local_port,
                               session_id=session_id)
            self._apply(stream_owner=None, stream=stream, neg=neg)
            body = neg.answer.encode()
        else:
            body = make_audio_offer(local_host=self.settings.rtp_host, local_port=stream.local_port,
                                    session_id=session_id).encode()
            stream.sending = False  # nothing to send to until the ACK brings the answer
        headers: list[tuple[str, str]] = [("Allow", ALLOW), ("Supported", "timer"), *timer.headers]
        local_contact = self.endpoint.local_contact(service, inc.transport)
        try:
            dialog = Dialog.from_uas(req, inc.to_tag, local_contact, DialogState.CONFIRMED)
        except SipError as exc:
            stream.close()
            self._reject(inc, 400, [_warning(host, 399, str(exc))])
            return
        caller = self._caller(req)
        network_auth = (req.uri.params.get("auth") == "network"
                        or (req.headers.get("X-Secondnum-Auth") or "").strip().lower() == "network")
        call = Call(self, dialog, stream, service=service, mailbox=mailbox, caller=caller,
                    network_auth=network_auth, call_id=req.call_id)
        call.offer_sdp = None if offer is not None else body
        call.local_sdp = body
        call.peer_allows_update = allows(req, "UPDATE")
        call.session_id = session_id
        dialog.user_data = call
        self.endpoint.dialogs.add(dialog)
        self.calls[req.call_id] = call
        CALLS.labels(service).inc()
        inc.respond(200, headers=headers, body=body, content_type="application/sdp")
        INVITES.labels("200").inc()
        log.info("call_answered", call_id=req.call_id, service=service, mailbox=mailbox, caller=caller,
                 codec=law, rtp_port=stream.local_port, network_auth=network_auth)
        try:
            ack = await inc.wait_ack()
        except SipError:
            log.warning("call_no_ack", call_id=req.call_id)
            await call.run(_const(AnnouncementApp(reason="no_ack")))
            return
        if offer is None and ack.body:
            self._on_sdp_answer(call, ack.body)
        call.arm_session_timer(timer.timer)
        await call.run(lambda: self._make_app(call))

    def _reject(self, inc: IncomingRequest, status: int,
                headers: list[tuple[str, str]] | None = None) -> None:
        INVITES.labels(str(status)).inc()
        inc.respond(status, headers=headers or [])

    @staticmethod
    def _caller(req: SipRequest) -> str:
        # The caller asked for identity privacy (RFC 3323 §4.2, RFC 3325 §9.3; the AS passes Privacy on):
        # the mailbox owner must not hear the number (TS 24.607 OIR).
        privacy = (req.headers.get("privacy") or "").lower()
        if privacy and {"id", "header", "user"} & {v.strip() for v in privacy.replace(",", ";").split(";")}:
            return "anonymous"
        try:
            ids = req.p_asserted_identity
            source = str(ids[0].uri) if ids else str(req.from_.uri)
            if "anonymous" in source.lower():
                return "anonymous"
            return canonical(source)
        except (IdentityError, SipError, ValueError):
            return "anonymous"

    async def _make_app(self, call: Call) -> App:
        store = self.store
        settings = self.settings
        account = await self._account(call)
        if call.without_database:
            DEGRADED_CALLS.labels(call.service).inc()
        if account is not None and not account.enabled:
            return AnnouncementApp(PHRASES["mailbox_unavailable"], reason="voicemail_disabled")
        limit = account.max_messages if account is not None else None
        if call.service == "vm-deposit":
            max_seconds = settings.max_message_length
            if account is not None:
                max_seconds = min(max_seconds, float(account.max_message_seconds))
            found = None if call.without_database else await self._from_store(
                call, "mailbox", lambda: (store.is_full(call.mailbox, limit), store.greeting(call.mailbox)))
            if found is None:
                # MongoDB down (issue 9): take the message anyway. Default greeting naming the number; no
                # mailbox-full check is possible, so the message is accepted and stored unconditionally.
                call.without_database = True
                log.warning("deposit_without_database", call_id=call.call_id, mailbox=call.mailbox,
                            greeting="default", full_check="skipped",
                            settings="last_known" if call.settings_source == "last_known" else "defaults")
                full, greeting = False, None
            else:
                full, greeting = found
            return DepositApp(call.mailbox, greeting=greeting, full=full, beep=self._beep,
                              max_seconds=max_seconds, min_seconds=settings.min_message_length)
        if call.without_database:
            log.warning("access_without_database", call_id=call.call_id, mailbox=call.mailbox)
            return AnnouncementApp(PHRASES["mailbox_unavailable"], reason="database_unavailable")
        view = await self._from_store(call, "messages", lambda: (
            store.box(call.mailbox), store.list_messages(call.mailbox, "new"),
            store.list_messages(call.mailbox, "saved")))
        if view is None:
            DEGRADED_CALLS.labels(call.service).inc()
            return AnnouncementApp(PHRASES["mailbox_unavailable"], reason="database_unavailable")
        box, new, saved = view
        pin_required = bool(box.require_pin or not call.network_auth
                            or (account is not None and account.pin_required))
        has_pin = bool(account is not None and account.pin_hash)  # the account's PIN is the only PIN
        if box.locked or (pin_required and not has_pin):
            return AnnouncementApp(PHRASES["mailbox_locked"], reason="locked")
        return AccessApp(new, saved, pin_required=pin_required, digit_timeout=settings.digit_timeout,
                         max_greeting_seconds=settings.max_greeting_length, beep=self._beep)

    async def _account(self, call: Call) -> AccountVoicemail | None:
        """The account's voicemail settings: from the store, else the last known ones, else none."""
        found = await self._from_store(call, "account", lambda: (account_voicemail(call.mailbox),))
        if found is not None:
            account = found[0]
            self.last_known.put(call.mailbox, account)
            call.account = account
            call.settings_source = "store"
            return account
        call.without_database = True
        known, cached = self.last_known.get(call.mailbox)
        call.account = cached
        call.settings_source = "last_known" if known else "defaults"
        log.warning("account_settings_unavailable", call_id=call.call_id, mailbox=call.mailbox,
                    using=call.settings_source)
        return cached

    # --- in-dialog requests --------------------------------------------------------------------------
    async def _in_dialog(self, inc: IncomingRequest) -> None:
        req = inc.request
        call = inc.dialog.user_data if inc.dialog is not None else None
        if not isinstance(call, Call):
            if req.method != "ACK":
                inc.respond(481)
            return
        method = req.method
        if method == "ACK":
            if req.body and call.offer_sdp:
                self._on_sdp_answer(call, req.body)
        elif method == "BYE":
            call.on_remote_bye()  # first: the recording must be kept whatever happens to the response
            inc.respond(200)
        elif method in ("INVITE", "UPDATE"):
            self._refresh(inc, call)
        elif method == "INFO":
            self._info(inc, call)
        elif method == "NOTIFY":
            self._notify(inc, call)
        elif method == "OPTIONS":
            inc.respond(200, headers=[("Allow", ALLOW)])
        else:
            inc.respond(405, headers=[("Allow", ALLOW)])

    def _refresh(self, inc: IncomingRequest, call: Call) -> None:
        """re-INVITE/UPDATE (RFC 3261 §14.2, RFC 3311): new offer → new answer; also a session refresh."""
        req = inc.request
        call.sdp_version += 1
        if session_timer.too_small(req, self.settings.timer_config):
            inc.respond(422, headers=[("Min-SE", str(self.settings.min_se))])  # RFC 4028 §9, refreshes too
            return
        previous = call.timer
        timer = session_timer.answer(
            req, self.settings.timer_config,
            None if previous is None else LegTimer(previous.mode, int(previous.interval)))
        headers: list[tuple[str, str]] = [("Allow", ALLOW), ("Supported", "timer"), *timer.headers]
        if "allow" in req.headers:
            call.peer_allows_update = allows(req, "UPDATE")
        body = b""
        if req.body:
            try:
                neg = answer_audio(parse_sdp(req.body), local_host=self.settings.rtp_host,
                                   local_port=call.stream.local_port, session_id=call.session_id,
                                   session_version=call.sdp_version)
            except SdpError:
                inc.respond(488, headers=[_warning(self.endpoint.local_address[0], 305,
                                                   "Incompatible media format")])
                return
            self._apply(stream_owner=call, stream=call.stream, neg=neg)
            body = neg.answer.encode()
        elif req.method == "INVITE":
            body = make_audio_offer(
                local_host=self.settings.rtp_host, local_port=call.stream.local_port,
                session_id=call.session_id, session_version=call.sdp_version).encode()
            call.offer_sdp = body
        if body:
            call.local_sdp = body
        call.arm_session_timer(timer.timer)  # a successful refresh restarts the timer (§10)
        inc.respond(200, headers=headers, body=body, content_type="application/sdp" if body else None)

    @staticmethod
    def _apply(stream_owner: Call | None, stream: RtpStream, neg: AudioNegotiation) -> None:
        law: g711.Law = "PCMA" if neg.codec.encoding.upper() == "PCMA" else "PCMU"
        if law != stream.law:
            stream.set_law(law)
        stream.update_remote((neg.remote_host, neg.remote_port), neg.codec.payload_type,
                             neg.telephone_event_pt, neg.remote_rtcp)
        was_receiving = stream.receiving
        stream.sending = neg.direction in ("sendrecv", "sendonly") and neg.remote_port != 0
        stream.receiving = neg.direction in ("sendrecv", "recvonly")
        if stream_owner is not None and stream.receiving != was_receiving:
            stream.hold_changed()

    def _on_sdp_answer(self, call: Call, body: bytes) -> None:
        if call.offer_sdp is None:
            return  # already taken (the ACK reaches both the INVITE handler and the dialog handler)
        try:
            offer = parse_sdp(call.offer_sdp)
            neg = accept_answer(offer, parse_sdp(body))
        except SdpError as exc:
            log.warning("bad_sdp_answer", call_id=call.call_id, error=str(exc))
            call.queue.put_nowait(Release("bad_sdp_answer"))
            return
        call.offer_sdp = None
        self._apply(stream_owner=call, stream=call.stream, neg=neg)

    def _info(self, inc: IncomingRequest, call: Call) -> None:
        """SIP INFO DTMF: ``application/dtmf-relay`` (``Signal=5``) or ``application/dtmf`` (``5``)."""
        ctype = (inc.request.content_type or "").split(";", 1)[0].strip().lower()
        text = inc.request.body.decode(errors="replace")
        digit: str | None = None
        if ctype == "application/dtmf-relay":
            m = _DTMF_RELAY_RE.search(text)
            digit = m.group(1).upper() if m else None
        elif ctype == "application/dtmf":
            stripped = text.strip().upper()
            digit = stripped if len(stripped) == 1 and stripped in "0123456789*#ABCD" else None
        elif not inc.request.body:
            inc.respond(200)
            return
        else:
            inc.respond(415, headers=[("Accept", "application/dtmf-relay, application/dtmf")])
            return
        if digit is None:
            inc.respond(400, headers=[_warning(self.endpoint.local_address[0], 399, "bad DTMF body")])
            return
        inc.respond(200)
        call.on_digit(digit, "info")

    def _notify(self, inc: IncomingRequest, call: Call) -> None:
        """NOTIFY of our REFER (RFC 3515 §2.4.4): the sipfrag's status line tells how the call went."""
        req = inc.request
        event = req.event
        if event is None or event.package.lower() != "refer":
            inc.respond(489)
            return
        inc.respond(200)
        m = _SIPFRAG_RE.match(req.body.decode(errors="replace"))
        if m is None:
            return
        status = int(m.group(1))
        log.info("refer_progress", call_id=call.call_id, status=status)
        if status >= 200:
            call.on_refer_status(status)


def _const(app: App) -> Callable[[], Awaitable[App]]:
    async def make() -> App:
        return app

    return make
