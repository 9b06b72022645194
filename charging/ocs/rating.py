"""Pure rating and reservation logic of the built-in OCS (RFC 4006 §5.1.2 reservation, §5.2-§5.5).

Money is integer milli-units of the currency (no floats). A tariff has a per-minute price, a billing
increment (seconds are rounded up to it) and a connection fee charged once per session. A session
reserves the price of its grant on CCR-I/U and commits the used units on CCR-U/T. A grant is cut
to what the unreserved balance covers, with a Final-Unit-Indication TERMINATE (RFC 4006 §8.34)
when it had to be cut. Used units are charged as reported: a client overrunning its grant can
take the balance below zero (ours caps its report at the final units).

Reservation expiry (RFC 4006 §13 Tcc): a session with no CCR for Tcc is expired by the ledger's
sweeper (`expire`): its reservation goes back to the balance and the session is closed. The one late
report that may still come is charged as reported, because the service was delivered (`rate`): a late
CCR-T is answered 2001, a late CCR-U 5002 DIAMETER_UNKNOWN_SESSION_ID (the session is over, and a
command-level failure ends it at the client, RFC 4006 §5.5, so no CCR-T follows). Any later CCR: 5002.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from secondnum.diameter import constants as dc


@dataclass(frozen=True)
class TariffRule:
    prefix: str  # E.164 digits, "" = default
    price_per_minute: int  # milli-units
    increment_seconds: int = 60
    connection_fee: int = 0

    def cost(self, seconds: int) -> int:
        """Price of `seconds` used, connection fee included (0 seconds: nothing charged)."""
        if seconds <= 0:
            return 0
        billed = math.ceil(seconds / self.increment_seconds) * self.increment_seconds
        return self.connection_fee + math.ceil(self.price_per_minute * billed / 60)


class TariffTable:
    """Longest-prefix match over cached rules, in Python (no database regex)."""

    def __init__(self, rules: Iterable[TariffRule] = ()) -> None:
        self._rules: dict[str, TariffRule] = {}
        self._lengths: list[int] = []
        self.replace(rules)

    def replace(self, rules: Iterable[TariffRule]) -> None:
        self._rules = {r.prefix: r for r in rules}
        self._lengths = sorted({len(p) for p in self._rules}, reverse=True)

    def match(self, number: str) -> TariffRule | None:
        digits = digits_of(number)
        for n in self._lengths:
            if n <= len(digits):
                rule = self._rules.get(digits[:n])
                if rule is not None:
                    return rule
        return None

    def rules(self) -> list[TariffRule]:
        return sorted(self._rules.values(), key=lambda r: r.prefix)


def digits_of(uri: str) -> str:
    """E.164 digits of `tel:+420...`, `sip:+420...@host;user=phone` or bare digits."""
    s = uri.strip()
    for scheme in ("tel:", "sip:", "sips:"):
        if s.lower().startswith(scheme):
            s = s[len(scheme) :]
            break
    s = s.split("@", 1)[0].split(";", 1)[0]
    return "".join(c for c in s if c.isdigit())


@dataclass
class SessionLedger:
    """What the OCS keeps per Ro session (mirrors `models.RatedRecord`)."""

    session_id: str
    e164: str
    called: str = ""
    prefix: str = ""
    used_seconds: int = 0
    charged: int = 0
    reserved: int = 0
    reserved_seconds: int = 0
    last_request_number: int = -1
    last_answer: tuple[int, int | None, bool] | None = None  # (result, granted, final)
    closed: bool = False
    events: list[dict[str, int]] = field(default_factory=list)
    expires_at: float | None = None  # wall clock (epoch s): last CCR + Tcc; set by the ledger
    expired: bool = False  # closed by expiry, a late final report not received yet


@dataclass(frozen=True)
class Decision:
    result_code: int
    granted_seconds: int | None = None
    final_unit: bool = False
    duplicate: bool = False
    late: bool = False  # a report for a session already expired


def _grant(
    rule: TariffRule, s: SessionLedger, available: int, requested: int, max_grant: int
) -> tuple[int, int, bool]:
    """Largest grant (in increments) whose extra cost over the used units fits `available`."""
    want = max(rule.increment_seconds, min(requested or max_grant, max_grant))
    base = rule.cost(s.used_seconds)
    inc = rule.increment_seconds
    # the whole request, rounded to increments, if affordable
    steps = math.ceil(want / inc)
    while steps > 0:
        seconds = steps * inc
        price = rule.cost(s.used_seconds + seconds) - base
        if price <= available:
            return seconds, price, seconds < want
        steps -= 1
    return 0, 0, True


def rate(
    s: SessionLedger,
    *,
    request_type: int,
    request_number: int,
    requested: int | None,
    used: int | None,
    rule: TariffRule | None,
    balance: int,
    reserved_total: int,
    max_grant: int,
) -> tuple[Decision, int]:
    """Apply one CCR to session `s`; returns the decision and the balance change (≤ 0).

    `reserved_total` is the account's reservations including this session's current one.
    Mutates `s` (reservation, used, charged, last answer).
    """
    if request_number == s.last_request_number and s.last_answer is not None:
        rc, granted, final = s.last_answer
        return Decision(rc, granted, final, duplicate=True), 0
    reporting = request_type in (dc.CC_REQUEST_UPDATE, dc.CC_REQUEST_TERMINATION)
    if s.closed:
        if s.expired and reporting and rule is not None:
            return _late_report(s, request_type, request_number, used, rule)
        return Decision(dc.UNKNOWN_SESSION_ID), 0
    if rule is None:
        return Decision(dc.RATING_FAILED), 0
    s.prefix = rule.prefix
    delta = _charge(s, used, rule) if reporting else 0
    reserved_total -= s.reserved
    s.reserved = 0
    s.reserved_seconds = 0
    if request_type == dc.CC_REQUEST_TERMINATION:
        s.closed = True
        decision = Decision(dc.SUCCESS)
    else:
        available = balance + delta - reserved_total
        seconds, price, cut = _grant(rule, s, available, requested or 0, max_grant)
        if seconds == 0:
            decision = Decision(dc.CREDIT_LIMIT_REACHED)
            # RFC 4006 §5.5: a failed CCA-I ends the session; after a CCA-U the client sends CCR-T.
            s.closed = request_type == dc.CC_REQUEST_INITIAL
        else:
            s.reserved, s.reserved_seconds = price, seconds
            decision = Decision(dc.SUCCESS, seconds, cut)
    s.last_request_number = request_number
    s.last_answer = (decision.result_code, decision.granted_seconds, decision.final_unit)
    s.events.append({"type": request_type, "number": request_number, "used": used or 0, "charged": -delta})
    return decision, delta


def _charge(s: SessionLedger, used: int | None, rule: TariffRule) -> int:
    """Commit `used` seconds; returns the balance change (<= 0)."""
    if not used:
        return 0
    before = s.charged
    s.used_seconds += used
    s.charged = rule.cost(s.used_seconds)
    return -(s.charged - before)


def _late_report(
    s: SessionLedger, request_type: int, request_number: int, used: int | None, rule: TariffRule
) -> tuple[Decision, int]:
    """CCR-U/T for an expired session: charge the reported units once (see the module docstring)."""
    delta = _charge(s, used, rule)
    s.expired = False  # the books of this session are closed now
    rc = dc.SUCCESS if request_type == dc.CC_REQUEST_TERMINATION else dc.UNKNOWN_SESSION_ID
    s.last_request_number = request_number
    s.last_answer = (rc, None, False)
    s.events.append({"type": request_type, "number": request_number, "used": used or 0, "charged": -delta})
    return Decision(rc, late=True), delta


def expire(s: SessionLedger) -> int:
    """Close an open session whose Tcc ran out; returns the reservation to give back (milli-units)."""
    released = s.reserved
    s.reserved = 0
    s.reserved_seconds = 0
    s.closed = True
    s.expired = True
    return released
