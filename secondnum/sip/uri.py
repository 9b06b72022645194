"""SIP, SIPS and tel URIs, name-addr / addr-spec, and the list/parameter splitting they share.

RFC 3261 §19.1 (SIP and SIPS URIs), §20 and §25.1 (name-addr, addr-spec, generic-param); RFC 3966 (tel).
"""

from __future__ import annotations

import re

from .errors import BadHeaderError, SipParseError

Params = dict[str, str | None]


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas inside quotes and ``<...>`` (RFC 3261 §7.3.1)."""
    if "," not in value:
        v = value.strip()
        return [v] if v else []
    if '"' not in value:
        # Fast path: re-join pieces while a ``<`` is still open (commas are legal inside URIs in <>).
        out: list[str] = []
        buf: str | None = None
        for piece in value.split(","):
            buf = piece if buf is None else buf + "," + piece
            if buf.count("<") <= buf.count(">"):
                part = buf.strip()
                if part:
                    out.append(part)
                buf = None
        if buf is not None and buf.strip():
            out.append(buf.strip())
        return out
    return _split_quoted(value)


def _split_quoted(value: str) -> list[str]:
    out: list[str] = []
    in_angle = False
    in_quote = False
    start = 0
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            part = value[start:i].strip()
            if part:
                out.append(part)
            start = i + 1
        i += 1
    part = value[start:].strip()
    if part:
        out.append(part)
    return out


def parse_params(text: str) -> Params:
    """Parse ``;a=b;c`` (leading ``;`` optional) into an ordered dict with lower-case names (§25.1)."""
    if not text:
        return {}
    if " " in text or "\t" in text:
        return _parse_params_spaced(text)
    params: Params = {}
    for item in text.split(";"):
        if item:
            name, eq, val = item.partition("=")
            params[name.lower()] = val if eq else None
    return params


def _parse_params_spaced(text: str) -> Params:
    params: Params = {}
    for item in text.split(";"):
        name, eq, val = item.partition("=")
        name = name.strip()
        if name:
            params[name.lower()] = val.strip() if eq else None
    return params


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


# userinfo "@" hostport *(";" uri-parameter) ["?" headers]  (RFC 3261 §25.1). The user part may contain
# ";" and "?" (user-unreserved), so it is delimited by the last "@" before the host.
_HOSTPORT_RE = re.compile(
    r"(\[[0-9A-Fa-f:.]+\]|[^:;?\[\]\s<>\"@,]+)"
    r"(?::(\d{1,5}))?"
    r"(;[^?]*)?"
    r"(?:\?(.*))?$", re.S)


_new = object.__new__


class SipURI:
    """A ``sip:``, ``sips:`` or ``tel:`` URI (RFC 3261 §19.1.1, RFC 3966 §3).

    For ``tel:`` the number is in :attr:`user` and :attr:`host` is empty.
    """

    __slots__ = ("headers", "host", "params", "password", "port", "scheme", "user")

    def __init__(self, scheme: str = "sip", user: str | None = None, host: str = "", port: int | None = None,
                 params: Params | None = None, *, headers: str | None = None,
                 password: str | None = None) -> None:
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params: Params = params if params is not None else {}
        self.headers = headers

    @classmethod
    def parse(cls, text: str) -> SipURI:
        """Parse a URI; raises :class:`SipParseError` for anything that is not sip/sips/tel."""
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or not rest:
            raise SipParseError(f"bad URI {text!r}")
        if scheme == "tel":
            number, _, ptext = rest.partition(";")
            if not number:
                raise SipParseError(f"bad tel URI {text!r}")
            return cls("tel", number, "", None, parse_params(ptext))
        if scheme not in ("sip", "sips"):
            raise SipParseError(f"unsupported URI scheme {scheme!r}")
        user = password = None
        at = rest.rfind("@")
        if at >= 0:
            user, pc, pw = rest[:at].partition(":")
            if pc:
                password = pw
            if not user:
                raise SipParseError(f"empty user in {text[:100]!r}")
            rest = rest[at + 1:]
        m = _HOSTPORT_RE.match(rest)
        if m is None:
            raise SipParseError(f"bad SIP URI {text[:100]!r}")
        host, port_text, ptext, headers = m.groups()
        port = None
        if port_text is not None:
            port = int(port_text)
            if port > 65535:
                raise SipParseError(f"bad port in {text[:100]!r}")
        # Filled directly: this runs for most URIs of most messages and skips __init__'s keyword handling.
        uri = _new(cls)
        uri.scheme = scheme
        uri.user = user
        uri.password = password
        uri.host = host
        uri.port = port
        uri.params = parse_params(ptext) if ptext else {}
        uri.headers = headers
        return uri

    @property
    def lr(self) -> bool:
        """Loose-routing flag (§19.1.1, §16.12)."""
        return "lr" in self.params

    @property
    def transport(self) -> str | None:
        t = self.params.get("transport")
        return t.lower() if t else None

    def param(self, name: str) -> str | None:
        return self.params.get(name.lower())

    def copy(self) -> SipURI:
        return SipURI(self.scheme, self.user, self.host, self.port, dict(self.params), headers=self.headers,
                      password=self.password)

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user}{format_params(self.params)}"
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":" + self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        if self.params:
            parts.append(format_params(self.params))
        if self.headers:
            parts.append("?" + self.headers)
        return "".join(parts)

    def __repr__(self) -> str:
        return f"SipURI({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        # Simplified §19.1.4: scheme, user, host (case-insensitive), port and the parameters present in both.
        if not isinstance(other, SipURI):
            return NotImplemented
        return (self.scheme == other.scheme and self.user == other.user
                and self.host.lower() == other.host.lower() and self.port == other.port
                and all(self.params[k] == other.params[k] for k in self.params.keys() & other.params.keys()))

    def __hash__(self) -> int:
        return hash((self.scheme, self.user, self.host.lower(), self.port))


class NameAddr:
    """``[display-name] <URI> *(;param)`` or ``addr-spec *(;param)`` (RFC 3261 §20.10, §20.20, §25.1).

    The URI is parsed on first access of :attr:`uri` (most name-addrs are only looked at for their tag or
    parameters); a malformed URI then raises :class:`BadHeaderError` naming :attr:`header`.
    """

    __slots__ = ("_uri", "_uri_text", "display", "header", "params")

    def __init__(self, uri: SipURI | str, display: str | None = None, params: Params | None = None,
                 header: str | None = None) -> None:
        if isinstance(uri, SipURI):
            self._uri: SipURI | None = uri
            self._uri_text = ""
        else:
            self._uri = None
            self._uri_text = uri
        self.display = display
        self.params: Params = params if params is not None else {}
        self.header = header

    @property
    def uri(self) -> SipURI:
        u = self._uri
        if u is None:
            try:
                u = self._uri = SipURI.parse(self._uri_text)
            except SipParseError as exc:
                raise BadHeaderError(self.header or "URI", str(exc)) from None
        return u

    @uri.setter
    def uri(self, value: SipURI) -> None:
        self._uri = value

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def param(self, name: str) -> str | None:
        return self.params.get(name.lower())

    def copy(self) -> NameAddr:
        return NameAddr(self.uri.copy(), self.display, dict(self.params), self.header)

    def __str__(self) -> str:
        disp = ""
        if self.display:
            d = self.display
            disp = (d if _is_token_list(d) else '"' + d.replace("\\", "\\\\").replace('"', '\\"') + '"') + " "
        uri = self._uri if self._uri is not None else self._uri_text
        return f"{disp}<{uri}>{format_params(self.params)}"

    def __repr__(self) -> str:
        return f"NameAddr({str(self)!r})"


def _name_addr(uri_text: str, display: str | None, params: Params, header: str | None) -> NameAddr:
    """Parser fast path: a NameAddr with its URI still as text (no __init__ type dispatch)."""
    na = _new(NameAddr)
    na._uri = None
    na._uri_text = uri_text
    na.display = display
    na.params = params
    na.header = header
    return na


def _is_token_list(text: str) -> bool:
    return all(c.isalnum() or c in "-.!%*_+`'~ " for c in text)


# name-addr fast path: [quoted or token display] <sip|sips|tel:...> params  (RFC 3261 §25.1)
_NAME_ADDR_RE = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<((?i:sips?|tel):[^>]+)>(.*)', re.S)


def parse_name_addr(text: str, header: str | None = None) -> NameAddr:
    """Parse one name-addr or addr-spec with header parameters (RFC 3261 §20.10).

    Only the structure is checked here (display name, ``<>``, scheme); the URI itself is parsed lazily.
    """
    m = _NAME_ADDR_RE.match(text)
    if m is not None:
        quoted, token, uri_text, rest = m.groups()
        display: str | None
        if quoted is not None:
            display = quoted.replace('\\"', '"').replace("\\\\", "\\") if "\\" in quoted else quoted
        else:
            display = token or None
        return _name_addr(uri_text, display, parse_params(rest) if rest else {}, header)
    return _parse_name_addr_slow(text, header)


# One element of a comma-separated name-addr list (Route, Record-Route, P-Asserted-Identity, ...).
_NAME_ADDR_ITEM_RE = re.compile(
    r'\s*(?:"((?:[^"\\]|\\.)*)"|([^<",]*?))\s*<((?i:sips?|tel):[^>]+)>([^,"]*)(?:,|$)', re.S)


def parse_name_addr_list(value: str, header: str | None = None) -> list[NameAddr]:
    """All name-addrs of one header value in a single regex pass; unusual input takes the general path."""
    out: list[NameAddr] = []
    pos = 0
    end = len(value)
    for m in _NAME_ADDR_ITEM_RE.finditer(value):
        if m.start() != pos:
            break
        quoted, token, uri_text, rest = m.groups()
        display: str | None
        if quoted is not None:
            display = quoted.replace('\\"', '"').replace("\\\\", "\\") if "\\" in quoted else quoted
        else:
            display = token or None
        out.append(_name_addr(uri_text, display, parse_params(rest) if rest else {}, header))
        pos = m.end()
        if pos >= end:
            return out
    return [parse_name_addr(item, header) for item in split_list(value)]


def _parse_name_addr_slow(text: str, header: str | None) -> NameAddr:
    """addr-spec form and every malformed input (which raises here with a precise message)."""
    lt = text.find("<")
    if lt < 0:
        # addr-spec form: header params start at the first ';' (a URI with params must be in <>).
        uri_text, _, ptext = text.strip().partition(";")
        uri_text = uri_text.strip()
        rest = ptext
    else:
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError(f"unterminated <> in {text[:100]!r}")
        uri_text = text[lt + 1:gt]
        rest = text[gt + 1:]
    colon = uri_text.find(":")
    if not 3 <= colon <= 4 or len(uri_text) <= colon + 1 or uri_text[:colon].lower() not in _SCHEMES:
        raise SipParseError(f"bad URI in {text[:100]!r}")
    display: str | None = None
    if lt > 0:
        d = text[:lt].strip()
        if d.startswith('"'):
            if len(d) < 2 or not d.endswith('"'):
                raise SipParseError(f"bad display name in {text[:100]!r}")
            d = d[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        display = d or None
    return _name_addr(uri_text, display, parse_params(rest) if rest else {}, header)


_SCHEMES = frozenset({"sip", "sips", "tel"})
