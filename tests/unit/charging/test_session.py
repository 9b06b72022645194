"""Sans-IO credit-control session (RFC 4006 §7) and the CCR/CCA it exchanges (TS 32.299)."""

from __future__ import annotations

import pytest

from charging.messages import Cca, ChargingRequest, RoleOfNode, build_cca, parse_cca, parse_ccr
from charging.session import CcState, CreditControlSession, TimerAction, Verdict
from secondnum.diameter import codec
from secondnum.diameter import constants as dc

REQ = ChargingRequest(
    "42027777100",
    RoleOfNode.ORIGINATING,
    "tel:+42027777100",
    "tel:+420273333444",
    "icid-1",
    requested_party="tel:+420273333444",
)
V = dc.VENDOR_3GPP


def new(**kw: object) -> CreditControlSession:
    return CreditControlSession("as;1;1", REQ, **kw)  # type: ignore[arg-type]


def grant(
    seconds: int | None,
    rc: int = 2001,
    validity: int | None = None,
    fua: int | None = None,
    ccfh: int | None = None,
    mscc_rc: int | None = None,
) -> Cca:
    return Cca(rc, "ocs.example", seconds, validity, fua, ccfh, mscc_rc)


def test_ccr_initial_contents() -> None:
    s = new()
    msg = codec.decode(codec.encode(s.initial(0.0)))
    avps = msg.avps
    assert avps[0].code == dc.AVP_SESSION_ID
    assert msg.header.application_id == dc.APP_RO and msg.header.command_flags & dc.FLAG_PROXIABLE
    assert codec.value(avps, dc.AVP_SERVICE_CONTEXT_ID) == "32260@3gpp.org"
    assert codec.value(avps, dc.AVP_CC_REQUEST_TYPE) == 1
    assert codec.value(avps, dc.AVP_CC_REQUEST_NUMBER) == 0
    sub = codec.first(avps, dc.AVP_SUBSCRIPTION_ID)
    assert sub is not None
    assert codec.value(sub.value, dc.AVP_SUBSCRIPTION_ID_TYPE) == dc.SUBSCRIPTION_ID_E164
    assert codec.value(sub.value, dc.AVP_SUBSCRIPTION_ID_DATA) == "42027777100"
    si = codec.first(avps, dc.AVP_3GPP_SERVICE_INFORMATION, V)
    assert si is not None
    ims = codec.first(si.value, dc.AVP_3GPP_IMS_INFORMATION, V)
    assert ims is not None
    assert codec.value(ims.value, dc.AVP_3GPP_NODE_FUNCTIONALITY, V) == dc.NODE_FUNCTIONALITY_AS
    assert codec.value(ims.value, dc.AVP_3GPP_ROLE_OF_NODE, V) == 0
    assert codec.value(ims.value, dc.AVP_3GPP_IMS_CHARGING_IDENTIFIER, V) == "icid-1"
    assert codec.value(ims.value, dc.AVP_3GPP_REQUESTED_PARTY_ADDRESS, V) == "tel:+420273333444"
    et = codec.first(ims.value, dc.AVP_3GPP_EVENT_TYPE, V)
    assert et is not None
    assert codec.value(et.value, dc.AVP_3GPP_SIP_METHOD, V) == "INVITE"
    parsed = parse_ccr(msg)
    assert (parsed.requested_seconds, parsed.used_seconds, parsed.called) == (300, None, "tel:+420273333444")


def test_full_lifecycle_reports_used_units() -> None:
    s = new(quota_request_seconds=8)
    s.initial(0.0)
    assert s.on_answer(grant(60), 0.1) is Verdict.GRANTED
    assert s.server_host == "ocs.example" and s.state is CcState.OPEN
    assert s.next_timer() is None  # not answered: nothing consumed
    s.answered(10.0)
    assert s.next_timer() == pytest.approx(62.0)
    assert s.handle_timer(61.0) is TimerAction.NONE
    assert s.handle_timer(62.0) is TimerAction.UPDATE
    upd = parse_ccr(s.update(62.0))
    assert (upd.request_type, upd.request_number, upd.used_seconds, upd.requested_seconds) == (2, 1, 52, 300)
    assert s.on_answer(grant(60), 62.2) is Verdict.GRANTED
    assert s.next_timer() == pytest.approx(62.0 + 60 - 8)
    term = parse_ccr(s.termination(70.5))
    assert (term.request_type, term.request_number, term.used_seconds) == (3, 2, 9)
    assert s.total_used == 61  # ceil(60.5)
    assert s.on_answer(grant(None), 70.6) is Verdict.TERMINATED and s.state is CcState.CLOSED


