"""Admission control for new calls: concurrency limits, event-loop lag, draining, noisy sources.

RFC 3261 §21.5.4 and RFC 7339 context: an overloaded SIP server answers new requests ``503 Service
Unavailable`` with ``Retry-After`` rather than degrading the calls it already carries. The AS and the media
server ask :class:`AdmissionControl` before creating a call; calls in progress are never refused by it.

The guard itself is sans-IO (fed counts and ``now``); :class:`LoopLagMonitor` is the small asyncio piece that
measures how late the event loop wakes up, which is the most honest overload signal for a single-threaded
server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import itertools
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge

REFUSED = Counter("secondnum_admission_refused_total", "New calls refused by admission control",
                  ["component", "reason"])
LOOP_LAG = Gauge("secondnum_event_loop_lag_seconds", "Smoothed event-loop wake-up lag", ["component"])


class Refusal(enum.Enum):
    DRAINING = "draining"
    CONCURRENT_CALLS = "concurrent_calls"
    PENDING_TRANSACTIONS = "pending_transactions"
    LOOP_LAG = "loop_lag"
    SETUP_BACKLOG = "setup_backlog"
    SETUP_DELAY = "setup_delay"
    SOURCE_RATE = "source_rate"


@dataclasses.dataclass(frozen=True)
class OverloadSettings:
    """Limits shared by every component that admits calls (``[as.overload]``, ``[media.overload]``)."""

    max_calls: int = 10_000
    max_pending_transactions: int = 20_000
    max_loop_lag: float = 0.25
    """Seconds of smoothed event-loop lag above which new calls are refused."""
    max_setups: int = 10_000
    """Calls still in their set-up stage (before their first outgoing leg) above which new calls are
    refused. By Little's law this stage's backlog is rate x set-up delay: it grows when what set-up waits
    for (the OCS, the database) slows down, even while the event loop itself is idle."""
    max_setup_delay: float = 1.0
    """Seconds: new calls are refused while the median age of the calls in their set-up stage exceeds this
    (and at least ``MIN_SETUPS_FOR_DELAY`` are in it) — the same signal as ``max_setups`` without having to
    size it for a call rate; one slow CCA among fast ones does not move the median."""
    retry_after: int = 5
    """Seconds, for the Retry-After header of 503 answers."""
    source_rate: float = 50.0
    """New requests per second one untrusted source may send before it is throttled (token bucket)."""
    source_burst: float = 100.0

    def __post_init__(self) -> None:
        if self.max_setup_delay <= 0:
            raise ValueError("max_setup_delay must be > 0")
        if self.max_calls < 1 or self.max_pending_transactions < 1 or self.max_setups < 1:
            raise ValueError("max_calls, max_pending_transactions and max_setups must be at least 1")
        if self.retry_after < 0 or self.max_loop_lag <= 0:
            raise ValueError("retry_after must be >= 0 and max_loop_lag > 0")


MIN_SETUPS_FOR_DELAY = 5


def median_age(starts: Mapping[Any, float], now: float) -> float:
    """Median age of ``starts`` (insertion-ordered start times, oldest first), 0.0 below
    :data:`MIN_SETUPS_FOR_DELAY` entries: a lone slow set-up at low load is not overload."""
    n = len(starts)
    if n < MIN_SETUPS_FOR_DELAY:
        return 0.0
    middle = next(itertools.islice(starts.values(), n // 2, None))
    return now - middle


class AdmissionControl:
    """Decides whether a new call may start; counts live calls."""

    def __init__(self, settings: OverloadSettings, component: str) -> None:
        self.settings = settings
        self.component = component
        self.active_calls = 0
        self.pending_transactions = 0
        self.setups_in_progress = 0
        self.setup_delay = 0.0
        """Median age of the calls in their set-up stage (0 when fewer than MIN_SETUPS_FOR_DELAY)."""
        self.loop_lag = 0.0
        self.draining = False

    def check(self) -> Refusal | None:
        """``None`` when a new call may start, else the reason it may not (and the refusal is counted)."""
        reason: Refusal | None = None
        if self.draining:
            reason = Refusal.DRAINING
        elif self.active_calls >= self.settings.max_calls:
            reason = Refusal.CONCURRENT_CALLS
        elif self.pending_transactions >= self.settings.max_pending_transactions:
            reason = Refusal.PENDING_TRANSACTIONS
        elif self.loop_lag > self.settings.max_loop_lag:
            reason = Refusal.LOOP_LAG
        elif self.setups_in_progress >= self.settings.max_setups:
            reason = Refusal.SETUP_BACKLOG
        elif self.setup_delay > self.settings.max_setup_delay:
            reason = Refusal.SETUP_DELAY
        if reason is not None:
            REFUSED.labels(self.component, reason.value).inc()
        return reason

    def call_started(self) -> None:
        self.active_calls += 1

    def call_ended(self) -> None:
        self.active_calls = max(0, self.active_calls - 1)


class SourceRateLimiter:
    """A token bucket per source address, for requests from outside the trusted peers (scanners)."""

    def __init__(self, rate: float, burst: float, max_sources: int = 10_000) -> None:
        self.rate, self.burst, self.max_sources = rate, burst, max_sources
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, source: str, now: float) -> bool:
        tokens, last = self._buckets.get(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        if source not in self._buckets and len(self._buckets) >= self.max_sources:
            self._evict(now)
        self._buckets[source] = (tokens, now)
        return allowed

    def _evict(self, now: float) -> None:
        # Drop buckets that have refilled completely: they carry no state worth keeping.
        full_after = self.burst / self.rate if self.rate > 0 else float("inf")
        stale = [s for s, (_, last) in self._buckets.items() if now - last >= full_after]
        for s in stale or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[s]


class LoopLagMonitor:
    """Measures event-loop lag by sleeping ``interval`` and timing the wake-up; feeds AdmissionControl."""

    def __init__(self, admission: AdmissionControl, interval: float = 0.05, smoothing: float = 0.2) -> None:
        self.admission = admission
        self.interval = interval
        self.smoothing = smoothing
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        gauge = LOOP_LAG.labels(self.admission.component)
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.interval)
            lag = max(0.0, time.monotonic() - start - self.interval)
            smoothed = (1 - self.smoothing) * self.admission.loop_lag + self.smoothing * lag
            self.admission.loop_lag = smoothed
            gauge.set(smoothed)
