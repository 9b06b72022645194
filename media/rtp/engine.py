"""The asyncio RTP engine: ONE shared clock for all streams, one UDP socket per stream.

Why one clock: a timer or task per call costs a loop wake-up per call per 20 ms; one drift-free clock
(scheduled at ``t0 + n * tick`` with ``loop.call_at``) serves every stream. The 20 ms packet period is split
into ``PHASES`` send slots of 5 ms and each stream is given the least-loaded slot when it opens: each wake-up
sends a quarter of the streams' frames, so the last packet of a slot leaves a quarter as late as it would if
every stream sent in one pass (with 300 streams at ~35 µs per packet, one pass is ~10 ms of work — more than
the 5 ms the receivers' jitter budget should take from us). Every stream still sends exactly one frame per
20 ms, on its own fixed schedule. When the loop falls behind, up to ``MAX_CATCH_UP`` missed periods are run
back to back; beyond that the clock re-synchronises and counts the skipped ticks.

Each stream has its own UDP socket pair from the configured port range: RTP on an even port, RTCP on the
next odd one (RFC 3550 §11); a port is handed out only when both bind. The sockets stay unconnected so the
source checks of :mod:`media.rtp.session` and :mod:`media.rtp.rtcp_session` (symmetric RTP/RTCP latching,
RFC 4961) see and count packets from unexpected sources instead of the kernel dropping them silently.

RTCP (:mod:`media.rtp.rtcp_session`) runs on the same clock, with no timer of its own: after a slot's
frames are out, each of its streams compares its next report time with the slot's time (one float
comparison per stream per 20 ms) and the few that are due send their compound report. Received RTCP is
handled on arrival: one packet per call every few seconds, and the arrival time feeds the round-trip
arithmetic (DLSR) directly.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import time
from collections.abc import Callable

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from media.audio import g711
from media.rtp.rtcp_session import MIN_INTERVAL, RtcpSession
from media.rtp.session import Address, AudioReceived, DigitReceived, PacketDropped, RtpSession
from secondnum.log import get_logger

log = get_logger(__name__)

PTIME = 0.020
FRAME = 160
PHASES = 4  # send slots per packet period
TICK = PTIME / PHASES
MAX_CATCH_UP = 5  # periods
TIMEOUT_CHECK_PERIODS = 50  # RTP inactivity checked once a second per stream
MAX_INBOX = 25  # received datagrams waiting for the stream's slot (half a second at 20 ms)

RTP_DROPPED = Counter("secondnum_media_rtp_dropped_total", "RTP packets dropped", ["reason"])
RTP_RECEIVED = Counter("secondnum_media_rtp_received_total", "RTP packets accepted")
RTP_SENT = Counter("secondnum_media_rtp_sent_total", "RTP packets sent")
RTP_STREAMS = Gauge("secondnum_media_rtp_streams", "Active RTP streams")
RTP_TICK_LATENESS = Histogram(
    "secondnum_media_rtp_tick_lateness_seconds", "Lateness of the last packet of a clock tick (send slot)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1))
RTP_SKIPPED_TICKS = Counter("secondnum_media_rtp_skipped_ticks_total", "Clock ticks skipped under overload")
RTP_TIMEOUTS = Counter("secondnum_media_rtp_timeouts_total", "Calls ended for lack of RTP")
_DROPPED_SOURCE = RTP_DROPPED.labels("source")
_DROPPED_OVERFLOW = RTP_DROPPED.labels("overflow")
RTCP_SENT = Counter("secondnum_media_rtcp_sent_total", "RTCP compound packets sent")
RTCP_RECEIVED = Counter("secondnum_media_rtcp_received_total",
                        "RTCP compound packets accepted (dropped ones: rtp_dropped_total{reason=\"rtcp_*\"})")


class NoPortError(RuntimeError):
    """Every port of the RTP range is in use."""


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, stream: RtpStream) -> None:
        self.stream = stream

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.stream.on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable after the caller left: not our problem, the RTP timeout ends the call.
        log.debug("rtp_socket_error", port=self.stream.local_port, error=str(exc))


class _RtcpProtocol(asyncio.DatagramProtocol):
    def __init__(self, stream: RtpStream) -> None:
        self.stream = stream

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.stream.on_rtcp_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("rtcp_socket_error", port=self.stream.local_port + 1, error=str(exc))


class RtpStream:
    """One call's media: socket, :class:`RtpSession`, outgoing play queue, callbacks into the call."""

    def __init__(self, engine: RtpEngine, session: RtpSession, law: g711.Law, rtp_timeout: float) -> None:
        self.engine = engine
        self.session = session
        now = engine.now()
        self.rtcp = RtcpSession(session, now=now, ntp_offset=time.time() - now,
                                min_interval=engine.rtcp_interval)
        self.rtcp_due = self.rtcp.next_due
        """Copy of ``rtcp.next_due``: the clock reads it for every stream every period, so one lookup."""
        self.rtcp_transport: asyncio.DatagramTransport | None = None
        self.law: g711.Law = law
        self.rtp_timeout = rtp_timeout
        self.local_port = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.sending = True
        self.receiving = True
        self._queue: collections.deque[bytes] = collections.deque()
        self._inbox: collections.deque[tuple[bytes, tuple[str, int], float]] = collections.deque()
        self._silence = g711.silence(FRAME, law)
        self.on_audio: Callable[[bytes], None] | None = None
        """Called with each received frame decoded to 16-bit PCM."""
        self.on_digit: Callable[[str, str], None] | None = None
        """Called with (digit, source) for RFC 4733 events."""
        self.on_play_done: Callable[[], None] | None = None
        self.on_timeout: Callable[[], None] | None = None
        self.started_at = 0.0
        self._timed_out = False
        self.phase = 0
        """The send slot of the shared clock this stream's frames leave in (see the module docstring)."""

    def set_law(self, law: g711.Law) -> None:
        """A re-INVITE switched between PCMU and PCMA."""
        self.law = law
        self._silence = g711.silence(FRAME, law)
        self._queue.clear()

    # --- playback --------------------------------------------------------------------------------------
    def play(self, ulaw: bytes) -> None:
        """Queue µ-law audio (transcoded for A-law calls); ``on_play_done`` fires when it has been sent."""
        data = ulaw if self.law == "PCMU" else g711.ulaw_to_alaw(ulaw)
        rest = len(data) % FRAME
        if rest:
            data += self._silence[: FRAME - rest]
        mv = memoryview(data)
        self._queue.extend(bytes(mv[i:i + FRAME]) for i in range(0, len(data), FRAME))

    def stop_playback(self) -> None:
        self._queue.clear()

    @property
    def playing(self) -> bool:
        return bool(self._queue)

    # --- clock -----------------------------------------------------------------------------------------
    def tick(self, now: float) -> bool:
        """Send one frame; True if a packet went out. Called by the engine's shared clock."""
        finished = False
        if self._queue:
            frame = self._queue.popleft()
            finished = not self._queue
        else:
            frame = self._silence
        sent = False
        if self.sending and self.transport is not None:
            self.transport.sendto(self.session.build(frame), self.session.destination)
            sent = True
        else:
            self.session.skip()
        if finished and self.on_play_done is not None:
            self.on_play_done()
        return sent

    def check_timeout(self, now: float) -> None:
        if self._timed_out or not self.receiving:
            return
        last = self.session.last_received or self.started_at
        if now - last > self.rtp_timeout:
            self._timed_out = True
            RTP_TIMEOUTS.inc()
            if self.on_timeout is not None:
                self.on_timeout()

    def update_remote(self, remote: Address, payload_type: int, telephone_event_pt: int | None,
                      remote_rtcp: Address | None = None) -> None:
        """A new offer/answer (re-INVITE): RTP and RTCP destinations, codec; latching restarts if moved."""
        moved = remote != self.session.remote
        self.session.update_remote(remote, payload_type, telephone_event_pt)
        self.rtcp.update_remote(remote_rtcp, moved)

    def summary(self) -> dict[str, int | float | None]:
        """Per-call statistics: RTP (:meth:`RtpSession.summary`) plus the peer's RTCP view of our stream."""
        return {**self.session.summary(), **self.rtcp.summary()}

    # --- RTCP --------------------------------------------------------------------------------------------
    def send_rtcp(self, now: float, bye: bool = False) -> None:
        """The report due now (the clock calls this when ``rtcp_due`` has passed), or the final BYE."""
        dest = self.rtcp.destination
        if dest is None or self.rtcp_transport is None:
            self.rtcp.postpone(now)  # no peer address yet (offer in the 200, answer still to come)
        else:
            self.rtcp_transport.sendto(self.rtcp.report(now, bye=bye), dest)
            RTCP_SENT.inc()
        self.rtcp_due = self.rtcp.next_due

    def on_rtcp_datagram(self, data: bytes, source: tuple[str, int]) -> None:
        ev = self.rtcp.receive(data, source, self.engine.now())
        if ev is None:
            RTCP_RECEIVED.inc()
        else:
            RTP_DROPPED.labels(ev.reason).inc()

    def hold_changed(self) -> None:
        """After a direction change: restart the inactivity clock (no timeout while on hold)."""
        self.started_at = self.engine.now()
        self.session.last_received = None

    # --- receive ---------------------------------------------------------------------------------------
    def on_datagram(self, data: bytes, source: tuple[str, int]) -> None:
        """Queue a datagram; it is classified and handed on in this stream's clock slot, after the sends.

        RTP from many callers arrives in bursts (a gateway or a load generator sends all its streams'
        packets in one pass): handling each packet on arrival made one burst of decoding, recording and
        in-band DTMF analysis hold the event loop for milliseconds and the next send slot waited for it.
        Deferred to the slots, the same work is spread evenly over the 20 ms. A digit or a recorded frame
        is at most one packet period later, which neither the IVR nor the recording can tell.
        """
        if not self.session.source_allowed(source):
            # A stranger flooding the port: dropped here, before the bounded inbox, so it cannot push the
            # caller's packets out of it (nor cost a decode each).
            _DROPPED_SOURCE.inc()
            return
        inbox = self._inbox
        if len(inbox) >= MAX_INBOX:
            inbox.popleft()  # a flood from the caller: keep the newest audio, count the loss
            _DROPPED_OVERFLOW.inc()
        inbox.append((data, source, self.engine.now()))

    def drain(self) -> None:
        """Handle the datagrams received since this stream's last slot (called by the shared clock)."""
        inbox = self._inbox
        while inbox:
            data, source, arrived = inbox.popleft()
            self._receive(data, source, arrived)

    def _receive(self, data: bytes, source: tuple[str, int], arrived: float) -> None:
        ev = self.session.receive(data, source, arrived)
        if ev is None:
            return
        if isinstance(ev, PacketDropped):
            RTP_DROPPED.labels(ev.reason).inc()
            return
        self.engine.received_unreported += 1  # into RTP_RECEIVED once per clock tick, not per packet
        if isinstance(ev, AudioReceived):
            if self.on_audio is not None and self.receiving:
                self.on_audio(g711.decode(ev.payload, self.law))
        elif isinstance(ev, DigitReceived) and self.on_digit is not None:
            self.on_digit(ev.digit, "rfc4733")

    def close(self) -> None:
        self.engine.remove(self)


