"""JSON representation of profiles in the provisioning API (the ``Account`` schema)."""

from __future__ import annotations

from typing import Any

from hss_adapter.profile import DAY_NAMES, AccountProfile, FollowMe, VoicemailSettings


def follow_me_json(fm: FollowMe) -> dict[str, Any]:
    window = fm.time_window
    return {
        "targets": [{"uri": t.uri, "ring_timeout": t.ring_timeout} for t in fm.targets],
        "ring_order": fm.ring_order.value,
        "time_window": None if window is None else {
            "days": [DAY_NAMES[d] for d in sorted(window.days)],
            "start": window.start.strftime("%H:%M"),
            "end": window.end.strftime("%H:%M"),
            "timezone": window.timezone,
        },
    }


def voicemail_json(vm: VoicemailSettings) -> dict[str, Any]:
    return {
        "enabled": vm.enabled,
        "pin_set": vm.pin_hash is not None,
        "pin_required": vm.pin_required,
        "max_message_seconds": vm.max_message_seconds,
        "max_messages": vm.max_messages,
        "greeting": vm.greeting,
    }


def account_json(p: AccountProfile) -> dict[str, Any]:
    return {
        "did": p.did,
        "display_name": p.display_name,
        "status": p.status.value,
        "answering_mode": p.answering_mode.value,
        "follow_me": follow_me_json(p.follow_me),
        "caller_id_presentation": p.caller_id_presentation.value,
        "voicemail": voicemail_json(p.voicemail),
        "aliases": [
            {"identity": a.identity, "key": a.key, "allow_registration": a.allow_registration}
            for a in p.aliases
        ],
    }


def settings_json(p: AccountProfile) -> dict[str, Any]:
    """The editable settings in ``AccountSettings`` input form (PIN omitted = keep it)."""
    doc = account_json(p)
    del doc["did"], doc["aliases"]
    vm = doc["voicemail"]
    del vm["pin_set"]
    return doc


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON Merge Patch (RFC 7396 §2): objects merge recursively, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None and key != "pin":
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
