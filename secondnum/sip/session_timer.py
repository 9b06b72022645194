"""Session timers (RFC 4028), sans-IO: the header fields, a B2BUA's negotiation, and one dialog's timer.

* :class:`SessionExpires` and :func:`delta_seconds` parse ``Session-Expires`` (§4) and ``Min-SE`` (§5).
* :func:`too_small` is the UAS check of §9 (``422 Session Interval Too Small`` with our ``Min-SE``);
  :func:`retry_after_422` the UAC's retry of §7.3.
* :func:`request_headers` builds the timer fields of an INVITE a B2BUA originates (§7.1), and
  :func:`negotiate` decides, once the far side answered, what the caller's 2xx says (§9) and who refreshes
  each leg (:class:`Mode`); :func:`uac_leg` the same for a leg the B2BUA originates on its own (§7.4).
* :class:`SessionTimer` is one dialog's timer, fed the current time: the refresh at half the interval when
  we refresh (§7.4, §9), the expiry at interval minus ``min(32, interval/3)`` when the peer does (§10).

No sockets, no clock: the caller passes ``now`` (a monotonic time in seconds) and acts on the result.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Literal, NamedTuple

from .errors import SipError
from .message import SipMessage, SipRequest, SipResponse

Refresher = Literal["uac", "uas"]
ABSOLUTE_MIN_SE = 90
"""§4: the default and recommended minimum of ``Min-SE`` (deployments may configure a smaller one)."""


def delta_seconds(value: str | None) -> int | None:
    """The delta-seconds of a ``Session-Expires``/``Min-SE`` value (params ignored); None if malformed."""
    if not value:
        return None
    head = value.split(";", 1)[0].strip()
    return int(head) if head.isdigit() and len(head) <= 10 else None


@dataclasses.dataclass(frozen=True, slots=True)
class SessionExpires:
    """``Session-Expires: delta-seconds [;refresher=uac|uas]`` (RFC 4028 §4)."""

    delta: int
    refresher: Refresher | None = None

    @classmethod
    def parse(cls, value: str | None) -> SessionExpires | None:
        delta = delta_seconds(value)
        if delta is None or value is None:
            return None
        refresher: Refresher | None = None
        for param in value.split(";")[1:]:
            name, _, val = param.partition("=")
            if name.strip().lower() == "refresher":
                low = val.strip().lower()
                refresher = "uac" if low == "uac" else "uas" if low == "uas" else None
        return cls(delta, refresher)

    def __str__(self) -> str:
        return f"{self.delta};refresher={self.refresher}" if self.refresher else str(self.delta)


def session_expires(msg: SipMessage) -> SessionExpires | None:
    h = msg.headers
    return SessionExpires.parse(h.get("session-expires")) if "session-expires" in h else None


def min_se(msg: SipMessage) -> int | None:
    h = msg.headers
    return delta_seconds(h.get("min-se")) if "min-se" in h else None


def _has_tag(msg: SipMessage, tag: str) -> bool:
    h = msg.headers
    try:
        return ("supported" in h and tag in msg.supported) or ("require" in h and tag in msg.require)
    except SipError:
        return False


def supports_timer(msg: SipMessage) -> bool:
    """The sender understands session timers: ``timer`` in Supported or Require (§7.1, §9)."""
    return _has_tag(msg, "timer")


def allows(msg: SipMessage, method: str) -> bool:
    """``method`` is in the message's Allow (RFC 3261 §20.5)."""
    return any(method in (v.upper() for v in raw.replace(",", " ").split())
               for raw in msg.headers.get_raw("allow"))


@dataclasses.dataclass(frozen=True, slots=True)
class TimerConfig:
    """What the B2BUA asks for on its own legs: ``session_expires`` 0 = only when the caller asks (§7.1);
    ``min_se`` = the smallest interval it accepts (§5, §9)."""

    session_expires: int = 1800
    min_se: int = ABSOLUTE_MIN_SE


def too_small(req: SipRequest, config: TimerConfig) -> bool:
    """§9: a Session-Expires below our minimum gets ``422`` with ``Min-SE: config.min_se``."""
    se = session_expires(req)
    return se is not None and se.delta < config.min_se


