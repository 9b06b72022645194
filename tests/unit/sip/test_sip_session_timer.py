"""RFC 4028 session timers, sans-IO (secondnum.sip.session_timer): fields, B2BUA negotiation, the timer."""

from __future__ import annotations

import pytest

from secondnum.sip import SipRequest, SipResponse, parse_message
from secondnum.sip.session_timer import (
    NONE,
    Due,
    LegTimer,
    Mode,
    Negotiated,
    SessionExpires,
    SessionTimer,
    TimerConfig,
    after_relayed_refresh,
    allows,
    delta_seconds,
    expiry_margin,
    negotiate,
    request_headers,
    retry_after_422,
    supports_timer,
    too_small,
    uac_leg,
)

CFG = TimerConfig(session_expires=1800, min_se=90)
OFF = TimerConfig(session_expires=0, min_se=90)


def invite(*lines: str) -> SipRequest:
    raw = ("INVITE tel:+42027777100 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
           "From: <tel:+42075553333>;tag=a\r\nTo: <tel:+42027777100>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
           + "".join(f"{line}\r\n" for line in lines) + "Content-Length: 0\r\n\r\n").encode()
    msg = parse_message(raw)
    assert isinstance(msg, SipRequest)
    return msg


def response(*lines: str, status: int = 200) -> SipResponse:
    raw = (f"SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <tel:+1>;tag=a\r\n"
           "To: <tel:+2>;tag=b\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n" + "".join(f"{x}\r\n" for x in lines)
           + "Content-Length: 0\r\n\r\n").encode()
    msg = parse_message(raw)
    assert isinstance(msg, SipResponse)
    return msg


# --- §4 / §5: the header fields ----------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    ("1800", SessionExpires(1800)),
    ("1800;refresher=uac", SessionExpires(1800, "uac")),
    (" 90 ; refresher = UAS ", SessionExpires(90, "uas")),
    ("1800;refresher=proxy", SessionExpires(1800)),  # unknown value: as if absent
    ("1800;x=1;refresher=uas", SessionExpires(1800, "uas")),
    ("", None), ("abc", None), ("-5", None), ("1e3", None), ("99999999999", None), (None, None),
])
def test_session_expires_parse(value: str | None, expected: SessionExpires | None) -> None:
    assert SessionExpires.parse(value) == expected


@pytest.mark.parametrize(("value", "expected"), [("90", 90), ("120;x", 120), ("", None), ("x", None)])
def test_min_se_delta(value: str, expected: int | None) -> None:
    assert delta_seconds(value) == expected


def test_session_expires_str_round_trip() -> None:
    assert str(SessionExpires(1800, "uac")) == "1800;refresher=uac"
    assert str(SessionExpires(1800)) == "1800"


@pytest.mark.parametrize(("lines", "expected"), [
    ((), False), (("Supported: timer",), True), (("Require: timer",), True),
    (("Supported: 100rel, timer",), True), (("Supported: timers",), False),
])
def test_supports_timer(lines: tuple[str, ...], expected: bool) -> None:
    assert supports_timer(invite(*lines)) is expected


def test_allows_update() -> None:
    assert allows(invite("Allow: INVITE, ACK, UPDATE"), "UPDATE")
    assert allows(invite("Allow: INVITE,ACK", "Allow: update"), "UPDATE")
    assert not allows(invite("Allow: INVITE, ACK, BYE"), "UPDATE")
    assert not allows(invite(), "UPDATE")


# --- §9: the UAS refuses an interval below its minimum -----------------------------------------------
@pytest.mark.parametrize(("lines", "expected"), [
    ((), False), (("Session-Expires: 89",), True), (("Session-Expires: 90",), False),
    (("Supported: timer", "Session-Expires: 30;refresher=uac"), True), (("Session-Expires: junk",), False),
])
def test_too_small_gets_422(lines: tuple[str, ...], expected: bool) -> None:
    assert too_small(invite(*lines), CFG) is expected