def test_validity_time_triggers_update_before_answer() -> None:
    s = new()
    s.initial(0.0)
    s.on_answer(grant(300, validity=30), 1.0)
    assert s.next_timer() == pytest.approx(31.0)
    assert s.handle_timer(31.0) is TimerAction.UPDATE
    assert parse_ccr(s.update(31.0)).used_seconds == 0


def test_final_unit_releases_at_exhaustion_without_update() -> None:
    s = new()
    s.initial(0.0)
    s.on_answer(grant(120, validity=30, fua=dc.FUA_TERMINATE), 0.0)
    s.answered(5.0)
    assert s.final_unit
    assert s.next_timer() == pytest.approx(125.0)
    assert s.handle_timer(125.0) is TimerAction.RELEASE


def test_small_grant_not_updated_immediately() -> None:
    s = new(quota_request_seconds=8)
    s.initial(0.0)
    s.on_answer(grant(6), 0.0)
    s.answered(0.0)
    assert s.next_timer() == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("cca", "verdict", "state"),
    [
        (grant(None, rc=dc.CREDIT_LIMIT_REACHED), Verdict.REFUSED, CcState.CLOSED),
        (grant(None, rc=dc.END_USER_SERVICE_DENIED), Verdict.REFUSED, CcState.CLOSED),
        (grant(None, rc=dc.USER_UNKNOWN), Verdict.REFUSED, CcState.CLOSED),
        (grant(None, rc=dc.RATING_FAILED), Verdict.REFUSED, CcState.CLOSED),
        (grant(None, rc=dc.UNABLE_TO_DELIVER), Verdict.FAILOVER, CcState.PENDING_I),
        (grant(None, rc=dc.TOO_BUSY), Verdict.FAILOVER, CcState.PENDING_I),
        (grant(None, rc=2001, mscc_rc=dc.CREDIT_LIMIT_REACHED), Verdict.REFUSED, CcState.OPEN),
    ],
)
def test_initial_answers(cca: Cca, verdict: Verdict, state: CcState) -> None:
    s = new()
    s.initial(0.0)
    assert s.on_answer(cca, 0.0) is verdict
    assert s.state is state


def test_server_ccfh_overrides_configured() -> None:
    s = new(ccfh=dc.CCFH_TERMINATE)
    s.initial(0.0)
    s.on_answer(grant(60, ccfh=dc.CCFH_CONTINUE), 0.0)
    assert s.ccfh == dc.CCFH_CONTINUE


def test_continue_unmetered_has_no_timers() -> None:
    s = new()
    s.initial(0.0)
    s.continue_unmetered()
    s.answered(1.0)
    assert s.unmetered and s.next_timer() is None


def test_explicit_used_seconds_on_termination() -> None:
    s = new()
    s.initial(0.0)
    s.on_answer(grant(60), 0.0)
    assert parse_ccr(s.termination(5.0, used_seconds=42)).used_seconds == 42


def test_cca_round_trip_through_builder() -> None:
    s = new()
    req = codec.decode(codec.encode(s.initial(0.0)))
    ccr = parse_ccr(req)
    ans = build_cca(req, ccr, 2001, granted_seconds=120, validity_seconds=600, final_unit=True)
    cca = parse_cca(codec.decode(codec.encode(ans)))
    assert (cca.result_code, cca.granted_seconds, cca.validity_seconds, cca.final_unit_action) == (
        2001,
        120,
        600,
        dc.FUA_TERMINATE,
    )
    refused = parse_cca(codec.decode(codec.encode(build_cca(req, ccr, 2001, mscc_result=4012))))
    assert refused.effective_result == 4012 and refused.granted_seconds is None
