"""Per-account Sh synchronisation state: the last Sequence-Number agreed with the HSS and the data it
covered (the common base of a three-way merge when the HSS answers 5105, TS 29.328 §7.6.1)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import mongoengine as me

from hss_adapter.sh.servicedata import SyncDoc


class ShSyncState(me.Document):  # type: ignore[misc]
    did = me.StringField(required=True, unique=True)
    sequence_number = me.IntField(default=0, min_value=0, max_value=65535)
    base = me.DictField()
    updated_at = me.DateTimeField()

    meta: dict[str, Any] = {"collection": "sh_sync", "auto_create_index": False}


def load_state(did: str) -> tuple[int, SyncDoc | None]:
    raw = ShSyncState._get_collection().find_one({"did": did})
    if raw is None:
        return 0, None
    return int(raw.get("sequence_number", 0)), raw.get("base")


def save_state(did: str, sequence_number: int, base: SyncDoc) -> None:
    ShSyncState._get_collection().update_one(
        {"did": did},
        {"$set": {"sequence_number": sequence_number, "base": base, "updated_at": dt.datetime.now(dt.UTC)}},
        upsert=True,
    )


def drop_state(did: str) -> None:
    ShSyncState._get_collection().delete_one({"did": did})


def three_way_merge(base: SyncDoc | None, local: SyncDoc, remote: SyncDoc) -> SyncDoc:
    """Per top-level member: a local change since ``base`` wins, otherwise the HSS value is taken."""
    base = base or {}
    merged: SyncDoc = {}
    for key in sorted(set(local) | set(remote)):
        if key in local and local.get(key) != base.get(key):
            merged[key] = local[key]
        elif key in remote:
            merged[key] = remote[key]
    return merged
