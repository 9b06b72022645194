"""The header multimap of a SIP message: case-insensitive names, compact forms, comma-list splitting.

RFC 3261 §7.3 (header syntax, §7.3.1 lists and folding, §7.3.3 compact forms), §20 (field names).
The relative order of fields with different names is not significant (§7.3.1), so values are grouped by
name; the order of values of one name (Via, Route, Record-Route) is kept.
"""

from __future__ import annotations

from collections.abc import Iterator

from .uri import split_list

COMPACT: dict[str, str] = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length", "c": "content-type",
    "f": "from", "s": "subject", "k": "supported", "t": "to", "v": "via", "o": "event", "r": "refer-to",
    "b": "referred-by", "u": "allow-events", "x": "session-expires", "y": "identity", "a": "accept-contact",
    "j": "reject-contact", "d": "request-disposition",
}

_SPECIAL_CASE: dict[str, str] = {
    "call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "p-asserted-identity": "P-Asserted-Identity", "p-preferred-identity": "P-Preferred-Identity",
    "p-charging-vector": "P-Charging-Vector",
    "p-charging-function-addresses": "P-Charging-Function-Addresses",
    "p-served-user": "P-Served-User", "p-access-network-info": "P-Access-Network-Info",
    "p-visited-network-id": "P-Visited-Network-ID", "p-called-party-id": "P-Called-Party-ID",
    "p-early-media": "P-Early-Media", "rack": "RAck", "rseq": "RSeq", "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
}

# Header fields whose value is a comma-separated list (RFC 3261 §7.3.1); others are never split.
LIST_HEADERS = frozenset({
    "via", "route", "record-route", "contact", "p-asserted-identity", "p-preferred-identity", "history-info",
    "diversion", "supported", "require", "proxy-require", "unsupported", "allow", "allow-events", "reason",
    "warning", "accept", "accept-encoding", "accept-language", "content-encoding", "path", "service-route",
    "p-associated-uri", "in-reply-to", "alert-info", "call-info", "error-info", "accept-contact",
    "reject-contact", "security-client", "security-server", "security-verify",
})


_CANONICAL: dict[str, str] = {}
_PRETTY: dict[str, str] = {}


def canonical(name: str) -> str:
    """Lower-case full name for any spelling or compact form (cached: names repeat endlessly)."""
    hit = _CANONICAL.get(name)
    if hit is not None:
        return hit
    low = name.lower()
    if len(low) == 1:
        low = COMPACT.get(low, low)
    if len(_CANONICAL) < 1024:
        _CANONICAL[name] = low
    return low


def pretty(low: str) -> str:
    """Conventional spelling of a lower-case full header name (``call-id`` -> ``Call-ID``)."""
    hit = _PRETTY.get(low)
    if hit is not None:
        return hit
    special = _SPECIAL_CASE.get(low)
    text = special if special is not None else "-".join(p[:1].upper() + p[1:] for p in low.split("-"))
    if len(_PRETTY) < 1024:
        _PRETTY[low] = text
    return text


class Headers:
    """Ordered multimap of header fields; values are raw strings, typed parsing lives in the message."""

    __slots__ = ("_map",)

    def __init__(self) -> None:
        # canonical lower-case name -> values in order; names are re-spelled with pretty() on output
        self._map: dict[str, list[str]] = {}

    def get(self, name: str) -> str | None:
        """First field value as on the wire (not list-split)."""
        values = self._map.get(canonical(name))
        return values[0] if values else None

    def get_raw(self, name: str) -> list[str]:
        """All field values as on the wire, one per header line."""
        return list(self._map.get(canonical(name), ()))

    def get_all(self, name: str) -> list[str]:
        """All values; list-type headers (§7.3.1) are split on commas outside quotes and ``<>``."""
        low = canonical(name)
        values = self._map.get(low)
        if not values:
            return []
        if low not in LIST_HEADERS:
            return list(values)
        out: list[str] = []
        for v in values:
            out.extend(split_list(v))
        return out

    def add(self, name: str, value: str, first: bool = False) -> None:
        low = canonical(name)
        values = self._map.get(low)
        if values is None:
            self._map[low] = [value]
        elif first:
            values.insert(0, value)
        else:
            values.append(value)

    def set(self, name: str, value: str | list[str]) -> None:
        """Replace every value of ``name``."""
        low = canonical(name)
        self._map[low] = [value] if isinstance(value, str) else list(value)

    def remove(self, name: str) -> None:
        low = canonical(name)
        self._map.pop(low, None)

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value of ``name`` (e.g. the top Via, §18.1.2)."""
        low = canonical(name)
        values = self._map.get(low)
        if not values:
            return None
        v = values.pop(0)
        if not values:
            del self._map[low]
        return v

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self._map.get(canonical(name)))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for low, values in self._map.items():
            disp = pretty(low)
            for v in values:
                yield disp, v

    def __len__(self) -> int:
        return sum(len(v) for v in self._map.values())

    def copy(self) -> Headers:
        h = Headers()
        h._map = {k: list(v) for k, v in self._map.items()}
        return h

    def encode_lines(self, skip: str = "content-length") -> list[str]:
        return [f"{pretty(low)}: {v}" for low, values in self._map.items() if low != skip for v in values]
