"""SIP requests and responses with lazily parsed, cached typed header access (RFC 3261 §7, §20).

Header values stay raw strings until a typed property is read; the parsed value is cached and dropped when
the field is modified through :meth:`SipMessage.set_header`/``add_header``/``remove_header``. Modifying
``msg.headers`` directly also works but callers must then call :meth:`SipMessage.invalidate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, TypeVar

from secondnum.entropy import random_hex

from .errors import BadHeaderError, SipParseError
from .fields import (
    CSeq,
    Diversion,
    Event,
    HistoryInfoEntry,
    PChargingVector,
    PServedUser,
    Reason,
    RetryAfter,
    SubscriptionState,
    Via,
    Warning,
    parse_option_tags,
)
from .headers import Headers, canonical
from .uri import NameAddr, SipURI, parse_name_addr, parse_name_addr_list, split_list

T = TypeVar("T")

MAGIC_COOKIE = "z9hG4bK"

REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
    200: "OK", 202: "Accepted", 204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


def new_branch() -> str:
    """A fresh RFC 3261 branch (§8.1.1.7: starts with the magic cookie)."""
    return MAGIC_COOKIE + random_hex(8)


def new_tag() -> str:
    """A fresh From/To tag (§19.3: at least 32 bits of randomness)."""
    return random_hex(5)


class SipMessage:
    """Common part of requests and responses."""

    __slots__ = ("_cache", "body", "headers")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self._cache: dict[str, Any] = {}

    # --- header editing ------------------------------------------------------------------------------
    def set_header(self, name: str, value: str | list[str]) -> None:
        self.headers.set(name, value)
        self._forget(name)

    def add_header(self, name: str, value: str, first: bool = False) -> None:
        self.headers.add(name, value, first)
        self._forget(name)

    def remove_header(self, name: str) -> None:
        self.headers.remove(name)
        self._forget(name)

    def _forget(self, name: str) -> None:
        low = canonical(name)
        self._cache.pop(low, None)
        if low == "via":
            self._cache.pop(" top-via", None)

    def invalidate(self) -> None:
        """Drop every cached typed value (after editing :attr:`headers` directly)."""
        self._cache.clear()

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    # --- typed access --------------------------------------------------------------------------------
    def _typed(self, low: str, parse: Callable[[list[str]], T]) -> T:
        """Cached ``parse(all values, list-split)``; parse errors become :class:`BadHeaderError`."""
        cache = self._cache
        if low in cache:
            return cache[low]  # type: ignore[no-any-return]
        try:
            value = parse(self.headers.get_all(low))
        except (SipParseError, ValueError, IndexError) as exc:
            raise BadHeaderError(_pretty_name(low), str(exc)) from None
        cache[low] = value
        return value

    def _single(self, low: str, parse: Callable[[str], T]) -> T | None:
        """Cached parse of the first value of a single-valued field (``low`` is canonical)."""
        cache = self._cache
        if low in cache:
            return cache[low]  # type: ignore[no-any-return]
        values = self.headers._map.get(low)
        if not values:
            cache[low] = None
            return None
        try:
            value = parse(values[0])
        except (SipParseError, ValueError, IndexError) as exc:
            raise BadHeaderError(_pretty_name(low), str(exc)) from None
        cache[low] = value
        return value

    def _required(self, low: str, parse: Callable[[str], T]) -> T:
        v = self._single(low, parse)
        if v is None:
            raise BadHeaderError(_pretty_name(low), "missing")
        return v

    def _list(self, low: str, parse: Callable[[str], T]) -> list[T]:
        """Cached parse of every element of a list-type field (§7.3.1: lines and commas are equivalent)."""
        cache = self._cache
        if low in cache:
            return cache[low]  # type: ignore[no-any-return]
        values = self.headers._map.get(low)
        try:
            if not values:
                result: list[T] = []
            elif len(values) == 1 and "," not in values[0]:
                result = [parse(values[0])]
            else:
                result = [parse(item) for v in values for item in split_list(v)]
        except (SipParseError, ValueError, IndexError) as exc:
            raise BadHeaderError(_pretty_name(low), str(exc)) from None
        cache[low] = result
        return result

    def _na_list(self, low: str, header: str) -> list[NameAddr]:
        """Cached name-addr list field (Route, Record-Route, P-Asserted-Identity)."""
        cache = self._cache
        if low in cache:
            return cache[low]  # type: ignore[no-any-return]
        values = self.headers._map.get(low)
        try:
            if not values:
                result: list[NameAddr] = []
            elif len(values) == 1:
                result = parse_name_addr_list(values[0], header)
            else:
                result = [na for v in values for na in parse_name_addr_list(v, header)]
        except SipParseError as exc:
            raise BadHeaderError(header, str(exc)) from None
        cache[low] = result
        return result

    @property
    def via(self) -> list[Via]:
        return self._list("via", Via.parse)

    @property
    def top_via(self) -> Via:
        """The first Via only (parsing the others is not needed to match a transaction)."""
        cache = self._cache
        v = cache.get("via")
        if v:
            return v[0]  # type: ignore[no-any-return]
        top = cache.get(" top-via")
        if top is None:
            raw = self.headers._map.get("via")
            if not raw:
                raise BadHeaderError("Via", "missing")
            first = raw[0]
            if "," in first:
                items = split_list(first)
                first = items[0] if items else ""  # "Via: ," holds no value: a bad Via, not an IndexError
            try:
                top = cache[" top-via"] = Via.parse(first)
            except SipParseError as exc:
                raise BadHeaderError("Via", str(exc)) from None
        return top

    @property
    def call_id(self) -> str:
        v = self.headers.get("call-id")
        if not v or not v.strip():
            raise BadHeaderError("Call-ID", "missing")
        return v.strip()

    @property
    def cseq(self) -> CSeq:
        return self._required("cseq", CSeq.parse)

    @property
    def from_(self) -> NameAddr:
        return self._required("from", _NA["From"])

    @property
    def to(self) -> NameAddr:
        return self._required("to", _NA["To"])

    @property
    def contact(self) -> list[NameAddr]:
        def parse(values: list[str]) -> list[NameAddr]:
            if len(values) == 1 and values[0].strip() == "*":
                return []
            return [parse_name_addr(v, "Contact") for v in values]
        return self._typed("contact", parse)

    @property
    def route(self) -> list[NameAddr]:
        return self._na_list("route", "Route")

    @property
    def record_route(self) -> list[NameAddr]:
        return self._na_list("record-route", "Record-Route")

    @property
    def max_forwards(self) -> int | None:
        return self._single("max-forwards", _int_field)

    @property
    def p_asserted_identity(self) -> list[NameAddr]:
        return self._na_list("p-asserted-identity", "P-Asserted-Identity")

    @property
    def p_served_user(self) -> PServedUser | None:
        return self._single("p-served-user", PServedUser.parse)

    @property
    def history_info(self) -> list[HistoryInfoEntry]:
        return self._list("history-info", HistoryInfoEntry.parse)

    @property
    def diversion(self) -> list[Diversion]:
        return self._list("diversion", Diversion.parse)

    @property
    def p_charging_vector(self) -> PChargingVector | None:
        return self._single("p-charging-vector", PChargingVector.parse)

    @property
    def reason(self) -> list[Reason]:
        return self._list("reason", Reason.parse)

    @property
    def refer_to(self) -> NameAddr | None:
        return self._single("refer-to", _NA["Refer-To"])

    @property
    def referred_by(self) -> NameAddr | None:
        return self._single("referred-by", _NA["Referred-By"])

    @property
    def supported(self) -> list[str]:
        return self._typed("supported", parse_option_tags)

    @property
    def require(self) -> list[str]:
        return self._typed("require", parse_option_tags)

    @property
    def retry_after(self) -> RetryAfter | None:
        return self._single("retry-after", RetryAfter.parse)

    @property
    def warning(self) -> list[Warning]:
        return self._list("warning", Warning.parse)

    @property
    def event(self) -> Event | None:
        return self._single("event", Event.parse)

    @property
    def subscription_state(self) -> SubscriptionState | None:
        return self._single("subscription-state", SubscriptionState.parse)

    @property
    def content_type(self) -> str | None:
        v = self.headers.get("content-type")
        return v.strip() if v else None

    @property
    def content_length(self) -> int | None:
        return self._single("content-length", _int_field)

    def validate(self) -> None:
        """Parse the fields every message needs (§8.1.1); :class:`BadHeaderError` names the first bad one."""
        _ = self.top_via
        _ = self.via
        _ = self.call_id
        _ = self.cseq
        _ = self.from_.uri
        _ = self.to.uri

    # --- serialisation -------------------------------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def encode(self) -> bytes:
        """Wire form; Content-Length always reflects :attr:`body` (§20.14, mandatory over streams)."""
        lines = [self.start_line()]
        lines += self.headers.encode_lines()
        lines.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.encode()


class SipRequest(SipMessage):
    """A request (RFC 3261 §7.1). ``uri`` is parsed lazily from ``raw_uri``."""

    __slots__ = ("_uri", "method", "raw_uri")

    def __init__(self, method: str, uri: SipURI | str, headers: Headers | None = None,
                 body: bytes = b"") -> None:
        super().__init__(headers, body)
        self.method = method
        if isinstance(uri, SipURI):
            self._uri: SipURI | None = uri
            self.raw_uri = str(uri)
        else:
            self._uri = None
            self.raw_uri = uri

    @property
    def uri(self) -> SipURI:
        if self._uri is None:
            try:
                self._uri = SipURI.parse(self.raw_uri)
            except SipParseError as exc:
                raise BadHeaderError("Request-URI", str(exc)) from None
        return self._uri

    @uri.setter
    def uri(self, value: SipURI) -> None:
        self._uri = value
        self.raw_uri = str(value)

    def start_line(self) -> str:
        if self._uri is not None:
            self.raw_uri = str(self._uri)
        return f"{self.method} {self.raw_uri} SIP/2.0"

    def create_response(self, status: int, reason: str | None = None, *, to_tag: str | None = None,
                        headers: Iterable[tuple[str, str]] = (), body: bytes = b"",
                        content_type: str | None = None) -> SipResponse:
        """Build a response (§8.2.6.2): copies Via, From, To, Call-ID, CSeq; adds the To tag if absent."""
        h = Headers()
        src = self.headers._map
        dst = h._map
        for name in ("via", "from", "to", "call-id", "cseq"):
            values = src.get(name)
            if values:
                dst[name] = list(values)
        if status == 100 and "timestamp" in src:
            dst["timestamp"] = list(src["timestamp"])
        if to_tag and status != 100:
            to_values = dst.get("to")
            if to_values and not _has_tag(to_values[0]):
                to_values[0] = f"{to_values[0]};tag={to_tag}"
        for name, value in headers:
            h.add(name, value)
        if content_type:
            h.set("content-type", content_type)
        return SipResponse(status, reason or REASON_PHRASES.get(status, "Unknown"), h, body)

    def __repr__(self) -> str:
        return f"<SipRequest {self.method} {self.raw_uri}>"


class SipResponse(SipMessage):
    """A response (RFC 3261 §7.2)."""

    __slots__ = ("reason_phrase", "status")

    def __init__(self, status: int, reason_phrase: str | None = None, headers: Headers | None = None,
                 body: bytes = b"") -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason_phrase = reason_phrase if reason_phrase is not None else REASON_PHRASES.get(status, "")

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def validate(self) -> None:
        """What matching a response to its transaction and building its dialog need (§17.1.3, §12.1.2): the
        top Via, Call-ID, CSeq, the From tag and the To header with its URI (the dialog's remote URI). The
        From URI (ours, echoed) and further Via values (normally none) stay unparsed until read."""
        _ = self.top_via
        _ = self.call_id
        _ = self.cseq
        _ = self.from_.tag
        _ = self.to.uri

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason_phrase}"

    def __repr__(self) -> str:
        return f"<SipResponse {self.status} {self.reason_phrase}>"


# functools.partial is a C-level call: cheaper than a closure on this hot path.
_NA: dict[str, Callable[[str], NameAddr]] = {
    h: partial(parse_name_addr, header=h)
    for h in ("From", "To", "Route", "Record-Route", "P-Asserted-Identity", "Refer-To", "Referred-By")
}


def _has_tag(value: str) -> bool:
    gt = value.rfind(">")
    return ";tag=" in value[gt + 1:].replace(" ", "").lower() if gt >= 0 else ";tag=" in value.lower()


def _int_field(text: str) -> int:
    t = text.strip()
    if not t.isdigit() or len(t) > 10:
        raise SipParseError(f"not a number: {text!r}")
    return int(t)


def _pretty_name(low: str) -> str:
    from .headers import pretty
    return pretty(low)
