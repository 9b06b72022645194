"""The account's voicemail settings from the subscriber data (``hss_adapter``), read once per call.

The account document is the source of the mailbox limits and PIN policy (``VoicemailSettings`` in
``hss_adapter/profile.py``); media's own ``voicemail_boxes`` document holds what media owns (lock state,
failure count, greeting, and a PIN set over media's REST API when the account has none). Blocking: call
from a worker thread.
"""

from __future__ import annotations

import dataclasses

from hss_adapter.pin import verify_pin
from hss_adapter.store import profile_of
from secondnum.log import get_logger

log = get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class AccountVoicemail:
    enabled: bool
    pin_hash: str | None
    pin_required: bool
    max_message_seconds: int
    max_messages: int

    def verify_pin(self, pin: str) -> bool:
        return bool(verify_pin(pin, self.pin_hash))


def account_voicemail(did: str) -> AccountVoicemail | None:
    """The account's voicemail settings, or None (no account, or subscriber data not available)."""
    try:
        profile = profile_of(did)
    except Exception as exc:  # subscriber data unavailable: the media settings' defaults apply
        log.warning("account_lookup_failed", did=did, error=str(exc))
        return None
    if profile is None:
        return None
    vm = profile.voicemail
    return AccountVoicemail(vm.enabled, vm.pin_hash, vm.pin_required, vm.max_message_seconds, vm.max_messages)
