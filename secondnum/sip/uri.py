"""SIP, SIPS and tel URIs, name-addr / addr-spec, and the list/parameter splitting they share.

RFC 3261 §19.1 (SIP and SIPS URIs), §20 and §25.1 (name-addr, addr-spec, generic-param); RFC 3966 (tel).
"""

from __future__ import annotations

from .errors import SipParseError

Params = dict[str, str | None]


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas inside quotes and ``<...>`` (RFC 3261 §7.3.1)."""
    if "," not in value:
        v = value.strip()
        return [v] if v else []
    out: list[str] = []
    depth_angle = False
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
            depth_angle = True
        elif c == ">":
            depth_angle = False
        elif c == "," and not depth_angle:
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
    params: Params = {}
    if not text:
        return params
    for item in text.split(";"):
        if not item:
            continue
        name, eq, val = item.partition("=")
        name = name.strip().lower()
        if not name:
            continue
        params[name] = val.strip() if eq else None
    return params


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


class SipURI:
    """A ``sip:``, ``sips:`` or ``tel:`` URI (RFC 3261 §19.1.1, RFC 3966 §3).

    For ``tel:`` the number is in :attr:`user` and :attr:`host` is empty.
    """

    __slots__ = ("headers", "host", "params", "password", "port", "scheme", "user")

    def __init__(self, scheme: str = "sip", user: str | None = None, host: str = "", port: int | None = None,
                 params: Params | None = None, headers: str | None = None,
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
        headers = None
        q = rest.find("?")
        if q >= 0:
            headers = rest[q + 1:]
            rest = rest[:q]
        user = password = None
        at = rest.rfind("@")
        if at >= 0:
            userinfo = rest[:at]
            rest = rest[at + 1:]
            user, pc, pw = userinfo.partition(":")
            if pc:
                password = pw
            if not user:
                raise SipParseError(f"empty user in {text!r}")
        hostport, _, ptext = rest.partition(";")
        port: int | None = None
        if hostport.startswith("["):
            end = hostport.find("]")
            if end < 0:
                raise SipParseError(f"bad IPv6 reference in {text!r}")
            host = hostport[:end + 1]
            tail = hostport[end + 1:]
            if tail:
                if not tail.startswith(":"):
                    raise SipParseError(f"bad host in {text!r}")
                port = _port(tail[1:], text)
        else:
            host, pc, ptxt = hostport.partition(":")
            if pc:
                port = _port(ptxt, text)
        if not host or any(c in host for c in ' \t<>"'):
            raise SipParseError(f"bad host in {text!r}")
        return cls(scheme, user, host, port, parse_params(ptext), headers, password)

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
        return SipURI(self.scheme, self.user, self.host, self.port, dict(self.params), self.headers,
                      self.password)

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


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or len(text) > 5 or int(text) > 65535:
        raise SipParseError(f"bad port in {whole!r}")
    return int(text)


class NameAddr:
    """``[display-name] <URI> *(;param)`` or ``addr-spec *(;param)`` (RFC 3261 §20.10, §20.20, §25.1)."""

    __slots__ = ("display", "params", "uri")

    def __init__(self, uri: SipURI | str, display: str | None = None, params: Params | None = None) -> None:
        self.uri = uri if isinstance(uri, SipURI) else SipURI.parse(uri)
        self.display = display
        self.params: Params = params if params is not None else {}

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def param(self, name: str) -> str | None:
        return self.params.get(name.lower())

    def copy(self) -> NameAddr:
        return NameAddr(self.uri.copy(), self.display, dict(self.params))

    def __str__(self) -> str:
        disp = ""
        if self.display:
            d = self.display
            disp = (d if _is_token_list(d) else '"' + d.replace("\\", "\\\\").replace('"', '\\"') + '"') + " "
        return f"{disp}<{self.uri}>{format_params(self.params)}"

    def __repr__(self) -> str:
        return f"NameAddr({str(self)!r})"


def _is_token_list(text: str) -> bool:
    return all(c.isalnum() or c in "-.!%*_+`'~ " for c in text)


def parse_name_addr(text: str) -> NameAddr:
    """Parse one name-addr or addr-spec with header parameters (RFC 3261 §20.10)."""
    text = text.strip()
    lt = text.find("<")
    if lt < 0:
        # addr-spec form: header params start at the first ';' (a URI with params must be in <>).
        uri_text, _, ptext = text.partition(";")
        if not uri_text:
            raise SipParseError(f"bad name-addr {text!r}")
        return NameAddr(SipURI.parse(uri_text), None, parse_params(ptext))
    display: str | None = None
    if lt:
        d = text[:lt].strip()
        if d.startswith('"'):
            if len(d) < 2 or not d.endswith('"'):
                raise SipParseError(f"bad display name in {text!r}")
            d = d[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        display = d or None
    gt = text.find(">", lt)
    if gt < 0:
        raise SipParseError(f"unterminated <> in {text!r}")
    return NameAddr(SipURI.parse(text[lt + 1:gt]), display, parse_params(text[gt + 1:]))
