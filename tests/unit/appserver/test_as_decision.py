"""Answering-mode decision (flows A/B), table-driven over the account profile and the asserted identity."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from appserver.decision import (
    ForkOrder,
    Forward,
    Reject,
    Target,
    VoicemailAccess,
    VoicemailDeposit,
    decide,
)
from appserver.diversion import DiversionCause
from appserver.isc import IscRequest, SessionCase
from hss_adapter.profile import (
    AccountProfile,
    AccountStatus,
    Alias,
    AnsweringMode,
    CallerIdPresentation,
    FollowMe,
    FollowMeTarget,
    RingOrder,
    TimeWindow,
    VoicemailSettings,
)
from secondnum.sip import SipURI

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)  # a Wednesday
DID = "42027777100"
MOBILE = "42073723123"


def isc(asserted: str | None = "42075553333", case: SessionCase = SessionCase.TERMINATING) -> IscRequest:
    return IscRequest(case, DID, SipURI.parse(f"tel:+{DID}"), None, asserted, (), None)


BASE = AccountProfile(
    did=DID,
    follow_me=FollowMe((FollowMeTarget(f"tel:+{MOBILE}", 15),)),
    aliases=(Alias(f"{MOBILE}@pstn", MOBILE),),
)


def profile(**changes: object) -> AccountProfile:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


CASES = [
    ("unknown DID", isc(), None, Reject(404, "Not Found", "did_unknown")),
    ("suspended", isc(), profile(status=AccountStatus.SUSPENDED), Reject(403, "Forbidden", "did_suspended")),
    (
        "originating case not served",
        isc(case=SessionCase.ORIGINATING),
        BASE,
        Reject(403, "Forbidden", "isc_session_case_not_served"),
    ),
    ("alias calls its DID: voicemail access", isc(MOBILE), BASE, VoicemailAccess(DID, True)),
    (
        "alias, voicemail disabled",
        isc(MOBILE),
        profile(voicemail=VoicemailSettings(enabled=False)),
        Reject(403, "Forbidden", "voicemail_disabled"),
    ),
    (
        "no asserted identity is never the alias",
        isc(None),
        BASE,
        Forward(DID, (Target(f"tel:+{MOBILE}", 15.0),), ForkOrder.SEQUENTIAL, True, True),
    ),
    (
        "reject mode",
        isc(),
        profile(answering_mode=AnsweringMode.REJECT),
        Reject(603, "Decline", "answering_mode_reject"),
    ),
    (
        "voicemail only",
        isc(),
        profile(answering_mode=AnsweringMode.VOICEMAIL_ONLY),
        VoicemailDeposit(DID, DiversionCause.UNCONDITIONAL),
    ),
    (
        "voicemail only, disabled",
        isc(),
        profile(answering_mode=AnsweringMode.VOICEMAIL_ONLY, voicemail=VoicemailSettings(enabled=False)),
        Reject(480, "Temporarily Unavailable", "voicemail_disabled"),
    ),
    (
        "forward then voicemail",
        isc(),
        BASE,
        Forward(DID, (Target(f"tel:+{MOBILE}", 15.0),), ForkOrder.SEQUENTIAL, True, True),
    ),
    (
        "forward only, simultaneous, original caller shown",
        isc(),
        profile(
            answering_mode=AnsweringMode.FORWARD_ONLY,
            follow_me=FollowMe(
                (FollowMeTarget("tel:+1", 5), FollowMeTarget("sip:a@10.0.0.1", 7)), RingOrder.SIMULTANEOUS
            ),
            caller_id_presentation=CallerIdPresentation.ORIGINAL_CALLER,
        ),
        Forward(
            DID, (Target("tel:+1", 5.0), Target("sip:a@10.0.0.1", 7.0)), ForkOrder.SIMULTANEOUS, False, False
        ),
    ),
    (
        "follow-me window closed -> voicemail",
        isc(),
        profile(
            follow_me=FollowMe(
                (FollowMeTarget("tel:+1", 5),),
                time_window=TimeWindow(frozenset({5, 6}), dt.time(9), dt.time(17)),
            )
        ),
        VoicemailDeposit(DID, DiversionCause.UNREACHABLE),
    ),
    (
        "no targets, forward only",
        isc(),
        profile(answering_mode=AnsweringMode.FORWARD_ONLY, follow_me=FollowMe()),
        Reject(480, "Temporarily Unavailable", "follow_me_inactive"),
    ),
    (
        "forward then voicemail, voicemail disabled: forward only",
        isc(),
        profile(voicemail=VoicemailSettings(enabled=False)),
        Forward(DID, (Target(f"tel:+{MOBILE}", 15.0),), ForkOrder.SEQUENTIAL, False, True),
    ),
]


@pytest.mark.parametrize(("name", "request_", "account", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decide(name: str, request_: IscRequest, account: AccountProfile | None, expected: object) -> None:
    assert decide(request_, account, NOW, 20.0) == expected
