"""MongoEngine documents: ``accounts`` and ``aliases``.

Uniqueness lives in the database: ``accounts.did`` and ``aliases.key`` (the canonical identity from
:func:`secondnum.identity.canonical`) carry unique indexes, so two concurrent provisioning requests cannot
create the same DID or give one alias identity to two accounts. Only exact-match queries are used: SecantusDB
answers regex lookups on indexed fields wrongly (see tests/unit/hss_adapter/test_no_regex_lookups.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import mongoengine as me

from hss_adapter.profile import (
    DEFAULT_MAX_MESSAGE_SECONDS,
    DEFAULT_MAX_MESSAGES,
    DEFAULT_RING_TIMEOUT,
    AccountStatus,
    AnsweringMode,
    CallerIdPresentation,
    RingOrder,
)
from secondnum.mongo import connect, ensure_collections

E164_PATTERN = r"^[1-9][0-9]{6,14}$"

ACCOUNTS = "accounts"
ALIASES = "aliases"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class FollowMeTargetDoc(me.EmbeddedDocument):  # type: ignore[misc]
    uri = me.StringField(required=True, max_length=256)
    ring_timeout = me.IntField(min_value=1, max_value=300, default=DEFAULT_RING_TIMEOUT)


class TimeWindowDoc(me.EmbeddedDocument):  # type: ignore[misc]
    days = me.ListField(me.StringField(choices=("mon", "tue", "wed", "thu", "fri", "sat", "sun")))
    start = me.StringField(regex=r"^[0-2][0-9]:[0-5][0-9]$", default="00:00")
    end = me.StringField(regex=r"^[0-2][0-9]:[0-5][0-9]$", default="00:00")
    timezone = me.StringField(default="UTC", max_length=64)


class FollowMeDoc(me.EmbeddedDocument):  # type: ignore[misc]
    targets = me.EmbeddedDocumentListField(FollowMeTargetDoc)
    ring_order = me.StringField(choices=[m.value for m in RingOrder], default=RingOrder.SEQUENTIAL.value)
    time_window = me.EmbeddedDocumentField(TimeWindowDoc, null=True)


class VoicemailDoc(me.EmbeddedDocument):  # type: ignore[misc]
    enabled = me.BooleanField(default=True)
    pin_hash = me.StringField(null=True)
    pin_required = me.BooleanField(default=False)
    max_message_seconds = me.IntField(min_value=5, max_value=3600, default=DEFAULT_MAX_MESSAGE_SECONDS)
    max_messages = me.IntField(min_value=1, max_value=10000, default=DEFAULT_MAX_MESSAGES)
    greeting = me.StringField(null=True, max_length=256)


class AccountDoc(me.Document):  # type: ignore[misc]
    """One 2nd-number account, keyed by its DID (E.164 digits without ``+``)."""

    did = me.StringField(required=True, unique=True, regex=E164_PATTERN)
    display_name = me.StringField(default="", max_length=128)
    status = me.StringField(choices=[m.value for m in AccountStatus], default=AccountStatus.ACTIVE.value)
    answering_mode = me.StringField(
        choices=[m.value for m in AnsweringMode], default=AnsweringMode.FORWARD_THEN_VOICEMAIL.value
    )
    follow_me = me.EmbeddedDocumentField(FollowMeDoc, default=FollowMeDoc)
    caller_id_presentation = me.StringField(
        choices=[m.value for m in CallerIdPresentation], default=CallerIdPresentation.DID.value
    )
    voicemail = me.EmbeddedDocumentField(VoicemailDoc, default=VoicemailDoc)
    updated_at = me.DateTimeField(default=_utcnow)

    meta: dict[str, Any] = {
        "collection": ACCOUNTS,
        "indexes": ["status", "answering_mode"],
        "auto_create_index": False,
    }


class AliasDoc(me.Document):  # type: ignore[misc]
    """An identity that belongs to an account, e.g. the customer's mobile ``42073723123@pstn``."""

    key = me.StringField(required=True, unique=True, max_length=256)
    """Canonical form (``secondnum.identity.canonical``): one identity, one account."""
    identity = me.StringField(required=True, max_length=256)
    account = me.ReferenceField(AccountDoc, required=True, reverse_delete_rule=me.CASCADE)
    allow_registration = me.BooleanField(default=False)
    """Allow authentication/registration with this identity; ANI matching applies regardless."""

    meta: dict[str, Any] = {"collection": ALIASES, "indexes": ["account"], "auto_create_index": False}


def ensure_indexes() -> None:
    """Create the collections and their unique and lookup indexes (idempotent; at start, before serving)."""
    ensure_collections(AccountDoc, AliasDoc)


def ensure_connection(uri: str, database: str) -> None:
    """Connect mongoengine's default alias unless it already points at ``database``.

    In ``secondnum up`` several components share the process; reconnecting would close the client another
    component's threads are using, so an existing connection to the same database is kept.
    """
    from mongoengine.connection import ConnectionFailure, get_db

    try:
        if get_db().name == database:
            return
    except ConnectionFailure:
        pass
    connect(uri, database)
