"""The follow-me state machine (sans-IO): sequential or simultaneous targets, each with its no-reply timer.

Fed events (a leg's provisional/final response, the time, the caller's CANCEL), it returns actions for the
call controller: start a leg, CANCEL a leg, connect the answered leg, divert to voicemail, or fail the
call. Semantics follow RFC 3261 §16.7 (forking: first 2xx wins, the others are CANCELled; a 6xx ends the
search) and TS 24.604 §4.5.2.6 (CFNR when a target rang and did not answer within its timer, CFB on busy,
CFNRc when it could not be reached).
"""

from __future__ import annotations

import dataclasses
import enum

from appserver.decision import ForkOrder, Target
from appserver.diversion import DiversionCause


class LegState(enum.Enum):
    CALLING = "calling"
    RINGING = "ringing"
    ANSWERED = "answered"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclasses.dataclass(slots=True)
class Leg:
    id: int
    target: Target
    started: float
    deadline: float
    state: LegState = LegState.CALLING
    outcome: DiversionCause | None = None
    status: int | None = None

    @property
    def active(self) -> bool:
        return self.state in (LegState.CALLING, LegState.RINGING)


@dataclasses.dataclass(frozen=True, slots=True)
class StartLeg:
    leg: int
    target: Target


@dataclasses.dataclass(frozen=True, slots=True)
class CancelLeg:
    """CANCEL the leg's INVITE (RFC 3261 §9.1); ``status`` is the Reason cause to give (RFC 3326)."""

    leg: int
    status: int


@dataclasses.dataclass(frozen=True, slots=True)
class Connect:
    leg: int


@dataclasses.dataclass(frozen=True, slots=True)
class ReleaseLate:
    """A 2xx arrived on a leg we no longer want (lost the race, §16.7 step 5): ACK and BYE it."""

    leg: int


@dataclasses.dataclass(frozen=True, slots=True)
class Divert:
    """No target answered: go to voicemail for ``cause``."""

    cause: DiversionCause


@dataclasses.dataclass(frozen=True, slots=True)
class Fail:
    """No target answered and no voicemail: answer the caller ``status``."""

    status: int
    cause: DiversionCause


Action = StartLeg | CancelLeg | Connect | ReleaseLate | Divert | Fail

BUSY_STATUSES = frozenset({486, 600, 603})
GLOBAL_FAILURE = 600


class Forwarder:
    """Follow-me over ``targets``; ``then_voicemail`` decides between :class:`Divert` and :class:`Fail`."""

    def __init__(self, targets: tuple[Target, ...], order: ForkOrder, then_voicemail: bool) -> None:
        self.targets = targets
        self.order = order
        self.then_voicemail = then_voicemail
        self.legs: dict[int, Leg] = {}
        self._next = 0
        self.done = False
        self.answered: int | None = None

    # --- inputs --------------------------------------------------------------------------------------
    def start(self, now: float) -> list[Action]:
        if not self.targets:
            return self._finish()
        if self.order is ForkOrder.SIMULTANEOUS:
            return [self._start_next(now) for _ in self.targets]
        return [self._start_next(now)]

    def on_provisional(self, leg_id: int, status: int, now: float) -> list[Action]:
        leg = self.legs.get(leg_id)
        if leg is not None and leg.state is LegState.CALLING and status in (180, 183):
            leg.state = LegState.RINGING
        return []

    def on_answer(self, leg_id: int, now: float) -> list[Action]:
        leg = self.legs.get(leg_id)
        if leg is None:
            return []
        if self.done or not leg.active:
            # Includes a 2xx crossing our CANCEL (RFC 3261 §9.1): the leg is answered, so release it.
            leg.state = LegState.ANSWERED
            return [ReleaseLate(leg_id)]
        leg.state = LegState.ANSWERED
        self.done = True
        self.answered = leg_id
        actions: list[Action] = [Connect(leg_id)]
        for other in self.legs.values():
            if other.id != leg_id and other.active:
                other.state = LegState.CANCELLED
                # RFC 3326 / RFC 3261 §16.7 step 10 practice: "call completed elsewhere" = SIP cause 200.
                actions.append(CancelLeg(other.id, 200))
        return actions

    def on_failure(self, leg_id: int, status: int, now: float) -> list[Action]:
        """A final non-2xx response, or a transaction timeout reported as 408."""
        leg = self.legs.get(leg_id)
        if leg is None or not leg.active:
            return []
        rang = leg.state is LegState.RINGING
        leg.state = LegState.FAILED
        leg.status = status
        if status in BUSY_STATUSES:
            leg.outcome = DiversionCause.BUSY
        elif status == 408 and rang:
            leg.outcome = DiversionCause.NO_REPLY
        else:
            leg.outcome = DiversionCause.UNREACHABLE
        if status >= GLOBAL_FAILURE:
            return self._stop_all(now)
        return self._advance(now)

    def on_timer(self, now: float) -> list[Action]:
        """Fire every no-reply timer due at ``now``."""
        actions: list[Action] = []
        expired = [leg for leg in self.legs.values() if leg.active and leg.deadline <= now]
        for leg in expired:
            rang = leg.state is LegState.RINGING
            leg.outcome = DiversionCause.NO_REPLY if rang else DiversionCause.UNREACHABLE
            leg.state = LegState.CANCELLED
            leg.status = 408
            actions.append(CancelLeg(leg.id, 408))
        if expired:
            actions += self._advance(now)
        return actions

    def on_caller_cancel(self) -> list[Action]:
        """The caller gave up (CANCEL, RFC 3261 §9.2): cancel every leg, no voicemail."""
        self.done = True
        actions: list[Action] = []
        for leg in self.legs.values():
            if leg.active:
                leg.state = LegState.CANCELLED
                actions.append(CancelLeg(leg.id, 487))
        return actions

    def next_deadline(self) -> float | None:
        deadlines = [leg.deadline for leg in self.legs.values() if leg.active]
        return min(deadlines) if deadlines and not self.done else None

    # --- internals -----------------------------------------------------------------------------------
    def _start_next(self, now: float) -> StartLeg:
        target = self.targets[self._next]
        leg = Leg(self._next, target, now, now + target.timeout)
        self.legs[leg.id] = leg
        self._next += 1
        return StartLeg(leg.id, target)

    def _advance(self, now: float) -> list[Action]:
        if self.done:
            return []
        if self.order is ForkOrder.SEQUENTIAL and self._next < len(self.targets):
            if not any(leg.active for leg in self.legs.values()):
                return [self._start_next(now)]
            return []
        if any(leg.active for leg in self.legs.values()):
            return []
        return self._finish()

    def _stop_all(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for leg in self.legs.values():
            if leg.active:
                leg.state = LegState.CANCELLED
                actions.append(CancelLeg(leg.id, 600))
        self._next = len(self.targets)
        return actions + self._finish()

    def outcome(self) -> DiversionCause:
        """The diversion cause of the whole attempt: no reply beats busy beats unreachable."""
        outcomes = {leg.outcome for leg in self.legs.values()}
        for cause in (DiversionCause.NO_REPLY, DiversionCause.BUSY):
            if cause in outcomes:
                return cause
        return DiversionCause.UNREACHABLE

    def _finish(self) -> list[Action]:
        self.done = True
        cause = self.outcome()
        if self.then_voicemail:
            return [Divert(cause)]
        return [Fail(cause.cause, cause)]
