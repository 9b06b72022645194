"""Call detail records: one per call handled by the AS (plain record + MongoDB document).

The in-memory :class:`CallRecord` is filled as the call progresses (sans-IO); :func:`save` writes it once,
when the call ends, as a :class:`Cdr` document in the ``cdrs`` collection. Timestamps are UTC. Charged units
are the used seconds reported in CCR-Update/Termination (RFC 4006 §8.19 Used-Service-Unit, TS 32.299 §6.3.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import enum
from typing import Any

import mongoengine as me
from pymongo.errors import InvalidOperation

from secondnum.log import get_logger

CDRS = "cdrs"

log = get_logger(__name__)


class Disposition(enum.StrEnum):
    ANSWERED = "answered"
    VOICEMAIL = "voicemail"
    VOICEMAIL_ACCESS = "voicemail_access"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class Flow(enum.StrEnum):
    FORWARD = "forward"
    VOICEMAIL_DEPOSIT = "voicemail_deposit"
    VOICEMAIL_ACCESS = "voicemail_access"
    OUTGOING = "outgoing"
    REJECTED = "rejected"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(slots=True)
class LegRecord:
    role: str
    """``caller``, ``forward``, ``voicemail``, ``outgoing``."""
    call_id: str
    request_uri: str
    from_uri: str = ""
    asserted: str = ""
    setup_at: dt.datetime = dataclasses.field(default_factory=utcnow)
    answer_at: dt.datetime | None = None
    end_at: dt.datetime | None = None
    status: int | None = None
    ro_session_id: str | None = None
    charged_seconds: int = 0


@dataclasses.dataclass(slots=True)
class CallRecord:
    """What the CDR will say; mutated by the call controller."""

    icid: str
    did: str
    caller: str
    called: str
    flow: Flow = Flow.FORWARD
    setup_at: dt.datetime = dataclasses.field(default_factory=utcnow)
    answer_at: dt.datetime | None = None
    end_at: dt.datetime | None = None
    disposition: Disposition = Disposition.FAILED
    status: int | None = None
    diversion_reason: str | None = None
    end_reason: str = ""
    transport: str = "udp"
    legs: list[LegRecord] = dataclasses.field(default_factory=list)
    privacy: tuple[str, ...] = ()
    """The caller's Privacy priv-values (RFC 3323 §4.2, RFC 3325 §9.3, RFC 7044 §10); empty = none asked."""

    def leg(self, role: str, call_id: str, request_uri: str, from_uri: str = "",
            asserted: str = "") -> LegRecord:
        rec = LegRecord(role, call_id, request_uri, from_uri, asserted)
        self.legs.append(rec)
        return rec

    @property
    def charged_seconds(self) -> int:
        return sum(leg.charged_seconds for leg in self.legs)

    @property
    def ro_session_ids(self) -> list[str]:
        return [leg.ro_session_id for leg in self.legs if leg.ro_session_id]


class CdrLeg(me.EmbeddedDocument):  # type: ignore[misc]
    role = me.StringField(required=True)
    call_id = me.StringField(required=True)
    request_uri = me.StringField()
    from_uri = me.StringField()
    asserted = me.StringField()
    setup_at = me.DateTimeField()
    answer_at = me.DateTimeField(null=True)
    end_at = me.DateTimeField(null=True)
    status = me.IntField(null=True)
    ro_session_id = me.StringField(null=True)
    charged_seconds = me.IntField(default=0)


class Cdr(me.Document):  # type: ignore[misc]
    icid = me.StringField(required=True)
    did = me.StringField(required=True)
    caller = me.StringField()
    called = me.StringField()
    flow = me.StringField(choices=[f.value for f in Flow])
    setup_at = me.DateTimeField(required=True)
    answer_at = me.DateTimeField(null=True)
    end_at = me.DateTimeField(null=True)
    disposition = me.StringField(choices=[d.value for d in Disposition])
    status = me.IntField(null=True)
    diversion_reason = me.StringField(null=True)
    end_reason = me.StringField()
    transport = me.StringField()
    charged_seconds = me.IntField(default=0)
    ro_session_ids = me.ListField(me.StringField())
    legs = me.EmbeddedDocumentListField(CdrLeg)
    privacy = me.ListField(me.StringField())

    meta: dict[str, Any] = {
        "collection": CDRS,
        "indexes": ["did", "-setup_at", "disposition", "icid"],
        "ordering": ["-setup_at"],
        "auto_create_index": False,  # created at start: secondnum.mongo.ensure_collections
    }

    def to_json(self) -> dict[str, Any]:
        def ts(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": str(self.pk), "icid": self.icid, "did": self.did, "caller": self.caller,
            "called": self.called,
            "flow": self.flow, "setup_at": ts(self.setup_at), "answer_at": ts(self.answer_at),
            "end_at": ts(self.end_at), "disposition": self.disposition, "status": self.status,
            "diversion_reason": self.diversion_reason, "end_reason": self.end_reason,
            "transport": self.transport, "charged_seconds": self.charged_seconds,
            "ro_session_ids": list(self.ro_session_ids), "privacy": list(self.privacy),
            "legs": [{
                "role": leg.role, "call_id": leg.call_id, "request_uri": leg.request_uri,
                "from": leg.from_uri, "asserted": leg.asserted, "setup_at": ts(leg.setup_at),
                "answer_at": ts(leg.answer_at), "end_at": ts(leg.end_at), "status": leg.status,
                "ro_session_id": leg.ro_session_id, "charged_seconds": leg.charged_seconds,
            } for leg in self.legs],
        }


