"""What to do with a call to a DID (sans-IO): flows A (forward / voicemail deposit) and B (voicemail access).

Inputs are the ISC analysis (:class:`appserver.isc.IscRequest`), the account profile from the cache and the
time of day; the output is one :data:`Decision`. No I/O: table-driven unit tests cover every branch.

The caller is the customer (flow B) only when the *network-asserted* identity, which :func:`isc.classify`
keeps only from a trusted S-CSCF (RFC 3325 §5, TS 24.229 §5.7.1.1), is an alias of the called DID. The
From header is never consulted: any UA can write anything there (RFC 3261 §20.20).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from appserver.diversion import DiversionCause
from appserver.isc import IscRequest, SessionCase
from hss_adapter.profile import AccountProfile, AnsweringMode, CallerIdPresentation, RingOrder


class ForkOrder(enum.Enum):
    SEQUENTIAL = "sequential"
    SIMULTANEOUS = "simultaneous"


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """One follow-me target and how long it may ring (TS 24.604 §4.5.2.6.1 no-reply timer)."""

    uri: str
    timeout: float


@dataclasses.dataclass(frozen=True, slots=True)
class Reject:
    status: int
    reason: str
    log_event: str


@dataclasses.dataclass(frozen=True, slots=True)
class VoicemailAccess:
    """Flow B: the customer reaches their own mailbox, authenticated by network identity."""

    mailbox: str
    network_authenticated: bool


@dataclasses.dataclass(frozen=True, slots=True)
class VoicemailDeposit:
    """Straight to voicemail (answering mode ``voicemail_only`` or follow-me outside its window)."""

    mailbox: str
    cause: DiversionCause


@dataclasses.dataclass(frozen=True, slots=True)
class Forward:
    """Flow A: ring the follow-me targets, then (optionally) voicemail."""

    mailbox: str
    targets: tuple[Target, ...]
    order: ForkOrder
    then_voicemail: bool
    present_did: bool
    """Show the DID as caller (PAI and From) rather than the original caller."""


Decision = Reject | VoicemailAccess | VoicemailDeposit | Forward


def decide(isc: IscRequest, profile: AccountProfile | None, now: dt.datetime,
           default_timeout: float) -> Decision:
    """Apply the account's answering mode to this call (TS 24.604 §4.5.2.6 for the diversion rules)."""
    if isc.session_case is not SessionCase.TERMINATING:
        return Reject(403, "Forbidden", "isc_session_case_not_served")
    if profile is None:
        return Reject(404, "Not Found", "did_unknown")
    if not profile.is_active:
        return Reject(403, "Forbidden", "did_suspended")
    voicemail = profile.voicemail.enabled
    if isc.asserted_id is not None and isc.asserted_id in profile.alias_keys:
        if not voicemail:
            return Reject(403, "Forbidden", "voicemail_disabled")
        return VoicemailAccess(profile.did, network_authenticated=True)
    mode = profile.answering_mode
    if mode is AnsweringMode.REJECT:
        return Reject(603, "Decline", "answering_mode_reject")
    if mode is AnsweringMode.VOICEMAIL_ONLY:
        if not voicemail:
            return Reject(480, "Temporarily Unavailable", "voicemail_disabled")
        return VoicemailDeposit(profile.did, DiversionCause.UNCONDITIONAL)
    then_voicemail = mode is AnsweringMode.FORWARD_THEN_VOICEMAIL and voicemail
    if not profile.follow_me.active_at(now):
        if then_voicemail:
            return VoicemailDeposit(profile.did, DiversionCause.UNREACHABLE)
        return Reject(480, "Temporarily Unavailable", "follow_me_inactive")
    targets = tuple(Target(t.uri, float(t.ring_timeout) if t.ring_timeout > 0 else default_timeout)
                    for t in profile.follow_me.targets)
    order = (ForkOrder.SIMULTANEOUS if profile.follow_me.ring_order is RingOrder.SIMULTANEOUS
             else ForkOrder.SEQUENTIAL)
    return Forward(profile.did, targets, order, then_voicemail,
                   present_did=profile.caller_id_presentation is CallerIdPresentation.DID)
