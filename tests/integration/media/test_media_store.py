"""The voicemail store on a real MongoDB-compatible server (SecantusDB), GridFS audio included."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import pytest
from mongoengine import disconnect

from hss_adapter.store import adopt_voicemail_pin_hash, create_account
from media.store.account import account_voicemail
from media.store.models import VoicemailBox
from media.store.spool import MessageSpool
from media.store.voicemail import MailboxFullError, NotFoundError, VoicemailStore
from secondnum.mongo import connect

MB = "42027777100"
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


def test_message_life_cycle(mongo_uri: str) -> None:
    store = VoicemailStore(default_max_messages=5)
    info = store.add_message(MB, "42075553333", b"\x7f" * 8000, NOW, call_id="c1")
    assert info.duration_ms == 1000 and info.state == "new"
    assert store.counts(MB) == (1, 0)
    assert store.audio(MB, info.id) == b"\x7f" * 8000
    assert store.audio_wav(MB, info.id)[:4] == b"RIFF"
    assert store.set_state(MB, info.id, "saved").state == "saved"
    assert store.counts(MB) == (0, 1)
    assert [m.id for m in store.list_messages(MB, "saved")] == [info.id]
    store.delete(MB, info.id)
    assert store.list_messages(MB) == []
    with pytest.raises(NotFoundError):
        store.audio(MB, info.id)


@pytest.mark.parametrize("bad_id", ["nope", "0" * 24, ""])
def test_unknown_ids(mongo_uri: str, bad_id: str) -> None:
    with pytest.raises(NotFoundError):
        VoicemailStore().set_state(MB, bad_id, "saved")


def test_other_mailbox_cannot_read(mongo_uri: str) -> None:
    store = VoicemailStore()
    info = store.add_message(MB, "1", b"\x00" * 800, NOW)
    with pytest.raises(NotFoundError):
        store.audio("42099999999", info.id)


def test_mailbox_full(mongo_uri: str) -> None:
    store = VoicemailStore(default_max_messages=2)
    for _ in range(2):
        store.add_message(MB, "1", b"\x00" * 800, NOW)
    assert store.is_full(MB)
    with pytest.raises(MailboxFullError):
        store.add_message(MB, "1", b"\x00" * 800, NOW)
    store.update_box(MB, max_messages=3)
    store.add_message(MB, "1", b"\x00" * 800, NOW)


def _account_check(did: str) -> Callable[[str], bool]:
    account = account_voicemail(did)
    assert account is not None and account.pin_hash
    return account.verify_pin


def test_pin_lock_after_three_failures_and_unlock(mongo_uri: str) -> None:
    """The account's PIN (provisioning API, scrypt) is checked; media keeps the failures and the lock."""
    create_account({"did": MB, "voicemail": {"pin": "2468"}})
    check = _account_check(MB)
    store = VoicemailStore()
    assert store.check_pin(MB, "2468", check) == (True, False)
    assert store.check_pin(MB, "1111", check) == (False, False)
    assert store.check_pin(MB, "2222", check) == (False, False)
    assert store.check_pin(MB, "3333", check) == (False, True)
    assert store.check_pin(MB, "2468", check) == (False, True)  # locked even with the right PIN
    store.update_box(MB, locked=False)
    assert store.check_pin(MB, "2468", check) == (True, False)


def test_pin_changed_through_provisioning_is_the_one_checked(mongo_uri: str) -> None:
    create_account({"did": MB, "voicemail": {"pin": "2468"}})
    from hss_adapter.store import replace_account

    replace_account(MB, {"voicemail": {"pin": "9753"}})
    store = VoicemailStore()
    assert store.check_pin(MB, "2468", _account_check(MB)) == (False, False)
    assert store.check_pin(MB, "9753", _account_check(MB)) == (True, False)


def test_no_account_pin_fails_and_counts(mongo_uri: str) -> None:
    store = VoicemailStore()
    assert store.check_pin(MB, "2468", None) == (False, False)
    assert store.box(MB).pin_failures == 1


def _legacy_pbkdf2(pin: str) -> str:
    """The hash format older media versions stored in ``voicemail_boxes.pin_hash``."""
    salt = bytes(range(16))
    return f"pbkdf2_sha256$1000${salt.hex()}${hashlib.pbkdf2_hmac('sha256', pin.encode(), salt, 1000).hex()}"


def test_legacy_mailbox_pins_migrated_to_the_account(mongo_uri: str) -> None:
    """One-time migration: the mailbox copy moves to an account without PIN, loses to an account's own PIN,
    is dropped (logged) without an account; old documents load before and after."""
    store = VoicemailStore()
    boxes = VoicemailBox._get_collection()
    create_account({"did": "42027777101"})                                   # no PIN yet
    create_account({"did": "42027777102", "voicemail": {"pin": "1111"}})     # its own PIN
    for did in ("42027777101", "42027777102", "42027777103"):
        boxes.insert_one({"mailbox": did, "pin_hash": _legacy_pbkdf2("4321"), "locked": False,
                          "pin_failures": 0, "require_pin": True})
    assert store.box("42027777101").require_pin  # an old document still loads
    done = store.migrate_legacy_pins(adopt_voicemail_pin_hash)
    assert done == {"42027777101": "adopted", "42027777102": "kept", "42027777103": "no_account"}
    assert boxes.count_documents({"pin_hash": {"$exists": True}}) == 0
    assert store.check_pin("42027777101", "4321", _account_check("42027777101")) == (True, False)
    assert store.check_pin("42027777102", "4321", _account_check("42027777102")) == (False, False)
    assert store.check_pin("42027777102", "1111", _account_check("42027777102")) == (True, False)
    assert store.migrate_legacy_pins(adopt_voicemail_pin_hash) == {}  # nothing left: runs once


