"""The shared RTP clock's send slots (media/rtp/engine.py): balanced, one frame per stream per period."""

from __future__ import annotations

import itertools

from media.rtp.engine import PHASES, TICK, RtpEngine
from media.rtp.session import RtpSession


async def _engine_with(n: int) -> RtpEngine:
    engine = RtpEngine(port_min=42000, port_max=42000 + 2 * n + 10)
    for i in range(n):
        session = RtpSession(0, 101, ("127.0.0.1", 9), ssrc=i + 1)
        await engine.open(session, "PCMU", rtp_timeout=60)
    return engine


async def test_streams_are_spread_evenly_over_the_slots() -> None:
    engine = await _engine_with(10)
    try:
        sizes = sorted(len([s for s in engine.streams if s.phase == k]) for k in range(PHASES))
        assert sizes[-1] - sizes[0] <= 1 and sum(sizes) == 10
        engine.remove(engine.streams[0])
        engine.remove(engine.streams[0])
        counts = [len([s for s in engine.streams if s.phase == k]) for k in range(PHASES)]
        newcomer = await engine.open(RtpSession(0, 101, ("127.0.0.1", 9), ssrc=99), "PCMU", 60)
        assert counts[newcomer.phase] == min(counts)  # a hole left by a call that ended is filled first
    finally:
        engine.stop()


async def test_each_slot_sends_only_its_streams_and_every_stream_once_per_period() -> None:
    engine = await _engine_with(9)
    try:
        clock = itertools.count()
        fake_time = lambda: next(clock) * 1e-6  # noqa: E731 - strictly increasing, far earlier than any due
        before = {id(s): s.session.packets_sent for s in engine.streams}
        for n in range(PHASES):
            sent_before = {id(s): s.session.packets_sent for s in engine.streams}
            engine._run_once(n, n * TICK, fake_time)
            moved = {id(s) for s in engine.streams if s.session.packets_sent != sent_before[id(s)]}
            assert moved == {id(s) for s in engine.streams if s.phase == n % PHASES}
        assert all(s.session.packets_sent - before[id(s)] == 1 for s in engine.streams)
    finally:
        engine.stop()
