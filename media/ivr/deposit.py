"""Voicemail deposit as a sans-IO state machine: greeting, beep, record, store (README "deposit")."""

from __future__ import annotations

import enum

from media.ivr.actions import (
    Action,
    Digit,
    Event,
    Hangup,
    Play,
    PlayDone,
    PlayItem,
    Record,
    RecordDone,
    StoreMessage,
    StoreResult,
)
from media.prompts.catalog import PHRASES, digit_words


class State(enum.Enum):
    GREETING = "greeting"
    RECORDING = "recording"
    STORING = "storing"
    CLOSING = "closing"
    DONE = "done"


def default_greeting(mailbox: str) -> tuple[PlayItem, ...]:
    return (PHRASES["greeting_default_1"], *digit_words(mailbox), PHRASES["greeting_default_2"])


class DepositApp:
    def __init__(self, mailbox: str, *, greeting: bytes | None, full: bool, beep: bytes,
                 max_seconds: float, min_seconds: float) -> None:
        self.mailbox = mailbox
        self.greeting = greeting
        self.full = full
        self.beep = beep
        self.max_seconds = max_seconds
        self.min_bytes = int(min_seconds * 8000)
        self.state = State.GREETING
        self.stored = False
        self._hangup_after_store = False
        self._end_reason = "normal"
        """Why the call ends: ``normal``, ``too_short`` or ``mailbox_full`` (logged and counted)."""

    def start(self) -> list[Action]:
        if self.full:
            self.state = State.CLOSING
            self._end_reason = "mailbox_full"
            return [Play((PHRASES["mailbox_full"],), barge_in=False)]
        greeting: tuple[PlayItem, ...] = (self.greeting,) if self.greeting else default_greeting(self.mailbox)
        # '#' during the greeting skips straight to the tone, as callers expect from voicemail systems.
        return [Play(greeting, barge_in=True)]

    def handle(self, event: Event) -> list[Action]:
        if self.state is State.GREETING and isinstance(event, PlayDone | Digit):
            self.state = State.RECORDING
            return [Play((self.beep,), barge_in=False), Record(self.max_seconds)]
        if self.state is State.RECORDING and isinstance(event, RecordDone):
            if len(event.audio) < self.min_bytes:
                self.state = State.CLOSING
                self._end_reason = "too_short"
                if event.reason == "hangup":
                    self.state = State.DONE
                    return [Hangup("too_short")]
                return [Play((PHRASES["message_too_short"], PHRASES["goodbye"]), barge_in=False)]
            self.state = State.STORING
            self._hangup_after_store = event.reason == "hangup"
            return [StoreMessage(event.audio)]
        if self.state is State.STORING and isinstance(event, StoreResult):
            self.stored = event.ok
            self._end_reason = "normal" if event.ok else "mailbox_full"
            if self._hangup_after_store:
                self.state = State.DONE
                return [Hangup(self._end_reason)]
            self.state = State.CLOSING
            text = PHRASES["goodbye"] if event.ok else PHRASES["mailbox_full"]
            return [Play((text,), barge_in=False)]
        if self.state is State.CLOSING and isinstance(event, PlayDone):
            self.state = State.DONE
            return [Hangup(self._end_reason)]
        return []
