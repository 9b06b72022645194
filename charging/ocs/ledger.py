"""Where the OCS keeps balances and rated sessions: MongoDB, or memory (benchmarks, dev).

Both apply the same `rating.rate()`; the MongoDB ledger serialises CCRs per account with an
asyncio lock (one OCS process owns the accounts it rates) and runs pymongo in a worker thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from typing import Any, Protocol

from charging.messages import Ccr
from charging.ocs import models
from charging.ocs.rating import Decision, SessionLedger, TariffTable, rate
from secondnum.diameter import constants as dc


class Ledger(Protocol):
    async def apply(self, ccr: Ccr, tariffs: TariffTable, max_grant: int) -> Decision: ...


class MemoryLedger:
    """Balances in a dict: no durability. For benchmarks of the Diameter path and for dev."""

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.reserved: defaultdict[str, int] = defaultdict(int)
        self.sessions: dict[str, SessionLedger] = {}

    async def apply(self, ccr: Ccr, tariffs: TariffTable, max_grant: int) -> Decision:
        return self.apply_sync(ccr, tariffs, max_grant)

    def apply_sync(self, ccr: Ccr, tariffs: TariffTable, max_grant: int) -> Decision:
        e164 = ccr.subscription_e164 or ""
        if e164 not in self.balances:
            return Decision(dc.USER_UNKNOWN)
        s = self.sessions.get(ccr.session_id)
        if s is None:
            if ccr.request_type != dc.CC_REQUEST_INITIAL:
                return Decision(dc.UNKNOWN_SESSION_ID)
            s = self.sessions[ccr.session_id] = SessionLedger(ccr.session_id, e164, ccr.called or "")
        before = s.reserved
        decision, delta = rate(
            s,
            request_type=ccr.request_type,
            request_number=ccr.request_number,
            requested=ccr.requested_seconds,
            used=ccr.used_seconds,
            rule=tariffs.match(s.called),
            balance=self.balances[e164],
            reserved_total=self.reserved[e164],
            max_grant=max_grant,
        )
        if not decision.duplicate:
            self.balances[e164] += delta
            self.reserved[e164] += s.reserved - before
        return decision


_RECORD_FIELDS = (
    "prefix",
    "used_seconds",
    "charged",
    "reserved",
    "reserved_seconds",
    "last_request_number",
    "closed",
    "events",
)


def _from_doc(doc: dict[str, Any]) -> SessionLedger:
    """A `models.RatedRecord` document (raw pymongo dict) as a `SessionLedger`."""
    last_result = doc.get("last_result")
    last = (
        None if last_result is None else (last_result, doc.get("last_granted"), doc.get("last_final", False))
    )
    return SessionLedger(
        session_id=doc["_id"],
        e164=doc["e164"],
        called=doc.get("called", ""),
        prefix=doc.get("prefix", ""),
        used_seconds=doc.get("used_seconds", 0),
        charged=doc.get("charged", 0),
        reserved=doc.get("reserved", 0),
        reserved_seconds=doc.get("reserved_seconds", 0),
        last_request_number=doc.get("last_request_number", -1),
        last_answer=last,
        closed=doc.get("closed", False),
        events=list(doc.get("events", [])),
    )


class MongoLedger:
    """Accounts and rated records in MongoDB (the `models` collections, written with raw pymongo).

    One OCS process owns the records it rates: open sessions are kept in memory (written through on
    every CCR), so a CCR costs one account read and two writes. pymongo runs in worker threads;
    CCRs of one account are serialised by an asyncio lock.
    """

    def __init__(self) -> None:
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._open: dict[str, SessionLedger] = {}

    async def apply(self, ccr: Ccr, tariffs: TariffTable, max_grant: int) -> Decision:
        e164 = ccr.subscription_e164 or ""
        async with self._locks[e164]:
            return await asyncio.to_thread(self._apply_sync, ccr, tariffs, max_grant)

    def _apply_sync(self, ccr: Ccr, tariffs: TariffTable, max_grant: int) -> Decision:
        accounts = models.Account._get_collection()
        records = models.RatedRecord._get_collection()
        e164 = ccr.subscription_e164 or ""
        account = accounts.find_one({"_id": e164}, {"balance": 1, "reserved": 1})
        if account is None:
            return Decision(dc.USER_UNKNOWN)
        s = self._open.get(ccr.session_id)
        if s is None:
            doc = records.find_one({"_id": ccr.session_id})
            if doc is None:
                if ccr.request_type != dc.CC_REQUEST_INITIAL:
                    return Decision(dc.UNKNOWN_SESSION_ID)
                s = SessionLedger(ccr.session_id, e164, ccr.called or "")
            else:
                s = _from_doc(doc)
        before = s.reserved
        decision, delta = rate(
            s,
            request_type=ccr.request_type,
            request_number=ccr.request_number,
            requested=ccr.requested_seconds,
            used=ccr.used_seconds,
            rule=tariffs.match(s.called),
            balance=account.get("balance", 0),
            reserved_total=account.get("reserved", 0),
            max_grant=max_grant,
        )
        if decision.duplicate:
            return decision
        now = dt.datetime.now(dt.UTC)
        # $inc keeps concurrent top-ups (REST) intact while we rate.
        accounts.update_one(
            {"_id": e164},
            {"$inc": {"balance": delta, "reserved": s.reserved - before}, "$set": {"updated_at": now}},
        )
        fields: dict[str, Any] = {name: getattr(s, name) for name in _RECORD_FIELDS}
        result, granted, final = s.last_answer or (None, None, False)
        fields.update(last_result=result, last_granted=granted, last_final=final, updated_at=now)
        records.update_one(
            {"_id": s.session_id},
            {"$set": fields, "$setOnInsert": {"e164": s.e164, "called": s.called, "started_at": now}},
            upsert=True,
        )
        if s.closed:
            self._open.pop(s.session_id, None)
        else:
            self._open[s.session_id] = s
        return decision
