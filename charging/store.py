"""Open Ro sessions persisted in MongoDB, so that a restarted AS can close them (RFC 4006 §5.5).

One small document per open session, kept current at CCR-I, `answered()` and each CCR-U (the units
reported so far plus the answer time are enough to compute a CCR-T after a crash), deleted after
the CCR-T. Writes go through one :class:`OpenSessionWriter` per client: a single task that coalesces
the changes of each session and sends them in one ``bulk_write`` per round, so the call path never
waits for the database and never wakes a worker thread per call (three ``to_thread`` round trips per
call used to cost ~2 ms CPU and stall the event loop on the GIL under load).

Durability window (longer only while the database is slow or failing; failed rounds are retried):
* the record of a session granted by a CCA-I starts a write round at once: it is in MongoDB one round
  trip after the CCA (plus the round already in flight, if any), milliseconds, as when the client
  awaited the write; a SIGKILL after that is recovered by ``RoClient.recover_open_sessions``;
* later changes (answer time, units of a CCR-U) linger up to ``interval`` seconds (0.2) to coalesce:
  a crash inside that window closes the session with the units known before it (the same
  approximation as the ``checkpoint_seconds`` refresh of running calls);
* the delete after the CCR-T lingers too; a crash before it makes the restarted AS send one more
  CCR-T for a session the OCS already closed (answered and then dropped), not a lost charge.

A session whose CCR-T is being sent is marked ``state="terminating"`` with that CCR-T's
CC-Request-Number, units, Termination-Cause and End-to-End id (RFC 4006 §5.7, RFC 6733 §5.5.4): when
the CCA comes within the linger window the mark and the delete coalesce into one delete; when it does
not (OCS down, Tx expiry), the mark is written at once and the client retries that same CCR-T, and a
restarted client sends it again with the recorded units, not an estimate.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

import mongoengine as me
from pymongo import DeleteOne, ReplaceOne

from secondnum.log import get_logger

log = get_logger(__name__)


OPEN = "open"
TERMINATING = "terminating"


class OpenRoSession(me.Document):  # type: ignore[misc]
    """An Ro session the AS has not closed yet."""

    meta: dict[str, Any] = {
        "collection": "ro_open_sessions", "indexes": ["owner"],
        "auto_create_index": False,  # created at start: secondnum.mongo.ensure_collections
    }

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
    # "open", or "terminating": the CCR-T below was sent and not answered yet (retried until answered)
    state = me.StringField(default=OPEN)
    t_used = me.IntField(default=0)  # Used-Service-Unit CC-Time of that CCR-T
    termination_cause = me.IntField(null=True)
    end_to_end = me.IntField(default=0)  # its End-to-End id: resent with the T flag (RFC 6733 §5.5.4)
    terminating_since = me.DateTimeField(null=True)  # first attempt (bounds the retries across restarts)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def record(
    session_id: str,
    *,
    owner: str,
    subscription_e164: str,
    role_of_node: int,
    calling: str,
    called: str,
    icid: str,
    request_number: int,
    server_host: str | None,
) -> dict[str, Any]:
    """The raw document of an :class:`OpenRoSession` (field names as ``to_mongo()`` writes them).

    A plain dict rather than a Document: building and serialising a mongoengine object per call
    costs more than the write itself. The client updates it in place (answered_at, request_number,
    reported_seconds) and hands it to the writer again.
    """
    return {
        "_id": session_id,
        "owner": owner,
        "subscription_e164": subscription_e164,
        "role_of_node": role_of_node,
        "calling": calling,
        "called": called,
        "icid": icid,
        "request_number": request_number,
        "server_host": server_host,
        "answered_at": None,
        "reported_seconds": 0,
        "state": OPEN,
    }


def mark_terminating(
    son: dict[str, Any], *, request_number: int, used: int, cause: int, end_to_end: int
) -> None:
    """Record the CCR-T about to be sent in the session's document (see the module docstring)."""
    son["state"] = TERMINATING
    son["request_number"] = request_number
    son["t_used"] = used
    son["termination_cause"] = cause
    son["end_to_end"] = end_to_end
    if son.get("terminating_since") is None:
        son["terminating_since"] = now_utc()


def as_record(doc: OpenRoSession) -> dict[str, Any]:
    """A stored document as the raw dict the writer takes (recovery hands it back to a writer)."""
    son: dict[str, Any] = doc.to_mongo().to_dict()
    return son


