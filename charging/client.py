"""Ro client: the AS's Charging Trigger Function (TS 32.299 §6.1; RFC 4006 §5, §7).

`RoClient` drives one sans-IO `CreditControlSession` per chargeable leg over a `DiameterNode`:
CCR-I/U/T, re-requests ahead of quota exhaustion, Validity-Time, Final-Unit-Indication,
failure handling (CCFH, RFC 4006 §5.7: alternate server on Tx expiry or 3002/3004), RAR (§5.5 of
RFC 4006 via RFC 6733 §8.3) and ASR (RFC 6733 §8.5), and crash recovery from MongoDB.

An unanswered CCR-T is not dropped: the same CCR-T (Session-Id, CC-Request-Number, units, End-to-End
id) goes to an alternate peer with the T flag at once, then is retried in the background with capped
exponential backoff for `termination_retry_seconds` (RFC 4006 §5.7, RFC 6733 §5.5.4); the call does
not wait for the retries, and the open-session record keeps the CCR-T for a restarted client.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import inspect
import itertools
import math
import os
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from diameter.message import Message
from prometheus_client import Counter, Gauge

from charging import store
from charging.messages import ChargingRequest, RoleOfNode, parse_cca
from charging.session import CcState, CreditControlSession, TimerAction, Verdict
from charging.settings import RoClientSettings
from secondnum.diameter import DiameterNode, NoRouteError, PeerInfo, RequestTimeout, codec
from secondnum.diameter import constants as dc
from secondnum.diameter.peer import PeerState
from secondnum.log import get_logger
from secondnum.mongo import ensure_collections

__all__ = ["ChargingRefused", "ChargingRequest", "RoClient", "RoSession", "RoleOfNode"]

log = get_logger(__name__)

RO_CCR = Counter("secondnum_ro_ccr_total", "CCRs sent by the Ro client", ["type", "result"])
_TYPE_NAME = {1: "initial", 2: "update", 3: "termination", 4: "event"}
RO_T_PENDING = Gauge(
    "secondnum_ro_terminations_pending", "CCR-Ts not answered yet and being retried (RFC 4006 §5.7)"
)
RO_T_RETRIES = Counter(
    "secondnum_ro_termination_retries_total", "Background CCR-T retries by outcome", ["result"]
)
RO_T_ABANDONED = Counter(
    "secondnum_ro_terminations_abandoned_total", "CCR-Ts given up after termination_retry_seconds"
)
# A CCR-T answered with these was not processed: send it again (3002/3004 RFC 6733 §7.1.3; 5012 is what
# a Diameter node answers when its handler failed, e.g. the OCS's database is down).
_RETRY_T_RESULTS = frozenset({dc.UNABLE_TO_DELIVER, dc.TOO_BUSY, dc.UNABLE_TO_COMPLY})

ReleaseCallback = Callable[["RoSession", str], "Awaitable[None] | None"]

_CCFH = {
    "TERMINATE": dc.CCFH_TERMINATE,
    "CONTINUE": dc.CCFH_CONTINUE,
    "RETRY_AND_TERMINATE": dc.CCFH_RETRY_AND_TERMINATE,
}
# Refusal → SIP status for the AS (TS 29.228-style mapping used by IMS ASs; RFC 3326 Reason).
_SIP_STATUS = {
    dc.CREDIT_LIMIT_REACHED: 402,
    dc.END_USER_SERVICE_DENIED: 403,
    dc.USER_UNKNOWN: 404,
    dc.RATING_FAILED: 403,
}
_REASON_TEXT = {
    dc.CREDIT_LIMIT_REACHED: "Credit limit reached",
    dc.END_USER_SERVICE_DENIED: "End user service denied",
    dc.USER_UNKNOWN: "User unknown",
    dc.RATING_FAILED: "Rating failed",
}


class ChargingRefused(Exception):  # noqa: N818 - public name in README
    """The OCS refused the leg (or could not be reached and CCFH says terminate)."""

    def __init__(self, result_code: int | None, detail: str = "") -> None:
        self.result_code = result_code
        self.sip_status = _SIP_STATUS.get(result_code or 0, 503)
        text = _REASON_TEXT.get(result_code or 0, detail or "Charging failure")
        cause = result_code if result_code is not None else dc.UNABLE_TO_DELIVER
        self.reason = f'DIAMETER;cause={cause};text="{text}"'
        super().__init__(f"{result_code}: {text}")


class RoSession:
    """Handle of one charged leg, returned by `RoClient.start_session`."""

    def __init__(self, client: RoClient, core: CreditControlSession, on_release: ReleaseCallback | None):
        self._client = client
        self.core = core
        self.on_release = on_release
        self.lock = asyncio.Lock()
        self.timer: asyncio.TimerHandle | None = None
        self.released = False
        self.doc: dict[str, Any] | None = None  # the open-session record (`store.record`), when persisted

    @property
    def session_id(self) -> str:
        return self.core.session_id

    @property
    def granted_seconds(self) -> int | None:
        return self.core.granted_seconds

    @property
    def final_unit(self) -> bool:
        return self.core.final_unit

    @property
    def unmetered(self) -> bool:
        return self.core.unmetered

    @property
    def closed(self) -> bool:
        return self.core.state is CcState.CLOSED

    def answered(self) -> None:
        """The leg was answered: used time counts from now."""
        self._client._answered(self)

    async def update(self) -> None:
        """CCR-Update now with the units used since the last report."""
        await self._client._update(self)

    async def terminate(self, used_seconds: int | None = None) -> None:
        """CCR-Termination; idempotent. `used_seconds=None`: measured since `answered()`."""
        await self._client._terminate(self, used_seconds)


class RoClient:
    """Ro client over a (possibly shared) `DiameterNode`; see charging/README.md."""

    def __init__(
        self,
        settings: RoClientSettings,
        node: DiameterNode | None = None,
        *,
        persist: bool = True,
        checkpoint_seconds: float = 10.0,
        persist_interval: float = 0.2,
    ) -> None:
        self.settings = settings
        self._own_node = node is None
        self.node = node or DiameterNode(
            settings.origin_host,
            settings.origin_realm,
            (dc.APP_RO,),
            tx_timeout=settings.tx_seconds,
            watchdog_interval=settings.watchdog_seconds,
            reconnect_max=settings.reconnect_max_seconds,
            accept_unknown_peers=False,
        )
        for p in settings.peers:
            self.node.add_peer(p.peer_config())
        self.node.register_handler(dc.APP_RO, dc.CMD_RE_AUTH, self._on_rar)
        self.node.register_handler(dc.APP_RO, dc.CMD_ABORT_SESSION, self._on_asr)
        self.persist = persist
        self.checkpoint_seconds = checkpoint_seconds
        # One writer for all sessions: records are coalesced and bulk-written every `persist_interval`
        # (the crash-recovery window, see charging.store), never awaited on the call path.
        self.writer = store.OpenSessionWriter(persist_interval)
        self.sessions: dict[str, RoSession] = {}
        self._ids = itertools.count(1)
        self._boot = int(time.time())
        self._tasks: set[asyncio.Task[Any]] = set()
        self.retrying: dict[str, asyncio.Task[None]] = {}  # session id -> CCR-T retry task
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, wait: bool = True) -> None:
        """Start the node (when owned) and wait up to Tx for a first OCS connection."""
        self._loop = asyncio.get_running_loop()
        if self._own_node:
            await self.node.start()
        if wait:
            with contextlib.suppress(TimeoutError):
                await self.node.wait_for_peer(
                    self.settings.destination_realm, timeout=self.settings.tx_seconds
                )
        if self.persist:
            await asyncio.to_thread(ensure_collections, store.OpenRoSession)
            self.writer.start()
            self._checkpoint_task = self._loop.create_task(self._checkpoint_loop())

    async def stop(self) -> None:
        """Close the sessions still open with CCR-T (used units so far), then the node."""
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoint_task
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for s in self.sessions.values():
            if s.timer is not None:
                s.timer.cancel()
        if self.sessions:
            log.info("ro_closing_open_sessions", count=len(self.sessions))
            closing = [self._terminate(s, None) for s in list(self.sessions.values())]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*closing, return_exceptions=True), 2 * self.settings.tx_seconds + 1
                )
        if self.retrying:
            # Their records stay "terminating": the next start's recover_open_sessions() sends them.
            log.warning("ro_terminations_left_pending", count=len(self.retrying), persisted=self.persist)
            retries = list(self.retrying.values())
            for t in retries:
                t.cancel()
            await asyncio.gather(*retries, return_exceptions=True)
        await self.writer.close()
        if self._own_node:
            await self.node.stop()

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until the open-session records reflect every change so far (tests, orderly stop)."""
        await self.writer.flush(timeout)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "RoClient.start() first"
        return self._loop

    def _new_session_id(self) -> str:
        # RFC 6733 §8.8: <DiameterIdentity>;<high 32 bits>;<low 32 bits>[;<optional>]
        return f"{self.settings.origin_host};{self._boot};{next(self._ids)};{os.getpid()}"

    # ------------------------------------------------------------------ API

    async def start_session(
        self, request: ChargingRequest, on_release: ReleaseCallback | None = None
    ) -> RoSession:
        """CCR-Initial; returns the session or raises `ChargingRefused`."""
        core = CreditControlSession(
            self._new_session_id(),
            request,
            requested_seconds=self.settings.requested_seconds,
            quota_request_seconds=self.settings.quota_request_seconds,
            ccfh=_CCFH[self.settings.ccfh],
        )
        s = RoSession(self, core, on_release)
        async with s.lock:
            cca = await self._transact(s, core.initial(self.loop.time()))
            if cca is None:
                if core.ccfh == dc.CCFH_CONTINUE:
                    core.continue_unmetered()
                    log.warning("ro_ocs_unreachable_continue", session=core.session_id)
                    return s
                core.state = CcState.CLOSED
                raise ChargingRefused(None, "OCS unreachable")
            verdict = core.on_answer(cca, self.loop.time())
            if verdict is not Verdict.GRANTED:
                core.state = CcState.CLOSED
                raise ChargingRefused(cca.effective_result)
            self.sessions[core.session_id] = s
            self._arm(s)
            if self.persist:
                s.doc = store.record(
                    core.session_id,
                    owner=self.settings.origin_host,
                    subscription_e164=request.subscription_e164,
                    role_of_node=int(request.role_of_node),
                    calling=request.calling,
                    called=request.called,
                    icid=request.icid,
                    request_number=core.request_number,
                    server_host=core.server_host,
                )
                self.writer.put(s.doc, urgent=True)
        return s

    # ------------------------------------------------------------------ transactions

    async def _transact(
        self, s: RoSession, msg: Message, *, terminating: bool = False, retransmit: bool = False
    ) -> Any:
        """One CCR with RFC 4006 §5.7 failover; returns a parsed CCA or None (no usable answer).

        `terminating`: a CCR-T goes to an alternate peer on Tx expiry whatever the CCFH (the service is
        over; only the report is at stake). `retransmit`: the first send is already a possible duplicate.
        """
        core = s.core
        rtype = _TYPE_NAME.get(codec.value(msg.avps, dc.AVP_CC_REQUEST_TYPE) or 0, "other")
        avoid: set[str] = set()
        host = core.server_host
        for _attempt in range(3):
            if host is not None and not self._peer_open(host):
                host = None  # the session's server is down: any peer of the realm (§5.7 alternate)
            _set_destination_host(msg, host)
            try:
                ans = await self.node.send_request(
                    msg,
                    self.settings.destination_realm,
                    destination_host=host,
                    timeout=self.settings.tx_seconds,
                    avoid_hosts=avoid,
                    retransmit=retransmit,
                )
            except NoRouteError as e:
                log.warning("ro_no_route", session=core.session_id, error=str(e))
                RO_CCR.labels(rtype, "no-route").inc()
                return None
            except RequestTimeout as e:
                log.warning("ro_tx_expired", session=core.session_id, peer=e.peer_host or "")
                RO_CCR.labels(rtype, "timeout").inc()
                if core.ccfh == dc.CCFH_TERMINATE and not terminating:
                    return None
                avoid.add(e.peer_host or "")
            else:
                cca = parse_cca(ans)
                RO_CCR.labels(rtype, str(cca.effective_result)).inc()
                if cca.result_code not in (dc.UNABLE_TO_DELIVER, dc.TOO_BUSY):
                    return cca
                log.warning("ro_server_failover", session=core.session_id, result=cca.result_code)
                avoid.add(cca.origin_host or "")
            retransmit, host = True, None
        return None

    def _peer_open(self, host: str) -> bool:
        return any(p.host == host and p.state == PeerState.OPEN.value for p in self.node.peers())

    def _answered(self, s: RoSession) -> None:
        s.core.answered(self.loop.time())
        self._arm(s)
        if s.doc is not None:
            s.doc["answered_at"] = store.now_utc()
            self.writer.put(s.doc)

    async def _update(self, s: RoSession, only_if_due: bool = False) -> None:
        async with s.lock:
            core = s.core
            if core.state is not CcState.OPEN or core.unmetered:
                return
            if only_if_due and core.handle_timer(self.loop.time()) is not TimerAction.UPDATE:
                return  # another CCR-U (RAR, explicit update) got there first
            cca = await self._transact(s, core.update(self.loop.time()))
            if cca is None:
                if core.ccfh == dc.CCFH_CONTINUE:
                    core.continue_unmetered()
                    return
                core.state = CcState.OPEN
                reason = "ocs-failure"
            else:
                verdict = core.on_answer(cca, self.loop.time())
                if verdict is Verdict.GRANTED:
                    self._arm(s)
                    if s.doc is not None:
                        s.doc["request_number"] = core.request_number
                        s.doc["reported_seconds"] = core.total_used
                        self.writer.put(s.doc)
                    return
                reason = "credit-exhausted"
        await self._release(s, reason)

    async def _terminate(self, s: RoSession, used_seconds: int | None) -> None:
        async with s.lock:
            core = s.core
            if s.timer is not None:
                s.timer.cancel()
                s.timer = None
            if core.state in (CcState.CLOSED, CcState.PENDING_T, CcState.IDLE):
                if s.session_id not in self.retrying:  # a CCR-T being retried keeps its record
                    self._forget(s)
                return
            # The record's update coalesces with its delete when the CCA comes within the writer's linger.
            msg = self._termination(s, used_seconds, dc.TERMINATION_CAUSE_LOGOUT)
            await self._close(s, msg, since=time.time())

    def _termination(self, s: RoSession, used_seconds: int | None, cause: int) -> Message:
        """The session's CCR-T with a fresh End-to-End id, kept on every resend (RFC 6733 §5.5.4); the
        session's record, if it has one, is marked terminating with what a resend after a crash needs."""
        core = s.core
        before = core.total_used
        msg = core.termination(self.loop.time(), used_seconds, cause)
        msg.header.end_to_end_identifier = self.node.ids.end_to_end()
        if s.doc is not None:
            store.mark_terminating(
                s.doc,
                request_number=core.request_number,
                used=core.total_used - before,
                cause=cause,
                end_to_end=msg.header.end_to_end_identifier,
            )
            self.writer.put(s.doc)
        return msg

    async def _close(self, s: RoSession, msg: Message, *, since: float, retransmit: bool = False) -> bool:
        """Send a CCR-T (alternate peer on failure); if unanswered, retry it in the background.

        Returns True when answered. `since`: wall-clock time of the first attempt (bounds the retries).
        """
        cca = await self._transact(s, msg, terminating=True, retransmit=retransmit)
        if _delivered(cca):
            s.core.state = CcState.CLOSED
            self._forget(s)
            return True
        remaining = self.settings.termination_retry_seconds - (time.time() - since)
        result = None if cca is None else cca.result_code
        if remaining <= 0:
            self._abandon(s, since)
            return False
        log.warning(
            "ro_termination_pending",
            session=s.session_id,
            used=s.core.total_used,
            result=result,
            retry_for=round(remaining),
        )
        self._forget(s, keep_record=True)
        if s.doc is not None:
            self.writer.put(s.doc, urgent=True)  # the units must survive a crash from now on
        RO_T_PENDING.inc()
        task = self.loop.create_task(self._retry_termination(s, msg, since, remaining))
        self.retrying[s.session_id] = task
        # A callback, not `finally`: it also runs for a task cancelled (stop()) before it started.
        task.add_done_callback(functools.partial(self._retry_done, s.session_id))
        return False

    def _retry_done(self, session_id: str, _task: asyncio.Task[None]) -> None:
        self.retrying.pop(session_id, None)
        RO_T_PENDING.dec()

    async def _retry_termination(self, s: RoSession, msg: Message, since: float, remaining: float) -> None:
        """Resend the same CCR-T (T flag, same End-to-End id) with capped exponential backoff."""
        cfg = self.settings
        deadline = self.loop.time() + remaining
        delay = cfg.termination_retry_initial_seconds
        attempts = 0
        while True:
            left = deadline - self.loop.time()
            if left <= 0:
                self._abandon(s, since)
                return
            # Jitter: after an OCS outage, many pending CCR-Ts must not all arrive in one burst.
            await asyncio.sleep(min(delay * random.uniform(0.5, 1.0), left))
            attempts += 1
            async with s.lock:
                cca = await self._transact(s, msg, terminating=True, retransmit=True)
            if _delivered(cca):
                RO_T_RETRIES.labels("delivered").inc()
                log.info(
                    "ro_termination_delivered",
                    session=s.session_id,
                    attempts=attempts,
                    after=round(time.time() - since, 1),
                    result=cca.result_code,
                )
                s.core.state = CcState.CLOSED
                self._forget(s)
                return
            RO_T_RETRIES.labels("unanswered").inc()
            delay = min(delay * 2, cfg.termination_retry_max_interval_seconds)
            log.info(
                "ro_termination_retry_failed",
                session=s.session_id,
                attempts=attempts,
                result=None if cca is None else cca.result_code,
                next_in=round(delay, 1),
            )

    def _abandon(self, s: RoSession, since: float) -> None:
        RO_T_ABANDONED.inc()
        log.error(
            "ro_termination_abandoned",
            session=s.session_id,
            used=s.core.total_used,
            after=round(time.time() - since),
        )
        s.core.state = CcState.CLOSED
        self._forget(s)

    def _forget(self, s: RoSession, keep_record: bool = False) -> None:
        self.sessions.pop(s.session_id, None)
        # The callback is usually a bound method of the call that holds this session: dropping it breaks
        # the reference cycle so the whole call is freed by reference counting, not left to the collector.
        s.on_release = None
        if s.doc is not None and not keep_record:
            s.doc = None
            self.writer.delete(s.session_id)

    async def _release(self, s: RoSession, reason: str) -> None:
        """Tell the AS to release the call, then close the session with CCR-T."""
        if s.released:
            return
        s.released = True
        log.info("ro_release", session=s.session_id, reason=reason)
        if s.on_release is not None:
            try:
                r = s.on_release(s, reason)
                if inspect.isawaitable(r):
                    await r
            except Exception:
                log.exception("ro_release_callback_failed", session=s.session_id)
        await self._terminate(s, None)

    # ------------------------------------------------------------------ timers

    def _arm(self, s: RoSession) -> None:
        if s.timer is not None:
            s.timer.cancel()
            s.timer = None
        due = s.core.next_timer()
        if due is not None:
            s.timer = self.loop.call_at(due, self._on_timer, s)

    def _on_timer(self, s: RoSession) -> None:
        s.timer = None
        action = s.core.handle_timer(self.loop.time())
        if action is TimerAction.UPDATE:
            self._background(self._update(s, only_if_due=True))
        elif action is TimerAction.RELEASE:
            self._background(self._release(s, "final-unit"))
        else:
            self._arm(s)

    def _background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _checkpoint_loop(self) -> None:
        """Refresh `checkpoint_at` of answered sessions: after a crash, used ~ checkpoint - answer."""
        while True:
            await asyncio.sleep(self.checkpoint_seconds)
            try:
                await asyncio.to_thread(store.checkpoint, self.settings.origin_host)
            except Exception:
                log.exception("ro_checkpoint_failed")

    # ------------------------------------------------------------------ server-initiated

    def _on_rar(self, req: Message, peer: PeerInfo) -> Message:
        """RAR (RFC 4006 §5.5): answer, then CCR-U with used units."""
        sid = codec.value(req.avps, dc.AVP_SESSION_ID)
        s = self.sessions.get(sid or "")
        if s is None:
            return codec.new_answer(req, dc.UNKNOWN_SESSION_ID)
        self._background(self._update(s))
        return codec.new_answer(req, dc.SUCCESS)

    def _on_asr(self, req: Message, peer: PeerInfo) -> Message:
        """ASR (RFC 6733 §8.5): answer, release the call, then CCR-T."""
        sid = codec.value(req.avps, dc.AVP_SESSION_ID)
        s = self.sessions.get(sid or "")
        if s is None:
            return codec.new_answer(req, dc.UNKNOWN_SESSION_ID)
        self._background(self._release(s, "abort-session"))
        return codec.new_answer(req, dc.SUCCESS)

    # ------------------------------------------------------------------ recovery

    async def recover_open_sessions(self) -> int:
        """Close sessions left open by a previous run of this AS (same Origin-Host) with CCR-T.

        A session whose CCR-T was pending gets that very CCR-T again (recorded CC-Request-Number, units,
        cause and End-to-End id, T flag). Otherwise used units: from the answer time to the last
        checkpoint, minus what was already reported. Unanswered ones are retried in the background like
        any CCR-T; returns how many were closed now.
        """
        docs = await asyncio.to_thread(store.open_sessions, self.settings.origin_host)
        closed = 0
        for doc in docs:
            if doc.session_id in self.sessions or doc.session_id in self.retrying:
                continue
            if self.persist:
                self.writer.adopt(doc.session_id)
            if doc.state == store.TERMINATING:
                closed += await self._recover_termination(doc)
                continue
            used_total = 0
            if doc.answered_at is not None:
                answered = _aware(doc.answered_at)
                used_total = max(0, math.ceil((_aware(doc.checkpoint_at) - answered).total_seconds()))
                used_total = max(used_total, doc.reported_seconds)
            core = CreditControlSession(
                doc.session_id,
                ChargingRequest(
                    doc.subscription_e164, RoleOfNode(doc.role_of_node), doc.calling, doc.called, doc.icid
                ),
                state=CcState.OPEN,
                request_number=doc.request_number,
                server_host=doc.server_host,
                total_used=doc.reported_seconds,
                ccfh=dc.CCFH_RETRY_AND_TERMINATE,
            )
            s = RoSession(self, core, None)
            if self.persist:
                s.doc = store.as_record(doc)
            msg = self._termination(s, used_total, dc.TERMINATION_CAUSE_ADMINISTRATIVE)
            ok = await self._close(s, msg, since=time.time())
            if ok and not self.persist:
                await asyncio.to_thread(store.delete, doc.session_id)
            log.info("ro_recovered_session", session=doc.session_id, used=used_total, closed=ok)
            closed += ok
        return closed

    async def _recover_termination(self, doc: store.OpenRoSession) -> int:
        core = CreditControlSession(
            doc.session_id,
            ChargingRequest(
                doc.subscription_e164, RoleOfNode(doc.role_of_node), doc.calling, doc.called, doc.icid
            ),
            state=CcState.PENDING_T,
            request_number=doc.request_number,
            server_host=doc.server_host,
            total_used=doc.reported_seconds + doc.t_used,
            ccfh=dc.CCFH_RETRY_AND_TERMINATE,
        )
        s = RoSession(self, core, None)
        cause = doc.termination_cause or dc.TERMINATION_CAUSE_ADMINISTRATIVE
        msg = core.recorded_termination(doc.t_used, cause)
        msg.header.end_to_end_identifier = doc.end_to_end or self.node.ids.end_to_end()
        if self.persist:
            s.doc = store.as_record(doc)
        since = _aware(doc.terminating_since or store.now_utc()).timestamp()
        ok = await self._close(s, msg, since=since, retransmit=True)
        if ok and not self.persist:
            await asyncio.to_thread(store.delete, doc.session_id)
        log.info(
            "ro_recovered_termination",
            session=doc.session_id,
            used=doc.t_used,
            request_number=doc.request_number,
            closed=ok,
        )
        return int(ok)


def _delivered(cca: Any) -> bool:
    return cca is not None and cca.result_code not in _RETRY_T_RESULTS


def _set_destination_host(msg: Message, host: str | None) -> None:
    """Destination-Host names the server the request is for, or is absent (any server of the realm)."""
    avps = [a for a in msg.avps if a.code != dc.AVP_DESTINATION_HOST]
    if host is not None and codec.first(avps, dc.AVP_ORIGIN_HOST) is not None:
        # Already sent once (Origin-* present): the node will not add it again.
        avps.append(codec.avp(dc.AVP_DESTINATION_HOST, host.encode()))
    msg.avps = avps


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)
