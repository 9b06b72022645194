"""SDP parsing and building (RFC 4566) and the audio offer/answer rules of RFC 3264.

Shared by the AS (which passes offers through and inspects them) and the media server (which answers them).
Parsing is strict about structure (``<type>=<value>`` lines, mandatory ``v=``/``o=``/``s=``/``t=``, numeric
ports) and lenient about what it does not use: unknown line types and attributes are kept verbatim so that a
parsed-then-encoded description round-trips.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import Literal

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: tuple[Direction, ...] = ("sendrecv", "sendonly", "recvonly", "inactive")

_MIRROR: dict[Direction, Direction] = {
    "sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive",
}

# RFC 3551 §6 static payload types we may meet without an rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 18: ("G729", 8000)}

_LINE_RE = re.compile(r"^([a-z])=(.*)$")
_MAX_SDP_BYTES = 64 * 1024


class SdpError(ValueError):
    """The body is not a usable SDP session description (RFC 4566 §5)."""


@dataclasses.dataclass
class Origin:
    """``o=`` (RFC 4566 §5.2)."""

    username: str = "-"
    sess_id: str = "0"
    sess_version: str = "0"
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    def __str__(self) -> str:
        return (f"{self.username} {self.sess_id} {self.sess_version} {self.nettype} {self.addrtype} "
                f"{self.address}")


@dataclasses.dataclass
class Connection:
    """``c=`` (RFC 4566 §5.7); a multicast TTL/count suffix stays in ``address``."""

    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    @property
    def host(self) -> str:
        return self.address.split("/", 1)[0]

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclasses.dataclass(frozen=True)
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`` (RFC 4566 §6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1

    def __str__(self) -> str:
        tail = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


Attribute = tuple[str, str | None]


def _direction_of(attributes: Sequence[Attribute]) -> Direction | None:
    for name, _ in attributes:
        if name in DIRECTIONS:
            return name
    return None


@dataclasses.dataclass
class MediaDescription:
    """One ``m=`` section (RFC 4566 §5.14) with its ``c=``, ``b=`` and ``a=`` lines."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    connection: Connection | None = None
    attributes: list[Attribute] = dataclasses.field(default_factory=list)
    other: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """``i=``, ``b=``, ``k=`` lines, kept in order."""

    def attribute(self, name: str) -> str | None:
        for n, v in self.attributes:
            if n == name:
                return v if v is not None else ""
        return None

    def attribute_values(self, name: str) -> list[str]:
        return [v or "" for n, v in self.attributes if n == name]

    def rtcp_address(self, host: str) -> tuple[str, int] | None:
        """RFC 3605 ``a=rtcp:port [IN IP4|IP6 address]``; ``host`` (the stream's ``c=``) when it names none.

        None when absent or malformed: the RTP port + 1 default of RFC 3550 §11 then applies.
        """
        value = self.attribute("rtcp")
        if value is None:
            return None
        parts = value.split()
        if not parts or not parts[0].isdigit() or not 0 < int(parts[0]) < 65536:
            return None
        if len(parts) == 1:
            return host, int(parts[0])
        if len(parts) != 4 or parts[1] != "IN" or parts[2] not in ("IP4", "IP6"):
            return None
        return parts[3].split("/", 1)[0], int(parts[0])

    def rtpmaps(self) -> dict[int, RtpMap]:
        """Payload type -> rtpmap, including RFC 3551 static types listed without one."""
        found: dict[int, RtpMap] = {}
        for value in self.attribute_values("rtpmap"):
            try:
                pt_text, enc = value.split(None, 1)
                parts = enc.strip().split("/")
                pt = int(pt_text)
                found[pt] = RtpMap(pt, parts[0], int(parts[1]), int(parts[2]) if len(parts) > 2 else 1)
            except (ValueError, IndexError):
                continue  # a malformed rtpmap only disqualifies that format
        for fmt in self.formats:
            if fmt.isdigit() and int(fmt) not in found and int(fmt) in STATIC_PAYLOAD_TYPES:
                name, rate = STATIC_PAYLOAD_TYPES[int(fmt)]
                found[int(fmt)] = RtpMap(int(fmt), name, rate)
        return found

    def fmtp(self, payload_type: int) -> str | None:
        for value in self.attribute_values("fmtp"):
            pt, _, params = value.partition(" ")
            if pt == str(payload_type):
                return params.strip()
        return None

    @property
    def direction(self) -> Direction | None:
        return _direction_of(self.attributes)

    @property
    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        try:
            return int(float(value)) if value else None
        except ValueError:
            return None

    def lines(self) -> list[str]:
        ports = f"{self.port}/{self.port_count}" if self.port_count else str(self.port)
        out = [f"m={self.media} {ports} {self.proto} {' '.join(self.formats)}".rstrip()]
        out += [f"{k}={v}" for k, v in self.other if k == "i"]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"{k}={v}" for k, v in self.other if k != "i"]
        out += [f"a={n}" if v is None else f"a={n}:{v}" for n, v in self.attributes]
        return out


