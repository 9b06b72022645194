"""Typed header field values: parse from the wire form, ``str()`` back to it.

Each class cites its specification. Parse functions raise :class:`SipParseError`; the message wraps that
into :class:`BadHeaderError` naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from .errors import SipParseError
from .uri import NameAddr, Params, SipURI, format_params, parse_name_addr, parse_params

# sent-protocol SP sent-by *(; via-params)  (RFC 3261 §20.42, §25.1); IPv6 references kept in [].
_VIA_RE = re.compile(
    r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9.\-!%*_+`'~]+)\s+"
    r"(\[[0-9A-Fa-f:.]+\]|[^;:\s\[\]]+)(?::(\d{1,5}))?\s*(;.*)?$", re.I | re.S)


@dataclass(slots=True)
class Via:
    """One Via value (RFC 3261 §20.42, §18.2.1 ``received``; RFC 3581 ``rport``)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        m = _VIA_RE.match(text)
        if m is None:
            raise SipParseError(f"bad Via {text[:100]!r}")
        transport, host, port_text, ptext = m.groups()
        port: int | None = None
        if port_text is not None:
            port = int(port_text)
            if port > 65535:
                raise SipParseError(f"bad Via port {text[:100]!r}")
        return cls(transport.upper(), host, port, parse_params(ptext) if ptext else {})

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The filled-in rport (RFC 3581 §4); ``None`` if absent or requested but not filled."""
        v = self.params.get("rport")
        return int(v) if v and v.isdigit() else None

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.sent_by}{format_params(self.params)}"


class CSeq(NamedTuple):
    """CSeq (RFC 3261 §20.16): sequence number (< 2**31, §8.1.1.5) and method. Immutable (a tuple)."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        num, sep, method = text.strip().partition(" ")
        if not sep:  # LWS may be a tab (§25.1)
            parts = text.split()
            num, method = (parts[0], parts[1]) if len(parts) == 2 else ("", "")
        method = method.strip()
        if not num.isdigit() or len(num) > 10 or not method or " " in method or "\t" in method:
            raise SipParseError(f"bad CSeq {text[:40]!r}")
        seq = int(num)
        if seq >= 2**32:
            raise SipParseError(f"CSeq out of range {text[:40]!r}")
        return cls(seq, method)

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


class PServedUser(NameAddr):
    """P-Served-User (RFC 5502 §6): a name-addr with ``sescase`` (orig/term) and ``regstate`` (reg/unreg)."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> PServedUser:
        na = parse_name_addr(text, "P-Served-User")
        return cls(na._uri or na._uri_text, na.display, na.params, "P-Served-User")

    @property
    def sescase(self) -> str | None:
        return self.params.get("sescase")

    @property
    def regstate(self) -> str | None:
        return self.params.get("regstate")


class HistoryInfoEntry(NameAddr):
    """One History-Info entry (RFC 7044 §4.1); ``cause`` is the RFC 4458 parameter of the targeted-to URI.

    ``HistoryInfoEntry(uri, "1.1")`` builds one; ``index`` is kept as the ``index`` header parameter.
    """

    __slots__ = ()

    def __init__(self, uri: SipURI | str, index: str = "1", params: Params | None = None,
                 display: str | None = None, header: str | None = "History-Info") -> None:
        merged: Params = {"index": index}
        if params:
            merged.update((k, v) for k, v in params.items() if k != "index")
        super().__init__(uri, display, merged, header)

    @classmethod
    def parse(cls, text: str) -> HistoryInfoEntry:
        na = parse_name_addr(text, "History-Info")
        index = na.params.get("index")
        if not index or not all(p.isdigit() for p in index.split(".")):
            raise SipParseError(f"History-Info without valid index {text[:100]!r}")
        return cls(na._uri or na._uri_text, index, na.params, na.display)

    @property
    def index(self) -> str:
        return self.params.get("index") or "1"

    @property
    def cause(self) -> int | None:
        c = self.uri.params.get("cause")
        return int(c) if c and c.isdigit() else None

    @property
    def depth(self) -> int:
        return self.index.count(".") + 1


class Diversion(NameAddr):
    """Diversion (RFC 5806 §3): diverting URI with ``reason``, ``counter``, ``limit``, ``privacy``..."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> Diversion:
        na = parse_name_addr(text, "Diversion")
        return cls(na._uri or na._uri_text, na.display, na.params, "Diversion")

    @property
    def reason(self) -> str | None:
        r = self.params.get("reason")
        return r.strip('"') if r else None

    @property
    def counter(self) -> int:
        c = self.params.get("counter")
        return int(c) if c and c.isdigit() else 1


@dataclass(slots=True)
class PChargingVector:
    """P-Charging-Vector (RFC 7315 §4.6): ``icid-value``, ``orig-ioi``, ``term-ioi``, other params."""

    icid_value: str
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> PChargingVector:
        params = parse_params(text.replace(" ", ""))
        icid = params.pop("icid-value", None)
        if not icid:
            raise SipParseError(f"P-Charging-Vector without icid-value {text!r}")
        return cls(icid.strip('"'), params)

    @property
    def orig_ioi(self) -> str | None:
        return self.params.get("orig-ioi")

    @property
    def term_ioi(self) -> str | None:
        return self.params.get("term-ioi")

    def __str__(self) -> str:
        return f"icid-value={self.icid_value}{format_params(self.params)}"


