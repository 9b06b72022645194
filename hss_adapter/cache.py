"""In-memory profile cache for the AS: every account by DID and by each canonical alias identity.

Loaded in full at start, then kept current by a MongoDB change stream on the database (both ``accounts`` and
``aliases``). The stream is opened *before* the full load, so a change racing with the load is applied after
it; every event re-reads the affected account, which makes replays harmless. When the stream breaks (server
restart, network, invalidate), the watcher reopens it with a fresh full reload, retrying every
``retry_seconds`` until the database answers again; lookups keep answering from the last good state.

pymongo resumes a change stream by itself after a network error. SecantusDB (the embedded server) accepts
such a resume after it restarted but then delivers nothing, so the watcher also follows the server's
``hello.topologyVersion.processId`` and treats a new process as a broken stream (full reload). With a real
replica set a failover changes the primary's processId too; the extra reload is harmless there.

The watcher is a thread (pymongo is blocking); readers never lock: profiles are immutable and each index
entry is replaced by one atomic dict assignment.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from bson import ObjectId
from prometheus_client import Counter, Gauge
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError

from hss_adapter.models import ACCOUNTS, ALIASES
from hss_adapter.profile import AccountProfile, profile_from_documents
from secondnum.identity import IdentityError, canonical
from secondnum.log import get_logger
from secondnum.mongo import SOCKET_TIMEOUT_MS

log = get_logger(__name__)

CACHE_ENTRIES = Gauge("secondnum_profile_cache_accounts", "Accounts held by the profile cache")
CACHE_RELOADS = Counter("secondnum_profile_cache_reloads_total", "Full reloads of the profile cache")
CACHE_EVENTS = Counter("secondnum_profile_cache_events_total", "Change-stream events applied")

Listener = Callable[[str], None]

_PIPELINE = [{"$match": {"$or": [
    {"ns.coll": {"$in": [ACCOUNTS, ALIASES]}},
    {"operationType": {"$in": ["dropDatabase", "invalidate"]}},
]}}]
"""Server-side filter: the database also holds CDRs, balances and voicemail, whose writes are none of ours."""


class CacheError(RuntimeError):
    pass


class _StreamBrokenError(Exception):
    """The change stream ended (invalidate/drop): reopen with a full reload."""


class ProfileCache:
    """Profiles by DID and alias, current within about a second of a MongoDB write."""

    def __init__(self, db: Database[Any], *, retry_seconds: float = 2.0, poll_ms: int = 200,
                 process_check_seconds: float = 1.0, client: MongoClient[Any] | None = None) -> None:
        self._db = db
        self._client = client
        self._retry = retry_seconds
        self._poll_ms = poll_ms
        self._process_check = process_check_seconds
        self._by_did: dict[str, AccountProfile] = {}
        self._by_alias: dict[str, AccountProfile] = {}
        self._did_of: dict[ObjectId, str] = {}
        self._alias_owner: dict[ObjectId, ObjectId] = {}
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._loaded = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[Listener] = []
        self.generation = 0
        """Increments on every applied change or reload (tests wait on it)."""

    @classmethod
    def from_uri(cls, uri: str, database: str, **kwargs: Any) -> ProfileCache:
        """A cache with its own pymongo client (the AS can run without the hss service)."""
        client: MongoClient[Any] = MongoClient(
            uri, serverSelectionTimeoutMS=2000, socketTimeoutMS=SOCKET_TIMEOUT_MS, tz_aware=True)
        return cls(client[database], client=client, **kwargs)

    # --- lookups (any thread, no locking) ---------------------------------------------------------------

    def lookup_did(self, e164: str) -> AccountProfile | None:
        """The account whose DID is ``e164`` (digits, an optional leading ``+`` is ignored)."""
        return self._by_did.get(e164.removeprefix("+"))

    def lookup_alias(self, identity: str) -> AccountProfile | None:
        """The account owning alias ``identity`` in any spelling (tel:, sip:...;user=phone, @pstn)."""
        try:
            key = canonical(identity)
        except IdentityError:
            return None
        return self._by_alias.get(key)

    def lookup_identity(self, identity: str) -> AccountProfile | None:
        """Alias first, then DID: for an identity whose role is not known (e.g. a P-Asserted-Identity)."""
        try:
            key = canonical(identity)
        except IdentityError:
            return None
        return self._by_alias.get(key) or self._by_did.get(key)

    @property
    def ready(self) -> bool:
        return self._loaded.is_set()

    @property
    def size(self) -> int:
        return len(self._by_did)

    def add_listener(self, listener: Listener) -> None:
        """``listener(did)`` runs on the event loop after each change to that account."""
        self._listeners.append(listener)

    # --- life cycle -------------------------------------------------------------------------------------

    async def start(self, timeout: float = 30.0) -> None:
        """Start the watcher and return once the first full load is done (:class:`CacheError` if not)."""
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="profile-cache", daemon=True)
        self._thread.start()
        loaded = await asyncio.to_thread(self._loaded.wait, timeout)
        if not loaded:
            await self.stop()
            raise CacheError(f"profile cache not loaded within {timeout} s (is MongoDB reachable?)")

    async def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, 10.0)
        if self._client is not None:
            self._client.close()
            self._client = None

    async def wait_for(self, predicate: Callable[[ProfileCache], bool], timeout: float = 5.0) -> bool:
        """Poll ``predicate(self)`` until true or ``timeout`` (for tests and start-up checks)."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    # --- watcher thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                process = self._server_process()
                with self._db.watch(_PIPELINE, max_await_time_ms=self._poll_ms) as stream:
                    self._full_reload()
                    checked = time.monotonic()
                    while not self._stop.is_set():
                        change = stream.try_next()
                        if change is not None:
                            self._apply(change)
                        if time.monotonic() - checked >= self._process_check:
                            checked = time.monotonic()
                            if self._server_process() != process:
                                raise _StreamBrokenError("database server process changed")
                    return
            except (PyMongoError, _StreamBrokenError) as exc:
                log.warning("profile_cache_stream_broken", error=str(exc), retry_s=self._retry)
            except Exception:  # a bad document must not kill the watcher for good
                log.exception("profile_cache_watcher_error", retry_s=self._retry)
            self._stop.wait(self._retry)

    def _server_process(self) -> Any:
        hello = self._db.client.admin.command("hello")
        return (hello.get("topologyVersion") or {}).get("processId")

    def _full_reload(self) -> None:
        aliases_by_account: dict[ObjectId, list[Mapping[str, Any]]] = {}
        alias_owner: dict[ObjectId, ObjectId] = {}
        for alias in self._db[ALIASES].find({}):
            aliases_by_account.setdefault(alias["account"], []).append(alias)
            alias_owner[alias["_id"]] = alias["account"]
        by_did: dict[str, AccountProfile] = {}
        by_alias: dict[str, AccountProfile] = {}
        did_of: dict[ObjectId, str] = {}
        for raw in self._db[ACCOUNTS].find({}):
            profile = self._build(raw, aliases_by_account.get(raw["_id"], []))
            if profile is None:
                continue
            by_did[profile.did] = profile
            did_of[raw["_id"]] = profile.did
            for alias in profile.aliases:
                by_alias[alias.key] = profile
        with self._write_lock:
            self._by_did, self._by_alias = by_did, by_alias
            self._did_of, self._alias_owner = did_of, alias_owner
        CACHE_RELOADS.inc()
        CACHE_ENTRIES.set(len(by_did))
        log.info("profile_cache_loaded", accounts=len(by_did), aliases=len(by_alias))
        self._loaded.set()
        self._changed("*")

    @staticmethod
    def _build(raw: Mapping[str, Any], aliases: list[Mapping[str, Any]]) -> AccountProfile | None:
        try:
            return profile_from_documents(raw, aliases)
        except (KeyError, ValueError, TypeError) as exc:
            log.error("profile_cache_bad_document", account_id=str(raw.get("_id")), error=str(exc))
            return None

    def _apply(self, change: Mapping[str, Any]) -> None:
        op = change.get("operationType")
        if op in {"invalidate", "drop", "dropDatabase", "rename"}:
            raise _StreamBrokenError(f"change stream {op}")
        coll = change.get("ns", {}).get("coll")
        doc_id = change.get("documentKey", {}).get("_id")
        if doc_id is None:
            return
        CACHE_EVENTS.inc()
        if coll == ACCOUNTS:
            self._refresh_account(doc_id)
        elif coll == ALIASES:
            # The alias may have moved or gone: refresh the account it belonged to and the one it names now.
            owners: set[ObjectId] = set()
            previous = self._alias_owner.pop(doc_id, None)
            if previous is not None:
                owners.add(previous)
            alias = self._db[ALIASES].find_one({"_id": doc_id})
            if alias is not None:
                self._alias_owner[doc_id] = alias["account"]
                owners.add(alias["account"])
            for owner in owners:
                self._refresh_account(owner)

    def _refresh_account(self, account_id: ObjectId) -> None:
        raw = self._db[ACCOUNTS].find_one({"_id": account_id})
        profile = None
        if raw is not None:
            aliases = list(self._db[ALIASES].find({"account": account_id}))
            profile = self._build(raw, aliases)
            for alias in aliases:
                self._alias_owner[alias["_id"]] = account_id
        with self._write_lock:
            old_did = self._did_of.get(account_id)
            old = self._by_did.get(old_did) if old_did else None
            if old is not None:
                for alias in old.aliases:
                    if self._by_alias.get(alias.key) is old:
                        del self._by_alias[alias.key]
                if profile is None or profile.did != old.did:
                    del self._by_did[old.did]
            if profile is None:
                self._did_of.pop(account_id, None)
            else:
                self._did_of[account_id] = profile.did
                self._by_did[profile.did] = profile
                for alias in profile.aliases:
                    self._by_alias[alias.key] = profile
        CACHE_ENTRIES.set(len(self._by_did))
        self._changed(profile.did if profile else (old_did or ""))

    def _changed(self, did: str) -> None:
        self.generation += 1
        loop = self._loop
        if loop is None or not self._listeners:
            return
        for listener in list(self._listeners):
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(listener, did)
