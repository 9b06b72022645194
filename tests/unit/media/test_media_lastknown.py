"""The last-known account settings used for deposits while MongoDB is down (media/store/account.py)."""

from __future__ import annotations

from media.store.account import AccountVoicemail, LastKnown

SETTINGS = AccountVoicemail(enabled=True, pin_hash=None, pin_required=False, max_message_seconds=60,
                            max_messages=10)


def test_unknown_known_and_known_without_account() -> None:
    cache = LastKnown()
    assert cache.get("1") == (False, None)
    cache.put("1", SETTINGS)
    cache.put("2", None)
    assert cache.get("1") == (True, SETTINGS)
    assert cache.get("2") == (True, None)


def test_bounded_least_recently_used_goes_first() -> None:
    cache = LastKnown(size=2)
    cache.put("1", SETTINGS)
    cache.put("2", SETTINGS)
    assert cache.get("1")[0]          # "1" is now the most recent
    cache.put("3", SETTINGS)
    assert cache.get("2") == (False, None)
    assert cache.get("1")[0] and cache.get("3")[0]
