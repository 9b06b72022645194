"""The per-call writes to the embedded SecantusDB are not retryable writes (no ``txnNumber``).

Why it matters (RELIABILITY.md, soak): SecantusDB 0.7 keeps the reply of every retryable write for 30
minutes and scans (then, past 10,000, sorts) all of them on each new one, so with pymongo's default
``retryWrites=true`` each write costs more the more writes came before: ``secondnum up`` saturated its
database after ~1,400 calls. The embedded server's URI (``secondnum.mongo.secantus_uri``) turns them off.
These tests watch the commands on the wire (pymongo command monitoring) while the real per-call code
paths write to a real SecantusDB: the OCS ledger (CCR-I, CCR-T, expiry sweep), the AS's Ro open-session
writer and the CDR writer. No timing is measured: the count of retryable writes is what grows the cost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import mongoengine
import pytest
from pymongo import MongoClient, monitoring
from pymongo.uri_parser import parse_uri

from appserver import cdr
from charging import store
from charging.messages import Ccr
from charging.ocs import models
from charging.ocs.ledger import MongoLedger
from charging.ocs.rating import TariffRule, TariffTable
from secondnum.diameter import constants as dc
from secondnum.mongo import EmbeddedMongo, connect, secantus_uri

DID = "42027777100"
WRITES = frozenset({"insert", "update", "delete", "findAndModify"})


class Commands(monitoring.CommandListener):
    """Every command a client started, as sent (name, body)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        with self._lock:
            self.sent.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def writes(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return [(name, body) for name, body in self.sent if name in WRITES]


@pytest.fixture(scope="module")
def secantus() -> Iterator[EmbeddedMongo]:
    """A SecantusDB of its own, started as ``secondnum up`` starts it (a ``MONGO_URI`` is not under test)."""
    with EmbeddedMongo(":memory:") as server:
        yield server


def test_embedded_uri_turns_retryable_writes_off(secantus: EmbeddedMongo) -> None:
    assert secantus.uri == secantus_uri(secantus.port)
    options = parse_uri(secantus.uri)["options"]
    assert options["replicaSet"] == "secantus"
    assert options["retryWrites"] is False


def test_the_check_sees_retryable_writes(secantus: EmbeddedMongo) -> None:
    """Control: with the driver's default the same watcher does see ``txnNumber`` on a write."""
    watched = Commands()
    default_uri = secantus.uri.replace("&retryWrites=false", "")
    client: MongoClient[dict[str, Any]] = MongoClient(default_uri, event_listeners=[watched])
    try:
        client["t_devdb_control"]["c"].insert_one({"n": 1})
        client.drop_database("t_devdb_control")
    finally:
        client.close()
    assert [name for name, _ in watched.writes()] == ["insert"]
    assert "txnNumber" in watched.writes()[0][1]


def _ccr(sid: str, request_type: int, number: int, requested: int | None, used: int | None) -> Ccr:
    return Ccr(session_id=sid, request_type=request_type, request_number=number, subscription_e164=DID,
               requested_seconds=requested, used_seconds=used, called="tel:+42073723123",
               calling="tel:+42075553333", role_of_node=1, origin_host="as.test")


async def test_per_call_writes_carry_no_txn_number(secantus: EmbeddedMongo) -> None:
    watched = Commands()
    database = f"t_devdb_{uuid.uuid4().hex[:8]}"
    connect(secantus.uri, database=database, event_listeners=[watched])
    try:
        await asyncio.to_thread(lambda: models.Account(e164=DID, balance=1_000_000).save())
        tariffs = TariffTable()
        tariffs.replace([TariffRule("", 600, 1, 0)])
        ledger = MongoLedger()
        # Two calls as the OCS sees them: CCR-I then CCR-T; a third reserves and is left to the sweeper.
        for n in range(2):
            sid = f"as.test;1;{n}"
            first = await ledger.apply(_ccr(sid, dc.CC_REQUEST_INITIAL, 0, 300, None), tariffs, 300, 30.0)
            last = await ledger.apply(_ccr(sid, dc.CC_REQUEST_TERMINATION, 1, None, 12), tariffs, 300, 30.0)
            assert (first.result_code, last.result_code) == (dc.SUCCESS, dc.SUCCESS)
        held = await ledger.apply(_ccr("as.test;1;9", dc.CC_REQUEST_INITIAL, 0, 300, None), tariffs, 300, 30)
        assert held.result_code == dc.SUCCESS
        expired = await ledger.expire(time.time() + 3600, 30.0)
        assert [e.session_id for e in expired] == ["as.test;1;9"]

        # The AS: Ro open-session records (bulk upsert, then delete) and a CDR batch.
        son = store.record("as.test;1;0", owner="as.test", subscription_e164=DID, role_of_node=1,
                           calling="tel:+42075553333", called="tel:+42073723123", icid="icid-1",
                           request_number=0, server_host="ocs.test")
        await asyncio.to_thread(store.write_batch, {"as.test;1;0": son})
        await asyncio.to_thread(store.write_batch, {"as.test;1;0": None})
        rec = cdr.CallRecord(icid="icid-1", did=DID, caller="42075553333", called="42073723123",
                             end_at=dt.datetime.now(dt.UTC))
        await asyncio.to_thread(cdr._insert_many, [cdr.to_raw(rec)])
    finally:
        mongoengine.connection.get_connection().drop_database(database)
        mongoengine.disconnect()

    writes = watched.writes()
    names = [name for name, _ in writes]
    # Every path above really wrote through this client (the assertion below cannot pass on nothing).
    assert names.count("update") >= 9 and "insert" in names and "delete" in names, names
    retryable = [(name, body.get(name)) for name, body in writes if "txnNumber" in body]
    assert retryable == [], f"retryable writes sent to SecantusDB: {retryable}"
