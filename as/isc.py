"""ISC analysis of an initial request from the S-CSCF (sans-IO).

TS 24.229 §5.7.1: the AS trusts P-Asserted-Identity only from a network element it trusts (RFC 3325 §5);
it recognises the session case from P-Served-User ``sescase`` (RFC 5502 §6) or, failing that, from the
``orig`` parameter on the Route entry that addressed it (TS 24.229 §5.4.3.3, §5.7.3); the served user is
the P-Served-User URI, else the Request-URI (terminating) or the asserted identity (originating).

The S-CSCF appends its own URI with an ``odi`` parameter after ours (TS 24.229 §5.4.3.3 step 4): requests
the AS sends to continue the session carry that Route so the S-CSCF resumes iFC evaluation (§5.7.5).
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from collections.abc import Iterable

from secondnum.identity import IdentityError, canonical
from secondnum.sip.errors import SipParseError
from secondnum.sip.fields import PChargingVector
from secondnum.sip.message import SipRequest
from secondnum.sip.uri import NameAddr, SipURI


class SessionCase(enum.Enum):
    """RFC 5502 §6 ``sescase``."""

    ORIGINATING = "orig"
    TERMINATING = "term"


class IscRejectedError(Exception):
    """The request cannot be served; ``status`` is the SIP response, ``log_event`` names the log line."""

    def __init__(self, status: int, reason: str, log_event: str, detail: str = "") -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.log_event = log_event
        self.detail = detail


class TrustedPeers:
    """Address ACL of S-CSCFs (TS 24.229 §5.7.1.1; RFC 3325 §2 trust domain)."""

    __slots__ = ("_networks",)

    def __init__(self, entries: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(e, strict=False) for e in entries]

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str):
            return False
        try:
            addr = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return any(addr in net for net in self._networks)


@dataclasses.dataclass(frozen=True, slots=True)
class IscRequest:
    """What the AS learned from an initial request received over ISC."""

    session_case: SessionCase
    served_user: str
    """Canonical identity (E.164 digits or ``sip:user@host``) of the served user."""
    served_uri: SipURI
    asserted: NameAddr | None
    """First P-Asserted-Identity: only set when the request came from a trusted peer."""
    asserted_id: str | None
    """Canonical form of :attr:`asserted` (``None`` if absent or not a number/SIP URI)."""
    return_route: tuple[NameAddr, ...]
    """Route entries after ours (the S-CSCF's ``odi`` entry): the Route of each leg continuing the session."""
    charging_vector: PChargingVector | None


def _is_own(entry: NameAddr, own: Iterable[SipURI]) -> bool:
    uri = entry.uri
    port = uri.port or 5060
    return any(uri.host.lower() == o.host.lower() and port == (o.port or 5060) for o in own)


def split_route(routes: list[NameAddr], own: Iterable[SipURI]) -> tuple[NameAddr | None, list[NameAddr]]:
    """Split the received Route set into our own entry and the entries to keep (RFC 3261 §16.4).

    Our entry is the top one when it names us; if the top entry does not name us but a later entry
    carries ``odi``, everything before that entry is dropped as well, so the S-CSCF's entry always leads.
    """
    own = list(own)
    if not routes:
        return None, []
    if _is_own(routes[0], own):
        return routes[0], list(routes[1:])
    for i, entry in enumerate(routes):
        if entry.uri.param("odi") is not None:
            return (routes[i - 1] if i else None), list(routes[i:])
    return None, list(routes)


def classify(request: SipRequest, source_host: str, trusted: TrustedPeers,
             own: Iterable[SipURI]) -> IscRequest:
    """Analyse an initial INVITE; raises :class:`IscRejectedError` (403 for an untrusted source).

    Header values are parsed lazily by the SIP stack, so a malformed one (including a URI inside a
    name-addr) surfaces here as :class:`BadHeaderError` and is answered 400 naming the header.
    """
    if source_host not in trusted:
        raise IscRejectedError(403, "Forbidden", "isc_untrusted_source",
                               f"source {source_host} is not an S-CSCF")
    try:
        return _classify(request, own)
    except SipParseError as exc:
        raise IscRejectedError(400, "Bad Request", "isc_bad_header", str(exc)) from None


def _classify(request: SipRequest, own: Iterable[SipURI]) -> IscRequest:
    served = request.p_served_user
    pai_list = request.p_asserted_identity
    pcv = request.p_charging_vector
    ruri = request.uri
    ours, rest = split_route(request.route, own)
    if served is not None and served.sescase in ("orig", "term"):
        case = SessionCase(served.sescase)
    elif ours is not None and "orig" in ours.uri.params:
        case = SessionCase.ORIGINATING
    else:
        case = SessionCase.TERMINATING
    asserted = pai_list[0] if pai_list else None
    # RFC 3325 §9.1: prefer the tel/global-number identity when several are asserted.
    for entry in pai_list:
        if entry.uri.scheme == "tel":
            asserted = entry
            break
    asserted_id: str | None = None
    if asserted is not None:
        try:
            asserted_id = canonical(str(asserted.uri))
        except IdentityError:
            asserted_id = None
    if served is not None:
        served_uri = served.uri
    elif case is SessionCase.TERMINATING:
        served_uri = ruri
    elif asserted is not None:
        served_uri = asserted.uri
    else:
        raise IscRejectedError(403, "Forbidden", "isc_no_served_user", "originating request without identity")
    try:
        served_id = canonical(str(served_uri))
    except IdentityError as exc:
        raise IscRejectedError(404, "Not Found", "isc_bad_served_user", str(exc)) from None
    return IscRequest(case, served_id, served_uri, asserted, asserted_id, tuple(rest), pcv)