@dataclass(slots=True, frozen=True)
class Reason:
    """Reason (RFC 3326 §2): ``SIP;cause=487;text="..."`` or ``Q.850;cause=16``."""

    protocol: str
    cause: int | None = None
    text: str | None = None

    @classmethod
    def parse(cls, text: str) -> Reason:
        proto, _, rest = text.partition(";")
        proto = proto.strip()
        if not proto:
            raise SipParseError(f"bad Reason {text!r}")
        params = _quoted_params(rest)
        c = params.get("cause")
        if c is not None and not c.isdigit():
            raise SipParseError(f"bad Reason cause {text!r}")
        return cls(proto, int(c) if c else None, params.get("text"))

    def __str__(self) -> str:
        s = self.protocol
        if self.cause is not None:
            s += f";cause={self.cause}"
        if self.text is not None:
            s += ';text="' + self.text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return s


@dataclass(slots=True, frozen=True)
class Warning:
    """Warning (RFC 3261 §20.43): ``399 host "text"``."""

    code: int
    agent: str
    text: str

    @classmethod
    def parse(cls, text: str) -> Warning:
        m = re.match(r'\s*(\d{3})\s+(\S+)\s+"((?:[^"\\]|\\.)*)"\s*$', text)
        if m is None:
            raise SipParseError(f"bad Warning {text!r}")
        return cls(int(m.group(1)), m.group(2), re.sub(r"\\(.)", r"\1", m.group(3)))

    def __str__(self) -> str:
        return f'{self.code} {self.agent} "' + self.text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(slots=True, frozen=True)
class RetryAfter:
    """Retry-After (RFC 3261 §20.33): seconds, optional comment and ``duration``."""

    seconds: int
    comment: str | None = None
    duration: int | None = None

    @classmethod
    def parse(cls, text: str) -> RetryAfter:
        m = re.match(r"\s*(\d+)\s*(\((.*)\))?\s*(;.*)?$", text)
        if m is None:
            raise SipParseError(f"bad Retry-After {text!r}")
        params = parse_params(m.group(4) or "")
        d = params.get("duration")
        if d is not None and not d.isdigit():
            raise SipParseError(f"bad Retry-After duration {text!r}")
        return cls(int(m.group(1)), m.group(3), int(d) if d else None)

    def __str__(self) -> str:
        s = str(self.seconds)
        if self.comment:
            s += f" ({self.comment})"
        if self.duration is not None:
            s += f";duration={self.duration}"
        return s


@dataclass(slots=True)
class Event:
    """Event (RFC 6665 §8.2.1): package with optional ``id``; used with ``refer`` (RFC 3515)."""

    package: str
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Event:
        pkg, _, rest = text.partition(";")
        pkg = pkg.strip()
        if not pkg or any(c.isspace() for c in pkg):
            raise SipParseError(f"bad Event {text!r}")
        return cls(pkg, parse_params(rest))

    @property
    def id(self) -> str | None:
        return self.params.get("id")

    def __str__(self) -> str:
        return self.package + format_params(self.params)


@dataclass(slots=True)
class SubscriptionState:
    """Subscription-State (RFC 6665 §8.2.3): active/pending/terminated with reason/expires/retry-after."""

    state: str
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SubscriptionState:
        st, _, rest = text.partition(";")
        st = st.strip().lower()
        if not st:
            raise SipParseError(f"bad Subscription-State {text!r}")
        params = parse_params(rest)
        e = params.get("expires")
        if e is not None and not e.isdigit():
            raise SipParseError(f"bad Subscription-State expires {text!r}")
        return cls(st, params)

    @property
    def reason(self) -> str | None:
        return self.params.get("reason")

    @property
    def expires(self) -> int | None:
        e = self.params.get("expires")
        return int(e) if e else None

    def __str__(self) -> str:
        return self.state + format_params(self.params)


def _quoted_params(text: str) -> dict[str, str]:
    """Parameters whose values may be quoted strings containing ``;`` (RFC 3326 ``text``)."""
    out: dict[str, str] = {}
    for m in re.finditer(r'\s*;?\s*([A-Za-z0-9\-.!%*_+`\'~]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;]*))?', text):
        if not m.group(1):
            continue
        v = m.group(2) or ""
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        out[m.group(1).lower()] = v.strip()
    return out


def parse_option_tags(values: list[str]) -> list[str]:
    """Supported/Require option tags (RFC 3261 §20.32, §20.37)."""
    out = []
    for v in values:
        t = v.strip()
        if t:
            if any(c.isspace() or c in ";<>\"" for c in t):
                raise SipParseError(f"bad option tag {t!r}")
            out.append(t.lower())
    return out