# --- §7.1: the timer fields of an INVITE the B2BUA originates ----------------------------------------
@pytest.mark.parametrize(("lines", "config", "expected"), [
    # The caller asked: its request continues (refresher kept), Min-SE the larger of both.
    (("Supported: timer", "Session-Expires: 600;refresher=uac", "Min-SE: 120"), CFG,
     [("Session-Expires", "600;refresher=uac"), ("Min-SE", "120")]),
    (("Supported: timer", "Session-Expires: 600"), CFG, [("Session-Expires", "600"), ("Min-SE", "90")]),
    # An interval below our Min-SE (only possible with a lower caller Min-SE) is raised to it.
    (("Session-Expires: 100", "Min-SE: 100"), TimerConfig(1800, 150),
     [("Session-Expires", "150"), ("Min-SE", "150")]),
    # The caller asked nothing: the AS asks for its own interval, refresher left to the far side.
    ((), CFG, [("Session-Expires", "1800"), ("Min-SE", "90")]),
    (("Min-SE: 2000",), CFG, [("Session-Expires", "2000"), ("Min-SE", "2000")]),
    # Timers off and the caller asked nothing: nothing.
    ((), OFF, []),
    (("Supported: timer",), OFF, []),
])
def test_request_headers(lines: tuple[str, ...], config: TimerConfig,
                         expected: list[tuple[str, str]]) -> None:
    assert request_headers(invite(*lines), config) == expected


# --- §7.3: 422 and the retry ---------------------------------------------------------------------------
@pytest.mark.parametrize(("req", "resp", "expected"), [
    (("Session-Expires: 100;refresher=uac",), ("Min-SE: 300",),
     [("Session-Expires", "300;refresher=uac"), ("Min-SE", "300")]),
    (("Session-Expires: 100",), ("Min-SE: 100",), None),  # would not change anything: no retry loop
    (("Session-Expires: 100",), (), None),  # a 422 without Min-SE
    ((), ("Min-SE: 300",), None),  # we did not ask for a timer
])
def test_retry_after_422(req: tuple[str, ...], resp: tuple[str, ...],
                         expected: list[tuple[str, str]] | None) -> None:
    assert retry_after_422(invite(*req), response(*resp, status=422)) == expected


# --- §7.4 / §9: who refreshes each leg of the B2BUA ----------------------------------------------------
def leg(mode: Mode, interval: int) -> LegTimer:
    return LegTimer(mode, interval)


