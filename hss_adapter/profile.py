"""The immutable subscriber profile the AS reads, and its conversion from stored documents.

One conversion path: raw MongoDB documents (as stored by :mod:`hss_adapter.models`) ->
:class:`AccountProfile`.
The profile cache, the provisioning API and the Sh mirror all use :func:`profile_from_documents`, so what the
AS sees is exactly what the API returns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hss_adapter.pin import verify_pin
from secondnum.identity import tel_uri


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class AnsweringMode(enum.StrEnum):
    """What happens to a call to the DID (the seed's "default answering mode")."""

    FORWARD_THEN_VOICEMAIL = "forward_then_voicemail"
    FORWARD_ONLY = "forward_only"
    VOICEMAIL_ONLY = "voicemail_only"
    REJECT = "reject"


class RingOrder(enum.StrEnum):
    SEQUENTIAL = "sequential"
    SIMULTANEOUS = "simultaneous"


class CallerIdPresentation(enum.StrEnum):
    """Calling identity shown on a forwarded leg: the DID (as in the seed) or the original caller."""

    DID = "did"
    ORIGINAL_CALLER = "original_caller"


DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

DEFAULT_RING_TIMEOUT = 20
DEFAULT_MAX_MESSAGE_SECONDS = 120
DEFAULT_MAX_MESSAGES = 50


@dataclasses.dataclass(frozen=True, slots=True)
class FollowMeTarget:
    uri: str
    """``tel:+E164`` or a ``sip:`` URI."""
    ring_timeout: int = DEFAULT_RING_TIMEOUT
    """Seconds this target rings before the next one (sequential) or before giving up (simultaneous)."""


@dataclasses.dataclass(frozen=True, slots=True)
class TimeWindow:
    """Follow-me applies only inside this weekly window (local time of ``timezone``, an IANA zone name).

    ``start == end`` means whole days; ``end < start`` runs past midnight into the next day.
    """

    days: frozenset[int]
    start: dt.time
    end: dt.time
    timezone: str = "UTC"

    def contains(self, when: dt.datetime) -> bool:
        """True when ``when`` (timezone-aware) falls in the window; ``end < start`` wraps past midnight."""
        try:
            zone: dt.tzinfo = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = dt.UTC
        local = when.astimezone(zone)
        now, day = local.time(), local.weekday()
        if self.start == self.end:  # whole days
            return day in self.days
        if self.start < self.end:
            return day in self.days and self.start <= now < self.end
        if now >= self.start:
            return day in self.days
        return (day - 1) % 7 in self.days and now < self.end


@dataclasses.dataclass(frozen=True, slots=True)
class FollowMe:
    targets: tuple[FollowMeTarget, ...] = ()
    ring_order: RingOrder = RingOrder.SEQUENTIAL
    time_window: TimeWindow | None = None

    def active_at(self, when: dt.datetime) -> bool:
        """Whether forwarding applies at ``when``: targets exist and the window (if any) contains it."""
        return bool(self.targets) and (self.time_window is None or self.time_window.contains(when))


@dataclasses.dataclass(frozen=True, slots=True)
class VoicemailSettings:
    enabled: bool = True
    pin_hash: str | None = None
    pin_required: bool = False
    max_message_seconds: int = DEFAULT_MAX_MESSAGE_SECONDS
    max_messages: int = DEFAULT_MAX_MESSAGES
    greeting: str | None = None
    """Reference to a custom greeting (e.g. a GridFS file id); ``None`` = the standard prompt."""

    def verify_pin(self, pin: str) -> bool:
        return verify_pin(pin, self.pin_hash)


@dataclasses.dataclass(frozen=True, slots=True)
class Alias:
    identity: str
    """As provisioned, e.g. ``42073723123@pstn``."""
    key: str
    """``secondnum.identity.canonical(identity)``: the lookup key."""
    allow_registration: bool = False
    """Governs REGISTER/authentication only; ANI matching applies regardless."""


@dataclasses.dataclass(frozen=True, slots=True)
class AccountProfile:
    did: str
    display_name: str = ""
    status: AccountStatus = AccountStatus.ACTIVE
    answering_mode: AnsweringMode = AnsweringMode.FORWARD_THEN_VOICEMAIL
    follow_me: FollowMe = FollowMe()
    caller_id_presentation: CallerIdPresentation = CallerIdPresentation.DID
    voicemail: VoicemailSettings = VoicemailSettings()
    aliases: tuple[Alias, ...] = ()

    @property
    def is_active(self) -> bool:
        return self.status is AccountStatus.ACTIVE

    @property
    def tel_uri(self) -> str:
        return tel_uri(self.did)

    @property
    def alias_keys(self) -> frozenset[str]:
        return frozenset(a.key for a in self.aliases)


def _time(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


def time_window_from_document(doc: Mapping[str, Any] | None) -> TimeWindow | None:
    if not doc:
        return None
    return TimeWindow(
        days=frozenset(DAY_NAMES.index(d) for d in (doc.get("days") or DAY_NAMES)),
        start=_time(doc.get("start", "00:00")),
        end=_time(doc.get("end", "00:00")),
        timezone=doc.get("timezone", "UTC"),
    )


def profile_from_documents(
    account: Mapping[str, Any], aliases: Iterable[Mapping[str, Any]]
) -> AccountProfile:
    """Build the profile from a raw ``accounts`` document and its raw ``aliases`` documents."""
    fm = account.get("follow_me") or {}
    vm = account.get("voicemail") or {}
    return AccountProfile(
        did=account["did"],
        display_name=account.get("display_name", ""),
        status=AccountStatus(account.get("status", "active")),
        answering_mode=AnsweringMode(account.get("answering_mode", "forward_then_voicemail")),
        follow_me=FollowMe(
            targets=tuple(
                FollowMeTarget(t["uri"], int(t.get("ring_timeout", DEFAULT_RING_TIMEOUT)))
                for t in fm.get("targets", ())
            ),
            ring_order=RingOrder(fm.get("ring_order", "sequential")),
            time_window=time_window_from_document(fm.get("time_window")),
        ),
        caller_id_presentation=CallerIdPresentation(account.get("caller_id_presentation", "did")),
        voicemail=VoicemailSettings(
            enabled=bool(vm.get("enabled", True)),
            pin_hash=vm.get("pin_hash"),
            pin_required=bool(vm.get("pin_required", False)),
            max_message_seconds=int(vm.get("max_message_seconds", DEFAULT_MAX_MESSAGE_SECONDS)),
            max_messages=int(vm.get("max_messages", DEFAULT_MAX_MESSAGES)),
            greeting=vm.get("greeting"),
        ),
        aliases=tuple(
            sorted(
                (Alias(a["identity"], a["key"], bool(a.get("allow_registration", False))) for a in aliases),
                key=lambda a: a.key,
            )
        ),
    )