def test_greeting_replace_and_default(mongo_uri: str) -> None:
    store = VoicemailStore()
    assert store.greeting(MB) is None
    store.set_greeting(MB, b"\x01" * 800)
    store.set_greeting(MB, b"\x02" * 800)
    assert store.greeting(MB) == b"\x02" * 800
    store.set_greeting(MB, None)
    assert store.greeting(MB) is None


@pytest.mark.parametrize(("capacity", "already"), [(5, 0), (3, 2)])
def test_concurrent_deposits_fill_exactly_to_capacity(mongo_uri: str, capacity: int, already: int) -> None:
    """Racing deposits (threads, one client, real server): the limit is exact, never exceeded, never
    under-filled (the old re-count-and-withdraw could let a racing pair both withdraw)."""
    store = VoicemailStore(default_max_messages=capacity)
    store.ensure_indexes()  # as media's start does: the race under test is the deposits', not index creation
    for i in range(already):
        store.add_message(MB, f"old{i}", b"\x00" * 800, NOW)
    start = threading.Barrier(10)

    def deposit(i: int) -> bool:
        start.wait()
        try:
            store.add_message(MB, str(i), b"\x00" * 800, NOW, call_id=f"race-{i}")
            return True
        except MailboxFullError:
            return False

    pool = ThreadPoolExecutor(10)
    futures = [pool.submit(deposit, i) for i in range(10)]
    done, stuck = wait(futures, timeout=120)
    pool.shutdown(wait=False, cancel_futures=True)
    assert not stuck, "deposits never returned: the store is waiting for the server"
    results = [f.result() for f in done]
    messages = store.list_messages(MB)
    assert sum(results) == capacity - already
    assert len(messages) == capacity
    audio_files = VoicemailBox._get_db()["voicemail_audio.files"].count_documents({"kind": "message"})
    assert audio_files == capacity  # the refused deposits' audio was removed again


def test_concurrent_deposits_from_two_clients(mongo_uri: str) -> None:
    """Two MongoClients (as two media replicas have) racing on one mailbox: the count-and-insert
    transactions run on different connections and still serialise."""
    connect(mongo_uri, os.environ["SECONDNUM_TEST_DB"], alias="other")
    try:
        stores = [VoicemailStore(default_max_messages=4),
                  VoicemailStore(default_max_messages=4, alias="other")]
        stores[0].ensure_indexes()
        start = threading.Barrier(8)

        def deposit(i: int) -> bool:
            start.wait()
            try:
                stores[i % 2].add_message(MB, str(i), b"\x00" * 800, NOW, call_id=f"two-{i}")
                return True
            except MailboxFullError:
                return False

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(deposit, range(8)))
        assert sum(results) == 4 and len(VoicemailStore().list_messages(MB)) == 4
    finally:
        disconnect(alias="other")


def test_add_message_idempotent_per_call(mongo_uri: str) -> None:
    store = VoicemailStore(default_max_messages=5)
    rtp = {"packets_received": 50, "jitter_ms": 1.5}
    first = store.add_message(MB, "42075553333", b"\x11" * 1600, NOW, call_id="c-1", rtp=rtp)
    again = store.add_message(MB, "42075553333", b"\x11" * 1600, NOW, call_id="c-1", rtp=rtp)
    assert again.id == first.id and len(store.list_messages(MB)) == 1
    assert store.list_messages(MB)[0].rtp == rtp and first.as_json()["rtp"] == rtp


def test_spooled_message_imported(mongo_uri: str, tmp_path: Path) -> None:
    spool = MessageSpool(tmp_path / "spool")
    spool.put(MB, "42075553333", b"\x55" * 1600, NOW, "call-1", rtp={"lost": 2})
    assert spool.pending() == 1
    store = VoicemailStore(default_max_messages=1)
    store.update_box(MB, max_messages=1)                 # even the mailbox's own REST limit ...
    store.add_message(MB, "1", b"\x00" * 800, NOW)      # ... and the mailbox has filled up meanwhile ...
    assert spool.import_into(store) == 1                 # ... a spooled message is still imported
    last = store.list_messages(MB)[-1]
    assert (last.caller, last.duration_ms, last.received_at) == ("42075553333", 200, NOW)
    assert last.rtp == {"lost": 2}
    assert spool.import_into(store) == 0 and not list((tmp_path / "spool").iterdir())


def test_spool_import_after_crash_does_not_duplicate(mongo_uri: str, tmp_path: Path) -> None:
    """A crash after the insert but before the unlink: the next import finds the call's message."""
    spool = MessageSpool(tmp_path / "spool")
    spool.put(MB, "42075553333", b"\x55" * 1600, NOW, "call-9")
    store = VoicemailStore()
    store.add_message(MB, "42075553333", b"\x55" * 1600, NOW, call_id="call-9", force=True)
    assert spool.import_into(store) == 1
    assert len(store.list_messages(MB)) == 1


def test_unreadable_spool_envelope_set_aside(mongo_uri: str, tmp_path: Path) -> None:
    spool = MessageSpool(tmp_path / "spool")
    spool.put(MB, "42075553333", b"\x55" * 1600, NOW, "call-1")
    (tmp_path / "spool" / "00-broken.json").write_text("{not json")
    (tmp_path / "spool" / "01-noaudio.json").write_text('{"mailbox": "1", "caller": "2", '
                                                          '"received_at": "2026-11-25T10:00:00+00:00", '
                                                          '"call_id": "x"}')
    store = VoicemailStore()
    assert spool.import_into(store) == 1                 # the good one; the others do not block it
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == ["00-broken.bad", "01-noaudio.bad"]
    assert spool.pending() == 0
