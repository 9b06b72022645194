"""Blocking voicemail store operations (run them with ``asyncio.to_thread``).

Durability order for a new message (the issue's "never lost once the caller hung up"): the audio goes to
GridFS first, then the message document is inserted; both with the client's default write concern
(majority on a replica set). The caller is released only after :meth:`VoicemailStore.add_message` returns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable

import gridfs
from bson import ObjectId
from bson.errors import InvalidId
from mongoengine.connection import get_db

from media.audio.wav import ulaw_wav
from media.store.models import VoicemailBox, VoicemailMessage, utcnow

PIN_ITERATIONS = 50_000
MAX_PIN_FAILURES = 3


class MailboxFullError(Exception):
    pass


class NotFoundError(LookupError):
    pass


@dataclasses.dataclass(frozen=True)
class MessageInfo:
    id: str
    mailbox: str
    caller: str
    received_at: dt.datetime
    duration_ms: int
    state: str

    def as_json(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["received_at"] = self.received_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return d


def hash_pin(pin: str, salt: bytes | None = None, iterations: int = PIN_ITERATIONS) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    try:
        _, iterations, salt, digest = stored.split("$")
        candidate = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(candidate.hex(), digest)


def _info(m: VoicemailMessage) -> MessageInfo:
    received = m.received_at if m.received_at.tzinfo else m.received_at.replace(tzinfo=dt.UTC)
    return MessageInfo(str(m.id), m.mailbox, m.caller, received, m.duration_ms, m.state)


def _oid(text: str) -> ObjectId:
    try:
        return ObjectId(text)
    except (InvalidId, TypeError):
        raise NotFoundError(text) from None


class VoicemailStore:
    def __init__(self, default_max_messages: int = 100, alias: str = "default") -> None:
        self.default_max_messages = default_max_messages
        self.alias = alias

    @property
    def _fs(self) -> gridfs.GridFS:
        return gridfs.GridFS(get_db(self.alias), collection="voicemail_audio")

    # --- mailboxes ---
    def box(self, mailbox: str) -> VoicemailBox:
        """The mailbox document, created with defaults on first use (upsert, race-free)."""
        VoicemailBox.objects(mailbox=mailbox).update_one(
            upsert=True, set_on_insert__require_pin=False, set_on_insert__locked=False,
            set_on_insert__pin_failures=0,
        )
        box: VoicemailBox = VoicemailBox.objects.get(mailbox=mailbox)
        return box

    def capacity(self, box: VoicemailBox, account_limit: int | None = None) -> int:
        """The mailbox's own limit (REST), else the account's (subscriber data), else the default."""
        if box.max_messages:
            return int(box.max_messages)
        return account_limit or self.default_max_messages

    def is_full(self, mailbox: str, account_limit: int | None = None) -> bool:
        box = self.box(mailbox)
        count = VoicemailMessage.objects(mailbox=mailbox).count()
        return bool(count >= self.capacity(box, account_limit))

    def counts(self, mailbox: str) -> tuple[int, int]:
        return (VoicemailMessage.objects(mailbox=mailbox, state="new").count(),
                VoicemailMessage.objects(mailbox=mailbox, state="saved").count())

    def update_box(self, mailbox: str, *, pin: str | None = None, require_pin: bool | None = None,
                   locked: bool | None = None, max_messages: int | None = None) -> VoicemailBox:
        box = self.box(mailbox)
        updates: dict[str, object] = {"set__updated_at": utcnow()}
        if pin is not None:
            updates["set__pin_hash"] = hash_pin(pin)
        if require_pin is not None:
            updates["set__require_pin"] = require_pin
        if locked is not None:
            updates["set__locked"] = locked
            if not locked:
                updates["set__pin_failures"] = 0
        if max_messages is not None:
            updates["set__max_messages"] = max_messages
        box.update(**updates)
        box.reload()
        return box

    def check_pin(self, mailbox: str, pin: str,
                  account_check: Callable[[str], bool] | None = None) -> tuple[bool, bool]:
        """(pin correct, mailbox locked now). Three consecutive failures lock the mailbox.

        ``account_check`` verifies against the account's PIN (subscriber data) when it has one; the
        mailbox's own PIN (set over media's REST API) is used otherwise.
        """
        box = self.box(mailbox)
        if box.locked:
            return False, True
        ok = account_check(pin) if account_check is not None else bool(
            box.pin_hash and verify_pin(pin, box.pin_hash))
        if ok:
            box.update(set__pin_failures=0)
            return True, False
        box.update(inc__pin_failures=1)
        box.reload()
        if box.pin_failures >= MAX_PIN_FAILURES:
            box.update(set__locked=True)
            return False, True
        return False, False

    # --- greetings ---
    def greeting(self, mailbox: str) -> bytes | None:
        """The uploaded greeting as µ-law 8 kHz, or None for the default one."""
        box = self.box(mailbox)
        if box.greeting_audio_id is None:
            return None
        try:
            data: bytes = self._fs.get(box.greeting_audio_id).read()
        except gridfs.NoFile:
            return None
        return data

    def set_greeting(self, mailbox: str, ulaw: bytes | None) -> None:
        box = self.box(mailbox)
        old = box.greeting_audio_id
        new_id = None if ulaw is None else self._fs.put(ulaw, mailbox=mailbox, kind="greeting")
        box.update(set__greeting_audio_id=new_id, set__updated_at=utcnow())
        if old is not None:
            self._fs.delete(old)

    # --- messages ---
    def add_message(self, mailbox: str, caller: str, ulaw: bytes, received_at: dt.datetime, *,
                    call_id: str = "", account_limit: int | None = None) -> MessageInfo:
        """Store audio then document (see module doc); raises MailboxFullError."""
        box = self.box(mailbox)
        capacity = self.capacity(box, account_limit)
        if VoicemailMessage.objects(mailbox=mailbox).count() >= capacity:
            raise MailboxFullError(mailbox)
        audio_id = self._fs.put(ulaw, mailbox=mailbox, kind="message", call_id=call_id)
        msg = VoicemailMessage(mailbox=mailbox, caller=caller, received_at=received_at,
                               duration_ms=len(ulaw) // 8, state="new", audio_id=audio_id, call_id=call_id)
        msg.save()
        # Concurrent deposits may all pass the check above: re-count after inserting and withdraw ours if
        # it is beyond the capacity, so the limit is never exceeded (at worst a racing pair both withdraw).
        newer_or_same = VoicemailMessage.objects(mailbox=mailbox, id__lte=msg.id).count()
        if newer_or_same > capacity:
            msg.delete()
            self._fs.delete(audio_id)
            raise MailboxFullError(mailbox)
        return _info(msg)

    def list_messages(self, mailbox: str, state: str | None = None) -> list[MessageInfo]:
        query = VoicemailMessage.objects(mailbox=mailbox)
        if state is not None:
            query = query.filter(state=state)
        return [_info(m) for m in query.order_by("received_at")]

    def _get(self, mailbox: str, message_id: str) -> VoicemailMessage:
        msg = VoicemailMessage.objects(id=_oid(message_id), mailbox=mailbox).first()
        if msg is None:
            raise NotFoundError(message_id)
        return msg  # type: ignore[no-any-return]

    def audio(self, mailbox: str, message_id: str) -> bytes:
        """The message's µ-law audio."""
        msg = self._get(mailbox, message_id)
        data: bytes = self._fs.get(msg.audio_id).read()
        return data

    def audio_wav(self, mailbox: str, message_id: str) -> bytes:
        return ulaw_wav(self.audio(mailbox, message_id))

    def set_state(self, mailbox: str, message_id: str, state: str) -> MessageInfo:
        msg = self._get(mailbox, message_id)
        msg.update(set__state=state)
        msg.reload()
        return _info(msg)

    def delete(self, mailbox: str, message_id: str) -> None:
        msg = self._get(mailbox, message_id)
        msg.delete()
        self._fs.delete(msg.audio_id)
