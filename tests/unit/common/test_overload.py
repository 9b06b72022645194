"""Admission control: each limit refuses new calls and recovers by itself."""

from __future__ import annotations

import asyncio
import time

import pytest

from secondnum.config import ConfigError, build
from secondnum.overload import (
    AdmissionControl,
    LoopLagMonitor,
    OverloadSettings,
    Refusal,
    SourceRateLimiter,
    median_age,
)


def test_concurrent_call_limit_and_recovery() -> None:
    ac = AdmissionControl(OverloadSettings(max_calls=2), "t")
    for _ in range(2):
        assert ac.check() is None
        ac.call_started()
    assert ac.check() is Refusal.CONCURRENT_CALLS
    ac.call_ended()
    assert ac.check() is None


@pytest.mark.parametrize(
    ("attr", "value", "reason"),
    [
        ("draining", True, Refusal.DRAINING),
        ("pending_transactions", 5, Refusal.PENDING_TRANSACTIONS),
        ("loop_lag", 0.5, Refusal.LOOP_LAG),
        ("setups_in_progress", 7, Refusal.SETUP_BACKLOG),
        ("setup_delay", 1.5, Refusal.SETUP_DELAY),
    ],
)
def test_each_signal_refuses(attr: str, value: object, reason: Refusal) -> None:
    ac = AdmissionControl(OverloadSettings(max_pending_transactions=5, max_loop_lag=0.25, max_setups=7,
                                           max_setup_delay=1.0), "t")
    assert ac.check() is None
    setattr(ac, attr, value)
    assert ac.check() is reason


@pytest.mark.parametrize(
    ("ages", "expected"),
    [
        ([], 0.0),
        ([9.0, 0.1, 0.1, 0.1], 0.0),  # below 5 set-ups: a lone slow CCA at low load is not overload
        ([9.0, 0.3, 0.2, 0.1, 0.0], 0.2),  # one slow among fast ones does not move the median
        ([3.0, 2.5, 2.0, 1.5, 0.1, 0.0], 1.5),  # most set-ups slow: the OCS or database is behind
    ],
)
def test_median_age_of_setups(ages: list[float], expected: float) -> None:
    now = 100.0
    starts = {i: now - age for i, age in enumerate(ages)}  # oldest first, as calls arrive
    assert median_age(starts, now) == pytest.approx(expected)


def test_settings_validated() -> None:
    with pytest.raises(ConfigError, match="max_calls"):
        build(OverloadSettings, {"max_calls": 0}, "as.overload")


def test_token_bucket_per_source() -> None:
    rl = SourceRateLimiter(rate=10.0, burst=3.0)
    assert [rl.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert rl.allow("b", 0.0) is True  # another source is unaffected
    assert rl.allow("a", 0.1) is True  # one token back after 100 ms at 10/s
    assert rl.allow("a", 0.1) is False


def test_token_bucket_memory_is_bounded() -> None:
    rl = SourceRateLimiter(rate=1.0, burst=1.0, max_sources=100)
    for i in range(1000):
        rl.allow(f"10.0.{i // 256}.{i % 256}", float(i))
    assert len(rl._buckets) <= 100


async def test_loop_lag_is_measured() -> None:
    ac = AdmissionControl(OverloadSettings(max_loop_lag=0.05), "t")
    mon = LoopLagMonitor(ac, interval=0.01, smoothing=0.5)
    mon.start()
    await asyncio.sleep(0.05)
    time.sleep(0.4)  # noqa: ASYNC251 - block the loop, as a CPU-bound burst would
    refused = None
    deadline = time.monotonic() + 1.0
    while refused is None and time.monotonic() < deadline:
        await asyncio.sleep(0)
        refused = ac.check()
    assert refused is Refusal.LOOP_LAG
    for _ in range(50):  # recovers once the loop is responsive again
        await asyncio.sleep(0.02)
        if ac.check() is None:
            break
    assert ac.check() is None
    await mon.stop()