NEGOTIATION = [
    # (caller's INVITE, our far INVITE asked, far 2xx, config) -> Negotiated
    pytest.param(("Supported: timer", "Session-Expires: 1800"), "1800",
                 ("Session-Expires: 1800;refresher=uac",), CFG,
                 Negotiated([("Session-Expires", "1800;refresher=uac"), ("Require", "timer")],
                            leg(Mode.PEER, 1800), leg(Mode.RELAY, 1800)),
                 id="both-support-caller-refreshes-relayed"),
    pytest.param(("Supported: timer",), "1800", ("Session-Expires: 1200;refresher=uas", "Require: timer"),
                 CFG, Negotiated([("Session-Expires", "1200;refresher=uas")],
                                 leg(Mode.RELAY, 1200), leg(Mode.PEER, 1200)),
                 id="both-support-far-refreshes-relayed"),
    pytest.param(("Supported: timer",), "1800", ("Session-Expires: 1800",), CFG,
                 Negotiated([("Session-Expires", "1800;refresher=uac"), ("Require", "timer")],
                            leg(Mode.PEER, 1800), leg(Mode.RELAY, 1800)),
                 id="far-2xx-without-refresher-means-uac"),
    pytest.param(("Supported: timer", "Require: timer", "Session-Expires: 600"), "600", (), CFG,
                 Negotiated([("Session-Expires", "600;refresher=uac"), ("Require", "timer")],
                            leg(Mode.PEER, 600), leg(Mode.LOCAL, 600)),
                 id="far-without-timer-AS-refreshes-far-leg"),
    pytest.param(("Supported: timer", "Session-Expires: 600;refresher=uas"), "600;refresher=uas", (), CFG,
                 Negotiated([("Session-Expires", "600;refresher=uas")],
                            leg(Mode.LOCAL, 600), leg(Mode.LOCAL, 600)),
                 id="caller-wants-uas-refresher-far-without-timer"),
    pytest.param((), "1800", (), CFG, Negotiated([], leg(Mode.LOCAL, 1800), leg(Mode.LOCAL, 1800)),
                 id="nobody-supports-AS-refreshes-both"),
    pytest.param((), "1800", ("Session-Expires: 1800;refresher=uas", "Require: timer"), CFG,
                 Negotiated([], leg(Mode.LOCAL, 1800), leg(Mode.PEER, 1800)),
                 id="only-far-supports-far-refreshes"),
    pytest.param((), "1800", ("Session-Expires: 1800;refresher=uac", "Require: timer"), CFG,
                 Negotiated([], leg(Mode.LOCAL, 1800), leg(Mode.LOCAL, 1800)),
                 id="only-far-supports-AS-is-its-uac-refresher"),
    pytest.param(("Session-Expires: 900",), "900", (), CFG,
                 Negotiated([("Session-Expires", "900;refresher=uas")], leg(Mode.LOCAL, 900),
                            leg(Mode.LOCAL, 900)),
                 id="proxy-inserted-SE-caller-without-support-uas-refreshes"),
    pytest.param(("Supported: timer",), None, (), CFG,
                 Negotiated([("Session-Expires", "1800;refresher=uac"), ("Require", "timer")],
                            leg(Mode.PEER, 1800), None),
                 id="voicemail-leg-no-timer-request-caller-watched"),
    pytest.param((), None, (), OFF, NONE, id="timers-off-plain-call"),
    pytest.param(("Supported: timer",), None, (), OFF, NONE, id="timers-off-caller-only-supports"),
    pytest.param(("Supported: timer", "Session-Expires: 300"), "300", (), OFF,
                 Negotiated([("Session-Expires", "300;refresher=uac"), ("Require", "timer")],
                            leg(Mode.PEER, 300), leg(Mode.LOCAL, 300)),
                 id="timers-off-caller-asks-anyway"),
]


@pytest.mark.parametrize(("caller", "asked", "far", "config", "expected"), NEGOTIATION)
def test_negotiate(caller: tuple[str, ...], asked: str | None, far: tuple[str, ...], config: TimerConfig,
                   expected: Negotiated) -> None:
    far_request = invite("Supported: timer", f"Session-Expires: {asked}") if asked is not None else None
    assert negotiate(invite(*caller), far_request, response(*far), config) == expected


# --- §10: the timer of one dialog ----------------------------------------------------------------------
@pytest.mark.parametrize(("interval", "margin"), [(1800, 32), (90, 30), (4, 4 / 3), (96, 32)])
def test_expiry_margin(interval: int, margin: float) -> None:
    assert expiry_margin(interval) == pytest.approx(margin)


def test_peer_leg_expires_without_refresh() -> None:
    t = SessionTimer(Mode.PEER, 1800, now=1000.0)
    assert t.deadline == 1000 + 1800 - 32
    assert t.poll(2767.9) is None
    t.refreshed(1900.0)  # a refresh restarts the interval (§10)
    assert t.poll(2767.9) is None and t.deadline == 1900 + 1768
    assert t.poll(1900 + 1768) is Due.EXPIRED


def test_local_leg_refreshes_at_half_interval_once_in_flight() -> None:
    t = SessionTimer(Mode.LOCAL, 600, now=0.0)
    assert t.deadline == 300
    assert t.poll(299) is None
    assert t.poll(300) is Due.REFRESH
    assert t.deadline is None and t.poll(1000) is None  # no second refresh while one is in flight
    t.refreshed(301.0, 900)  # the 2xx may change the interval
    assert t.deadline == 301 + 450


