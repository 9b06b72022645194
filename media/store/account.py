"""The account's voicemail settings from the subscriber data (``hss_adapter``), read once per call.

The account document is the one master of the mailbox limits and of the PIN (``VoicemailSettings`` in
``hss_adapter/profile.py``, set through the provisioning API); media's own ``voicemail_boxes`` document holds
only what media owns (lock state, failure count, greeting, an optional REST message limit). Blocking: call
from a worker thread.

:class:`LastKnown` keeps the settings of every mailbox seen, so that a deposit taken while MongoDB is down
still honours ``enabled`` and ``max_message_seconds`` (README "Voicemail deposit").
"""

from __future__ import annotations

import collections
import dataclasses
import threading

from hss_adapter.pin import verify_pin
from hss_adapter.store import profile_of


@dataclasses.dataclass(frozen=True)
class AccountVoicemail:
    enabled: bool
    pin_hash: str | None
    pin_required: bool
    max_message_seconds: int
    max_messages: int

    def verify_pin(self, pin: str) -> bool:
        """Constant-time check against the account's scrypt (or migrated pbkdf2) hash; slow by design."""
        return bool(verify_pin(pin, self.pin_hash))


def account_voicemail(did: str) -> AccountVoicemail | None:
    """The account's voicemail settings; None when there is no account. Database errors propagate."""
    profile = profile_of(did)
    if profile is None:
        return None
    vm = profile.voicemail
    return AccountVoicemail(vm.enabled, vm.pin_hash, vm.pin_required, vm.max_message_seconds, vm.max_messages)


class LastKnown:
    """Bounded, thread-safe LRU of the last settings read per mailbox (``None``: known to have no account)."""

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._items: collections.OrderedDict[str, AccountVoicemail | None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def put(self, did: str, settings: AccountVoicemail | None) -> None:
        with self._lock:
            self._items[did] = settings
            self._items.move_to_end(did)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, did: str) -> tuple[bool, AccountVoicemail | None]:
        """(known, settings)."""
        with self._lock:
            if did not in self._items:
                return False, None
            self._items.move_to_end(did)
            return True, self._items[did]