class RtpEngine:
    def __init__(self, host: str = "127.0.0.1", port_min: int = 20000, port_max: int = 20999,
                 lateness_window: int = 0, rtcp_interval: float = MIN_INTERVAL) -> None:
        self.host = host
        self.port_min = port_min + (port_min & 1)
        self.port_max = port_max
        self.rtcp_interval = rtcp_interval
        # RTP ports whose RTCP port (+1) is inside the range too.
        self._free: collections.deque[int] = collections.deque(range(self.port_min, port_max, 2))
        self.streams: list[RtpStream] = []
        self._slots: list[list[RtpStream]] = [[] for _ in range(PHASES)]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._t0 = 0.0
        self._n = 0
        self.skipped_ticks = 0
        self.ticks = 0
        self.received_unreported = 0
        self.lateness: collections.deque[float] = collections.deque(maxlen=lateness_window or 1)
        self._record_lateness = lateness_window > 0

    def now(self) -> float:
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self._n = 0
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for s in list(self.streams):
            self.remove(s)

    @property
    def free_ports(self) -> int:
        return len(self._free)

    def _bind(self, port: int) -> socket.socket | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        return sock

    async def open(self, session: RtpSession, law: g711.Law, rtp_timeout: float) -> RtpStream:
        """A stream on a free even port of the range (its RTCP on the next one); raises
        :class:`NoPortError`."""
        loop = asyncio.get_running_loop()
        stream = RtpStream(self, session, law, rtp_timeout)
        for _ in range(len(self._free)):
            port = self._free.popleft()
            rtp_sock = self._bind(port)
            rtcp_sock = self._bind(port + 1) if rtp_sock is not None else None
            if rtp_sock is None or rtcp_sock is None:
                if rtp_sock is not None:
                    rtp_sock.close()
                self._free.append(port)  # one of the pair is taken by someone else: try it again later
                continue
            transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(stream), sock=rtp_sock)
            rtcp_transport, _ = await loop.create_datagram_endpoint(lambda: _RtcpProtocol(stream),
                                                                    sock=rtcp_sock)
            stream.transport = transport
            stream.rtcp_transport = rtcp_transport
            stream.local_port = port
            stream.started_at = loop.time()
            slot = min(range(PHASES), key=lambda k: len(self._slots[k]))
            stream.phase = slot
            self._slots[slot].append(stream)
            self.streams.append(stream)
            RTP_STREAMS.set(len(self.streams))
            return stream
        raise NoPortError(f"no free RTP port in {self.port_min}-{self.port_max}")

    def remove(self, stream: RtpStream) -> None:
        if stream in self.streams:
            self.streams.remove(stream)
            self._slots[stream.phase].remove(stream)
            RTP_STREAMS.set(len(self.streams))
        if stream.rtcp_transport is not None:
            try:
                stream.send_rtcp(self.now(), bye=True)  # RFC 3550 §6.3.7: last report + BYE
            except Exception:  # the ports must be released whatever happened to the stream
                log.exception("rtcp_bye_failed", port=stream.local_port)
            stream.rtcp_transport.close()
            stream.rtcp_transport = None
        if stream.transport is not None:
            stream.transport.close()
            stream.transport = None
            self._free.append(stream.local_port)

    # --- the shared clock ------------------------------------------------------------------------------
    def _schedule(self) -> None:
        assert self._loop is not None
        self._n += 1
        self._handle = self._loop.call_at(self._t0 + self._n * TICK, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        loop_time = self._loop.time
        due = self._t0 + self._n * TICK
        behind = int((loop_time() - due) / TICK)
        if behind > MAX_CATCH_UP * PHASES:
            # Overloaded: jump the schedule forward (whole periods, so every stream keeps its slot) rather
            # than bursting many frames per stream.
            skip = behind - behind % PHASES
            self._n += skip
            self.skipped_ticks += skip // PHASES
            RTP_SKIPPED_TICKS.inc(skip // PHASES)
            due = self._t0 + self._n * TICK
            behind = int((loop_time() - due) / TICK)
        for k in range(behind + 1):
            self._run_once(self._n + k, due + k * TICK, loop_time)
        self._n += behind
        self._schedule()

    def _run_once(self, n: int, due: float, loop_time: Callable[[], float]) -> None:
        """Send the frames of send slot ``n % PHASES``; ``n`` counts slots since the clock started."""
        self.ticks += 1
        if self.received_unreported:
            RTP_RECEIVED.inc(self.received_unreported)
            self.received_unreported = 0
        slot = self._slots[n % PHASES]
        if not slot:
            return
        check = (n // PHASES) % TIMEOUT_CHECK_PERIODS == 0
        now = loop_time()
        sent = 0
        for stream in list(slot):
            try:
                sent += stream.tick(now)
                if check:
                    stream.check_timeout(now)
            except Exception:  # one broken stream must not stop the clock for the others
                log.exception("rtp_stream_error", port=stream.local_port)
                self.remove(stream)
        late = loop_time() - due
        if late < 0:
            late = 0.0
        RTP_TICK_LATENESS.observe(late)
        if self._record_lateness:
            self.lateness.append(late)
        if sent:
            RTP_SENT.inc(sent)
        # Every frame of the slot is out: now what these streams received (see RtpStream.on_datagram), and
        # the RTCP reports that are due (a few per slot: one per stream every ~5 s).
        for stream in list(slot):
            if stream._inbox or stream.rtcp_due <= now:
                try:
                    if stream._inbox:
                        stream.drain()
                    if stream.rtcp_due <= now:
                        stream.send_rtcp(now)
                except Exception:  # as above: the other calls keep their media
                    log.exception("rtp_stream_error", port=stream.local_port)
                    self.remove(stream)

    def lateness_percentile(self, q: float) -> float:
        if not self.lateness:
            return 0.0
        return float(np.percentile(np.fromiter(self.lateness, float), q))
