"""MongoDB documents of the built-in OCS (mongoengine, default alias)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import mongoengine as me


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Account(me.Document):  # type: ignore[misc]
    """A prepaid account keyed by the E.164 of the DID (Subscription-Id END_USER_E164)."""

    meta: dict[str, Any] = {"collection": "ocs_accounts", "auto_create_index": False}

    e164 = me.StringField(primary_key=True)
    balance = me.IntField(default=0)  # milli-units
    reserved = me.IntField(default=0)  # milli-units held by open sessions
    updated_at = me.DateTimeField(default=_now)


class Tariff(me.Document):  # type: ignore[misc]
    """Price of calls to destinations starting with `prefix` (digits; "" = default)."""

    meta: dict[str, Any] = {"collection": "ocs_tariffs", "auto_create_index": False}

    prefix = me.StringField(primary_key=True, default="")
    price_per_minute = me.IntField(required=True, min_value=0)
    increment_seconds = me.IntField(default=60, min_value=1)
    connection_fee = me.IntField(default=0, min_value=0)


class RatedRecord(me.Document):  # type: ignore[misc]
    """One Ro session as rated by the OCS."""

    meta: dict[str, Any] = {
        "collection": "ocs_rated_records",
        "indexes": ["e164", "-updated_at", ("closed", "expires_at")],
        "auto_create_index": False,  # created at start: secondnum.mongo.ensure_collections
    }

    session_id = me.StringField(primary_key=True)
    e164 = me.StringField(required=True)
    called = me.StringField(default="")
    prefix = me.StringField(default="")
    used_seconds = me.IntField(default=0)
    charged = me.IntField(default=0)
    reserved = me.IntField(default=0)
    reserved_seconds = me.IntField(default=0)
    last_request_number = me.IntField(default=-1)
    last_result = me.IntField(null=True)
    last_granted = me.IntField(null=True)
    last_final = me.BooleanField(default=False)
    closed = me.BooleanField(default=False)
    events = me.ListField(me.DictField())
    expires_at = me.DateTimeField(null=True)  # last CCR + Tcc (RFC 4006 §13) while open
    expired = me.BooleanField(default=False)  # closed by expiry; one late CCR-U/T is still charged
    expired_at = me.DateTimeField(null=True)
    started_at = me.DateTimeField(default=_now)
    updated_at = me.DateTimeField(default=_now)
