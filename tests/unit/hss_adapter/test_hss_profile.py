"""AccountProfile conversion from stored documents and the follow-me time window."""

from __future__ import annotations

import datetime as dt

import pytest

from hss_adapter.profile import (
    AccountStatus,
    AnsweringMode,
    CallerIdPresentation,
    RingOrder,
    TimeWindow,
    profile_from_documents,
)


def test_defaults_from_a_minimal_document() -> None:
    p = profile_from_documents({"did": "42027777100"}, [])
    assert p.status is AccountStatus.ACTIVE
    assert p.answering_mode is AnsweringMode.FORWARD_THEN_VOICEMAIL
    assert p.caller_id_presentation is CallerIdPresentation.DID
    assert p.follow_me.targets == () and p.follow_me.ring_order is RingOrder.SEQUENTIAL
    assert p.voicemail.enabled and p.voicemail.pin_hash is None and not p.voicemail.verify_pin("1234")
    assert p.tel_uri == "tel:+42027777100"


def test_full_document() -> None:
    p = profile_from_documents(
        {
            "did": "42027777100",
            "display_name": "John",
            "status": "suspended",
            "answering_mode": "reject",
            "caller_id_presentation": "original_caller",
            "follow_me": {
                "targets": [{"uri": "tel:+42073723123", "ring_timeout": 25}, {"uri": "sip:john@example.net"}],
                "ring_order": "simultaneous",
                "time_window": {
                    "days": ["mon", "fri"],
                    "start": "08:00",
                    "end": "18:00",
                    "timezone": "Europe/Prague",
                },
            },
            "voicemail": {
                "enabled": False,
                "pin_required": True,
                "max_message_seconds": 60,
                "max_messages": 5,
                "greeting": "g1",
            },
        },
        [{"identity": "42073723123@pstn", "key": "42073723123", "allow_registration": False}],
    )
    assert not p.is_active and p.answering_mode is AnsweringMode.REJECT
    assert [(t.uri, t.ring_timeout) for t in p.follow_me.targets] == [
        ("tel:+42073723123", 25),
        ("sip:john@example.net", 20),
    ]
    assert p.follow_me.time_window is not None and p.follow_me.time_window.days == frozenset({0, 4})
    assert p.voicemail.max_messages == 5 and p.voicemail.pin_required
    assert p.alias_keys == frozenset({"42073723123"})
    with pytest.raises(AttributeError):  # frozen
        p.did = "x"  # type: ignore[misc]


UTC = dt.UTC


@pytest.mark.parametrize(
    ("window", "when", "expected"),
    [
        # Monday 2026-11-23
        (TimeWindow(frozenset({0}), dt.time(8), dt.time(18)), dt.datetime(2026, 11, 23, 9, tzinfo=UTC), True),
        (
            TimeWindow(frozenset({0}), dt.time(8), dt.time(18)),
            dt.datetime(2026, 11, 23, 18, tzinfo=UTC),
            False,
        ),
        (
            TimeWindow(frozenset({0}), dt.time(8), dt.time(18)),
            dt.datetime(2026, 11, 23, 7, 59, tzinfo=UTC),
            False,
        ),
        (
            TimeWindow(frozenset({1}), dt.time(8), dt.time(18)),
            dt.datetime(2026, 11, 23, 9, tzinfo=UTC),
            False,
        ),
        # overnight window Monday 22:00 -> Tuesday 06:00
        (
            TimeWindow(frozenset({0}), dt.time(22), dt.time(6)),
            dt.datetime(2026, 11, 23, 23, tzinfo=UTC),
            True,
        ),
        (TimeWindow(frozenset({0}), dt.time(22), dt.time(6)), dt.datetime(2026, 11, 24, 5, tzinfo=UTC), True),
        (
            TimeWindow(frozenset({0}), dt.time(22), dt.time(6)),
            dt.datetime(2026, 11, 24, 7, tzinfo=UTC),
            False,
        ),
        (
            TimeWindow(frozenset({0}), dt.time(22), dt.time(6)),
            dt.datetime(2026, 11, 23, 5, tzinfo=UTC),
            False,
        ),
        # start == end: whole days
        (
            TimeWindow(frozenset({0}), dt.time(0), dt.time(0)),
            dt.datetime(2026, 11, 23, 23, 59, tzinfo=UTC),
            True,
        ),
        (
            TimeWindow(frozenset({0}), dt.time(0), dt.time(0)),
            dt.datetime(2026, 11, 24, 0, 1, tzinfo=UTC),
            False,
        ),
        # 08:30 UTC is 09:30 in Prague (CET, UTC+1) in November
        (
            TimeWindow(frozenset({0}), dt.time(9), dt.time(10), "Europe/Prague"),
            dt.datetime(2026, 11, 23, 8, 30, tzinfo=UTC),
            True,
        ),
        (
            TimeWindow(frozenset({0}), dt.time(9), dt.time(10), "Europe/Prague"),
            dt.datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
            False,
        ),
    ],
)
def test_time_window(window: TimeWindow, when: dt.datetime, expected: bool) -> None:
    assert window.contains(when) is expected
