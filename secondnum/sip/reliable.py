"""Reliable provisional responses (RFC 3262), sans-IO: the UAS that sends them and the UAC that PRACKs them.

* :class:`ReliableProvisionals` (UAS, §3): stamps ``Require: 100rel`` and ``RSeq`` on a 1xx, retransmits it
  with T1 doubling until a matching PRACK or 64*T1, keeps a second reliable 1xx queued until the first is
  acknowledged ("The UAS MUST NOT send a second reliable provisional response until the first is
  acknowledged"), matches PRACKs by ``RAck`` (response-num, CSeq-num, method) and tells when a 2xx may go
  out (not while a reliable 1xx with a session description is unacknowledged).
* :class:`ReliableReceiver` (UAC, §4): classifies each 1xx of an INVITE client transaction: unreliable,
  new in-order reliable (PRACK it with the returned :class:`RAck`), or a retransmission / out-of-order one
  that must be neither PRACKed nor processed. RSeq order is kept per early dialog (To tag), since forked
  responses come from different UASs with their own RSeq spaces.

Both are plain objects fed messages and ``now``; they return responses to (re)send and verdicts, never
touching sockets or clocks. The asyncio glue for an :class:`~secondnum.sip.endpoint.IncomingRequest` is
:mod:`secondnum.sip.provisional`.
"""

from __future__ import annotations

import dataclasses
import enum
import secrets

from .errors import SipParseError
from .message import SipMessage, SipResponse

OPTION_100REL = "100rel"
RSEQ_MAX = 2**31 - 1  # §7.1: 1 .. 2**31 - 1
# The initial RSeq is chosen at random below 2**31 - 1 leaving room for increments (§3).
_RSEQ_START_MAX = 2**30


@dataclasses.dataclass(frozen=True, slots=True)
class RAck:
    """``RAck: response-num CSeq-num Method`` (§7.2)."""

    rseq: int
    cseq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> RAck:
        parts = text.split()
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            raise SipParseError(f"bad RAck {text!r}")
        rseq, cseq = int(parts[0]), int(parts[1])
        if not 1 <= rseq <= RSEQ_MAX or cseq >= 2**31:
            raise SipParseError(f"bad RAck {text!r}")
        return cls(rseq, cseq, parts[2])

    def __str__(self) -> str:
        return f"{self.rseq} {self.cseq} {self.method}"


def parse_rseq(text: str) -> int:
    """``RSeq: response-num`` (§7.1)."""
    t = text.strip()
    if not t.isdigit() or len(t) > 10 or not 1 <= int(t) <= RSEQ_MAX:
        raise SipParseError(f"bad RSeq {text!r}")
    return int(t)


def rack_of(msg: SipMessage) -> RAck | None:
    """The RAck of a PRACK, ``None`` when absent; :class:`SipParseError` when malformed."""
    value = msg.headers.get("rack")
    return RAck.parse(value) if value is not None else None


def has_option(msg: SipMessage, tag: str) -> bool:
    """``tag`` listed in Supported or Require (a UA requiring an extension supports it)."""
    h = msg.headers
    if "supported" not in h and "require" not in h:
        return False
    return tag in msg.supported or tag in msg.require


def is_reliable(resp: SipResponse) -> bool:
    """A 101-199 response sent reliably: ``Require: 100rel`` and an RSeq (§4). A malformed Require makes
    it unreliable (it is then processed like any 1xx, never PRACKed)."""
    if not 100 < resp.status < 200 or "rseq" not in resp.headers or "require" not in resp.headers:
        return False
    try:
        return OPTION_100REL in resp.require
    except SipParseError:
        return False


# --- UAS ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(slots=True)
class Retransmit:
    """Send ``response`` again (§3: the TU retransmits, T1 doubling, on every transport)."""

    response: SipResponse


@dataclasses.dataclass(slots=True)
class PrackTimeout:
    """No PRACK within 64*T1 for ``response`` (§3): the UAS SHOULD reject the INVITE with a 5xx."""

    response: SipResponse


@dataclasses.dataclass(slots=True)
class _Pending:
    response: SipResponse
    rseq: int
    deadline: float = 0.0
    interval: float = 0.0
    give_up: float = 0.0


class PrackMatch(enum.Enum):
    """How a PRACK relates to what this UAS sent (§3)."""

    ACKED = "acked"  # acknowledges the outstanding reliable 1xx: answer 2xx
    NO_MATCH = "no-match"  # nothing outstanding with that RAck: answer 481