@dataclasses.dataclass
class SessionDescription:
    """A whole SDP (RFC 4566 §5): session-level fields and the media descriptions."""

    origin: Origin = dataclasses.field(default_factory=Origin)
    session_name: str = "-"
    connection: Connection | None = None
    times: list[str] = dataclasses.field(default_factory=lambda: ["0 0"])
    attributes: list[Attribute] = dataclasses.field(default_factory=list)
    media: list[MediaDescription] = dataclasses.field(default_factory=list)
    version: int = 0
    other: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """Session-level ``i= u= e= p= b= z= k= r=`` lines, kept in order."""

    @property
    def direction(self) -> Direction | None:
        return _direction_of(self.attributes)

    def connection_for(self, m: MediaDescription) -> Connection | None:
        """The effective ``c=`` of a media section (its own, else the session's; §5.7)."""
        return m.connection or self.connection

    def encode(self) -> bytes:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name or '-'}"]
        out += [f"{k}={v}" for k, v in self.other if k in "iuep"]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"{k}={v}" for k, v in self.other if k == "b"]
        for t in self.times:
            out.append(f"t={t}")
        out += [f"{k}={v}" for k, v in self.other if k in "rzk"]
        out += [f"a={n}" if v is None else f"a={n}:{v}" for n, v in self.attributes]
        for m in self.media:
            out += m.lines()
        return ("\r\n".join(out) + "\r\n").encode()


def _parse_connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpError(f"bad c= line: {value!r}")
    return Connection(*parts)


def _parse_attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    if not name:
        raise SdpError(f"bad a= line: {value!r}")
    return (name, rest if sep else None)


def _parse_media(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"bad m= line: {value!r}")
    port_text, _, count_text = parts[1].partition("/")
    try:
        port = int(port_text)
        count = int(count_text) if count_text else None
    except ValueError:
        raise SdpError(f"bad port in m= line: {value!r}") from None
    if not 0 <= port <= 65535:
        raise SdpError(f"port out of range in m= line: {value!r}")
    return MediaDescription(parts[0], port, parts[2], parts[3:], count)


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP body; raises :class:`SdpError` naming the first problem."""
    if isinstance(data, bytes):
        if len(data) > _MAX_SDP_BYTES:
            raise SdpError("SDP body too large")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError("SDP is not UTF-8") from None
    sd = SessionDescription(times=[])
    seen: set[str] = set()
    current: MediaDescription | None = None
    lines = [ln for ln in data.replace("\r\n", "\n").split("\n") if ln.strip()]
    if not lines or not lines[0].startswith("v="):
        raise SdpError("SDP must start with v=")
    for line in lines:
        m = _LINE_RE.match(line.rstrip("\r"))
        if m is None:
            raise SdpError(f"malformed SDP line: {line[:60]!r}")
        kind, value = m.group(1), m.group(2).strip()
        if kind == "m":
            current = _parse_media(value)
            sd.media.append(current)
        elif current is not None:
            if kind == "c":
                current.connection = _parse_connection(value)
            elif kind == "a":
                current.attributes.append(_parse_attribute(value))
            else:
                current.other.append((kind, value))
        elif kind == "v":
            if value != "0":
                raise SdpError(f"unsupported SDP version {value!r}")
            sd.version = 0
        elif kind == "o":
            parts = value.split()
            if len(parts) != 6:
                raise SdpError(f"bad o= line: {value!r}")
            sd.origin = Origin(*parts)
        elif kind == "s":
            sd.session_name = value
        elif kind == "c":
            sd.connection = _parse_connection(value)
        elif kind == "t":
            sd.times.append(value)
        elif kind == "a":
            sd.attributes.append(_parse_attribute(value))
        else:
            sd.other.append((kind, value))
        seen.add(kind)
    for required in "os":
        if required not in seen:
            raise SdpError(f"SDP lacks the mandatory {required}= line")
    if not sd.times:
        sd.times = ["0 0"]
    return sd


# --- RFC 3264 audio offer/answer ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AudioNegotiation:
    """What the answerer chose for the audio stream (RFC 3264 §6.1)."""

    answer: SessionDescription
    codec: RtpMap
    telephone_event_pt: int | None
    remote_host: str
    remote_port: int
    direction: Direction
    """Our direction (as written in the answer)."""
    ptime: int
    remote_rtcp: tuple[str, int] | None = None
    """The peer's RTCP address from ``a=rtcp:`` (RFC 3605); None means RTP port + 1 (RFC 3550 §11)."""


class NegotiationError(SdpError):
    """No acceptable audio stream in the offer: answer ``488`` (RFC 3261 §21.4.26, RFC 3264 §6)."""


def mirror_direction(offered: Direction | None) -> Direction:
    """RFC 3264 §6.1: the answer's direction for an offered one."""
    return _MIRROR[offered or "sendrecv"]


