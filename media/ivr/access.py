"""The voicemail-access menu as a sans-IO state machine (keys in ``media/README.md``).

Fed :mod:`media.ivr.actions` events, returns actions. It holds a snapshot of the mailbox's messages taken
when the call starts and keeps it in step with the save/delete actions it emits; the call controller does
all I/O (playing, storing, REFER).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from media.ivr.actions import (
    Action,
    CheckPin,
    DeleteMessage,
    Digit,
    Event,
    Hangup,
    MessageAudio,
    PinResult,
    Play,
    PlayDone,
    PlayItem,
    Record,
    RecordDone,
    Refer,
    ReferResult,
    SetMessageState,
    StoreGreeting,
    Timeout,
    WaitForDigit,
)
from media.prompts.catalog import PHRASES, count_phrase, datetime_words, digit_words
from media.store.voicemail import MessageInfo

P = PHRASES
MAX_NO_INPUT = 3
MIN_DIAL_DIGITS = 3
MAX_DIAL_DIGITS = 15


class State(enum.Enum):
    PIN = "pin"
    PIN_CHECK = "pin_check"
    INTRO = "intro"
    MENU = "menu"
    PLAYING = "playing"
    AFTER_MESSAGE = "after_message"
    GREETING_RECORD = "greeting_record"
    GREETING_REVIEW = "greeting_review"
    DIAL = "dial"
    REFERRING = "referring"
    TRANSFERRED = "transferred"
    CLOSING = "closing"


class AccessApp:
    def __init__(self, new: Sequence[MessageInfo], saved: Sequence[MessageInfo], *, pin_required: bool,
                 digit_timeout: float = 8.0, max_greeting_seconds: float = 60.0,
                 beep: bytes = b"") -> None:
        self.new = list(new)
        self.saved = list(saved)
        self.pin_required = pin_required
        self.digit_timeout = digit_timeout
        self.max_greeting_seconds = max_greeting_seconds
        self.beep = beep
        self.state = State.PIN if pin_required else State.INTRO
        self._digits = ""
        self._folder: list[MessageInfo] = []
        self._folder_name = "new"
        self._index = 0
        self._no_input = 0
        self._greeting: bytes | None = None

    # --- entry -------------------------------------------------------------------------------------
    def start(self) -> list[Action]:
        if self.pin_required:
            return self._ask_pin()
        return self._intro()

    def handle(self, event: Event) -> list[Action]:
        handler = getattr(self, f"_on_{self.state.value}")
        result: list[Action] = handler(event)
        return result

    # --- helpers -----------------------------------------------------------------------------------
    def _wait(self) -> WaitForDigit:
        return WaitForDigit(self.digit_timeout)

    def _ask_pin(self, *prefix: PlayItem) -> list[Action]:
        self.state = State.PIN
        self._digits = ""
        return [Play((*prefix, P["enter_pin"])), self._wait()]

    def _intro(self) -> list[Action]:
        self.state = State.INTRO
        items: list[PlayItem] = [P["you_have"], *count_phrase(len(self.new), "new_message", "new_messages"),
                                 P["and"], *count_phrase(len(self.saved), "saved_message", "saved_messages")]
        return [Play(tuple(items))]

    def _menu(self, *prefix: PlayItem) -> list[Action]:
        self.state = State.MENU
        return [Play((*prefix, P["main_menu"])), self._wait()]

    def _no_input_or(self, again: list[Action]) -> list[Action]:
        self._no_input += 1
        if self._no_input >= MAX_NO_INPUT:
            self.state = State.CLOSING
            return [Play((P["goodbye"],), barge_in=False)]
        return [Play((P["no_input"],)), *again]

    def _open_folder(self, name: str) -> list[Action]:
        self._folder_name = name
        self._folder = self.new if name == "new" else self.saved
        self._index = 0
        return self._play_current()

    def _play_current(self) -> list[Action]:
        if self._index >= len(self._folder):
            return self._menu(P["no_more_new"] if self._folder_name == "new" else P["no_more_saved"])
        self.state = State.PLAYING
        msg = self._folder[self._index]
        caller: list[PlayItem] = (list(digit_words(msg.caller)) if msg.caller.isdigit()
                                  else [P["unknown_caller"]])
        envelope: list[PlayItem] = [P["message_from"], *caller, P["received"],
                                    *datetime_words(msg.received_at)]
        return [Play((*envelope, MessageAudio(msg.id)))]

    def _after_message(self, *prefix: PlayItem) -> list[Action]:
        self.state = State.AFTER_MESSAGE
        return [Play((*prefix, P["after_message"])), self._wait()]

    def _current(self) -> MessageInfo:
        return self._folder[self._index]

    def _save_and_next(self) -> list[Action]:
        msg = self._current()
        actions: list[Action] = []
        if msg in self.new:
            actions.append(SetMessageState(msg.id, "saved"))
            self.new.remove(msg)
            self.saved.append(msg)
            self._index -= 1  # the new-message list shrank under us
        self._index += 1
        return [*actions, Play((P["message_saved"],)), *self._play_current()]

    def _delete_and_next(self) -> list[Action]:
        msg = self._current()
        self._folder.remove(msg)
        return [DeleteMessage(msg.id), Play((P["message_deleted"],)), *self._play_current()]

    def _message_keys(self, digit: str) -> list[Action] | None:
        if digit == "1":
            return self._play_current()
        if digit == "2":
            return self._save_and_next()
        if digit == "3":
            return self._delete_and_next()
        if digit == "6":
            self._index += 1
            return self._play_current()
        return None

    # --- states ------------------------------------------------------------------------------------
    def _on_pin(self, event: Event) -> list[Action]:
        if isinstance(event, Timeout):
            return self._no_input_or(self._ask_pin())
        if not isinstance(event, Digit):
            return []
        self._no_input = 0
        if event.digit == "#":
            self.state = State.PIN_CHECK
            return [CheckPin(self._digits)]
        if event.digit.isdigit() and len(self._digits) < 20:
            self._digits += event.digit
        return [self._wait()]

    def _on_pin_check(self, event: Event) -> list[Action]:
        if not isinstance(event, PinResult):
            return []
        if event.locked:
            self.state = State.CLOSING
            return [Play((P["mailbox_locked"],), barge_in=False)]
        if not event.ok:
            return self._ask_pin(P["pin_wrong"])
        return self._intro()

    def _on_intro(self, event: Event) -> list[Action]:
        if isinstance(event, PlayDone | Digit):
            return self._open_folder("new") if self.new else self._menu()
        return []

    def _on_menu(self, event: Event) -> list[Action]:
        if isinstance(event, Timeout):
            return self._no_input_or(self._menu())
        if not isinstance(event, Digit):
            return []
        self._no_input = 0
        match event.digit:
            case "1":
                return self._open_folder("new")
            case "2":
                return self._open_folder("saved")
            case "3":
                self.state = State.GREETING_RECORD
                return [Play((P["record_greeting"], self.beep), barge_in=False),
                        Record(self.max_greeting_seconds)]
            case "4":
                self.state = State.DIAL
                self._digits = ""
                return [Play((P["enter_number"],)), self._wait()]
            case "0":
                return self._menu()
        return self._menu(P["invalid_choice"])

    def _on_playing(self, event: Event) -> list[Action]:
        if isinstance(event, PlayDone):
            return self._after_message()
        if not isinstance(event, Digit):
            return []
        if event.digit == "#":
            return self._after_message()
        return self._message_keys(event.digit) or []

    def _on_after_message(self, event: Event) -> list[Action]:
        if isinstance(event, Timeout):
            return self._no_input_or(self._after_message())
        if not isinstance(event, Digit):
            return []
        self._no_input = 0
        if event.digit == "*":
            return self._menu()
        return self._message_keys(event.digit) or self._after_message(P["invalid_choice"])

    def _on_greeting_record(self, event: Event) -> list[Action]:
        if not isinstance(event, RecordDone):
            return []
        if len(event.audio) < 8000:  # under one second of speech
            return self._menu(P["recording_too_short"])
        self._greeting = event.audio
        self.state = State.GREETING_REVIEW
        return [Play((event.audio, P["greeting_options"])), self._wait()]

    def _on_greeting_review(self, event: Event) -> list[Action]:
        if isinstance(event, Timeout):
            return self._no_input_or([Play((P["greeting_options"],)), self._wait()])
        if not isinstance(event, Digit):
            return []
        match event.digit:
            case "1":
                return [StoreGreeting(self._greeting), *self._menu(P["greeting_saved"])]
            case "2":
                self.state = State.GREETING_RECORD
                return [Play((P["record_greeting"], self.beep), barge_in=False),
                        Record(self.max_greeting_seconds)]
            case "3":
                return [StoreGreeting(None), *self._menu(P["greeting_default_restored"])]
            case "*":
                return self._menu()
        return [Play((P["invalid_choice"], P["greeting_options"])), self._wait()]

    def _on_dial(self, event: Event) -> list[Action]:
        if isinstance(event, Timeout):
            return self._no_input_or([Play((P["enter_number"],)), self._wait()])
        if not isinstance(event, Digit):
            return []
        self._no_input = 0
        if event.digit == "*":
            return self._menu()
        if event.digit == "#":
            if not MIN_DIAL_DIGITS <= len(self._digits) <= MAX_DIAL_DIGITS:
                self._digits = ""
                return [Play((P["invalid_choice"], P["enter_number"])), self._wait()]
            self.state = State.REFERRING
            return [Play((P["calling"], *digit_words(self._digits), P["please_wait"]), barge_in=False),
                    Refer(self._digits)]
        if event.digit.isdigit():
            self._digits += event.digit
        return [self._wait()]

    def _on_referring(self, event: Event) -> list[Action]:
        if not isinstance(event, ReferResult):
            return []
        if 200 <= event.status < 300:
            self.state = State.TRANSFERRED
            return []
        if event.status in (402, 403):
            reason = P["call_not_allowed"]
        elif event.status in (486, 600):
            reason = P["call_busy"]
        else:
            reason = P["call_failed"]
        return self._menu(reason)

    def _on_transferred(self, event: Event) -> list[Action]:
        return []

    def _on_closing(self, event: Event) -> list[Action]:
        if isinstance(event, PlayDone):
            return [Hangup()]
        return []