class ReliableProvisionals:
    """The reliable 1xx of one INVITE server transaction (RFC 3262 §3); one RSeq space per transaction."""

    __slots__ = ("_acked", "_invite_cseq", "_next_rseq", "_outstanding", "_queue", "_t1", "closed")

    def __init__(self, invite_cseq: int, t1: float, first_rseq: int | None = None) -> None:
        self._invite_cseq = invite_cseq
        self._t1 = t1
        self._next_rseq = first_rseq if first_rseq is not None else secrets.randbelow(_RSEQ_START_MAX) + 1
        self._outstanding: _Pending | None = None
        self._queue: list[SipResponse] = []
        self._acked: list[SipResponse] = []
        self.closed = False

    @property
    def outstanding(self) -> SipResponse | None:
        """The reliable 1xx sent and not yet PRACKed."""
        return self._outstanding.response if self._outstanding is not None else None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def may_send_2xx(self) -> bool:
        """False while a reliable 1xx carrying a session description is unacknowledged or queued (§3)."""
        pending = [p.response for p in (self._outstanding,) if p is not None] + self._queue
        return not any(r.body for r in pending)

    def send(self, resp: SipResponse, now: float) -> SipResponse | None:
        """Make ``resp`` reliable: ``Require: 100rel`` and the next RSeq are stamped on it at once (the
        queue is first in, first out, so RSeq order is sending order). Returns it to send now, or ``None``
        when it waits for the outstanding one's PRACK."""
        if not 100 < resp.status < 200:
            raise ValueError("only 101-199 responses are sent reliably")
        if self.closed:
            raise ValueError("a final response was sent: no more provisional responses")
        rseq = self._next_rseq
        self._next_rseq += 1
        require = [t.strip() for v in resp.headers.get_raw("require") for t in v.split(",") if t.strip()]
        if OPTION_100REL not in (t.lower() for t in require):
            require.append(OPTION_100REL)
        resp.set_header("Require", ", ".join(require))
        resp.set_header("RSeq", str(rseq))
        if self._outstanding is not None:
            self._queue.append(resp)
            return None
        return self._start(resp, rseq, now)

    def _start(self, resp: SipResponse, rseq: int, now: float) -> SipResponse:
        self._outstanding = _Pending(resp, rseq, now + self._t1, self._t1, now + 64 * self._t1)
        return resp

    def on_prack(self, rack: RAck, now: float) -> tuple[PrackMatch, SipResponse | None, SipResponse | None]:
        """Match a PRACK (§3). Returns (match, the acknowledged 1xx, the next queued 1xx to send now)."""
        pending = self._outstanding
        if (pending is None or rack.rseq != pending.rseq or rack.cseq != self._invite_cseq
                or rack.method != "INVITE"):
            return PrackMatch.NO_MATCH, None, None
        self._outstanding = None
        self._acked.append(pending.response)
        nxt = None
        if self._queue and not self.closed:
            queued = self._queue.pop(0)
            nxt = self._start(queued, int(queued.headers.get("rseq") or 0), now)
        return PrackMatch.ACKED, pending.response, nxt

    def next_deadline(self) -> float | None:
        p = self._outstanding
        if p is None or self.closed:
            return None
        return min(p.deadline, p.give_up)

    def on_timer(self, now: float) -> list[Retransmit | PrackTimeout]:
        p = self._outstanding
        if p is None or self.closed:
            return []
        if now >= p.give_up:
            self._outstanding = None
            self._queue.clear()
            return [PrackTimeout(p.response)]
        if now >= p.deadline:
            p.interval *= 2
            p.deadline = now + p.interval
            return [Retransmit(p.response)]
        return []

    def final_sent(self) -> None:
        """The INVITE got its final response: stop retransmitting, drop what is queued (§3)."""
        self.closed = True
        self._queue.clear()


# --- UAC ------------------------------------------------------------------------------------------------

class Verdict(enum.Enum):
    UNRELIABLE = "unreliable"  # process normally, no PRACK
    NEW = "new"  # in order: process it and PRACK with the returned RAck
    IGNORE = "ignore"  # retransmission or out of order: neither PRACK nor process (§4)


class ReliableReceiver:
    """The UAC's view of the reliable 1xx to one INVITE (RFC 3262 §4), per early dialog (To tag)."""

    __slots__ = ("_invite_cseq", "_last")

    def __init__(self, invite_cseq: int) -> None:
        self._invite_cseq = invite_cseq
        self._last: dict[str, int] = {}

    def receive(self, resp: SipResponse) -> tuple[Verdict, RAck | None]:
        """Classify a provisional response; raises :class:`SipParseError` on a malformed RSeq."""
        if not is_reliable(resp):
            return Verdict.UNRELIABLE, None
        tag = resp.to.tag or ""
        rseq = parse_rseq(resp.headers.get("rseq") or "")
        last = self._last.get(tag)
        # The first reliable 1xx of a dialog sets the space; then only last+1 is acceptable (§4).
        if last is not None and rseq != last + 1:
            return Verdict.IGNORE, None
        self._last[tag] = rseq
        return Verdict.NEW, RAck(rseq, self._invite_cseq, "INVITE")

    def last_rseq(self, to_tag: str) -> int | None:
        return self._last.get(to_tag)


__all__ = ["OPTION_100REL", "PrackMatch", "PrackTimeout", "RAck", "ReliableProvisionals", "ReliableReceiver",
           "Retransmit", "Verdict", "has_option", "is_reliable", "parse_rseq", "rack_of"]
