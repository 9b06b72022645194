"""Reservation expiry (RFC 4006 §13 Tcc) and late reports: pure rating and the in-memory ledger."""

from __future__ import annotations

import time

import pytest

from charging.messages import Ccr
from charging.ocs.ledger import MemoryLedger
from charging.ocs.rating import SessionLedger, TariffRule, TariffTable, expire, rate
from charging.settings import OcsSettings, RoClientSettings
from secondnum.config import ConfigError, load_section
from secondnum.diameter import constants as dc

RULE = TariffRule("", price_per_minute=600, increment_seconds=1)  # 10 milli-units per second
INI, U, T = dc.CC_REQUEST_INITIAL, dc.CC_REQUEST_UPDATE, dc.CC_REQUEST_TERMINATION


def apply(
    s: SessionLedger, rtype: int, number: int, used: int | None = None, balance: int = 10_000
) -> tuple[int, bool, bool, int]:
    d, delta = rate(
        s,
        request_type=rtype,
        request_number=number,
        requested=300 if rtype != T else None,
        used=used,
        rule=RULE,
        balance=balance,
        reserved_total=s.reserved,
        max_grant=300,
    )
    return d.result_code, d.late, d.duplicate, delta


def expired_session() -> SessionLedger:
    s = SessionLedger("sid", "420")
    assert apply(s, INI, 0)[0] == dc.SUCCESS and s.reserved == 3_000
    assert expire(s) == 3_000
    assert (s.reserved, s.closed, s.expired) == (0, True, True)
    return s


@pytest.mark.parametrize(("rtype", "rc"), [(T, dc.SUCCESS), (U, dc.UNKNOWN_SESSION_ID)])
def test_one_late_report_is_charged_then_the_session_is_unknown(rtype: int, rc: int) -> None:
    s = expired_session()
    assert apply(s, rtype, 1, used=30) == (rc, True, False, -300)
    assert (s.used_seconds, s.charged, s.reserved) == (30, 300, 0)
    assert apply(s, rtype, 1, used=30) == (rc, False, True, 0)  # a duplicate: same answer, no charge
    assert apply(s, T, 2, used=30) == (dc.UNKNOWN_SESSION_ID, False, False, 0)
    assert s.charged == 300


def test_ccr_i_for_an_expired_session_is_unknown() -> None:
    s = expired_session()
    assert apply(s, INI, 1)[0] == dc.UNKNOWN_SESSION_ID and s.reserved == 0


def test_closed_normally_is_not_a_late_report() -> None:
    s = SessionLedger("sid", "420")
    apply(s, INI, 0)
    assert apply(s, T, 1, used=3)[:2] == (dc.SUCCESS, False)
    assert apply(s, T, 2, used=3)[0] == dc.UNKNOWN_SESSION_ID and s.charged == 30


def _ccr(rtype: int, number: int) -> Ccr:
    return Ccr("sid", rtype, number, "420", 300 if rtype != T else None, None, "tel:+4201", None, 0, "as")


async def test_memory_ledger_expires_only_after_tcc_since_the_last_ccr() -> None:
    led = MemoryLedger()
    led.balances["420"] = 10_000
    tariffs = TariffTable([RULE])
    t0 = time.time()
    await led.apply(_ccr(INI, 0), tariffs, 300, session_timeout=100.0)
    assert led.reserved["420"] == 3_000
    assert await led.expire(t0 + 50, 100.0) == []
    led.sessions["sid"].expires_at = t0 + 40  # as if the CCR-I was 60 s ago ...
    await led.apply(_ccr(U, 1), tariffs, 300, session_timeout=100.0)  # ... and a CCR-U refreshes Tcc
    assert await led.expire(t0 + 90, 100.0) == []
    [ex] = await led.expire(t0 + 101, 100.0)
    assert (ex.session_id, ex.e164, ex.released) == ("sid", "420", 3_000)
    assert led.reserved["420"] == 0 and led.balances["420"] == 10_000
    assert await led.expire(t0 + 500, 100.0) == []  # once


def test_tcc_default_is_twice_the_validity_time() -> None:
    assert OcsSettings().tcc_seconds == 7200.0
    assert OcsSettings(validity_seconds=60).tcc_seconds == 120.0
    assert OcsSettings(session_timeout_seconds=30).tcc_seconds == 30.0
    ro = RoClientSettings()
    assert (ro.termination_retry_seconds, ro.termination_retry_initial_seconds) == (14400.0, 1.0)
    assert ro.termination_retry_max_interval_seconds == 300.0


@pytest.mark.parametrize(
    ("section", "doc"),
    [
        ("ocs", {"session_timeout_seconds": -1}),
        ("ocs", {"expiry_sweep_seconds": 0}),
        ("ro", {"termination_retry_seconds": -5}),
        ("ro", {"termination_retry_initial_seconds": 0}),
        ("ro", {"termination_retry_initial_seconds": 10, "termination_retry_max_interval_seconds": 5}),
    ],
)
def test_bad_retry_and_expiry_settings_are_reported(section: str, doc: dict[str, object]) -> None:
    cls = OcsSettings if section == "ocs" else RoClientSettings
    with pytest.raises(ConfigError):
        load_section(cls, {section: doc}, section)
