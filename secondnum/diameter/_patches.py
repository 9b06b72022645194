"""Fixes to python-diameter 0.9.0's dictionary and message classes, applied once at import.

Each fix is pinned by a byte-level test in tests/unit/diameter/test_patches.py:

* Sh User-Data is AVP 702 vendor 10415 (TS 29.329 §6.3.3) in UDA/PUR/SNR/PNR; the library uses
  Cx User-Data 606 (TS 29.229), so a correct peer answers 5005 (missing AVP).
* SIP-Method inside Event-Type is AVP 824 vendor 10415 (TS 32.299 §7.2.58/§7.2.233); the library
  uses RADIUS-era 393, which freeDiameter rejects with 5001.
* Origin-Host / Origin-Realm always carry the M bit (RFC 6733 §4.5); CCR/CCA cleared it.
* CCA lists Credit-Control-Failure-Handling twice (RFC 4006 §3.2 has it once).
* Message classes leave `header.application_id` at 0 (RFC 6733 §3: it identifies the application).
"""

from __future__ import annotations

from typing import Any, Final

from diameter.message.avp.generator import AvpGenDef
from diameter.message.avp.grouped import EventType
from diameter.message.commands import all_commands

from secondnum.diameter import constants as dc

# application id per command code of python-diameter's classes that we (may) use
_APPLICATION_OF: Final[dict[int, int]] = {
    dc.CMD_CREDIT_CONTROL: dc.APP_RO,
    dc.CMD_RE_AUTH: dc.APP_RO,
    dc.CMD_ABORT_SESSION: dc.APP_RO,
    dc.CMD_USER_DATA: dc.APP_SH,
    dc.CMD_PROFILE_UPDATE: dc.APP_SH,
    dc.CMD_SUBSCRIBE_NOTIFICATIONS: dc.APP_SH,
    dc.CMD_PUSH_NOTIFICATION: dc.APP_SH,
}
_SH_COMMANDS: Final = frozenset(
    {dc.CMD_USER_DATA, dc.CMD_PROFILE_UPDATE, dc.CMD_SUBSCRIBE_NOTIFICATIONS, dc.CMD_PUSH_NOTIFICATION}
)
_CX_USER_DATA: Final = 606
_RADIUS_SIP_METHOD: Final = 393
_applied = False


def _fix_defs(defs: tuple[Any, ...], *, sh: bool) -> tuple[Any, ...]:
    out: list[Any] = []
    seen: set[tuple[str, int, int]] = set()
    for orig in defs:
        if not isinstance(orig, AvpGenDef):
            out.append(orig)
            continue
        d = orig
        if d.avp_code in (dc.AVP_ORIGIN_HOST, dc.AVP_ORIGIN_REALM) and d.is_mandatory is False:
            d = d._replace(is_mandatory=None)  # None = dictionary flag = M
        if sh and d.avp_code == _CX_USER_DATA and d.vendor_id == dc.VENDOR_3GPP:
            d = d._replace(avp_code=dc.AVP_3GPP_USER_DATA_SH)
        key = (d.attr_name, d.avp_code, d.vendor_id)
        if key in seen:
            continue  # duplicated definition (CCA's CCFH) would emit the AVP twice
        seen.add(key)
        out.append(d)
    return tuple(out)


def _with_application_id(cls: type[Any], app_id: int) -> None:
    original = cls.__post_init__

    def __post_init__(self: Any) -> None:  # noqa: N807 - replaces the dataclass hook
        original(self)
        if self.header.application_id == 0:
            self.header.application_id = app_id

    __post_init__.__secondnum_patched__ = True  # type: ignore[attr-defined]
    if not getattr(original, "__secondnum_patched__", False):
        cls.__post_init__ = __post_init__


def apply_patches() -> None:
    """Apply the fixes above; idempotent."""
    global _applied
    if _applied:
        return
    for code, base in all_commands.items():
        for cls in (base, *base.__subclasses__()):
            defs = cls.__dict__.get("avp_def")
            if isinstance(defs, tuple):
                cls.avp_def = _fix_defs(defs, sh=code in _SH_COMMANDS)
            if code in _APPLICATION_OF and cls is not base:
                _with_application_id(cls, _APPLICATION_OF[code])
    EventType.avp_def = tuple(
        d._replace(avp_code=dc.AVP_3GPP_SIP_METHOD, vendor_id=dc.VENDOR_3GPP)
        if isinstance(d, AvpGenDef) and d.avp_code == _RADIUS_SIP_METHOD
        else d
        for d in EventType.avp_def
    )
    _applied = True
