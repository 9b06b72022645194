"""OCS rating: costs, grants cut to the balance, longest-prefix tariffs, duplicates (pure code)."""

from __future__ import annotations

import pytest

from charging.ocs.rating import Decision, SessionLedger, TariffRule, TariffTable, digits_of, rate
from secondnum.diameter import constants as dc

R = TariffRule("420", price_per_minute=600, increment_seconds=60, connection_fee=100)


@pytest.mark.parametrize(
    ("rule", "seconds", "cost"),
    [
        (R, 0, 0),
        (R, 1, 700),
        (R, 60, 700),
        (R, 61, 1300),
        (TariffRule("", 600, 1, 0), 61, 610),
        (TariffRule("", 1000, 30, 0), 31, 1000),
        (TariffRule("", 7, 1, 0), 1, 1),  # rounding up, never down
    ],
)
def test_cost(rule: TariffRule, seconds: int, cost: int) -> None:
    assert rule.cost(seconds) == cost


@pytest.mark.parametrize(
    ("number", "prefix"),
    [
        ("tel:+420273333444", "4202"),
        ("sip:+420733000000@ims.example;user=phone", "420"),
        ("42073", "420"),
        ("tel:+44123", ""),
        ("4", ""),
    ],
)
def test_longest_prefix(number: str, prefix: str) -> None:
    table = TariffTable([TariffRule("", 1), TariffRule("420", 2), TariffRule("4202", 3), TariffRule("42", 4)])
    rule = table.match(number)
    assert rule is not None and rule.prefix == prefix


def test_no_default_no_match() -> None:
    assert TariffTable([TariffRule("420", 1)]).match("tel:+1555") is None


def test_digits_of() -> None:
    assert digits_of(" tel:+420-27-333;phone-context=x") == "42027333"


def run(
    s: SessionLedger,
    rtype: int,
    num: int,
    balance: int,
    reserved: int,
    requested: int | None = 300,
    used: int | None = None,
    rule: TariffRule | None = R,
) -> tuple[Decision, int]:
    return rate(
        s,
        request_type=rtype,
        request_number=num,
        requested=requested,
        used=used,
        rule=rule,
        balance=balance,
        reserved_total=reserved,
        max_grant=300,
    )


CASES = [
    # balance, requested -> result, granted, final
    (100_000, 300, dc.SUCCESS, 300, False),
    (100_000, 10, dc.SUCCESS, 60, False),  # at least one increment
    (1_900, 300, dc.SUCCESS, 180, True),  # 100 + 3*600 = 1900: cut, final unit
    (699, 300, dc.CREDIT_LIMIT_REACHED, None, False),  # cannot cover fee + first increment
    (700, 300, dc.SUCCESS, 60, True),
]


@pytest.mark.parametrize(("balance", "requested", "rc", "granted", "final"), CASES)
def test_initial_grant(balance: int, requested: int, rc: int, granted: int | None, final: bool) -> None:
    s = SessionLedger("s", "1")
    d, delta = run(s, dc.CC_REQUEST_INITIAL, 0, balance, 0, requested)
    assert (d.result_code, d.granted_seconds, d.final_unit) == (rc, granted, final)
    assert delta == 0


def test_full_session_commits_used_and_releases_reservation() -> None:
    s = SessionLedger("s", "1")
    d, delta = run(s, dc.CC_REQUEST_INITIAL, 0, 10_000, 0)
    assert d.granted_seconds == 300 and s.reserved == R.cost(300) == 3100
    d, delta = run(s, dc.CC_REQUEST_UPDATE, 1, 10_000, s.reserved, used=90)
    assert delta == -R.cost(90) == -1300
    assert s.reserved == R.cost(390) - R.cost(90)
    d, delta = run(s, dc.CC_REQUEST_TERMINATION, 2, 10_000 - 1300, s.reserved, requested=None, used=30)
    assert d.result_code == dc.SUCCESS and s.closed and s.reserved == 0
    assert delta == -(R.cost(120) - R.cost(90))
    assert s.charged == R.cost(120)


def test_other_sessions_reservations_limit_the_grant() -> None:
    s = SessionLedger("s", "1")
    d, _ = run(s, dc.CC_REQUEST_INITIAL, 0, 3_000, 2_300)
    assert d.granted_seconds == 60 and d.final_unit


def test_duplicate_request_number_replays_answer_without_charging() -> None:
    s = SessionLedger("s", "1")
    run(s, dc.CC_REQUEST_INITIAL, 0, 10_000, 0)
    run(s, dc.CC_REQUEST_UPDATE, 1, 10_000, s.reserved, used=60)
    charged = s.charged
    d, delta = run(s, dc.CC_REQUEST_UPDATE, 1, 10_000, s.reserved, used=60)
    assert d.duplicate and delta == 0 and s.charged == charged


def test_no_tariff_is_rating_failed() -> None:
    d, _ = run(SessionLedger("s", "1"), dc.CC_REQUEST_INITIAL, 0, 10_000, 0, rule=None)
    assert d.result_code == dc.RATING_FAILED


def test_closed_session_rejects_new_requests() -> None:
    s = SessionLedger("s", "1")
    run(s, dc.CC_REQUEST_INITIAL, 0, 10_000, 0)
    run(s, dc.CC_REQUEST_TERMINATION, 1, 10_000, s.reserved, requested=None, used=1)
    d, _ = run(s, dc.CC_REQUEST_UPDATE, 2, 10_000, 0, used=1)
    assert d.result_code == dc.UNKNOWN_SESSION_ID
