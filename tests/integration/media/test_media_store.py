"""The voicemail store on a real MongoDB-compatible server (SecantusDB), GridFS audio included."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from media.store.spool import MessageSpool
from media.store.voicemail import MailboxFullError, NotFoundError, VoicemailStore

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


def test_pin_lock_after_three_failures_and_unlock(mongo_uri: str) -> None:
    store = VoicemailStore()
    store.update_box(MB, pin="2468", require_pin=True)
    assert store.check_pin(MB, "2468") == (True, False)
    assert store.check_pin(MB, "1111") == (False, False)
    assert store.check_pin(MB, "2222") == (False, False)
    assert store.check_pin(MB, "3333") == (False, True)
    assert store.check_pin(MB, "2468") == (False, True)  # locked even with the right PIN
    store.update_box(MB, locked=False)
    assert store.check_pin(MB, "2468") == (True, False)


def test_greeting_replace_and_default(mongo_uri: str) -> None:
    store = VoicemailStore()
    assert store.greeting(MB) is None
    store.set_greeting(MB, b"\x01" * 800)
    store.set_greeting(MB, b"\x02" * 800)
    assert store.greeting(MB) == b"\x02" * 800
    store.set_greeting(MB, None)
    assert store.greeting(MB) is None


def test_concurrent_deposits_never_exceed_capacity(mongo_uri: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = VoicemailStore(default_max_messages=5)

    def deposit(i: int) -> bool:
        try:
            store.add_message(MB, str(i), b"\x00" * 800, NOW)
            return True
        except MailboxFullError:
            return False

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(deposit, range(20)))
    assert len(store.list_messages(MB)) == sum(results) <= 5


def test_spooled_message_imported(mongo_uri: str, tmp_path: Path) -> None:
    spool = MessageSpool(tmp_path / "spool")
    spool.put(MB, "42075553333", b"\x55" * 1600, NOW, "call-1")
    store = VoicemailStore(default_max_messages=1)
    store.add_message(MB, "1", b"\x00" * 800, NOW)      # the mailbox has filled up meanwhile ...
    assert spool.import_into(store) == 1                 # ... a spooled message is still imported
    assert [(m.caller, m.duration_ms) for m in store.list_messages(MB)][-1] == ("42075553333", 200)
    assert spool.import_into(store) == 0 and not list((tmp_path / "spool").iterdir())