def answer_audio(
    offer: SessionDescription,
    *,
    local_host: str,
    local_port: int,
    session_id: str,
    session_version: int = 1,
    codecs: Iterable[str] = ("PCMU", "PCMA"),
    telephone_event: bool = True,
    ptime: int = 20,
    username: str = "secondnum",
) -> AudioNegotiation:
    """Build the answer to ``offer``: the first audio stream with an acceptable codec is accepted.

    RFC 3264 §6: the answer has as many m-lines as the offer, unaccepted ones with port 0; the codec is the
    first of ours in the *offerer's* preference order (§6.1); telephone-event (RFC 4733 §7.1.1) keeps the
    offerer's payload type; the direction mirrors the offer's.
    """
    wanted = [c.upper() for c in codecs]
    chosen: tuple[int, RtpMap, int | None] | None = None
    for index, m in enumerate(offer.media):
        if m.media != "audio" or m.port == 0 or m.proto not in ("RTP/AVP", "RTP/AVPF"):
            continue
        if offer.connection_for(m) is None:
            continue
        maps = m.rtpmaps()
        for fmt in m.formats:
            rm = maps.get(int(fmt)) if fmt.isdigit() else None
            usable = rm is not None and rm.encoding.upper() in wanted and rm.clock_rate == 8000
            if rm is not None and usable and rm.channels == 1:
                te = None
                if telephone_event:
                    te = next((pt for pt, r in maps.items()
                               if r.encoding.lower() == "telephone-event" and r.clock_rate == 8000), None)
                chosen = (index, rm, te)
                break
        if chosen is not None:
            break
    if chosen is None:
        raise NegotiationError("no audio stream with " + "/".join(wanted) + " at 8000 Hz")
    index, codec, te_pt = chosen
    offered = offer.media[index]
    conn = offer.connection_for(offered)
    assert conn is not None
    direction = mirror_direction(offered.direction or offer.direction)
    answer = SessionDescription(
        origin=Origin(username, session_id, str(session_version), "IN", "IP4", local_host),
        session_name="-", connection=Connection("IN", "IP4", local_host), times=["0 0"],
    )
    for i, m in enumerate(offer.media):
        if i != index:
            answer.media.append(MediaDescription(m.media, 0, m.proto, m.formats[:1] or ["0"]))
            continue
        formats = [str(codec.payload_type)]
        attrs: list[Attribute] = [("rtpmap", str(codec))]
        if te_pt is not None:
            formats.append(str(te_pt))
            attrs += [("rtpmap", f"{te_pt} telephone-event/8000"), ("fmtp", f"{te_pt} 0-15")]
        attrs += [("ptime", str(ptime)), (direction, None)]
        answer.media.append(MediaDescription("audio", local_port, m.proto, formats, attributes=attrs))
    return AudioNegotiation(answer, codec, te_pt, conn.host, offered.port, direction, ptime,
                            offered.rtcp_address(conn.host))


def make_audio_offer(
    *, local_host: str, local_port: int, session_id: str, session_version: int = 1,
    codecs: Sequence[RtpMap] = (RtpMap(0, "PCMU", 8000), RtpMap(8, "PCMA", 8000)),
    telephone_event_pt: int | None = 101, ptime: int = 20, direction: Direction = "sendrecv",
    username: str = "secondnum",
) -> SessionDescription:
    """An audio offer (RFC 3264 §5) with our codecs, telephone-event and ptime."""
    formats = [str(c.payload_type) for c in codecs]
    attrs: list[Attribute] = [("rtpmap", str(c)) for c in codecs]
    if telephone_event_pt is not None:
        formats.append(str(telephone_event_pt))
        attrs += [("rtpmap", f"{telephone_event_pt} telephone-event/8000"),
                  ("fmtp", f"{telephone_event_pt} 0-15")]
    attrs += [("ptime", str(ptime)), (direction, None)]
    return SessionDescription(
        origin=Origin(username, session_id, str(session_version), "IN", "IP4", local_host),
        connection=Connection("IN", "IP4", local_host),
        media=[MediaDescription("audio", local_port, "RTP/AVP", formats, attributes=attrs)],
    )


def accept_answer(offer: SessionDescription, answer: SessionDescription) -> AudioNegotiation:
    """Read the answer to our own offer (RFC 3264 §7): the codec and address the peer chose."""
    for m in answer.media:
        if m.media != "audio" or m.port == 0:
            continue
        conn = answer.connection_for(m)
        if conn is None:
            raise NegotiationError("answer audio stream has no c= line")
        maps = m.rtpmaps()
        codec = next((maps[int(f)] for f in m.formats if f.isdigit() and int(f) in maps
                      and maps[int(f)].encoding.upper() in ("PCMU", "PCMA")), None)
        if codec is None:
            raise NegotiationError("answer has neither PCMU nor PCMA")
        te = next((pt for pt, r in maps.items() if r.encoding.lower() == "telephone-event"), None)
        own = mirror_direction(m.direction or answer.direction)
        return AudioNegotiation(offer, codec, te, conn.host, m.port, own, m.ptime or 20,
                                m.rtcp_address(conn.host))
    raise NegotiationError("answer accepts no audio stream")
