"""The caller's privacy request on the legs the AS creates (sans-IO).

The caller asks for privacy with the Privacy header (RFC 3323 §4.2; ``id`` RFC 3325 §9.3; ``history``
RFC 7044 §10). The AS is inside the operator's trust domain (the S-CSCF is trusted, TS 24.229 §5.7.1), so
it is not the privacy service that strips identities at the domain boundary: it keeps the request's
privacy intact on the legs it creates, so that the boundary (P-CSCF/IBCF of the called side) can apply it.

* Forwarded leg presenting the *original caller* (account setting ``original_caller``): the Privacy
  header goes on as received; when it asks for ``id``, ``header`` or ``user`` the From of the new leg is
  the anonymous one of RFC 3323 §4.1.1.3 (``"Anonymous" <sip:anonymous@anonymous.invalid>``), because From
  is end to end and no privacy service rewrites it later (TS 24.607 §4.5.2.4: OIR on the From header);
  P-Asserted-Identity stays (trusted, removed by the privacy service on the way out, RFC 3325 §9.3).
* Forwarded leg presenting the *DID*: the identity on the leg is the account's own, not the caller's, so
  ``id``/``header``/``user`` do not apply to it; ``history`` still does: the leg carries ``Privacy:
  history`` (RFC 7044 §10.1: every History-Info entry is private) and each SIP-URI entry also gets the
  escaped ``Privacy=history`` header of RFC 7044 §10.1.2 so that the marking survives a downstream
  element that rewrites the request's Privacy header. A tel URI has no header component (RFC 3966).
* Outgoing leg of flow C (the customer's call from the voicemail menu, placed for the DID): the customer
  is the originator, so the Privacy of the customer's own INVITE (the access call) applies to it, as an
  originating AS applies OIR (TS 24.607 §4.5.2.5): P-Asserted-Identity stays the DID (trusted, removed by
  the boundary's privacy service, RFC 3325 §9.3), ``Privacy`` carries the customer's values with ``id``
  added when the identity is to be hidden (the asserted DID is what ``id`` withholds), and the From is the
  anonymous one (RFC 3323 §4.1.1.3; TS 24.607: the originating AS anonymises From or adds ``user``; From is
  end to end, so it must not show the DID).
* ``none`` with other values is contradictory (RFC 3323 §4.2); the AS keeps the other values (fail safe).

Only calls whose INVITE has a Privacy header pay for any of this (:func:`requested` is one dict lookup).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from secondnum.sip.fields import HistoryInfoEntry
from secondnum.sip.message import SipRequest, new_tag
from secondnum.sip.uri import NameAddr, SipURI

# priv-values of RFC 3323 §4.2, RFC 3325 §9.3 (id) and RFC 7044 §10 (history); others are ignored.
PRIV_VALUES = frozenset({"header", "session", "user", "none", "critical", "id", "history"})
IDENTITY_VALUES = frozenset({"id", "header", "user"})
ANONYMOUS_URI = "sip:anonymous@anonymous.invalid"
ANONYMOUS_DISPLAY = "Anonymous"


@dataclasses.dataclass(frozen=True, slots=True)
class Privacy:
    """The priv-values the caller's INVITE asked for, lower-cased, in order, without duplicates."""

    values: tuple[str, ...]

    @property
    def hides_identity(self) -> bool:
        """``id``, ``header`` or ``user``: the caller's identity must not reach the called party."""
        return any(v in IDENTITY_VALUES for v in self.values)

    @property
    def history(self) -> bool:
        return "history" in self.values


@dataclasses.dataclass(frozen=True, slots=True)
class LegPrivacy:
    """What a forwarded leg does about the caller's privacy."""

    anonymous_from: bool
    header: str | None
    """The leg's Privacy header value (``None``: no header)."""
    history: bool
    """Mark the History-Info entries private (RFC 7044 §10)."""


NO_PRIVACY = LegPrivacy(False, None, False)


def requested(req: SipRequest) -> Privacy | None:
    """The Privacy of ``req`` (``None`` when absent or only unknown values). ``;`` separates values
    (RFC 3323 §4.2); a ``,`` list or several header lines are accepted too."""
    headers = req.headers
    if "privacy" not in headers:
        return None
    values: list[str] = []
    for raw in headers.get_raw("privacy"):
        for part in raw.replace(",", ";").split(";"):
            value = part.strip().lower()
            if value in PRIV_VALUES and value not in values:
                values.append(value)
    if len(values) > 1 and "none" in values:
        values.remove("none")
    return Privacy(tuple(values)) if values else None


def forward_leg(privacy: Privacy | None, present_did: bool) -> LegPrivacy:
    """The privacy of a forwarded leg (module docstring): original caller vs DID presentation."""
    if privacy is None or privacy.values == ("none",):
        return NO_PRIVACY
    if not present_did:
        return LegPrivacy(privacy.hides_identity, "; ".join(privacy.values), privacy.history)
    if not privacy.history:
        return NO_PRIVACY
    kept = [v for v in privacy.values if v in ("history", "critical")]
    return LegPrivacy(False, "; ".join(kept), True)


def outgoing_leg(privacy: Privacy | None) -> LegPrivacy:
    """The privacy of flow C's outgoing leg from the customer's own request (module docstring).

    No History-Info is sent on that leg, so nothing is marked; ``history`` is still passed on (it covers
    entries added downstream, RFC 7044 §10.1)."""
    if privacy is None or privacy.values == ("none",):
        return NO_PRIVACY
    values = list(privacy.values)
    hides = privacy.hides_identity
    if hides and "id" not in values:
        # RFC 3325 §9.3: only ``id`` makes the boundary withhold the P-Asserted-Identity (here the DID).
        values.insert(values.index("critical") if "critical" in values else len(values), "id")
    return LegPrivacy(hides, "; ".join(values), False)


def anonymous_from() -> NameAddr:
    """RFC 3323 §4.1.1.3 / RFC 3261 §8.1.1.3: the From of a request that must not reveal its originator."""
    return NameAddr(SipURI.parse(ANONYMOUS_URI), ANONYMOUS_DISPLAY, {"tag": new_tag()})


def private_history(entries: Sequence[HistoryInfoEntry]) -> list[HistoryInfoEntry]:
    """``entries`` with ``Privacy=history`` escaped into each SIP URI's headers (RFC 7044 §10.1.2)."""
    out: list[HistoryInfoEntry] = []
    for entry in entries:
        uri = entry.uri
        if uri.scheme not in ("sip", "sips"):
            out.append(entry)
            continue
        existing = [h for h in (uri.headers or "").split("&") if h]
        if any(h.lower() == "privacy=history" for h in existing):
            out.append(entry)
            continue
        marked = uri.copy()
        marked.headers = "&".join(["Privacy=history", *existing])
        out.append(HistoryInfoEntry(marked, entry.index, dict(entry.params), entry.display))
    return out
