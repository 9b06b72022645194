"""Recording a diversion: History-Info (RFC 7044, cause RFC 4458) and Diversion (RFC 5806), per TS 24.604.

The DID is the diverting user for every leg the AS creates: the follow-me targets and the voicemail
deposit are all retargets of the request that addressed the DID, so their History-Info entries are
siblings under the DID's entry (RFC 7044 §9.3: ``index`` of the retargeted request = parent index plus
``.n``), with ``mp`` naming the parent because the target user changed (RFC 7044 §4.1, §5.3). The cause
of each retarget is the RFC 4458 ``cause`` URI parameter of the new target (TS 24.604 §4.5.2.6.2).
A failed target is marked with the response that ended it as an escaped Reason header (RFC 7044 §4.4),
for SIP URIs only (a tel URI has no header component, RFC 3966).
"""

from __future__ import annotations

import enum
import urllib.parse
from collections.abc import Sequence

from secondnum.sip.fields import Diversion, HistoryInfoEntry
from secondnum.sip.uri import SipURI


class DiversionCause(enum.Enum):
    """Why the call left the DID: (RFC 4458 cause, RFC 5806 reason) as TS 24.604 Table 4.5.2.6.2 maps them.

    ``UNREACHABLE`` uses 480 as the service brief names it; RFC 4458 reserves 503 for "mobile subscriber
    not reachable" (see notes).
    """

    UNCONDITIONAL = (302, "unconditional")
    NO_REPLY = (408, "no-answer")
    BUSY = (486, "user-busy")
    UNREACHABLE = (480, "unavailable")

    @property
    def cause(self) -> int:
        return self.value[0]

    @property
    def reason(self) -> str:
        return self.value[1]


def history_base(received: Sequence[HistoryInfoEntry],
                 request_uri: SipURI) -> tuple[list[HistoryInfoEntry], str]:
    """Entries to carry forward, and the index of the entry that addressed us (the parent of our retargets).

    Received entries are kept (RFC 7044 §9.1: an intermediary never removes entries); when the request
    carried none, we start the history with the Request-URI we received at index 1 (RFC 7044 §9.2).
    """
    entries = list(received)
    if not entries:
        return [HistoryInfoEntry(request_uri.copy(), "1")], "1"
    # The entry whose target is the received Request-URI, else the deepest (the most recent) one.
    for entry in reversed(entries):
        if entry.uri == request_uri:
            return entries, entry.index
    return entries, max(entries, key=lambda e: (e.depth, e.index)).index


def _next_child(entries: Sequence[HistoryInfoEntry], parent: str) -> str:
    prefix = parent + "."
    taken = [int(e.index[len(prefix):]) for e in entries
             if e.index.startswith(prefix) and e.index[len(prefix):].isdigit()]
    return f"{parent}.{max(taken, default=0) + 1}"


def add_retarget(entries: Sequence[HistoryInfoEntry], parent: str, target: SipURI,
                 cause: DiversionCause) -> list[HistoryInfoEntry]:
    """A new list with ``target`` retargeted from ``parent`` for ``cause`` (RFC 7044 §9.3, RFC 4458 §2)."""
    uri = target.copy()
    uri.headers = None
    uri.params = {k: v for k, v in uri.params.items() if k != "cause"}
    uri.params["cause"] = str(cause.cause)
    return [*entries, HistoryInfoEntry(uri, _next_child(entries, parent), {"mp": parent})]


def mark_failed(entries: Sequence[HistoryInfoEntry], index: str, status: int,
                text: str | None = None) -> list[HistoryInfoEntry]:
    """Record the final response of a retarget as ``?Reason=SIP;cause=N`` (RFC 7044 §4.4, RFC 3326)."""
    out: list[HistoryInfoEntry] = []
    for entry in entries:
        if entry.index == index and entry.uri.scheme in ("sip", "sips"):
            reason = f"SIP;cause={status}" + (f';text="{text}"' if text else "")
            uri = entry.uri.copy()
            uri.headers = "Reason=" + urllib.parse.quote(reason, safe="")
            out.append(HistoryInfoEntry(uri, entry.index, dict(entry.params), entry.display))
        else:
            out.append(entry)
    return out


def diversion_headers(received: Sequence[Diversion], diverting: SipURI,
                      cause: DiversionCause) -> list[Diversion]:
    """Diversion list for a new leg: our diversion on top, received ones kept below (RFC 5806 §3)."""
    uri = diverting.copy()
    uri.params = {}
    ours = Diversion(uri, None, {"reason": cause.reason, "counter": "1"})
    return [ours, *received]
