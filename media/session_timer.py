"""Media's side of RFC 4028 session timers as the UAS of the AS's voicemail leg: what a 2xx says and who
refreshes. Sans-IO, on top of :mod:`secondnum.sip.session_timer` (the parsing and the timer itself).

Media is always the UAS of its dialogs, so every INVITE/re-INVITE/UPDATE it answers goes through
:func:`answer` (§9 applies to the initial request and to every refresh alike, §8/§10)."""

from __future__ import annotations

from typing import NamedTuple

from secondnum.sip.message import SipRequest
from secondnum.sip.session_timer import (
    LegTimer,
    Mode,
    Refresher,
    TimerConfig,
    min_se,
    session_expires,
    supports_timer,
    too_small,
)

__all__ = ["Answer", "answer", "too_small"]


class Answer(NamedTuple):
    """The 2xx's timer fields and the dialog's timer from now on (None = no session timer)."""

    headers: list[tuple[str, str]]
    timer: LegTimer | None


def answer(req: SipRequest, config: TimerConfig, previous: LegTimer | None = None) -> Answer:
    """RFC 4028 §9, the UAS's 2xx to a request (initial or refresh) whose interval passed :func:`too_small`.

    * ``Session-Expires`` present: the interval is the request's, raised to its ``Min-SE`` (§9: never below
      it). The refresher is the request's when it names one (§9: the UAS copies it); otherwise the UAS
      chooses: ``uac`` when the UAC supports timers, else ``uas`` (the only choice, §9 table).
      ``refresher=uac`` needs ``Require: timer`` in the 2xx (§9 MUST). With ``uas`` media refreshes itself
      (``Mode.LOCAL``, §10); with ``uac`` it watches the peer (``Mode.PEER``).
    * ``Session-Expires`` absent: a request that says ``Supported: timer`` without asking for a timer lets
      the UAS ask for one in its 2xx (§9: "The UAS may request a session timer in the 2XX response by
      including a Session-Expires header field", not below the request's Min-SE). When the dialog already
      had a timer, media keeps it that way (same interval, the supporting peer refreshes) instead of
      silently dropping it: a refresh that merely omits the header (§8.1 lets a proxy-less UAC do so) must
      not leave the dialog without its liveness check. A peer that does not support timers gets no timer
      (§9: no Session-Expires in the request, none requested from a non-supporting UAC).
    """
    supports = supports_timer(req)
    floor = min_se(req) or 0
    se = session_expires(req)
    if se is None:
        if previous is None or not supports:
            return Answer([], None)
        interval = max(previous.interval, floor, config.min_se)
        refresher: Refresher = "uac"
    else:
        interval = max(se.delta, floor)
        refresher = se.refresher or ("uac" if supports else "uas")
    headers = [("Session-Expires", f"{interval};refresher={refresher}")]
    if refresher == "uac":
        headers.append(("Require", "timer"))
        return Answer(headers, LegTimer(Mode.PEER, interval))
    return Answer(headers, LegTimer(Mode.LOCAL, interval))