def request_headers(incoming: SipRequest | None, config: TimerConfig) -> list[tuple[str, str]]:
    """``Session-Expires``/``Min-SE`` for an INVITE the B2BUA sends on a new leg (§7.1).

    The caller's request (``incoming``) is continued when it asked for a timer (the interval raised to both
    minimums, the refresher kept: its ``uac`` is then the B2BUA relaying the caller's refreshes); otherwise
    the B2BUA asks for ``config.session_expires`` itself, leaving the refresher to the far side (§7.1).
    Empty when neither wants a timer. ``timer`` goes in Supported (the caller adds it)."""
    floor = config.min_se
    if incoming is not None:
        floor = max(floor, min_se(incoming) or 0)
        se = session_expires(incoming)
        if se is not None:
            return [("Session-Expires", str(SessionExpires(max(se.delta, floor), se.refresher))),
                    ("Min-SE", str(floor))]
    if config.session_expires <= 0:
        return []
    return [("Session-Expires", str(max(config.session_expires, floor))), ("Min-SE", str(floor))]


def retry_after_422(req: SipRequest, resp: SipResponse) -> list[tuple[str, str]] | None:
    """§7.3: after ``422`` the UAC may retry with Session-Expires raised to the response's Min-SE (and that
    Min-SE); the new header values, or None when the 422 gives no usable Min-SE or would not change ours."""
    floor = min_se(resp)
    se = session_expires(req)
    if floor is None or se is None or floor <= se.delta:
        return None
    return [("Session-Expires", str(SessionExpires(floor, se.refresher))), ("Min-SE", str(floor))]


class Mode(enum.Enum):
    """Who refreshes a leg of the B2BUA, and so what its timer does."""

    PEER = "peer"
    """The party on this leg refreshes; the B2BUA ends the call if no refresh comes (§10)."""
    LOCAL = "local"
    """The B2BUA refreshes this leg itself at half the interval (§7.4, §9); a 408/481 ends the call."""
    RELAY = "relay"
    """The refreshes of this leg are the other leg's, relayed end to end; that leg's timer watches them."""


class LegTimer(NamedTuple):
    """One leg's negotiated timer: who refreshes it and the session interval in seconds."""

    mode: Mode
    interval: int


class Negotiated(NamedTuple):
    """The result of :func:`negotiate`: the caller's 2xx fields and each leg's timer (None = no timer)."""

    caller_headers: list[tuple[str, str]]
    caller: LegTimer | None
    far: LegTimer | None


NONE = Negotiated([], None, None)


def negotiate(invite: SipRequest, far_request: SipRequest | None, far: SipResponse | None,
              config: TimerConfig) -> Negotiated:
    """Session timers of a call bridged by a B2BUA once the far leg answered.

    ``invite`` is the caller's INVITE (we are its UAS), ``far_request``/``far`` the INVITE the B2BUA sent
    and the far 2xx (we are their UAC); ``far_request`` None = the far leg carried no timer request.

    * Far 2xx with Session-Expires (§7.4): that interval and refresher govern the far leg. A caller that
      supports timers gets the same Session-Expires (and ``Require: timer`` when it is the refresher, §9),
      so refreshes are relayed end to end: the refreshing side is watched (PEER), the other relayed. A
      caller that does not gets ``refresher=uas`` (only when it sent Session-Expires, i.e. a proxy did, §9)
      and the B2BUA refreshes the caller's leg, and the far leg too when the far side left that to its UAC.
    * Far 2xx without it, where the B2BUA asked: the far side does not do timers (§7.4), so the B2BUA
      refreshes the far leg itself (the refreshes are ordinary re-INVITE/UPDATE to it) as a liveness check.
      The caller's leg follows the caller's request, or our own interval: a supporting caller refreshes
      (refresher from its request, else ``uac``), a non-supporting one is refreshed by the B2BUA.
    """
    caller_supports = supports_timer(invite)
    caller_se = session_expires(invite)
    far_se = session_expires(far) if far is not None else None
    asked = session_expires(far_request) if far_request is not None else None
    if far_se is not None:
        far_refresher: Refresher = far_se.refresher or "uac"  # §7.4: a 2xx without it: the UAC refreshes
        interval = far_se.delta
        if caller_supports:
            headers = [("Session-Expires", f"{interval};refresher={far_refresher}")]
            if far_refresher == "uac":
                headers.append(("Require", "timer"))
                return Negotiated(headers, LegTimer(Mode.PEER, interval), LegTimer(Mode.RELAY, interval))
            return Negotiated(headers, LegTimer(Mode.RELAY, interval), LegTimer(Mode.PEER, interval))
        headers = [("Session-Expires", f"{interval};refresher=uas")] if caller_se is not None else []
        far_mode = Mode.LOCAL if far_refresher == "uac" else Mode.PEER
        return Negotiated(headers, LegTimer(Mode.LOCAL, interval), LegTimer(far_mode, interval))
    far_leg = LegTimer(Mode.LOCAL, asked.delta) if asked is not None else None
    if caller_se is not None:
        interval = max(caller_se.delta, config.min_se)
    elif config.session_expires > 0:
        interval = max(config.session_expires, config.min_se, min_se(invite) or 0)
    else:
        return Negotiated([], None, far_leg)
    if not caller_supports:
        headers = [("Session-Expires", f"{interval};refresher=uas")] if caller_se is not None else []
        return Negotiated(headers, LegTimer(Mode.LOCAL, interval), far_leg)
    refresher: Refresher = caller_se.refresher if caller_se is not None and caller_se.refresher else "uac"
    headers = [("Session-Expires", f"{interval};refresher={refresher}")]
    if refresher == "uac":
        headers.append(("Require", "timer"))
        return Negotiated(headers, LegTimer(Mode.PEER, interval), far_leg)
    return Negotiated(headers, LegTimer(Mode.LOCAL, interval), far_leg)


