"""The voicemail-access and deposit state machines, driven with events (no I/O)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest

from media.ivr.access import AccessApp, State
from media.ivr.actions import (
    CheckPin,
    DeleteMessage,
    Digit,
    Hangup,
    MessageAudio,
    PinResult,
    Play,
    PlayDone,
    Record,
    RecordDone,
    Refer,
    ReferResult,
    SetMessageState,
    StoreGreeting,
    StoreMessage,
    StoreResult,
    Timeout,
    WaitForDigit,
)
from media.ivr.deposit import DepositApp
from media.prompts.catalog import PHRASES, datetime_words, number_words
from media.store.voicemail import MessageInfo

WHEN = dt.datetime(2026, 11, 25, 10, 5, tzinfo=dt.UTC)


def _msg(i: int, state: str) -> MessageInfo:
    return MessageInfo(f"m{i}", "42027777100", "42075553333", WHEN, 3000, state)


def _played(actions: Sequence[object]) -> list[object]:
    return [item for a in actions if isinstance(a, Play) for item in a.items]


def _app(new: int = 2, saved: int = 1, pin: bool = False) -> AccessApp:
    return AccessApp([_msg(i, "new") for i in range(new)], [_msg(10 + i, "saved") for i in range(saved)],
                     pin_required=pin, beep=b"\x00")


def test_intro_counts_then_first_new_message_with_envelope() -> None:
    app = _app(new=2, saved=1)
    intro = _played(app.start())
    assert intro == [PHRASES["you_have"], "two", PHRASES["new_messages"], PHRASES["and"], "one",
                     PHRASES["saved_message"]]
    first = _played(app.handle(PlayDone()))
    assert first[0] == PHRASES["message_from"] and first[-1] == MessageAudio("m0")
    assert datetime_words(WHEN) == ["Wednesday", "November", "twenty fifth", "at", "ten", "oh", "five", "A M"]


def test_no_messages_goes_to_menu() -> None:
    app = _app(new=0, saved=0)
    app.start()
    assert _played(app.handle(PlayDone())) == [PHRASES["main_menu"]]
    assert app.state is State.MENU


@pytest.mark.parametrize(("keys", "expected_ops", "state"), [
    ("#2", [SetMessageState("m0", "saved")], State.PLAYING),          # skip to end, save → next message
    ("#3", [DeleteMessage("m0")], State.PLAYING),
    ("#6", [], State.PLAYING),
    ("#1", [], State.PLAYING),                                        # repeat
    ("#*", [], State.MENU),
    ("2", [SetMessageState("m0", "saved")], State.PLAYING),           # save during playback
    ("22", [SetMessageState("m0", "saved"), SetMessageState("m1", "saved")], State.MENU),
    ("33", [DeleteMessage("m0"), DeleteMessage("m1")], State.MENU),
])
def test_message_keys(keys: str, expected_ops: list[object], state: State) -> None:
    app = _app(new=2, saved=0)
    app.start()
    app.handle(PlayDone())
    ops: list[object] = []
    for k in keys:
        ops += [a for a in app.handle(Digit(k)) if isinstance(a, SetMessageState | DeleteMessage)]
    assert ops == expected_ops
    assert app.state is state


def test_saved_then_listed_in_saved_folder() -> None:
    app = _app(new=1, saved=0)
    app.start()
    app.handle(PlayDone())
    app.handle(Digit("2"))            # save m0 → no more new → menu
    assert app.state is State.MENU
    acts = app.handle(Digit("2"))     # saved folder
    assert _played(acts)[-1] == MessageAudio("m0")
    acts = app.handle(Digit("2"))     # saving a saved message emits nothing new
    assert not [a for a in acts if isinstance(a, SetMessageState)]


def test_pin_three_failures_lock_and_hang_up() -> None:
    app = _app(pin=True)
    assert _played(app.start()) == [PHRASES["enter_pin"]]
    for _ in range(2):
        for k in "12#":
            acts = app.handle(Digit(k))
        assert acts == [CheckPin("12")]
        assert _played(app.handle(PinResult(ok=False, locked=False)))[0] == PHRASES["pin_wrong"]
    for k in "99#":
        app.handle(Digit(k))
    assert _played(app.handle(PinResult(ok=False, locked=True))) == [PHRASES["mailbox_locked"]]
    assert app.handle(PlayDone()) == [Hangup()]


def test_pin_ok_goes_to_intro() -> None:
    app = _app(pin=True)
    app.start()
    for k in "1234#":
        app.handle(Digit(k))
    assert _played(app.handle(PinResult(ok=True, locked=False)))[0] == PHRASES["you_have"]


def _to_menu(app: AccessApp) -> None:
    app.start()
    app.handle(PlayDone())


@pytest.mark.parametrize(("status", "phrase"), [
    (403, "call_not_allowed"), (402, "call_not_allowed"), (486, "call_busy"), (500, "call_failed"),
    (408, "call_failed"),
])
def test_outgoing_call_refused_is_spoken_then_menu(status: int, phrase: str) -> None:
    app = _app(new=0)
    _to_menu(app)
    app.handle(Digit("4"))
    acts: Sequence[object] = []
    for k in "420273333444#":
        acts = app.handle(Digit(k))
    assert Refer("420273333444") in acts
    assert _played(app.handle(ReferResult(status))) == [PHRASES[phrase], PHRASES["main_menu"]]
    assert app.state is State.MENU


def test_outgoing_call_accepted_waits_for_bye() -> None:
    app = _app(new=0)
    _to_menu(app)
    for k in "4" + "123456#":
        app.handle(Digit(k))
    assert app.handle(ReferResult(200)) == [] and app.state is State.TRANSFERRED


@pytest.mark.parametrize("keys", ["4#", "412#", "4" + "1" * 16 + "#"])
def test_outgoing_call_bad_numbers_rejected(keys: str) -> None:
    app = _app(new=0)
    _to_menu(app)
    acts: Sequence[object] = []
    for k in keys:
        acts = app.handle(Digit(k))
    assert not any(isinstance(a, Refer) for a in acts) and app.state is State.DIAL


def test_star_cancels_dialling() -> None:
    app = _app(new=0)
    _to_menu(app)
    for k in "412":
        app.handle(Digit(k))
    assert _played(app.handle(Digit("*"))) == [PHRASES["main_menu"]]


def test_greeting_record_keep_and_default() -> None:
    app = _app(new=0)
    _to_menu(app)
    acts = app.handle(Digit("3"))
    assert any(isinstance(a, Record) for a in acts)
    audio = b"\x10" * 16000
    assert _played(app.handle(RecordDone(audio, "digit")))[0] == audio  # played back for review
    assert app.handle(Digit("1"))[0] == StoreGreeting(audio)
    app.handle(Digit("3"))
    app.handle(RecordDone(audio, "digit"))
    assert app.handle(Digit("3"))[0] == StoreGreeting(None)


def test_three_timeouts_say_goodbye() -> None:
    app = _app(new=0)
    _to_menu(app)
    app.handle(Timeout())
    app.handle(Timeout())
    assert _played(app.handle(Timeout())) == [PHRASES["goodbye"]]
    assert app.handle(PlayDone()) == [Hangup()]


def test_invalid_menu_key() -> None:
    app = _app(new=0)
    _to_menu(app)
    acts = app.handle(Digit("9"))
    assert _played(acts) == [PHRASES["invalid_choice"], PHRASES["main_menu"]]
    assert isinstance(acts[-1], WaitForDigit)


# --- deposit -----------------------------------------------------------------------------------------
def _deposit(full: bool = False, greeting: bytes | None = None) -> DepositApp:
    return DepositApp("42027777100", greeting=greeting, full=full, beep=b"B", max_seconds=60, min_seconds=1)


def test_deposit_default_greeting_names_number_then_beep_and_record() -> None:
    app = _deposit()
    items = _played(app.start())
    assert items[0] == PHRASES["greeting_default_1"]
    number = ["four", "two", "zero", "two", "seven", "seven", "seven", "seven", "one", "zero", "zero"]
    assert items[1:12] == number
    acts = app.handle(PlayDone())
    assert _played(acts) == [b"B"] and isinstance(acts[1], Record)


def test_deposit_uploaded_greeting() -> None:
    assert _played(_deposit(greeting=b"G").start()) == [b"G"]


@pytest.mark.parametrize(("reason", "after"), [("digit", "play"), ("silence", "play"), ("hangup", "hangup")])
def test_deposit_stores_then_closes(reason: str, after: str) -> None:
    app = _deposit()
    app.start()
    app.handle(PlayDone())
    audio = b"\x01" * 16000
    assert app.handle(RecordDone(audio, reason)) == [StoreMessage(audio)]
    acts = app.handle(StoreResult(ok=True))
    if after == "hangup":
        assert acts == [Hangup()]
    else:
        assert _played(acts) == [PHRASES["goodbye"]]
        assert app.handle(PlayDone()) == [Hangup()]
    assert app.stored


def test_deposit_too_short_discarded() -> None:
    app = _deposit()
    app.start()
    app.handle(PlayDone())
    acts = app.handle(RecordDone(b"\x01" * 4000, "digit"))
    assert not any(isinstance(a, StoreMessage) for a in acts)
    assert _played(acts)[0] == PHRASES["message_too_short"]
    assert app.handle(PlayDone()) == [Hangup("too_short")]


def test_deposit_mailbox_full() -> None:
    app = _deposit(full=True)
    assert _played(app.start()) == [PHRASES["mailbox_full"]]
    assert app.handle(PlayDone()) == [Hangup("mailbox_full")]


def test_deposit_full_at_store_time_is_spoken() -> None:
    app = _deposit()
    app.start()
    app.handle(PlayDone())
    app.handle(RecordDone(b"\x01" * 16000, "digit"))
    assert _played(app.handle(StoreResult(ok=False, full=True))) == [PHRASES["mailbox_full"]]
    assert app.handle(PlayDone()) == [Hangup("mailbox_full")]


@pytest.mark.parametrize(("n", "words"), [(0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety nine"),
                                          (305, "three hundred five"), (2001, "two thousand one")])
def test_number_words(n: int, words: str) -> None:
    assert number_words(n) == words.split()