def test_local_leg_retries_after_a_failed_refresh() -> None:
    t = SessionTimer(Mode.LOCAL, 600, now=0.0)
    assert t.poll(300) is Due.REFRESH
    t.refresh_failed(301.0)  # e.g. 491: try again soon, well before the peer's expiry
    assert t.deadline == pytest.approx(306.0)
    short = SessionTimer(Mode.LOCAL, 4, now=0.0)
    assert short.poll(2) is Due.REFRESH
    short.refresh_failed(2.0)
    assert short.deadline == pytest.approx(3.0)


def test_relay_leg_has_no_deadline() -> None:
    t = SessionTimer(Mode.RELAY, 90, now=0.0)
    assert t.deadline is None and t.poll(10_000) is None


@pytest.mark.parametrize("lines", [
    ("Session-Expires: garbage", "Supported: timer"),
    ("Session-Expires: ;refresher=uac", "Min-SE: x"),
    ("Supported: ,,,", "Require: timer;;"),
    ("Session-Expires: 99999999999999999999",),
])
def test_bad_fields_never_raise(lines: tuple[str, ...]) -> None:
    """Malformed timer fields count as absent (no crash, no timer from garbage)."""
    req = invite(*lines)
    too_small(req, CFG)
    request_headers(req, CFG)
    got = negotiate(req, req, response(*lines), CFG)
    assert got.caller is None or got.caller.interval >= CFG.min_se
    assert retry_after_422(req, response(*lines, status=422)) is None


@pytest.mark.parametrize(("asked", "far", "expected"), [
    (None, ("Session-Expires: 600;refresher=uas",), None),  # we asked for nothing: no timer
    ("600", (), LegTimer(Mode.LOCAL, 600)),  # far side without timers: we refresh, as a liveness check
    ("600", ("Session-Expires: 900;refresher=uas",), LegTimer(Mode.PEER, 900)),  # §7.4: it refreshes
    ("600", ("Session-Expires: 900;refresher=uac",), LegTimer(Mode.LOCAL, 900)),
    ("600", ("Session-Expires: 900",), LegTimer(Mode.LOCAL, 900)),  # no refresher in a 2xx: the UAC
])
def test_uac_leg_of_our_own(asked: str | None, far: tuple[str, ...], expected: LegTimer | None) -> None:
    """§7.4: the leg the B2BUA originates for itself (flow C's outgoing call)."""
    request = invite("Supported: timer", f"Session-Expires: {asked}") if asked else invite()
    assert uac_leg(request, response(*far)) == expected


P, R, L = Mode.PEER, Mode.RELAY, Mode.LOCAL


@pytest.mark.parametrize(("modes", "requester", "se", "expected"), [
    ((P, R), 0, "1800;refresher=uac", (P, R)),  # the caller keeps refreshing
    ((P, R), 0, "1800;refresher=uas", (R, P)),  # §9: the answering far side takes over
    ((P, R), 1, "1800;refresher=uac", (R, P)),  # the far side sent a refresh and keeps the role
    ((R, P), 1, "1800;refresher=uas", (P, R)),  # ... or hands it to the caller
    ((P, R), 0, "1800", (P, R)),  # no refresher in the 2xx: unchanged
    ((P, R), 0, None, (P, R)),
    ((P, L), 0, "1800;refresher=uas", (P, L)),  # a leg the AS refreshes itself stays so
    ((L, P), 1, "1800;refresher=uac", (L, P)),
])
def test_after_relayed_refresh(modes: tuple[Mode, Mode], requester: int, se: str | None,
                               expected: tuple[Mode, Mode]) -> None:
    """§7.4/§9: the refresher the 2xx of a refresh relayed end to end names (relative to that transaction)."""
    assert after_relayed_refresh(modes, requester, SessionExpires.parse(se)) == expected
