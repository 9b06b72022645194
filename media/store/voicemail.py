"""Blocking voicemail store operations (run them with ``asyncio.to_thread``).

Durability order for a new message (the issue's "never lost once the caller hung up"): the audio goes to
GridFS first, then the message document is inserted; both with the client's default write concern
(majority on a replica set). The caller is released only after :meth:`VoicemailStore.add_message` returns.

Mailbox limit: the count and the insert run in one transaction that also writes the mailbox document, so two
racing deposits conflict (``WriteConflict``, label ``TransientTransactionError``) and the loser retries with
the winner's message counted: the limit is never exceeded and never under-filled. Needs a replica set
(SecantusDB is one; so is every production MongoDB here).

The PIN is account data (``hss_adapter``); media only verifies it (a callable from the account settings) and
keeps the lock state and failure count, which are media's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import gridfs
from bson import ObjectId
from bson.errors import InvalidId
from mongoengine.connection import get_connection, get_db
from pymongo.errors import PyMongoError

from media.audio.wav import ulaw_wav
from media.store.models import VoicemailBox, VoicemailMessage, utcnow
from secondnum.log import get_logger
from secondnum.mongo import ensure_collections

log = get_logger(__name__)

MAX_PIN_FAILURES = 3
TXN_ATTEMPTS = 60
"""Write-conflict retries of one deposit transaction (jittered backoff, ~1.5 s in all at most)."""


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
    rtp: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """RTP statistics of the call that left the message (empty for older messages)."""

    def as_json(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["rtp"] = dict(self.rtp)
        d["received_at"] = self.received_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return d


def _info(m: VoicemailMessage) -> MessageInfo:
    received = m.received_at if m.received_at.tzinfo else m.received_at.replace(tzinfo=dt.UTC)
    return MessageInfo(str(m.id), m.mailbox, m.caller, received, m.duration_ms, m.state, dict(m.rtp or {}))


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

    def ensure_indexes(self) -> None:
        """Create the mailbox, message and audio (GridFS) indexes up front, at service start.

        Otherwise the first deposits create them on first use, concurrently with each other's transactions:
        on SecantusDB that left every client waiting for the server (seen in CI, concurrent deposits on an
        empty database); created once beforehand, nothing races (``secondnum.mongo.ensure_collections``)."""
        ensure_collections(VoicemailBox, VoicemailMessage)
        db = get_db(self.alias)
        db["voicemail_audio.files"].create_index([("filename", 1), ("uploadDate", 1)])  # as GridFS does
        db["voicemail_audio.chunks"].create_index([("files_id", 1), ("n", 1)], unique=True)

    # --- mailboxes ---
    def box(self, mailbox: str) -> VoicemailBox:
        """The mailbox document, created with defaults on first use (upsert, race-free).

        Read first, write only when it is missing: deposits update this document inside their transaction
        (:meth:`_insert_within_limit`), and a non-transactional upsert on every call raced those
        transactions — on SecantusDB, ten concurrent deposits could leave every client waiting for the
        server for good (seen in CI; a real MongoDB answers such a conflict with a retryable error).
        """
        existing: VoicemailBox | None = VoicemailBox.objects(mailbox=mailbox).first()
        if existing is not None:
            return existing
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

    def update_box(self, mailbox: str, *, require_pin: bool | None = None, locked: bool | None = None,
                   max_messages: int | None = None) -> VoicemailBox:
        box = self.box(mailbox)
        updates: dict[str, object] = {"set__updated_at": utcnow()}
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
                  account_check: Callable[[str], bool] | None) -> tuple[bool, bool]:
        """(pin correct, mailbox locked now). Three consecutive failures lock the mailbox.

        ``account_check`` verifies ``pin`` against the account's PIN (the only PIN there is); None (the
        account has no PIN) fails like a wrong PIN.
        """
        box = self.box(mailbox)
        if box.locked:
            return False, True
        ok = account_check is not None and account_check(pin)
        if ok:
            box.update(set__pin_failures=0)
            return True, False
        box.update(inc__pin_failures=1)
        box.reload()
        if box.pin_failures >= MAX_PIN_FAILURES:
            box.update(set__locked=True)
            return False, True
        return False, False

    def migrate_legacy_pins(self, adopt: Callable[[str, str], str]) -> dict[str, str]:
        """One-time move of PINs that older versions kept in ``voicemail_boxes`` (pbkdf2) to the account.

        ``adopt(did, pin_hash)`` (``hss_adapter.store.adopt_voicemail_pin_hash``) sets the account's PIN
        only when the account has none and says what it did (``adopted``, ``kept`` = the account's own PIN
        wins, ``no_account``). The mailbox copy is removed in every case, so this runs once per document;
        returns mailbox -> outcome for the log.
        """
        boxes = VoicemailBox._get_collection()
        done: dict[str, str] = {}
        for raw in boxes.find({"pin_hash": {"$exists": True}}, {"mailbox": 1, "pin_hash": 1}):
            mailbox, pin_hash = raw["mailbox"], raw.get("pin_hash")
            outcome = adopt(mailbox, pin_hash) if pin_hash else "empty"
            boxes.update_one({"_id": raw["_id"]}, {"$unset": {"pin_hash": ""}})
            log.warning("legacy_mailbox_pin_migrated", mailbox=mailbox, outcome=outcome)
            done[mailbox] = outcome
        return done

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
                    call_id: str = "", account_limit: int | None = None,
                    rtp: Mapping[str, Any] | None = None, force: bool = False) -> MessageInfo:
        """Store audio then document (see module doc); raises MailboxFullError.

        ``force`` skips the limit: for messages already accepted from a caller (spool import, deposits taken
        while the database was down). With a ``call_id`` the operation is idempotent: a message of the same
        call in the mailbox is returned instead of a second copy (a spool import interrupted after the
        insert, a retry after an unknown commit result).
        """
        box = self.box(mailbox)
        capacity = None if force else self.capacity(box, account_limit)
        if capacity is not None and VoicemailMessage.objects(mailbox=mailbox).count() >= capacity:
            raise MailboxFullError(mailbox)  # cheap early answer; the transaction below decides races
        audio_id = self._fs.put(ulaw, mailbox=mailbox, kind="message", call_id=call_id)
        msg = VoicemailMessage(mailbox=mailbox, caller=caller, received_at=received_at,
                               duration_ms=len(ulaw) // 8, state="new", audio_id=audio_id, call_id=call_id,
                               rtp=dict(rtp or {}))
        msg.validate()
        doc = msg.to_mongo().to_dict()
        doc["_id"] = ObjectId()
        try:
            stored_id = self._insert_within_limit(mailbox, doc, capacity, call_id)
        except MailboxFullError:
            self._fs.delete(audio_id)
            raise
        if stored_id != doc["_id"]:
            self._fs.delete(audio_id)  # the call's message was already there
        stored = VoicemailMessage.objects(id=stored_id).first()
        if stored is None:  # pragma: no cover - deleted between commit and read
            raise NotFoundError(str(stored_id))
        return _info(stored)

    def _insert_within_limit(self, mailbox: str, doc: dict[str, Any], capacity: int | None,
                             call_id: str) -> ObjectId:
        """Count-then-insert as one transaction serialised on the mailbox document (module doc)."""
        client = get_connection(self.alias)
        db = get_db(self.alias)  # the session and the collections must belong to the same client
        boxes = db[VoicemailBox._meta["collection"]]
        messages = db[VoicemailMessage._meta["collection"]]
        for attempt in range(TXN_ATTEMPTS):
            try:
                with client.start_session() as session, session.start_transaction():
                    # First statement: the conflicting write, so a loser learns it early and cheaply.
                    boxes.update_one({"mailbox": mailbox}, {"$inc": {"deposits": 1}}, session=session)
                    if call_id:
                        same = messages.find_one({"mailbox": mailbox, "call_id": call_id}, {"_id": 1},
                                                 session=session)
                        if same is not None:
                            found: ObjectId = same["_id"]
                            return found
                    if capacity is not None and messages.count_documents(
                            {"mailbox": mailbox}, session=session) >= capacity:
                        raise MailboxFullError(mailbox)
                    messages.insert_one(doc, session=session)
                inserted: ObjectId = doc["_id"]
                return inserted
            except PyMongoError as exc:
                if not exc.has_error_label("TransientTransactionError") or attempt == TXN_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0.0, min(0.05, 0.001 * 2 ** attempt)))
        raise AssertionError("unreachable")  # pragma: no cover

    def has_message(self, mailbox: str, call_id: str) -> bool:
        return bool(VoicemailMessage.objects(mailbox=mailbox, call_id=call_id).count())

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
