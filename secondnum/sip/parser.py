"""Bytes to :class:`SipRequest`/:class:`SipResponse` (RFC 3261 §7, §25) and stream framing (§18.3).

Only the start line and the header names are examined here; header values are parsed lazily by the message.
Lenient where RFC 3261 §7.3.1 / RFC 4475 ask for it: bare LF line ends, folded lines, compact names,
whitespace around the colon.
"""

from __future__ import annotations

from .errors import MessageTooLargeError, SipParseError
from .headers import COMPACT, Headers
from .message import SipMessage, SipRequest, SipResponse

DEFAULT_MAX_SIZE = 65536

_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~")
_NAME_CACHE: dict[str, str] = {}


def _name(raw: str) -> str:
    """Canonical lower-case name of a header name as on the wire, validated, cached (names repeat)."""
    hit = _NAME_CACHE.get(raw)
    if hit is not None:
        return hit
    low = raw.strip().lower()
    if len(low) == 1:
        low = COMPACT.get(low, low)
    if not low or not _TOKEN_CHARS.issuperset(low):
        raise SipParseError(f"bad header name {raw[:40]!r}")
    if len(_NAME_CACHE) < 512:
        _NAME_CACHE[raw] = low
    return low


def parse_message(data: bytes, max_size: int = DEFAULT_MAX_SIZE, stream: bool = False) -> SipMessage:
    """Parse one complete message.

    For datagrams (``stream=False``) a Content-Length larger than the body is an error and extra bytes are
    discarded (§18.3). Raises :class:`MessageTooLargeError` above ``max_size`` and :class:`SipParseError`
    for anything else that is not SIP.
    """
    if len(data) > max_size:
        raise MessageTooLargeError(f"message of {len(data)} bytes exceeds {max_size}")
    # Leading CRLFs are keep-alives or junk before the start line (§7.5).
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        head_b = data[:end]
        body = data[end + 4:]
        sep = "\r\n"
    else:
        end = data.find(b"\n\n")
        if end < 0:
            raise SipParseError("no end of header section")
        head_b = data[:end]
        body = data[end + 2:]
        sep = "\n"
    try:
        head = head_b.decode("utf-8", "surrogateescape")
    except UnicodeDecodeError as exc:  # pragma: no cover - surrogateescape accepts every byte
        raise SipParseError("undecodable header") from exc
    lines = head.split(sep)
    if sep == "\r\n" and head.count("\n") != len(lines) - 1:
        # Mixed CRLF and bare LF line ends (RFC 4475 §3.1.1.x tolerance): normalise to LF.
        head = head.replace("\r\n", "\n")
        sep = "\n"
        lines = head.split(sep)
    start = lines[0]
    msg: SipMessage
    if start.startswith("SIP/2.0 "):
        parts = start.split(" ", 2)
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
            raise SipParseError(f"bad status line {start[:80]!r}")
        msg = SipResponse(int(code), parts[2] if len(parts) > 2 else "")
    else:
        parts = start.split(" ")
        if len(parts) != 3 or parts[2].upper() != "SIP/2.0":
            raise SipParseError(f"bad request line {start[:80]!r}")
        method = parts[0]
        if not method or not _TOKEN_CHARS.issuperset(method):
            raise SipParseError(f"bad method {method[:40]!r}")
        if not parts[1] or ":" not in parts[1]:
            raise SipParseError(f"bad Request-URI {parts[1][:80]!r}")
        msg = SipRequest(method, parts[1])
    headers: Headers = msg.headers
    hmap = headers._map  # parser fast path into the multimap
    cache = _NAME_CACHE
    values: list[str] | None = None
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        low = cache.get(name)
        if low is None or not colon:
            if line[:1] in (" ", "\t"):
                # Folding (§7.3.1): the line continues the previous header value.
                if values is None:
                    raise SipParseError("continuation line before any header")
                values[-1] = f"{values[-1]} {line.strip()}"
                continue
            if not colon:
                if not line:
                    continue
                raise SipParseError(f"header line without colon {line[:80]!r}")
            low = _name(name)
        values = hmap.get(low)
        if values is None:
            values = hmap[low] = [value.strip()]
        else:
            values.append(value.strip())
    cl_values = hmap.get("content-length")
    if cl_values:
        cl_text = cl_values[0].strip()
        if not cl_text.isdigit() or len(cl_text) > 9:
            raise SipParseError(f"bad Content-Length {cl_text[:20]!r}")
        cl = int(cl_text)
        if cl < len(body):
            body = body[:cl]
        elif cl > len(body):
            raise SipParseError(f"Content-Length {cl} larger than body {len(body)}")
    elif stream:
        raise SipParseError("Content-Length missing on a stream transport")
    msg.body = body
    return msg


class StreamFramer:
    """Split a byte stream (TCP, later TLS) into messages using Content-Length (RFC 3261 §18.3).

    ``feed`` returns complete message byte strings; it raises :class:`SipParseError` when the stream cannot
    be resynchronised (the connection must then be closed) and :class:`MessageTooLargeError` for oversize.
    """

    __slots__ = ("_buf", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self._buf = bytearray()
        self.max_size = max_size

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while True:
            # RFC 5626 §3.5.1 keep-alives (CRLFCRLF) and stray CRLFs between messages.
            i = 0
            n = len(buf)
            while i < n and buf[i] in (13, 10):
                i += 1
            if i:
                del buf[:i]
            if not buf:
                break
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.max_size:
                    raise MessageTooLargeError("header section exceeds maximum size")
                break
            cl = _content_length(bytes(buf[:end]))
            total = end + 4 + cl
            if total > self.max_size:
                raise MessageTooLargeError(f"message of {total} bytes exceeds {self.max_size}")
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            v = value.strip()
            if not v.isdigit() or len(v) > 9:
                raise SipParseError("bad Content-Length on stream")
            return int(v)
    raise SipParseError("Content-Length missing on a stream transport")
