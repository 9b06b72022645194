"""Trivial call applications: say something (or nothing) and hang up."""

from __future__ import annotations

from media.ivr.actions import Action, Event, Hangup, Play, PlayDone


class AnnouncementApp:
    """Play ``items`` without barge-in, then hang up (locked mailbox, no ACK, ...)."""

    def __init__(self, *items: str, reason: str = "normal") -> None:
        self.items = items
        self.reason = reason

    def start(self) -> list[Action]:
        if not self.items:
            return [Hangup(self.reason)]
        return [Play(self.items, barge_in=False)]

    def handle(self, event: Event) -> list[Action]:
        return [Hangup(self.reason)] if isinstance(event, PlayDone) else []
