"""MongoDB documents of the voicemail store (collections ``voicemail_boxes``, ``voicemail_messages``;
audio in the GridFS bucket ``voicemail_audio``)."""

from __future__ import annotations

import datetime as dt

from mongoengine import (
    BooleanField,
    DateTimeField,
    Document,
    IntField,
    ObjectIdField,
    StringField,
)

STATES = ("new", "saved")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class VoicemailBox(Document):  # type: ignore[misc]
    """Per-mailbox settings; created on first use with the service defaults."""

    mailbox = StringField(required=True, unique=True)
    pin_hash = StringField()
    """``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``; None = no PIN set."""
    require_pin = BooleanField(default=False)
    locked = BooleanField(default=False)
    pin_failures = IntField(default=0)
    max_messages = IntField()
    greeting_audio_id = ObjectIdField()
    updated_at = DateTimeField(default=utcnow)

    meta = {"collection": "voicemail_boxes"}


class VoicemailMessage(Document):  # type: ignore[misc]
    mailbox = StringField(required=True)
    caller = StringField(required=True)
    received_at = DateTimeField(required=True)
    duration_ms = IntField(required=True)
    state = StringField(choices=STATES, default="new")
    audio_id = ObjectIdField(required=True)
    call_id = StringField()

    meta = {
        "collection": "voicemail_messages",
        "indexes": [("mailbox", "state", "received_at")],
        "ordering": ["received_at"],
    }
