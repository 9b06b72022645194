"""The OCS's expiry sweep reads open records only, however many closed ones the ledger holds.

Rated records are kept after their session closes (the OCS's rating history), so a sweep that scanned the
collection cost more every call: every 30 s the built-in OCS read every record ever rated (1.4 s per sweep
at 20,000 records on SecantusDB). The checks use the database's own ``explain`` (index scan, documents
examined), not timing; on SecantusDB and on a MongoDB given by ``MONGO_URI`` alike.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator, Mapping
from typing import Any

from charging.ocs import models
from charging.ocs.ledger import LEGACY_OPEN, MongoLedger, due_query

TCC = 60.0
CLOSED = 400


def _stages(plan: Any) -> Iterator[Mapping[str, Any]]:
    """Every stage of an explain plan (``inputStage``/``inputStages``, also under ``queryPlan``)."""
    if isinstance(plan, Mapping):
        if "stage" in plan:
            yield plan
        for value in plan.values():
            yield from _stages(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from _stages(item)


def _ledger_records(now: dt.datetime) -> list[dict[str, Any]]:
    past, future = now - dt.timedelta(seconds=5), now + dt.timedelta(seconds=TCC)
    idle, recent = now - dt.timedelta(seconds=2 * TCC), now - dt.timedelta(seconds=1)
    docs: list[dict[str, Any]] = [
        {"_id": f"closed-{i}", "e164": "42027777100", "closed": True, "expires_at": None, "updated_at": idle,
         "last_request_number": 1}
        for i in range(CLOSED)
    ]
    docs += [{"_id": f"due-{i}", "e164": "42027777100", "closed": False, "expires_at": past,
              "updated_at": past, "last_request_number": 0} for i in range(5)]
    docs += [{"_id": f"live-{i}", "e164": "42027777100", "closed": False, "expires_at": future,
              "updated_at": now, "last_request_number": 0} for i in range(3)]
    # written before expiry existed: no expires_at at all
    docs += [{"_id": "legacy-idle", "e164": "42027777100", "closed": False, "updated_at": idle,
              "last_request_number": 0},
             {"_id": "legacy-recent", "e164": "42027777100", "closed": False, "updated_at": recent,
              "last_request_number": 0}]
    return docs


def _explain(records: Any, query: dict[str, Any]) -> dict[str, Any]:
    plan: dict[str, Any] = records.find(query, {"e164": 1}).explain()
    return plan


async def test_sweep_finds_exactly_the_due_sessions(mongo_uri: str) -> None:
    now = dt.datetime.now(dt.UTC)
    records = models.RatedRecord._get_collection()
    await asyncio.to_thread(models.RatedRecord.ensure_indexes)
    await asyncio.to_thread(records.insert_many, _ledger_records(now))
    due = await asyncio.to_thread(MongoLedger()._due, now.timestamp(), TCC)
    assert sorted(sid for sid, _ in due) == ["due-0", "due-1", "due-2", "due-3", "due-4", "legacy-idle"]


async def test_sweep_queries_read_only_open_records(mongo_uri: str) -> None:
    now = dt.datetime.now(dt.UTC)
    records = models.RatedRecord._get_collection()
    await asyncio.to_thread(models.RatedRecord.ensure_indexes)
    await asyncio.to_thread(records.insert_many, _ledger_records(now))
    for query, returned in ((due_query(now), 5), (LEGACY_OPEN, 2)):
        plan: dict[str, Any] = await asyncio.to_thread(_explain, records, query)
        winning = plan["queryPlanner"]["winningPlan"]
        stages = {s["stage"] for s in _stages(winning)}
        assert "COLLSCAN" not in stages and "IXSCAN" in stages, (query, winning)
        index = {s.get("indexName") for s in _stages(winning) if s["stage"] == "IXSCAN"}
        assert index == {"closed_1_expires_at_1"}
        stats = plan["executionStats"]
        assert stats["nReturned"] == returned
        # Not one of the CLOSED records is read: the cost follows the open sessions, not the history.
        assert stats["totalDocsExamined"] <= returned + 3 + 2, stats


async def test_sweep_expires_the_idle_legacy_record(mongo_uri: str) -> None:
    """End to end through ``expire``: the legacy record without ``expires_at`` is still released."""
    now = time.time()
    records = models.RatedRecord._get_collection()
    await asyncio.to_thread(models.Account(e164="42027777100", balance=10_000, reserved=3_000).save)
    await asyncio.to_thread(records.insert_one, {
        "_id": "legacy", "e164": "42027777100", "closed": False, "reserved": 3_000, "reserved_seconds": 300,
        "updated_at": dt.datetime.fromtimestamp(now - 2 * TCC, dt.UTC), "last_request_number": 0})
    expired = await MongoLedger().expire(now, TCC)
    assert [(e.session_id, e.released) for e in expired] == [("legacy", 3_000)]
    account = await asyncio.to_thread(lambda: models.Account.objects.get(e164="42027777100"))
    assert (account.balance, account.reserved) == (10_000, 0)
