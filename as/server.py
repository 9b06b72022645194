"""The ISC front door: admission (ACL, overload, drain), dispatch of in-dialog requests, live-call registry.

Initial requests are accepted only from trusted S-CSCFs (TS 24.229 §5.7.1.1): anything else gets 403 and a
log line. Overload and draining answer 503 with Retry-After (RFC 3261 §21.5.4; RFC 7339 is not assumed of
the S-CSCF). Each accepted INVITE becomes a :class:`appserver.call.Call` running in its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Coroutine
from typing import Any, Protocol

from prometheus_client import Counter, Gauge

from appserver import cdr, flows, legs
from appserver.call import DRAIN_REASON, Call
from appserver.cdr import CallRecord, Disposition, Flow
from appserver.decision import Reject, decide
from appserver.isc import IscRejectedError, TrustedPeers, classify
from appserver.settings import AsSettings
from appserver.side import Side
from charging.client import RoClient
from hss_adapter.profile import AccountProfile
from secondnum.identity import IdentityError, canonical, normalise_e164
from secondnum.log import get_logger
from secondnum.overload import (
    AdmissionControl,
    LoopLagMonitor,
    OverloadSettings,
    SourceRateLimiter,
    median_age,
)
from secondnum.sip import DROP, DialogId, IncomingRequest, NameAddr, SipEndpoint, SipError, SipRequest, SipURI
from secondnum.sip.transaction import Address
from secondnum.sip.transaction import TimerConfig as SipTimers

log = get_logger(__name__)

CALLS = Counter("secondnum_as_calls_total", "Calls ended, by flow and disposition", ["flow", "disposition"])
REJECTS = Counter("secondnum_as_rejected_total", "Initial requests refused before a call", ["reason"])
ACTIVE = Gauge("secondnum_as_active_calls", "Calls in progress")


class ProfileSource(Protocol):
    """What the AS needs from the profile cache (``hss_adapter.cache.ProfileCache``)."""

    def lookup_did(self, did: str) -> AccountProfile | None: ...


class AppServer:
    """Owns the SIP endpoint and every live call."""

    def __init__(self, settings: AsSettings, profiles: ProfileSource, ro: RoClient | None) -> None:
        self.settings = settings
        self.profiles = profiles
        self.ro = ro
        self.trusted = TrustedPeers(settings.trusted_scscf)
        self.own_uri = SipURI.parse(settings.own_uri)
        self.media_uri = SipURI.parse(settings.media_uri)
        self.scscf_uri = SipURI.parse(settings.scscf_uri)
        self.scscf_transport = self.scscf_uri.transport or "udp"
        route = self.scscf_uri.copy()
        route.params["lr"] = None
        self.scscf_route = NameAddr(route)
        self.host = settings.sip_host
        self.allow = legs.ALLOW
        self.ep = SipEndpoint(self.handle, host=settings.sip_host, port=settings.sip_port,
                              user_agent=legs.USER_AGENT, screen=self.screen, tcp_limits=settings.tcp_limits,
                              tcp_trusted=self.trusted.__contains__, timers=SipTimers(t1=settings.sip_t1))
        self.untrusted = SourceRateLimiter(settings.untrusted_rate, settings.untrusted_burst)
        self.admission = AdmissionControl(
            OverloadSettings(max_calls=settings.max_calls, max_pending_transactions=settings.max_pending,
                             max_loop_lag=settings.max_loop_lag, retry_after=settings.retry_after,
                             max_setups=settings.max_setups, max_setup_delay=settings.max_setup_delay),
            "as",
        )
        self.lag = LoopLagMonitor(self.admission)
        self.by_dialog: dict[DialogId, tuple[Call, Side]] = {}
        self.calls: set[Call] = set()
        self.pending = 0
        self.setups: dict[Call, float] = {}
        """Calls admitted whose first outgoing leg has not left yet, with their start (loop time), oldest
        first (see ``AsSettings.max_setups`` / ``max_setup_delay``)."""
        self.draining = False
        self.idle = asyncio.Event()
        self.idle.set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.cdrs = cdr.CdrWriter()

    async def start(self) -> None:
        self.lag.start()
        self.cdrs.start()
        await self.ep.start()
        host, port = self.ep.local_address
        own = SipURI("sip", None, host, port)
        self._own = [self.own_uri, own]
        log.info("as_sip_started", host=host, port=port)

    async def close(self) -> None:
        await self.lag.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ep.close()
        await self.cdrs.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- SIP entry point -----------------------------------------------------------------------------
    def screen(self, req: SipRequest, source: Address, transport: str) -> int | None:
        """Refuse out-of-dialog requests from outside the trust domain before any transaction exists.

        TS 24.229 §5.7.1.1: only the S-CSCFs may reach us over ISC. The answer is the same stateless 403
        whatever the number (no user enumeration); beyond the per-source rate nothing is answered.
        """
        if source[0] in self.trusted:
            return None
        if not self.untrusted.allow(source[0], asyncio.get_running_loop().time()):
            REJECTS.labels("isc_untrusted_throttled").inc()
            return DROP
        REJECTS.labels("isc_untrusted_source").inc()
        log.warning("isc_untrusted_source", src=f"{source[0]}:{source[1]}", transport=transport,
                    method=req.method, call_id=req.headers.get("call-id"), status=403)
        return 403

    async def handle(self, inc: IncomingRequest) -> None:
        method = inc.request.method
        if method == "ACK":
            return  # ACKs for our 2xx are consumed through IncomingRequest.wait_ack()
        if inc.dialog is not None:
            entry = self.by_dialog.get(inc.dialog.id)
            if entry is None:
                inc.respond(481)
                return
            call, side = entry
            await call.on_request(inc, side)
            return
        if method == "INVITE":
            await self._initial_invite(inc)
        elif method == "OPTIONS":
            inc.respond(200, headers=[("Allow", self.allow), ("Accept", "application/sdp"),
                                      ("Supported", legs.SUPPORTED)])  # RFC 3261 §11.2
        elif method in ("BYE", "CANCEL", "PRACK", "UPDATE", "INFO", "NOTIFY", "REFER"):
            inc.respond(481)
        else:
            inc.respond(405, headers=[("Allow", self.allow)])

    async def _initial_invite(self, inc: IncomingRequest) -> None:
        source = inc.source[0]
        unsupported = legs.unsupported_options(inc.request)
        if unsupported:
            # RFC 3261 §8.2.2.3: an extension we cannot serve is refused before anything else happens.
            REJECTS.labels("bad_extension").inc()
            log.info("invite_bad_extension", call_id=inc.request.call_id, unsupported=",".join(unsupported))
            inc.respond(420, headers=[("Unsupported", ", ".join(unsupported))])
            return
        try:
            isc = classify(inc.request, source, self.trusted, self._own)
        except IscRejectedError as exc:
            REJECTS.labels(exc.log_event).inc()
            log.warning(exc.log_event, src=f"{source}:{inc.source[1]}", transport=inc.transport,
                        call_id=inc.request.headers.get("call-id"), status=exc.status, detail=exc.detail)
            inc.respond(exc.status, exc.reason)
            return
        adm = self.admission
        adm.active_calls, adm.pending_transactions = len(self.calls), self.pending
        adm.setups_in_progress = len(self.setups)
        adm.setup_delay = median_age(self.setups, asyncio.get_running_loop().time())
        adm.draining = self.draining
        refusal = adm.check()
        if refusal is not None:
            why = "draining" if self.draining else "overload"
            REJECTS.labels(why).inc()
            log.warning("invite_refused", reason=why, detail=refusal.value, call_id=inc.request.call_id,
                        calls=len(self.calls), setups=len(self.setups),
                        setup_delay=round(adm.setup_delay, 3), loop_lag=round(adm.loop_lag, 3))
            inc.respond(503, headers=[("Retry-After", str(self.settings.retry_after))])
            return
        did = _did_key(isc.served_uri, isc.served_user)
        try:
            record = self._record(inc, did, isc.asserted_id)
        except SipError as exc:  # e.g. a From URI that only parses lazily, now
            log.warning("isc_bad_header", call_id=inc.request.headers.get("call-id"), detail=str(exc))
            inc.respond(400)
            return
        call = Call(self, inc, isc, record)
        self.setups[call] = asyncio.get_running_loop().time()
        self.calls.add(call)
        self.idle.clear()
        ACTIVE.inc()
        self.pending += 1
        pending = True
        try:
            profile = self.profiles.lookup_did(did)
            decision = decide(isc, profile, dt.datetime.now(dt.UTC), self.settings.follow_me_timeout)
            log.info("call_decided", call_id=inc.request.call_id, did=record.did, caller=record.caller,
                     decision=type(decision).__name__, transport=inc.transport,
                     reason=decision.log_event if isinstance(decision, Reject) else "")
            await flows.run(call, decision)
            call.setup_finished()
            self.pending -= 1
            pending = False
            if call.a is not None and not call.ended.is_set():
                await call.wait_end(self.settings.max_call_seconds)
        except Exception:
            log.exception("call_failed", call_id=inc.request.call_id)
            if not inc.final_sent:
                with contextlib.suppress(Exception):
                    inc.respond(500)
            call.release("internal-error", 'SIP;cause=500;text="Internal error"')
        finally:
            call.setup_finished()
            if pending:
                self.pending -= 1
            await call.teardown()
            self.calls.discard(call)
            if not self.calls:
                self.idle.set()
            ACTIVE.dec()

    def _record(self, inc: IncomingRequest, served: str, asserted: str | None) -> CallRecord:
        req = inc.request
        try:
            pcv = req.p_charging_vector
        except SipError:
            pcv = None
        icid = pcv.icid_value if pcv is not None else legs.new_icid(self.settings.domain)
        caller = asserted or _safe_canonical(str(req.from_.uri))
        return CallRecord(icid=icid, did=served, caller=caller, called=served, transport=inc.transport)

    def write_cdr(self, record: CallRecord) -> None:
        """Hand the finished call's record to the batched writer (never blocks, never raises)."""
        if record.disposition is Disposition.REJECTED and not record.legs:
            record.flow = Flow.REJECTED  # refused before any leg was placed
        CALLS.labels(record.flow.value, record.disposition.value).inc()
        try:
            self.cdrs.submit(record)
        except Exception:  # a CDR must never crash call handling
            log.exception("cdr_submit_failed", icid=record.icid, did=record.did)

    # --- drain ---------------------------------------------------------------------------------------
    async def drain(self, limit: float) -> None:
        """Refuse new INVITEs; let live calls end by themselves up to ``limit``, then release them."""
        self.draining = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), limit)
        for call in list(self.calls):
            call.release("drain", DRAIN_REASON)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), 10)
        await self.cdrs.flush()


def _safe_canonical(identity: str) -> str:
    try:
        return canonical(identity)
    except IdentityError:
        return identity


def _did_key(uri: SipURI, served: str) -> str:
    """The DID for a lookup: canonical digits, or the user part of ``sip:42027777100@host`` without ``+``."""
    if served.isdigit():
        return served
    if uri.user:
        with contextlib.suppress(IdentityError):
            return normalise_e164(uri.user.split(";", 1)[0])
    return served
