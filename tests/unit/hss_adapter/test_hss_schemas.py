"""Request validation: a violation is a 422 problem whose ``field`` names the offending member."""

from __future__ import annotations

from typing import Any

import pytest

from hss_adapter.api.schemas import validate
from secondnum.http import ProblemError

OK_CREATE: dict[str, Any] = {
    "did": "+42027777100",
    "answering_mode": "forward_then_voicemail",
    "follow_me": {
        "targets": [{"uri": "tel:+42073723123", "ring_timeout": 20}],
        "ring_order": "sequential",
        "time_window": {"days": ["mon"], "start": "08:00", "end": "18:00"},
    },
    "voicemail": {"enabled": True, "pin": "1234"},
    "aliases": [{"identity": "42073723123@pstn", "allow_registration": False}],
}


@pytest.mark.parametrize(
    ("schema", "body", "field"),
    [
        ("AccountCreate", {}, "did"),
        ("AccountCreate", {"did": "0123"}, "did"),
        ("AccountCreate", {"did": "42027777100x"}, "did"),
        ("AccountCreate", {"did": "42027777100", "colour": "red"}, "colour"),
        ("AccountCreate", {"did": "42027777100", "status": "gone"}, "status"),
        (
            "AccountCreate",
            {"did": "42027777100", "follow_me": {"targets": [{"uri": "tel:+1", "ring_timeout": 0}]}},
            "follow_me.targets[0].ring_timeout",
        ),
        (
            "AccountCreate",
            {"did": "42027777100", "follow_me": {"targets": [{"ring_timeout": 5}]}},
            "follow_me.targets[0].uri",
        ),
        (
            "AccountCreate",
            {"did": "42027777100", "follow_me": {"targets": [{"uri": "x", "extra": 1}]}},
            "follow_me.targets[0].extra",
        ),
        ("AccountCreate", {"did": "42027777100", "voicemail": {"pin": "12"}}, "voicemail.pin"),
        ("AccountCreate", {"did": "42027777100", "voicemail": {"pin_hash": "x"}}, "voicemail.pin_hash"),
        (
            "AccountCreate",
            {"did": "42027777100", "aliases": [{"allow_registration": True}]},
            "aliases[0].identity",
        ),
        (
            "AccountCreate",
            {"did": "42027777100", "follow_me": {"time_window": {"start": "25:00", "end": "01:00"}}},
            "follow_me.time_window.start",
        ),
        ("AccountSettings", {"did": "42027777100"}, "did"),
        ("AccountSettings", {"aliases": []}, "aliases"),
        ("AccountSettings", [], "body"),
        ("AliasInput", {"identity": ""}, "identity"),
        ("VoicemailInput", {"max_messages": 0}, "max_messages"),
        ("FollowMe", {"ring_order": "random"}, "ring_order"),
    ],
)
def test_violations_name_the_field(schema: str, body: Any, field: str) -> None:
    with pytest.raises(ProblemError) as info:
        validate(schema, body)
    assert info.value.status == 422
    assert info.value.extra["field"] == field, info.value.detail


def test_e164_message() -> None:
    with pytest.raises(ProblemError) as info:
        validate("AccountCreate", {"did": "12"})
    assert "E.164" in (info.value.detail or "")


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        ("AccountCreate", OK_CREATE),
        ("AccountCreate", {"did": "42027777100"}),
        ("AccountSettings", {}),
        ("VoicemailInput", {"pin": None}),
        ("FollowMe", {"time_window": None}),
        ("AliasInput", {"identity": "sip:+42073723123@ims.example.net;user=phone"}),
    ],
)
def test_valid_bodies_pass(schema: str, body: Any) -> None:
    assert validate(schema, body) == body
