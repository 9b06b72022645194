"""Media as the UAS of RFC 4028 session timers (media/session_timer.py, [media] min_se): the refresher it
answers (§9), the 422 floor, and refreshes without Session-Expires."""

from __future__ import annotations

import pytest

from media import session_timer
from media.settings import MediaSettings
from secondnum.sip import SipRequest, parse_message
from secondnum.sip.session_timer import LegTimer, Mode, TimerConfig

CFG = TimerConfig(session_expires=1800, min_se=90)


def request(*lines: str, method: str = "INVITE") -> SipRequest:
    raw = (f"{method} sip:vm-access@127.0.0.1:5070;mailbox=42027777100 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <tel:+42075553333>;tag=a\r\n"
           f"To: <sip:vm-access@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n"
           + "".join(f"{line}\r\n" for line in lines) + "Content-Length: 0\r\n\r\n").encode()
    msg = parse_message(raw)
    assert isinstance(msg, SipRequest)
    return msg


PEER = LegTimer(Mode.PEER, 600)
LOCAL = LegTimer(Mode.LOCAL, 600)

# (request lines, the dialog's timer before, expected 2xx Session-Expires, Require: timer?, expected timer)
ANSWERS = [
    # §9: a refresher named in the request is copied
    (("Session-Expires: 120;refresher=uas", "Supported: timer"), None, "120;refresher=uas", False,
     LegTimer(Mode.LOCAL, 120)),
    (("Session-Expires: 120;refresher=uac", "Supported: timer"), None, "120;refresher=uac", True,
     LegTimer(Mode.PEER, 120)),
    (("Session-Expires: 120; refresher = UAS", "Supported: timer"), None, "120;refresher=uas", False,
     LegTimer(Mode.LOCAL, 120)),
    # a proxy asked for uas on behalf of a UAC without timer support: still copied
    (("Session-Expires: 120;refresher=uas",), None, "120;refresher=uas", False, LegTimer(Mode.LOCAL, 120)),
    # no refresher: the UAS chooses, uac when the UAC supports timers (Supported or Require), else uas
    (("Session-Expires: 120", "Supported: timer"), None, "120;refresher=uac", True, LegTimer(Mode.PEER, 120)),
    (("Session-Expires: 120", "Require: timer"), None, "120;refresher=uac", True, LegTimer(Mode.PEER, 120)),
    (("Session-Expires: 120", "Supported: 100rel"), None, "120;refresher=uas", False,
     LegTimer(Mode.LOCAL, 120)),
    (("x: 300",), None, "300;refresher=uas", False, LegTimer(Mode.LOCAL, 300)),  # compact form
    # the interval is never below the request's Min-SE (§9)
    (("Session-Expires: 120", "Min-SE: 200", "Supported: timer"), None, "200;refresher=uac", True,
     LegTimer(Mode.PEER, 200)),
    # a refresh with Session-Expires renegotiates whatever there was before
    (("Session-Expires: 300;refresher=uas", "Supported: timer"), PEER, "300;refresher=uas", False,
     LegTimer(Mode.LOCAL, 300)),
    # refresh without Session-Expires from a peer that supports timers: the dialog keeps its timer (§9)
    (("Supported: timer",), PEER, "600;refresher=uac", True, LegTimer(Mode.PEER, 600)),
    (("Supported: timer",), LOCAL, "600;refresher=uac", True, LegTimer(Mode.PEER, 600)),
    (("Supported: timer", "Min-SE: 900"), PEER, "900;refresher=uac", True, LegTimer(Mode.PEER, 900)),
    # ... from a peer without timer support, or with no timer before: no timer
    ((), PEER, None, False, None),
    (("Supported: 100rel",), LOCAL, None, False, None),
    (("Supported: timer",), None, None, False, None),
    ((), None, None, False, None),
]


@pytest.mark.parametrize(("lines", "previous", "se", "require", "timer"), ANSWERS)
def test_answer(lines: tuple[str, ...], previous: LegTimer | None, se: str | None, require: bool,
                timer: LegTimer | None) -> None:
    for method in ("INVITE", "UPDATE"):
        got = session_timer.answer(request(*lines, method=method), CFG, previous)
        headers = dict(got.headers)
        assert headers.get("Session-Expires") == se
        assert (headers.get("Require") == "timer") is require
        assert got.timer == timer


TOO_SMALL = [
    ("Session-Expires: 89", 90, True),
    ("Session-Expires: 90", 90, False),
    ("Session-Expires: 119", 120, True),
    ("Session-Expires: 120;refresher=uas", 120, False),
    ("Supported: timer", 120, False),  # no Session-Expires: nothing to refuse
    ("Session-Expires: junk", 90, False),  # unparseable: ignored, not 422
]


@pytest.mark.parametrize(("line", "floor", "refused"), TOO_SMALL)
def test_422_uses_configured_min_se(line: str, floor: int, refused: bool) -> None:
    settings = MediaSettings(min_se=floor)
    assert settings.timer_config.min_se == floor
    assert session_timer.too_small(request(line), settings.timer_config) is refused


@pytest.mark.parametrize(("value", "ok"), [(90, True), (1800, True), (89, False), (0, False), (-5, False)])
def test_min_se_setting_validated(value: int, ok: bool) -> None:
    if ok:
        assert MediaSettings(min_se=value).min_se == value
    else:
        with pytest.raises(ValueError, match="min_se"):
            MediaSettings(min_se=value)
