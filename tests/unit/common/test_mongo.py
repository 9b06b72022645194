"""The embedded SecantusDB: starts on a free port, keeps data in a folder across restarts."""

from __future__ import annotations

from pathlib import Path

import pymongo

from secondnum.mongo import EmbeddedMongo


def test_data_survives_restart(tmp_path: Path) -> None:
    data = tmp_path / "db"
    with EmbeddedMongo(data) as first:
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(first.uri)
        client.t.c.insert_one({"_id": "42027777100", "mode": "forward_then_voicemail"})
        client.close()
    with EmbeddedMongo(data) as second:
        client = pymongo.MongoClient(second.uri)
        assert client.t.c.find_one({"_id": "42027777100"}) == {"_id": "42027777100",
                                                              "mode": "forward_then_voicemail"}
        client.close()


def test_missing_binary_is_a_clear_error() -> None:
    import pytest

    from secondnum.mongo import EmbeddedMongoError

    with pytest.raises(EmbeddedMongoError, match="MONGO_URI"):
        EmbeddedMongo(executable="no-such-secantusd").start()


def test_connect_is_idempotent_for_the_same_database(mongo_server: str) -> None:
    import mongoengine
    from mongoengine.connection import get_connection

    from secondnum.mongo import connect

    connect(mongo_server, database="t_idem")
    first = get_connection()
    connect(mongo_server, database="t_idem")
    assert get_connection() is first  # not closed and replaced
    first.admin.command("ping")
    connect(mongo_server, database="t_other")
    assert get_connection() is not first
    mongoengine.disconnect()
    connect(mongo_server, database="t_other")  # after an outside disconnect it reconnects
    get_connection().admin.command("ping")
    mongoengine.disconnect()


def test_embedded_server_dies_with_its_parent(tmp_path: Path) -> None:
    """A SIGKILLed `secondnum up` must not leave SecantusDB running with the data folder locked."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import sys, time\n"
        "from secondnum.mongo import EmbeddedMongo\n"
        f"m = EmbeddedMongo({str(tmp_path / 'db')!r}); m.start()\n"
        "print(m.process.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                break
            if Path(f"/proc/{server_pid}/stat").read_text().split(")")[1].split()[0] == "Z":
                break  # exited; not reaped because its parent is gone (the test is not its parent)
            time.sleep(0.2)
        else:
            os.kill(server_pid, signal.SIGKILL)
            raise AssertionError("the embedded server outlived its parent")
    finally:
        parent.kill()


def test_every_client_bounds_how_long_a_call_waits(mongo_server: str) -> None:
    """A stalled server must not hold worker threads forever (socketTimeoutMS; secondnum.mongo)."""
    import mongoengine
    from mongoengine.connection import get_connection

    from hss_adapter.cache import ProfileCache
    from secondnum.mongo import SOCKET_TIMEOUT_MS, connect

    connect(mongo_server, database="t_sockettimeout")
    cache = ProfileCache.from_uri(mongo_server, "t_sockettimeout")
    try:
        clients = {"mongoengine": get_connection(), "profile cache": cache._db.client}
        for name, client in clients.items():
            assert client.options.pool_options.socket_timeout == SOCKET_TIMEOUT_MS / 1000, name
    finally:
        cache._db.client.close()
        mongoengine.disconnect()
