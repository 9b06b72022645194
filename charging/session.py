"""Sans-IO credit-control client session (RFC 4006 §7, "client, session based"; TS 32.299 §6.3).

`CreditControlSession` builds CCRs, digests CCAs and says when the next CCR-Update is due; it is
fed the current time and holds no socket, loop or database. The async `RoClient` drives it.

Time accounting: used time runs from `answered()`; each CCR-U/T reports the seconds since the
last report (Used-Service-Unit CC-Time, rounded up), and a grant counts from the moment of the
report it answers. A new CCR-U is due `quota_request_seconds` before the granted time runs out, or
when Validity-Time expires (RFC 4006 §8.33). With Final-Unit-Indication TERMINATE (§8.34) no more
quota is asked for: when the final units are used the service is released.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from diameter.message import Message
from diameter.message.avp import Avp

from charging.messages import Cca, CcrFields, ChargingRequest, build_ccr, service_information
from secondnum.diameter import constants as dc


class CcState(enum.Enum):
    """RFC 4006 §7 client states (PendingE/PendingB omitted: no event or buffered mode here)."""

    IDLE = "Idle"
    PENDING_I = "PendingI"
    OPEN = "Open"
    PENDING_U = "PendingU"
    PENDING_T = "PendingT"
    CLOSED = "Closed"


class Verdict(enum.Enum):
    GRANTED = "granted"  # CCA-I/U 2001 with units
    REFUSED = "refused"  # definitive refusal (4010, 4012, 5030, 5031, other 4xxx/5xxx)
    FAILOVER = "failover"  # 3002/3004 (RFC 4006 §5.7: try an alternate server)
    TERMINATED = "terminated"  # CCA-T received


class TimerAction(enum.Enum):
    NONE = "none"
    UPDATE = "update"  # quota about to run out or Validity-Time expired
    RELEASE = "release"  # final units consumed (FUA TERMINATE)


_FAILOVER_CODES = frozenset({dc.UNABLE_TO_DELIVER, dc.TOO_BUSY})


@dataclass
class CreditControlSession:
    session_id: str
    request: ChargingRequest
    requested_seconds: int = 300
    quota_request_seconds: float = 8.0
    ccfh: int = dc.CCFH_TERMINATE
    state: CcState = CcState.IDLE
    request_number: int = -1
    server_host: str | None = None  # Destination-Host after CCA-I (RFC 4006 §5.1)
    answered_at: float | None = None
    reported_until: float | None = None
    granted_seconds: int | None = None
    grant_base: float | None = None
    validity_deadline: float | None = None
    final_unit: bool = False
    unmetered: bool = False
    last_result: int | None = None
    total_used: int = 0
    usage_limit: int | None = None  # with final units: total seconds that may ever be reported
    _info: Avp | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ requests

    def _ccr(self, request_type: int, requested: int | None, used: int | None, cause: int | None) -> Message:
        self.request_number += 1
        if self._info is None:
            self._info = service_information(self.request)
        fields = CcrFields(self.session_id, request_type, self.request_number, requested, used, cause)
        return build_ccr(fields, self._info, self.request.subscription_e164)

    def initial(self, now: float) -> Message:
        """CCR-Initial (RFC 4006 §5.2) reserving `requested_seconds`."""
        assert self.state is CcState.IDLE
        self.state = CcState.PENDING_I
        return self._ccr(dc.CC_REQUEST_INITIAL, self.requested_seconds, None, None)

    def _take_used(self, now: float, final: bool = False) -> int:
        """Seconds to report now: whole seconds on U, rounded up on T, so that the sum is exact."""
        if self.answered_at is None:
            return 0
        elapsed = max(0.0, now - self.answered_at)
        target = math.ceil(elapsed - 1e-6) if final else int(elapsed)
        if self.usage_limit is not None:
            # RFC 4006 §5.6.1: with final units the service stops at the granted amount; what the
            # release took beyond it (rounding, signalling latency) is not charged.
            target = min(target, self.usage_limit)
        used = max(0, target - self.total_used)
        self.reported_until = now
        self.total_used += used
        return used

    def update(self, now: float) -> Message:
        """CCR-Update (RFC 4006 §5.3) reporting used units and asking for more (unless final units)."""
        assert self.state is CcState.OPEN
        self.state = CcState.PENDING_U
        used = self._take_used(now)
        self.grant_base = now if self.answered_at is not None else None
        requested = None if self.final_unit else self.requested_seconds
        return self._ccr(dc.CC_REQUEST_UPDATE, requested, used, None)

    def termination(
        self, now: float, used_seconds: int | None = None, cause: int = dc.TERMINATION_CAUSE_LOGOUT
    ) -> Message:
        """CCR-Termination (RFC 4006 §5.5) with the units not reported yet."""
        self.state = CcState.PENDING_T
        if used_seconds is None:
            used = self._take_used(now, final=True)
        else:
            used = max(0, used_seconds - self.total_used)
            self.total_used += used
        return self._ccr(dc.CC_REQUEST_TERMINATION, None, used, cause)

    def recorded_termination(self, used: int, cause: int) -> Message:
        """The CCR-T recorded before a restart, rebuilt as it was sent (RFC 4006 §5.7: a resend).

        Same CC-Request-Number (`request_number` is that of the CCR-T), units and cause.
        """
        self.state = CcState.PENDING_T
        self.request_number -= 1  # _ccr() numbers it again
        return self._ccr(dc.CC_REQUEST_TERMINATION, None, used, cause)

    def answered(self, now: float) -> None:
        """The call was answered: used time starts, and so does the granted time."""
        if self.answered_at is None:
            self.answered_at = now
            self.reported_until = now
            self.grant_base = now

    # ------------------------------------------------------------------ answers

    def on_answer(self, cca: Cca, now: float) -> Verdict:
        rc = cca.effective_result
        self.last_result = rc
        if cca.ccfh is not None:
            self.ccfh = cca.ccfh  # RFC 4006 §8.14: the server's value wins
        if self.state is CcState.PENDING_T:
            self.state = CcState.CLOSED
            return Verdict.TERMINATED
        if rc in _FAILOVER_CODES or cca.result_code in _FAILOVER_CODES:
            return Verdict.FAILOVER
        if rc != dc.SUCCESS:
            # A command-level error ends the session at the server (RFC 4006 §5.5); an MSCC-level one
            # leaves it open so that the CCR-T can report the units used.
            self.state = CcState.CLOSED if cca.result_code != dc.SUCCESS else CcState.OPEN
            return Verdict.REFUSED
        if self.state is CcState.PENDING_I and cca.origin_host:
            self.server_host = cca.origin_host
        self.state = CcState.OPEN
        self.granted_seconds = cca.granted_seconds
        self.final_unit = cca.final_unit_action is not None
        self.usage_limit = self.total_used + (cca.granted_seconds or 0) if self.final_unit else None
        self.validity_deadline = now + cca.validity_seconds if cca.validity_seconds else None
        if self.answered_at is not None:
            self.grant_base = self.grant_base if self.grant_base is not None else now
        return Verdict.GRANTED

    def continue_unmetered(self) -> None:
        """CCFH CONTINUE after an OCS failure (RFC 4006 §5.7): the service goes on without charging."""
        self.unmetered = True
        self.state = CcState.OPEN
        self.granted_seconds = None
        self.validity_deadline = None

    # ------------------------------------------------------------------ timers

    def next_timer(self) -> float | None:
        if self.state is not CcState.OPEN or self.unmetered:
            return None
        times: list[float] = []
        if self.validity_deadline is not None and not self.final_unit:
            times.append(self.validity_deadline)
        if self.grant_base is not None and self.granted_seconds is not None:
            exhaust = self.grant_base + self.granted_seconds
            if self.final_unit:
                times.append(exhaust)
            else:  # ahead of exhaustion, but never sooner than half-way through a small grant
                half = self.grant_base + self.granted_seconds / 2
                times.append(max(exhaust - self.quota_request_seconds, half))
        return min(times) if times else None

    def handle_timer(self, now: float) -> TimerAction:
        due = self.next_timer()
        if due is None or now < due:
            return TimerAction.NONE
        if self.final_unit:
            return TimerAction.RELEASE
        return TimerAction.UPDATE
