"""Where the OCS keeps balances and rated sessions: MongoDB, or memory (benchmarks, dev).

Both apply the same `rating.rate()`; the MongoDB ledger serialises CCRs per account with an
asyncio lock (one OCS process owns the accounts it rates) and runs pymongo in a worker thread.
Both expire sessions idle for Tcc (`expire(now)`, called by the OCS's sweeper; RFC 4006 §13) and give
their reservation back to the balance.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol

from pymongo.errors import DuplicateKeyError

from charging.messages import Ccr
from charging.ocs import models
from charging.ocs.rating import Decision, SessionLedger, TariffTable, expire, rate
from secondnum.diameter import constants as dc


@dataclass(frozen=True)
class Expiry:
    """A session closed by the sweeper because no CCR came within Tcc."""

    session_id: str
    e164: str
    released: int  # milli-units given back to the balance
    idle_seconds: float  # since the last CCR


class Ledger(Protocol):
    async def apply(
        self, ccr: Ccr, tariffs: TariffTable, max_grant: int, session_timeout: float | None = None
    ) -> Decision:
        """Rate one CCR; an open session then expires `session_timeout` seconds later unless refreshed."""
        ...

    async def expire(self, now: float, session_timeout: float) -> list[Expiry]:
        """Expire the open sessions whose last CCR is older than Tcc (`now`: epoch seconds)."""
        ...


def _refresh(s: SessionLedger, decision: Decision, now: float, session_timeout: float | None) -> None:
    if not decision.duplicate and not s.closed:
        s.expires_at = now + session_timeout if session_timeout else None


class MemoryLedger:
    """Balances in a dict: no durability. For benchmarks of the Diameter path and for dev."""

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.reserved: defaultdict[str, int] = defaultdict(int)
        self.sessions: dict[str, SessionLedger] = {}
        self.open: dict[str, SessionLedger] = {}  # not closed: what the sweeper looks at

    async def apply(
        self, ccr: Ccr, tariffs: TariffTable, max_grant: int, session_timeout: float | None = None
    ) -> Decision:
        return self.apply_sync(ccr, tariffs, max_grant, session_timeout)

    async def expire(self, now: float, session_timeout: float) -> list[Expiry]:
        out: list[Expiry] = []
        for s in [s for s in self.open.values() if s.expires_at is not None and s.expires_at <= now]:
            released = expire(s)
            self.reserved[s.e164] -= released
            del self.open[s.session_id]
            out.append(Expiry(s.session_id, s.e164, released, now - (s.expires_at or now) + session_timeout))
        return out

    def apply_sync(
        self, ccr: Ccr, tariffs: TariffTable, max_grant: int, session_timeout: float | None = None
    ) -> Decision:
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
        _refresh(s, decision, time.time(), session_timeout)
        if s.closed:
            self.open.pop(s.session_id, None)
        else:
            self.open[s.session_id] = s
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
    "expired",
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
        expires_at=_epoch(doc.get("expires_at")),
        expired=doc.get("expired", False),
    )


def _epoch(t: dt.datetime | None) -> float | None:
    if t is None:
        return None
    return (t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)).timestamp()


def due_query(at: dt.datetime) -> dict[str, Any]:
    """Open records whose Tcc ran out by ``at``: what each expiry sweep reads.

    A plain conjunction served by the (closed, expires_at) index, so a sweep reads only open records.
    It used to be ``{closed: False, $or: [this, LEGACY_OPEN + idle]}``, which SecantusDB plans as a
    collection scan: every sweep then read every record ever rated (1.4 s at 20,000 records).
    """
    return {"closed": False, "expires_at": {"$lte": at}}


LEGACY_OPEN: dict[str, Any] = {"closed": False, "expires_at": None}
"""Open records without ``expires_at`` (written before expiry existed); bare equality: the same index."""


class MongoLedger:
    """Accounts and rated records in MongoDB (the `models` collections, written with raw pymongo).

    Open sessions are kept in memory (written through on every CCR), so a CCR costs one account read
    and two writes. The record write is a compare-and-set on the CC-Request-Number the rating started
    from, so that a second OCS process on the same database (RFC 4006 §5.7 alternate server) cannot make
    a stale cached session charge twice: on a conflict the CCR is rated again from the record. pymongo
    runs in worker threads; CCRs of one account are serialised by an asyncio lock.
    """

    def __init__(self) -> None:
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._open: dict[str, SessionLedger] = {}

    async def apply(
        self, ccr: Ccr, tariffs: TariffTable, max_grant: int, session_timeout: float | None = None
    ) -> Decision:
        e164 = ccr.subscription_e164 or ""
        async with self._locks[e164]:
            return await asyncio.to_thread(self._apply_sync, ccr, tariffs, max_grant, session_timeout)

    def _apply_sync(
        self, ccr: Ccr, tariffs: TariffTable, max_grant: int, session_timeout: float | None
    ) -> Decision:
        for attempt in range(2):
            decision = self._rate_once(ccr, tariffs, max_grant, session_timeout, cached=attempt == 0)
            if decision is not None:
                return decision
            # Another OCS process rated this session since we read it (e.g. the alternate server took
            # a CCR-T during failover): rate again from the record, where that shows as a duplicate.
            self._open.pop(ccr.session_id, None)
        return Decision(dc.UNABLE_TO_COMPLY)  # raced twice: the client resends

    def _rate_once(
        self, ccr: Ccr, tariffs: TariffTable, max_grant: int, session_timeout: float | None, cached: bool
    ) -> Decision | None:
        """Rate `ccr` and write the record, then the account; None when the record changed meanwhile."""
        accounts = models.Account._get_collection()
        records = models.RatedRecord._get_collection()
        e164 = ccr.subscription_e164 or ""
        account = accounts.find_one({"_id": e164}, {"balance": 1, "reserved": 1})
        if account is None:
            return Decision(dc.USER_UNKNOWN)
        s = self._open.get(ccr.session_id) if cached else None
        if s is not None and s.expires_at is not None and s.expires_at <= time.time():
            s = None  # past its Tcc: the record (maybe expired by another OCS process) is the truth
        new = False
        if s is None:
            doc = records.find_one({"_id": ccr.session_id})
            if doc is None:
                if ccr.request_type != dc.CC_REQUEST_INITIAL:
                    return Decision(dc.UNKNOWN_SESSION_ID)
                s, new = SessionLedger(ccr.session_id, e164, ccr.called or ""), True
            else:
                s = _from_doc(doc)
        before, seen_number = s.reserved, s.last_request_number
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
        _refresh(s, decision, now.timestamp(), session_timeout)
        fields: dict[str, Any] = {name: getattr(s, name) for name in _RECORD_FIELDS}
        result, granted, final = s.last_answer or (None, None, False)
        fields.update(last_result=result, last_granted=granted, last_final=final, updated_at=now)
        expires = s.expires_at
        fields["expires_at"] = None if expires is None else dt.datetime.fromtimestamp(expires, dt.UTC)
        # The record first, as a compare-and-set on the CC-Request-Number we rated from: with two OCS
        # processes on one database a stale cached session must not be charged a second time.
        try:
            res = records.update_one(
                {"_id": s.session_id, "last_request_number": seen_number},
                {"$set": fields, "$setOnInsert": {"e164": s.e164, "called": s.called, "started_at": now}},
                upsert=new,
            )
        except DuplicateKeyError:
            return None  # a new session another process inserted meanwhile
        if res.matched_count == 0 and res.upserted_id is None:
            return None
        # $inc keeps concurrent top-ups (REST) intact while we rate.
        accounts.update_one(
            {"_id": e164},
            {"$inc": {"balance": delta, "reserved": s.reserved - before}, "$set": {"updated_at": now}},
        )
        if s.closed:
            self._open.pop(s.session_id, None)
        else:
            self._open[s.session_id] = s
        return decision

    # ------------------------------------------------------------------ expiry (RFC 4006 §13 Tcc)

    async def expire(self, now: float, session_timeout: float) -> list[Expiry]:
        """Expire what the database says is due: also sessions a previous OCS process left open.

        Each release is a compare-and-set on the record (still open, same last CC-Request-Number), so
        a CCR rated meanwhile, or another OCS process sweeping the same database, cannot release a
        reservation twice; then the account's `reserved` goes down by what the record held.
        """
        due = await asyncio.to_thread(self._due, now, session_timeout)
        out: list[Expiry] = []
        for sid, e164 in due:
            async with self._locks[e164]:
                ex = await asyncio.to_thread(self._expire_one, sid, now, session_timeout)
            if ex is not None:
                out.append(ex)
        return out

    def _due(self, now: float, session_timeout: float, limit: int = 1000) -> list[tuple[str, str]]:
        records = models.RatedRecord._get_collection()
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        out = [(d["_id"], d["e164"]) for d in records.find(due_query(at), {"e164": 1}).limit(limit)]
        # Records written before expiry existed (open, no expires_at): idle since their last update. Few,
        # and each is closed by its first sweep once idle, so the idle test runs here, not in the query.
        idle_since = now - session_timeout
        for d in records.find(LEGACY_OPEN, {"e164": 1, "updated_at": 1}):
            if len(out) >= limit:
                break
            updated = _epoch(d.get("updated_at"))
            if updated is not None and updated <= idle_since:
                out.append((d["_id"], d["e164"]))
        return out

    def _expire_one(self, sid: str, now: float, session_timeout: float) -> Expiry | None:
        records = models.RatedRecord._get_collection()
        doc = records.find_one({"_id": sid})
        if doc is None or doc.get("closed"):
            return None
        s = _from_doc(doc)
        last = s.expires_at if s.expires_at is not None else _epoch(doc.get("updated_at")) or now
        deadline = last if s.expires_at is not None else last + session_timeout
        if deadline > now:
            return None  # refreshed since the query
        released = expire(s)
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        res = records.update_one(
            {"_id": sid, "closed": False, "last_request_number": doc.get("last_request_number", -1)},
            {
                "$set": {
                    "closed": True,
                    "expired": True,
                    "reserved": 0,
                    "reserved_seconds": 0,
                    "expired_at": at,
                    "updated_at": at,
                }
            },
        )
        self._open.pop(sid, None)
        if res.modified_count != 1:
            return None  # someone else got there first
        models.Account._get_collection().update_one(
            {"_id": s.e164}, {"$inc": {"reserved": -released}, "$set": {"updated_at": at}}
        )
        return Expiry(sid, s.e164, released, now - deadline + session_timeout)
