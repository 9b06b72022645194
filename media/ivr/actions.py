"""Events fed to the call applications and the actions they return (sans-IO contract with the call)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class MessageAudio:
    """A stored message's audio, loaded by the call controller when it is played."""

    message_id: str


PlayItem = str | bytes | MessageAudio
"""A catalogue clip text, raw µ-law audio, or a stored message."""


# --- actions -------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Play:
    items: tuple[PlayItem, ...]
    barge_in: bool = True
    """A digit stops the playback (and is delivered as :class:`Digit`)."""


@dataclasses.dataclass(frozen=True, slots=True)
class WaitForDigit:
    """Arm the no-input timer (cancelled by any digit); fires :class:`Timeout`."""

    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    max_seconds: float
    stop_digits: str = "#"


@dataclasses.dataclass(frozen=True, slots=True)
class Refer:
    """Ask the AS for an outgoing call (RFC 3515 REFER, Refer-To ``tel:+<number>``)."""

    number: str


@dataclasses.dataclass(frozen=True, slots=True)
class Hangup:
    reason: str = "normal"


@dataclasses.dataclass(frozen=True, slots=True)
class CheckPin:
    pin: str


@dataclasses.dataclass(frozen=True, slots=True)
class SetMessageState:
    message_id: str
    state: str


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteMessage:
    message_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class StoreGreeting:
    audio: bytes | None
    """µ-law audio, or None to return to the default greeting."""


@dataclasses.dataclass(frozen=True, slots=True)
class StoreMessage:
    audio: bytes


Action = (Play | WaitForDigit | Record | Refer | Hangup | CheckPin | SetMessageState | DeleteMessage
          | StoreGreeting | StoreMessage)


# --- events --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Digit:
    digit: str


@dataclasses.dataclass(frozen=True, slots=True)
class PlayDone:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Timeout:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class RecordDone:
    audio: bytes
    reason: str
    """``digit``, ``max_length``, ``silence`` or ``hangup``."""


@dataclasses.dataclass(frozen=True, slots=True)
class PinResult:
    ok: bool
    locked: bool


@dataclasses.dataclass(frozen=True, slots=True)
class ReferResult:
    """Final status of the referred call from the NOTIFY sipfrag (RFC 3515 §2.4.5) or the REFER's
    own non-2xx response."""

    status: int


@dataclasses.dataclass(frozen=True, slots=True)
class StoreResult:
    ok: bool
    full: bool = False


Event = Digit | PlayDone | Timeout | RecordDone | PinResult | ReferResult | StoreResult
