"""One answered call: runs a sans-IO application (deposit or access) against the RTP stream, the store and
the SIP dialog.

The application returns actions; this class performs them and feeds the results back as events, one at a
time from a single queue, so the application never sees two events at once. Play is asynchronous: the
``WaitForDigit`` and ``Record`` actions that follow a ``Play`` take effect when the audio has been sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from prometheus_client import Counter, Histogram
from pymongo.errors import ServerSelectionTimeoutError

from media.audio.goertzel import GoertzelDetector
from media.ivr.actions import (
    Action,
    CheckPin,
    DeleteMessage,
    Digit,
    Event,
    Hangup,
    MessageAudio,
    PinResult,
    Play,
    PlayDone,
    Record,
    RecordDone,
    Refer,
    ReferResult,
    SetMessageState,
    StoreGreeting,
    StoreMessage,
    StoreResult,
    Timeout,
    WaitForDigit,
)
from media.ivr.recorder import Recorder
from media.rtp.engine import RtpStream
from media.store.account import AccountVoicemail
from media.store.voicemail import MailboxFullError
from secondnum.log import get_logger
from secondnum.sip import Dialog, SipError
from secondnum.sip.session_timer import Due, LegTimer, Mode, SessionTimer, delta_seconds, min_se

if TYPE_CHECKING:
    from media.sipserver import MediaServer

log = get_logger(__name__)

DIGITS = Counter("secondnum_media_dtmf_digits_total", "DTMF digits received", ["method"])
MESSAGES_STORED = Counter("secondnum_media_messages_stored_total", "Voicemail messages stored")
MESSAGES_DISCARDED = Counter("secondnum_media_messages_discarded_total", "Recordings discarded", ["reason"])
STORE_RETRIES = Counter("secondnum_media_store_retries_total", "Retried voicemail store operations")
MESSAGES_SPOOLED = Counter("secondnum_media_messages_spooled_total",
                           "Messages written to the disk spool (MongoDB unreachable)")
CALL_JITTER = Histogram(
    "secondnum_media_call_jitter_seconds", "Interarrival jitter (RFC 3550 §6.4.1) at call end, per call",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2))
CALL_LOSS = Histogram(
    "secondnum_media_call_loss_fraction", "Fraction of expected RTP packets lost (RFC 3550 §A.3), per call",
    buckets=(0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0))

CALL_RTT = Histogram(
    "secondnum_media_call_rtt_seconds", "Last RTCP round-trip time (RFC 3550 §6.4.1) at call end, per call",
    buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0))

STORE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
UNREACHABLE_ATTEMPTS = 3
"""Attempts after which a database that does not even answer server selection counts as down (spool now)."""


class App(Protocol):
    def start(self) -> list[Action]: ...

    def handle(self, event: Event) -> list[Action]: ...


@dataclasses.dataclass(frozen=True)
class _RemoteHangup:
    reason: str


@dataclasses.dataclass(frozen=True)
class Release:
    """End the call from our side (timeouts, shutdown); a recording in progress is stored first."""

    reason: str


QueueItem = Event | _RemoteHangup | Release


class Call:
    def __init__(self, server: MediaServer, dialog: Dialog, stream: RtpStream, *, service: str,
                 mailbox: str, caller: str, network_auth: bool, call_id: str) -> None:
        self.server = server
        self.dialog = dialog
        self.stream = stream
        self.service = service
        self.mailbox = mailbox
        self.caller = caller
        self.network_auth = network_auth
        self.call_id = call_id
        self.settings = server.settings
        self.queue: asyncio.Queue[QueueItem] = asyncio.Queue()
        self.app: App | None = None
        self.remote_gone = False
        self.done = asyncio.Event()
        self._deferred: list[Action] = []
        self._barge_in = True
        self._digit_timer: asyncio.TimerHandle | None = None
        self._recorder: Recorder | None = None
        self._record_stop = "#"
        self._record_watch: asyncio.Task[None] | None = None
        self._record_started = 0.0
        self._last_voice = 0.0
        self._detector = GoertzelDetector()
        self._refer_timer: asyncio.TimerHandle | None = None
        self._refer_pending = False
        self._bye_timer: asyncio.TimerHandle | None = None
        self._session_timer: asyncio.TimerHandle | None = None
        self.timer: SessionTimer | None = None
        """RFC 4028 timer of the dialog (None = no session timer), restarted by each refresh (§10)."""
        self.peer_allows_update = False
        """The peer listed UPDATE in Allow (RFC 3311 §5.1): our refreshes use it, else a re-INVITE."""
        self.local_sdp: bytes = b""
        """Our last session description, repeated in a refresh re-INVITE (RFC 4028 §7.4, RFC 3264 §8)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.stored_message_ids: list[str] = []
        self.offer_sdp: bytes | None = None
        """Our SDP offer awaiting an answer (INVITE or re-INVITE without SDP, RFC 3264 §5)."""
        self.session_id = "0"
        self.sdp_version = 1
        self.account: AccountVoicemail | None = None
        """The account's voicemail settings (subscriber data), loaded when the call starts."""
        self.settings_source = "store"
        """Where ``account`` came from: ``store``, ``last_known`` (MongoDB down) or ``defaults``."""
        self.without_database = False
        """The call started while MongoDB did not answer: a deposit is accepted unconditionally."""
        stream.on_audio = self._on_audio
        stream.on_digit = self.on_digit
        stream.on_play_done = self._on_play_done
        stream.on_timeout = self._on_rtp_timeout

    # --- inputs from the network ---------------------------------------------------------------------
    def on_digit(self, digit: str, method: str) -> None:
        DIGITS.labels(method).inc()
        log.debug("dtmf", call_id=self.call_id, digit=digit, method=method)
        if self._recorder is not None:
            if digit in self._record_stop:
                self._finish_recording("digit", trim_frames=10 if method == "inband" else 0)
            return
        if self.stream.playing:
            if not self._barge_in:
                return
            self.stream.stop_playback()
            self._deferred.clear()
        self._cancel_digit_timer()
        self.queue.put_nowait(Digit(digit))

    def _on_audio(self, pcm: bytes) -> None:
        if self._recorder is not None:
            reason = self._recorder.feed_pcm(pcm)
            if self._recorder.voiced_changed:
                self._last_voice = self.server.loop_time()
            if reason is not None:
                self._finish_recording(reason)
                return
        if not self.stream.session.telephone_events_seen:
            # Callers that send RFC 4733 events are not analysed. The detector runs during our prompts
            # too (barge-in); its energy/harmonic checks keep an echo of the prompts from triggering it
            # (tests/unit/media/test_media_audio.py feeds it every prompt).
            for d in self._detector.feed(pcm):
                self.on_digit(d, "inband")

    def _on_play_done(self) -> None:
        deferred, self._deferred = self._deferred, []
        for action in deferred:
            self._start_after_play(action)
        self.queue.put_nowait(PlayDone())

    def _on_rtp_timeout(self) -> None:
        log.warning("rtp_timeout", call_id=self.call_id, timeout=self.settings.rtp_timeout)
        self.queue.put_nowait(Release("rtp_timeout"))

    def on_remote_bye(self) -> None:
        self.remote_gone = True
        self.queue.put_nowait(_RemoteHangup("bye"))

    def on_refer_status(self, status: int) -> None:
        """Final sipfrag status of the referred call (RFC 3515 §2.4.5) or the REFER's own failure."""
        if not self._refer_pending:
            return
        self._refer_pending = False
        if self._refer_timer is not None:
            self._refer_timer.cancel()
        if 200 <= status < 300:
            # The AS takes the caller away and sends BYE (flow C.5); release ourselves if it does not.
            self.stream.stop_playback()
            self._bye_timer = asyncio.get_running_loop().call_later(
                self.settings.refer_bye_timeout, self.queue.put_nowait, Release("refer_no_bye"))
        self.queue.put_nowait(ReferResult(status))

    def arm_session_timer(self, leg: LegTimer | None) -> None:
        """(Re)start the dialog's RFC 4028 timer after a negotiation (§10): ``PEER`` = the AS refreshes and
        we send BYE when no refresh came by ``interval - min(32, interval/3)``; ``LOCAL`` = we are the
        refresher and send one at half the interval. None = the dialog has no session timer."""
        now = asyncio.get_running_loop().time()
        self.timer = None if leg is None else SessionTimer(leg.mode, leg.interval, now)
        self._arm_session_timer()

    def _arm_session_timer(self) -> None:
        if self._session_timer is not None:
            self._session_timer.cancel()
            self._session_timer = None
        deadline = self.timer.deadline if self.timer is not None else None
        if deadline is not None and not self.remote_gone:
            self._session_timer = asyncio.get_running_loop().call_at(deadline, self._session_timer_due)

    def _session_timer_due(self) -> None:
        self._session_timer = None
        timer = self.timer
        if timer is None or self.remote_gone:
            return
        due = timer.poll(asyncio.get_running_loop().time())
        if due is Due.EXPIRED:
            log.warning("session_timer_expired", call_id=self.call_id, interval=timer.interval)
            self.queue.put_nowait(Release("session_expired"))
        elif due is Due.REFRESH:
            task = asyncio.get_running_loop().create_task(self._session_refresh(timer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._arm_session_timer()

    async def _session_refresh(self, timer: SessionTimer) -> None:
        """Our session refresh as the refresher (RFC 4028 §9 ``refresher=uas``, §10): UPDATE without a
        body when the peer allows it (RFC 3311), else a re-INVITE repeating our last SDP (§7.4: a refresh
        re-INVITE carries the session description unchanged, RFC 3264 §8). ``refresher=uac`` in it keeps
        us the refresher (relative to this transaction we are its UAC). 408/481 end the dialog (RFC 3261
        §12.2.1.2); another failure retries later (a 422 with the peer's larger Min-SE, §7.3)."""
        ep = self.server.endpoint
        headers = [("Session-Expires", f"{int(timer.interval)};refresher=uac"), ("Supported", "timer"),
                   ("Min-SE", str(self.settings.min_se))]
        loop = asyncio.get_running_loop()
        try:
            dest, transport = self.dialog.next_hop()
            if self.peer_allows_update:
                req = self.dialog.create_request("UPDATE", headers=headers)
            else:
                req = self.dialog.create_request("INVITE", body=self.local_sdp, headers=headers,
                                                 content_type="application/sdp" if self.local_sdp else None)
            resp = await ep.request(req, dest, transport).final_response()
            if req.method == "INVITE" and resp.is_success:
                ep.send_ack(self.dialog.create_ack(req.cseq.seq), dest, transport)
        except SipError as exc:
            log.warning("session_refresh_failed", call_id=self.call_id, error=str(exc))
            resp = None
        if self.timer is not timer or self.remote_gone:
            return  # renegotiated or ended meanwhile
        status = 408 if resp is None else resp.status
        log.info("session_refreshed", call_id=self.call_id, status=status,
                 method="UPDATE" if self.peer_allows_update else "INVITE")
        if resp is not None and resp.is_success:
            se = resp.headers.get("session-expires") if "session-expires" in resp.headers else None
            timer.refreshed(loop.time(), delta_seconds(se))
            if se is not None and "refresher=uas" in se.replace(" ", "").lower():
                timer.mode = Mode.PEER  # §7.4: the 2xx made the peer (its UAS) the refresher
        elif status in (408, 481):
            self.queue.put_nowait(Release("session_refresh_failed"))
            return
        else:
            if resp is not None and status == 422:
                floor = min_se(resp)
                if floor is not None and floor > timer.interval:
                    timer.interval = float(floor)
            elif status in (405, 501) and self.peer_allows_update:
                self.peer_allows_update = False  # UPDATE refused after all: re-INVITE next time
            timer.refresh_failed(loop.time())
        self._arm_session_timer()

    # --- main loop -----------------------------------------------------------------------------------
    async def run(self, app_factory: Callable[[], Awaitable[App]]) -> None:
        try:
            self.app = await app_factory()
            await self._perform(self.app.start())
            while True:
                item = await self.queue.get()
                if isinstance(item, Release):
                    log.info("call_released", call_id=self.call_id, reason=item.reason)
                    if self._recorder is not None:
                        self._finish_recording("hangup")
                        continue
                    break
                if isinstance(item, _RemoteHangup):
                    if self._recorder is not None:
                        self._finish_recording("hangup")
                        continue
                    break
                self._cancel_digit_timer()
                actions = self.app.handle(item)
                if await self._perform(actions):
                    break
        except Exception:
            log.exception("call_failed", call_id=self.call_id)
        finally:
            await self._release()

    async def _perform(self, actions: list[Action]) -> bool:
        """Carry out actions in order; True when the call must end."""
        for action in actions:
            if isinstance(action, Hangup):
                log.info("call_app_hangup", call_id=self.call_id, service=self.service, reason=action.reason)
                if action.reason in ("too_short", "mailbox_full"):
                    MESSAGES_DISCARDED.labels(action.reason).inc()
                return True
            if isinstance(action, Play):
                await self._play(action)
            elif isinstance(action, WaitForDigit | Record):
                if self.stream.playing:
                    self._deferred.append(action)
                else:
                    self._start_after_play(action)
            elif isinstance(action, StoreMessage):
                self.queue.put_nowait(await self._store_message(action.audio))
            elif isinstance(action, CheckPin):
                # The account's PIN (provisioning API) is the only PIN; media keeps the lock and failures.
                account_check = (self.account.verify_pin if self.account is not None and self.account.pin_hash
                                 else None)
                ok, locked = await asyncio.to_thread(self.server.store.check_pin, self.mailbox, action.pin,
                                                     account_check)
                log.info("pin_checked", call_id=self.call_id, mailbox=self.mailbox, ok=ok, locked=locked)
                self.queue.put_nowait(PinResult(ok, locked))
            elif isinstance(action, SetMessageState):
                await self._store_op(self.server.store.set_state, self.mailbox, action.message_id,
                                     action.state)
            elif isinstance(action, DeleteMessage):
                await self._store_op(self.server.store.delete, self.mailbox, action.message_id)
            elif isinstance(action, StoreGreeting):
                await self._store_op(self.server.store.set_greeting, self.mailbox, action.audio)
            elif isinstance(action, Refer):
                self._send_refer(action.number)
        return False

    async def _store_op(self, fn: Callable[..., object], *args: object) -> None:
        try:
            await asyncio.to_thread(fn, *args)
        except Exception:
            log.exception("store_operation_failed", call_id=self.call_id, op=getattr(fn, "__name__", "?"))

    # --- playing -------------------------------------------------------------------------------------
    async def _play(self, play: Play) -> None:
        self._barge_in = play.barge_in
        if self.remote_gone:
            self.queue.put_nowait(PlayDone())
            return
        parts: list[bytes] = []
        for item in play.items:
            if isinstance(item, bytes):
                parts.append(item)
            elif isinstance(item, MessageAudio):
                try:
                    parts.append(await asyncio.to_thread(self.server.store.audio, self.mailbox,
                                                         item.message_id))
                except Exception:
                    log.exception("message_audio_unavailable", call_id=self.call_id, id=item.message_id)
            else:
                parts.append(await self.server.clip(item))
        audio = b"".join(parts)
        if not audio:
            self.queue.put_nowait(PlayDone())
            return
        self.stream.play(audio)

    def _start_after_play(self, action: Action) -> None:
        loop = asyncio.get_running_loop()
        if isinstance(action, WaitForDigit):
            self._cancel_digit_timer()
            self._digit_timer = loop.call_later(action.seconds, self.queue.put_nowait, Timeout())
        elif isinstance(action, Record):
            self._recorder = Recorder(action.max_seconds, self.settings.silence_timeout,
                                      self.settings.silence_threshold)
            self._record_stop = action.stop_digits
            self._record_started = self._last_voice = loop.time()
            task = loop.create_task(self._watch_recording(action.max_seconds))
            self._record_watch = task

    def _cancel_digit_timer(self) -> None:
        if self._digit_timer is not None:
            self._digit_timer.cancel()
            self._digit_timer = None

    # --- recording -----------------------------------------------------------------------------------
    async def _watch_recording(self, max_seconds: float) -> None:
        """Ends a recording on wall-clock limits even when the caller sends no packets at all."""
        while self._recorder is not None:
            await asyncio.sleep(0.25)
            now = self.server.loop_time()
            if now - self._record_started >= max_seconds + 0.5:
                self._finish_recording("max_length")
            elif now - self._last_voice >= self.settings.silence_timeout:
                self._finish_recording("silence")

    def _finish_recording(self, reason: str, trim_frames: int = 0) -> None:
        rec, self._recorder = self._recorder, None
        if rec is None:
            return
        watch, self._record_watch = self._record_watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
        audio = rec.audio(trim_frames)
        log.info("recording_finished", call_id=self.call_id, reason=reason, seconds=len(audio) / 8000)
        self.queue.put_nowait(RecordDone(audio, reason))

    async def _store_message(self, audio: bytes) -> StoreResult:
        """Store with retries (a replica-set election must not lose a message); MongoDB unreachable →
        disk spool, written later (README "Voicemail deposit")."""
        received_at = dt.datetime.now(dt.UTC)
        rtp = self.stream.summary()
        # A deposit accepted without the database is never refused later (no full check was possible).
        force = self.without_database
        attempts = (0.0,) if self.without_database else (0.0, *STORE_RETRY_DELAYS)
        unreachable = 0
        for attempt, delay in enumerate(attempts):
            if not self.server.db_up:
                break  # known down: straight to the spool, no 2 s server-selection wait per attempt
            if delay:
                STORE_RETRIES.inc()
                await asyncio.sleep(delay)
            try:
                limit = self.account.max_messages if self.account is not None else None
                info = await asyncio.to_thread(functools.partial(
                    self.server.store.add_message, self.mailbox, self.caller, audio, received_at,
                    call_id=self.call_id, account_limit=limit, rtp=rtp, force=force))
            except MailboxFullError:
                log.warning("mailbox_full", call_id=self.call_id, mailbox=self.mailbox)
                return StoreResult(ok=False, full=True)
            except Exception as exc:
                log.warning("message_store_retry", call_id=self.call_id, attempt=attempt,
                            error=str(exc)[:200])
                if isinstance(exc, ServerSelectionTimeoutError):
                    unreachable += 1
                    if unreachable >= UNREACHABLE_ATTEMPTS or self.without_database:
                        self.server.set_db_up(False, str(exc)[:200])
                continue
            MESSAGES_STORED.inc()
            self.stored_message_ids.append(info.id)
            log.info("message_stored", call_id=self.call_id, mailbox=self.mailbox, id=info.id,
                     caller=self.caller, duration_ms=info.duration_ms, forced=force)
            return StoreResult(ok=True)
        spooled = await asyncio.to_thread(functools.partial(
            self.server.spool_message, self.mailbox, self.caller, audio, received_at, self.call_id, rtp=rtp))
        MESSAGES_SPOOLED.inc()
        log.error("message_spooled", call_id=self.call_id, mailbox=self.mailbox, caller=self.caller,
                  duration_ms=len(audio) // 8, path=str(spooled),
                  next_step="written to MongoDB when it answers again")
        return StoreResult(ok=True)

    # --- REFER (RFC 3515) ----------------------------------------------------------------------------
    def _send_refer(self, number: str) -> None:
        self._refer_pending = True
        self._refer_timer = asyncio.get_running_loop().call_later(
            self.settings.refer_timeout, self.on_refer_status, 408)
        task = asyncio.get_running_loop().create_task(self._refer(number))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refer(self, number: str) -> None:
        ep = self.server.endpoint
        referred_by = f"<sip:{self.service}@{ep.local_address[0]};mailbox={self.mailbox}>"
        try:
            req = self.dialog.create_request("REFER", headers=[("Refer-To", f"<tel:+{number}>"),
                                                                ("Referred-By", referred_by)])
            dest, transport = self.dialog.next_hop()
            handle = ep.request(req, dest, transport)
            resp = await handle.final_response()
        except SipError as exc:
            log.warning("refer_failed", call_id=self.call_id, error=str(exc))
            self.on_refer_status(408)
            return
        log.info("refer_answered", call_id=self.call_id, status=resp.status, number=number)
        if not 200 <= resp.status < 300:
            self.on_refer_status(resp.status)

    # --- release -------------------------------------------------------------------------------------
    def _export_rtp_stats(self) -> None:
        """Call-end RTP statistics: one log line, jitter/loss histograms when RTP was received, the round-trip
        time when the peer's RTCP gave one."""
        summary = self.stream.summary()
        log.info("call_rtp_stats", call_id=self.call_id, service=self.service, mailbox=self.mailbox,
                 rfc4733=self.stream.session.telephone_events_seen, **summary)
        if self.stream.session.stats.expected:
            CALL_JITTER.observe(float(summary["jitter_ms"] or 0.0) / 1000.0)
            CALL_LOSS.observe(float(summary["loss_fraction"] or 0.0))
        rtt = self.stream.rtcp.peer.rtt
        if rtt is not None:
            CALL_RTT.observe(rtt)

    async def _release(self) -> None:
        for timer in (self._digit_timer, self._refer_timer, self._bye_timer, self._session_timer):
            if timer is not None:
                timer.cancel()
        if self._record_watch is not None:
            self._record_watch.cancel()
        self._recorder = None
        self._export_rtp_stats()
        self.stream.close()
        if not self.remote_gone:
            self.remote_gone = True
            with contextlib.suppress(Exception):
                bye = self.dialog.create_request("BYE")
                dest, transport = self.dialog.next_hop()
                handle = self.server.endpoint.request(bye, dest, transport)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(handle.final_response(), 10)
        for task in list(self._tasks):
            task.cancel()
        self.dialog.terminate()
        self.server.forget(self)
        self.done.set()