def to_raw(rec: CallRecord) -> dict[str, Any]:
    """The stored form of a record (the fields of :class:`Cdr`), without mongoengine's per-field cost."""
    raw: dict[str, Any] = {
        "icid": rec.icid, "did": rec.did, "caller": rec.caller, "called": rec.called, "flow": rec.flow.value,
        "setup_at": rec.setup_at, "answer_at": rec.answer_at, "end_at": rec.end_at or utcnow(),
        "disposition": rec.disposition.value, "status": rec.status, "diversion_reason": rec.diversion_reason,
        "end_reason": rec.end_reason, "transport": rec.transport, "charged_seconds": rec.charged_seconds,
        "ro_session_ids": rec.ro_session_ids,
        "legs": [{
            "role": str(leg.role), "call_id": leg.call_id, "request_uri": leg.request_uri,
            "from_uri": leg.from_uri, "asserted": leg.asserted, "setup_at": leg.setup_at,
            "answer_at": leg.answer_at, "end_at": leg.end_at, "status": leg.status,
            "ro_session_id": leg.ro_session_id, "charged_seconds": leg.charged_seconds,
        } for leg in rec.legs],
    }
    if rec.privacy:  # only calls that asked for privacy store the field
        raw["privacy"] = list(rec.privacy)
    return raw


def _insert_many(raws: list[dict[str, Any]]) -> None:
    try:
        Cdr._get_collection().insert_many(raws, ordered=False)
    except InvalidOperation:
        # Another component re-ran mongoengine.connect() and closed the client this class had cached.
        Cdr._collection = None
        Cdr._get_collection().insert_many(raws, ordered=False)


async def save(rec: CallRecord) -> None:
    """Write one CDR now (off the event loop: pymongo is blocking)."""
    await asyncio.to_thread(_insert_many, [to_raw(rec)])


class CdrWriter:
    """Writes CDRs in batches from one task, so CDR inserts never queue ahead of call set-up work.

    Calls hand their record over with :meth:`submit` (no waiting); the writer inserts whatever has
    accumulated in one ``insert_many`` per round trip. A failed batch is logged and retried after
    ``retry_seconds`` (bounded by ``max_pending`` records; beyond it the oldest are dropped and counted),
    so a database outage never blocks or crashes call handling. :meth:`close` flushes what is left.
    """

    def __init__(self, batch: int = 200, max_pending: int = 100_000, retry_seconds: float = 1.0) -> None:
        self.batch = batch
        self.max_pending = max_pending
        self.retry_seconds = retry_seconds
        self.pending: list[dict[str, Any]] = []
        self.written = 0
        self.dropped = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def submit(self, rec: CallRecord) -> None:
        self.pending.append(to_raw(rec))
        if len(self.pending) > self.max_pending:
            self.dropped += len(self.pending) - self.max_pending
            log.error("cdr_backlog_dropped", dropped=self.dropped)
            del self.pending[: len(self.pending) - self.max_pending]
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.pending:
                chunk = self.pending[: self.batch]
                try:
                    await asyncio.to_thread(_insert_many, chunk)
                except Exception:
                    log.exception("cdr_write_failed", count=len(chunk))
                    if self._closing:
                        return
                    await asyncio.sleep(self.retry_seconds)
                    continue
                del self.pending[: len(chunk)]
                self.written += len(chunk)
            self._idle.set()

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything submitted so far is written (or ``timeout``)."""
        if self._task is None:
            return
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self, timeout: float = 10.0) -> None:
        await self.flush(timeout)
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