def _collection() -> Any:
    return OpenRoSession._get_collection()


def write_batch(ops: dict[str, dict[str, Any] | None]) -> None:
    """One unordered ``bulk_write``: upsert each document, delete each ``None`` (one op per session)."""
    now = now_utc()
    requests: list[Any] = []
    for sid, son in ops.items():
        if son is None:
            requests.append(DeleteOne({"_id": sid}))
        else:
            son["checkpoint_at"] = now
            requests.append(ReplaceOne({"_id": sid}, son, upsert=True))
    if requests:
        _collection().bulk_write(requests, ordered=False)


def delete(session_id: str) -> None:
    _collection().delete_one({"_id": session_id})


def open_sessions(owner: str) -> list[OpenRoSession]:
    return list(OpenRoSession.objects(owner=owner))


def checkpoint(owner: str) -> None:
    """Mark the answered sessions of `owner` as still running now."""
    _collection().update_many(
        {"owner": owner, "answered_at": {"$ne": None}}, {"$set": {"checkpoint_at": now_utc()}}
    )


class OpenSessionWriter:
    """Coalescing, batched writer of open-session records; see the module docstring for the window.

    ``pending`` maps a session id to its latest document (upsert) or ``None`` (delete); a session
    changed several times within one window costs one operation, and one closed before its record
    went out costs none. ``stored`` holds the sessions whose record is (or, while a batch is
    in flight, may be) in the database, so that only those need a delete. Both are bounded by the
    number of open sessions. A failed batch is logged and its operations go back to ``pending``
    unless a newer change superseded them, then retried after ``retry_seconds``: a database outage
    never blocks or fails a call.
    """

    def __init__(self, interval: float = 0.2, retry_seconds: float = 1.0) -> None:
        self.interval = interval
        self.retry_seconds = retry_seconds
        self.pending: dict[str, dict[str, Any] | None] = {}
        self.stored: set[str] = set()
        self.ops_written = 0  # database operations sent (observability, tests)
        self.ops_coalesced = 0  # changes that needed no operation of their own
        self._wake = asyncio.Event()
        self._now = asyncio.Event()  # urgent put() or flush(): cut the linger short
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def put(self, son: dict[str, Any], urgent: bool = False) -> None:
        """Store the current state of a session (the same dict may be put again after edits).

        ``urgent`` (the record of a just-granted session) starts a round at once instead of lingering:
        from then on the OCS holds a reservation that only this record lets a restarted AS release.
        """
        sid = son["_id"]
        if sid in self.pending:
            self.ops_coalesced += 1
        self.pending[sid] = son
        self._kick()
        if urgent:
            self._now.set()

    def adopt(self, session_id: str) -> None:
        """A record already in the database (written by a previous run): a later delete must go out."""
        self.stored.add(session_id)

    def delete(self, session_id: str) -> None:
        """Remove the session's record; nothing to write when it never reached the database."""
        if session_id not in self.stored:
            if self.pending.pop(session_id, None) is not None:
                self.ops_coalesced += 2
            return
        if session_id in self.pending:
            self.ops_coalesced += 1  # the pending update is never written
        self.pending[session_id] = None
        self._kick()

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # Linger one window so that the changes of the calls in progress coalesce.
            if not self._now.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._now.wait(), self.interval)
            self._wake.clear()
            while self.pending:
                await self._write_once()
            self._idle.set()

    async def _write_once(self) -> None:
        batch, self.pending = self.pending, {}
        self._now.clear()  # this round takes every urgent record handed over so far
        # Copies: the client keeps editing its dicts while the worker thread encodes them.
        ops = {sid: (None if son is None else dict(son)) for sid, son in batch.items()}
        for sid, son in ops.items():
            if son is not None:
                self.stored.add(sid)
        try:
            await asyncio.to_thread(write_batch, ops)
        except Exception:
            log.exception("ro_persist_failed", ops=len(ops))
            for sid, son in batch.items():
                self.pending.setdefault(sid, son)
            await asyncio.sleep(self.retry_seconds)
            return
        self.ops_written += len(ops)
        for sid, son in ops.items():
            if son is None:
                self.stored.discard(sid)

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until every change handed over so far is written (or ``timeout``)."""
        if self._task is None or self._task.done() or self._idle.is_set():
            return
        self._now.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self, timeout: float = 10.0) -> None:
        """Flush, then stop the task."""
        await self.flush(timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
