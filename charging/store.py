"""Open Ro sessions persisted in MongoDB, so that a restarted AS can close them (RFC 4006 §5.5).

One small document per open session, written at CCR-I, `answered()` and each CCR-U (the units
reported so far plus the answer time are enough to compute a CCR-T after a crash), deleted after
the CCR-T. All calls are blocking pymongo calls; the client runs them in a worker thread.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import mongoengine as me


class OpenRoSession(me.Document):  # type: ignore[misc]
    """An Ro session the AS has not closed yet."""

    meta: dict[str, Any] = {"collection": "ro_open_sessions", "indexes": ["owner"]}

    session_id = me.StringField(primary_key=True)
    owner = me.StringField(required=True)  # Origin-Host of the AS instance that opened it
    subscription_e164 = me.StringField(required=True)
    role_of_node = me.IntField(required=True)
    calling = me.StringField(default="")
    called = me.StringField(default="")
    icid = me.StringField(default="")
    request_number = me.IntField(default=0)
    server_host = me.StringField(null=True)
    answered_at = me.DateTimeField(null=True)  # wall clock
    reported_seconds = me.IntField(default=0)
    checkpoint_at = me.DateTimeField(required=True)  # last time the document was written


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def save(doc: OpenRoSession) -> None:
    """Upsert in one round trip, without mongoengine's save() machinery (validation, change tracking)."""
    doc.checkpoint_at = now_utc()
    son = doc.to_mongo()
    OpenRoSession._get_collection().replace_one({"_id": son["_id"]}, son, upsert=True)


def delete(session_id: str) -> None:
    OpenRoSession._get_collection().delete_one({"_id": session_id})


def open_sessions(owner: str) -> list[OpenRoSession]:
    return list(OpenRoSession.objects(owner=owner))


def checkpoint(owner: str) -> None:
    """Mark the answered sessions of `owner` as still running now."""
    OpenRoSession.objects(owner=owner, answered_at__ne=None).update(set__checkpoint_at=now_utc())
