"""Follow-me state machine (RFC 3261 §16.7, TS 24.604 §4.5.2.6), driven with a fake clock."""

from __future__ import annotations

from appserver.decision import ForkOrder, Target
from appserver.diversion import DiversionCause
from appserver.forwarding import CancelLeg, Connect, Divert, Fail, Forwarder, ReleaseLate, StartLeg

T1, T2 = Target("tel:+1", 10.0), Target("tel:+2", 5.0)


def test_sequential_no_answer_then_next_then_voicemail() -> None:
    f = Forwarder((T1, T2), ForkOrder.SEQUENTIAL, then_voicemail=True)
    assert f.start(0.0) == [StartLeg(0, T1)]
    assert f.next_deadline() == 10.0
    assert f.on_provisional(0, 180, 1.0) == []
    assert f.on_timer(9.9) == []
    assert f.on_timer(10.0) == [CancelLeg(0, 408), StartLeg(1, T2)]
    assert f.next_deadline() == 15.0
    f.on_provisional(1, 180, 11.0)
    assert f.on_timer(15.0) == [CancelLeg(1, 408), Divert(DiversionCause.NO_REPLY)]
    assert f.next_deadline() is None


def test_sequential_busy_then_answer() -> None:
    f = Forwarder((T1, T2), ForkOrder.SEQUENTIAL, then_voicemail=True)
    f.start(0.0)
    assert f.on_failure(0, 486, 1.0) == [StartLeg(1, T2)]
    assert f.on_answer(1, 2.0) == [Connect(1)]
    assert f.answered == 1


def test_simultaneous_first_answer_cancels_losers() -> None:
    f = Forwarder((T1, T2), ForkOrder.SIMULTANEOUS, then_voicemail=True)
    assert f.start(0.0) == [StartLeg(0, T1), StartLeg(1, T2)]
    assert f.on_answer(1, 1.0) == [Connect(1), CancelLeg(0, 200)]
    # The loser's 2xx crossing our CANCEL must be released (RFC 3261 §9.1).
    assert f.on_answer(0, 1.1) == [ReleaseLate(0)]


def test_simultaneous_each_target_has_its_own_timer() -> None:
    f = Forwarder((T1, T2), ForkOrder.SIMULTANEOUS, then_voicemail=False)
    f.start(0.0)
    f.on_provisional(0, 180, 0.5)
    assert f.next_deadline() == 5.0
    assert f.on_timer(5.0) == [CancelLeg(1, 408)]  # never rang: unreachable
    assert f.on_timer(10.0) == [CancelLeg(0, 408), Fail(408, DiversionCause.NO_REPLY)]


def test_outcome_precedence() -> None:
    cases = [
        ([(486, False)], DiversionCause.BUSY),
        ([(480, False)], DiversionCause.UNREACHABLE),
        ([(408, True)], DiversionCause.NO_REPLY),
        ([(408, False)], DiversionCause.UNREACHABLE),  # Timer B without a ringing target
        ([(503, False), (486, False)], DiversionCause.BUSY),
        ([(486, False), (408, True)], DiversionCause.NO_REPLY),
    ]
    for failures, expected in cases:
        targets = tuple(Target(f"tel:+{i}", 9.0) for i in range(len(failures)))
        f = Forwarder(targets, ForkOrder.SIMULTANEOUS, then_voicemail=True)
        f.start(0.0)
        actions: list[object] = []
        for i, (status, rang) in enumerate(failures):
            if rang:
                f.on_provisional(i, 180, 0.1)
            actions = list(f.on_failure(i, status, 1.0))
        assert actions == [Divert(expected)], failures


def test_global_failure_stops_the_search() -> None:
    f = Forwarder((T1, T2), ForkOrder.SEQUENTIAL, then_voicemail=False)
    f.start(0.0)
    assert f.on_failure(0, 603, 1.0) == [Fail(486, DiversionCause.BUSY)]


def test_caller_cancel_cancels_every_leg_and_no_voicemail() -> None:
    f = Forwarder((T1, T2), ForkOrder.SIMULTANEOUS, then_voicemail=True)
    f.start(0.0)
    assert f.on_caller_cancel() == [CancelLeg(0, 487), CancelLeg(1, 487)]
    assert f.on_failure(0, 487, 1.0) == [] and f.on_timer(100.0) == []


def test_no_targets() -> None:
    assert Forwarder((), ForkOrder.SEQUENTIAL, True).start(0.0) == [Divert(DiversionCause.UNREACHABLE)]
    assert Forwarder((), ForkOrder.SEQUENTIAL, False).start(0.0) == [Fail(480, DiversionCause.UNREACHABLE)]


def test_events_for_unknown_or_finished_legs_are_ignored() -> None:
    f = Forwarder((T1,), ForkOrder.SEQUENTIAL, True)
    f.start(0.0)
    assert (
        f.on_failure(7, 486, 1.0) == [] and f.on_answer(7, 1.0) == [] and f.on_provisional(7, 180, 1.0) == []
    )
    assert f.on_failure(0, 480, 1.0) == [Divert(DiversionCause.UNREACHABLE)]
    assert f.on_failure(0, 480, 1.0) == []