def uac_leg(request: SipRequest, response: SipResponse) -> LegTimer | None:
    """The timer of a leg the B2BUA originated for itself (no caller's refreshes to relay), from its INVITE
    and the 2xx (§7.4): the far side refreshes when the 2xx says ``refresher=uas``; with ``uac`` (or no
    refresher) the B2BUA does, and also when the 2xx has no Session-Expires (the far side does not do
    timers: the B2BUA's refreshes still tell it from a dead one). None when we asked for no timer."""
    asked = session_expires(request)
    if asked is None:
        return None
    se = session_expires(response)
    if se is None:
        return LegTimer(Mode.LOCAL, asked.delta)
    return LegTimer(Mode.PEER if se.refresher == "uas" else Mode.LOCAL, se.delta)


def after_relayed_refresh(modes: tuple[Mode, Mode], requester: int,
                          response_se: SessionExpires | None) -> tuple[Mode, Mode]:
    """The legs' modes after a refresh relayed end to end (2xx), ``requester`` = 0 or 1, the leg it came on.

    §7.4/§9: the 2xx names the refresher of the session from now on, relative to that transaction: ``uac`` =
    the party that sent the refresh, ``uas`` = the party that answered it. Where both legs are end to end
    (PEER/RELAY) the refreshing party's leg becomes PEER and the other RELAY; a leg the B2BUA refreshes
    itself (LOCAL) stays so, and without a refresher in the 2xx nothing changes."""
    if response_se is None or response_se.refresher is None or Mode.LOCAL in modes:
        return modes
    refreshing = requester if response_se.refresher == "uac" else 1 - requester
    return (Mode.PEER, Mode.RELAY) if refreshing == 0 else (Mode.RELAY, Mode.PEER)


def expiry_margin(interval: float) -> float:
    """§10: the session expires ``min(32, interval/3)`` seconds before the interval runs out."""
    return min(32.0, interval / 3)


class Due(enum.Enum):
    REFRESH = "refresh"
    """Send a session refresh on this leg now (re-INVITE or UPDATE, §7.4 / §9)."""
    EXPIRED = "expired"
    """No refresh came in time: send BYE (§10)."""


class SessionTimer:
    """The timer of one dialog, restarted by every successful session refresh (§10).

    ``LOCAL`` legs are due for a refresh at half the interval and wait for its outcome (no second refresh
    while one is in flight); ``PEER`` legs expire at ``interval - min(32, interval/3)`` after the last
    refresh; ``RELAY`` legs have no deadline of their own."""

    __slots__ = ("_in_flight", "interval", "last", "mode")

    def __init__(self, mode: Mode, interval: float, now: float) -> None:
        self.mode = mode
        self.interval = float(interval)
        self.last = now
        self._in_flight = False

    @property
    def deadline(self) -> float | None:
        if self.mode is Mode.PEER:
            return self.last + self.interval - expiry_margin(self.interval)
        if self.mode is Mode.LOCAL and not self._in_flight:
            return self.last + self.interval / 2
        return None

    def refreshed(self, now: float, interval: float | None = None) -> None:
        """A session refresh succeeded (2xx to a re-INVITE/UPDATE on this dialog, §10)."""
        self.last = now
        self._in_flight = False
        if interval is not None and interval > 0:
            self.interval = float(interval)

    def refresh_failed(self, now: float) -> None:
        """Our refresh got a non-2xx that does not end the dialog (e.g. 491, 500): try again at the next
        half interval from now, which still leaves the peer's view of the session alive (§10)."""
        self._in_flight = False
        self.last = now - self.interval / 2 + min(self.interval / 4, 5.0)

    def poll(self, now: float) -> Due | None:
        """What is due at ``now``, if anything (the caller polls at :attr:`deadline`)."""
        deadline = self.deadline
        if deadline is None or now < deadline:
            return None
        if self.mode is Mode.PEER:
            return Due.EXPIRED
        self._in_flight = True
        return Due.REFRESH
