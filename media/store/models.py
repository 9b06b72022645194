"""MongoDB documents of the voicemail store (collections ``voicemail_boxes``, ``voicemail_messages``;
audio in the GridFS bucket ``voicemail_audio``)."""

from __future__ import annotations

import datetime as dt

from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    IntField,
    ObjectIdField,
    StringField,
)

STATES = ("new", "saved")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class VoicemailBox(Document):  # type: ignore[misc]
    """What media owns about a mailbox; created on first use with the service defaults.

    The PIN is not here: it is account data (``accounts.voicemail.pin_hash``, provisioning API). Documents
    written by older versions may still carry ``pin_hash``; ``strict: False`` lets them load and
    :meth:`media.store.voicemail.VoicemailStore.migrate_legacy_pins` moves the value to the account.
    """

    mailbox = StringField(required=True, unique=True)
    require_pin = BooleanField(default=False)
    locked = BooleanField(default=False)
    pin_failures = IntField(default=0)
    max_messages = IntField()
    greeting_audio_id = ObjectIdField()
    deposits = IntField(default=0)
    """Written by every deposit transaction: the write that makes concurrent deposits conflict (and retry),
    so the count-then-insert of :meth:`VoicemailStore.add_message` is atomic."""
    updated_at = DateTimeField(default=utcnow)

    meta = {"collection": "voicemail_boxes", "strict": False, "auto_create_index": False}


class VoicemailMessage(Document):  # type: ignore[misc]
    mailbox = StringField(required=True)
    caller = StringField(required=True)
    received_at = DateTimeField(required=True)
    duration_ms = IntField(required=True)
    state = StringField(choices=STATES, default="new")
    audio_id = ObjectIdField(required=True)
    call_id = StringField()
    rtp = DictField()
    """Receive/send statistics of the call that left the message (``RtpSession.summary()``)."""

    meta = {
        "collection": "voicemail_messages",
        "indexes": [("mailbox", "state", "received_at"), ("mailbox", "call_id")],
        "ordering": ["received_at"],
        "auto_create_index": False,  # created at start: secondnum.mongo.ensure_collections
    }
