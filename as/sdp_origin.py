"""Keeping one SDP origin per leg while the B2BUA passes bodies between legs (RFC 3264 §8).

A party that has seen an SDP session expects every later description in that dialog to keep the ``o=``
username, session id and address, with the version incremented when the description changes (RFC 3264
§8, RFC 4566 §5.2). When the B2BUA re-points a leg at a different far end (voicemail after forwarding,
the outgoing call after REFER in flow C) the raw bodies would break that rule, so every body sent to a leg
goes through that leg's :class:`OriginKeeper`. Only the ``o=`` line is touched; the rest is passed as is.
"""

from __future__ import annotations

import re

_O_LINE = re.compile(rb"^o=(\S+) (\S+) (\S+) (\S+) (\S+) (\S+)[ \t]*(?=\r?$)", re.MULTILINE)


def description(body: bytes) -> bytes | None:
    """The session description without its ``o=`` line, what tells whether a party changed its session
    (RFC 3264 §8); None when ``body`` is not SDP."""
    m = _O_LINE.search(body)
    return None if m is None else body[:m.start()] + body[m.end():]


def version(body: bytes) -> tuple[bytes, bytes] | None:
    """The ``o=`` session id and version of ``body`` (RFC 4566 §5.2): a party bumps the version when its
    description changes and keeps it when not (RFC 3264 §8); None when not SDP."""
    m = _O_LINE.search(body)
    return None if m is None else (m.group(2), m.group(3))


class OriginKeeper:
    """The ``o=`` state of what this leg has been sent."""

    __slots__ = ("_last_body", "_origin", "_version", "sent")

    def __init__(self) -> None:
        self._origin: tuple[bytes, bytes, bytes, bytes, bytes] | None = None
        self._version = 0
        self._last_body: bytes | None = None
        self.sent: bytes | None = None
        """The last session description sent to this leg (a session refresh by re-INVITE repeats it)."""

    @property
    def last_description(self) -> bytes | None:
        """The last description sent to this leg without its ``o=`` line (:func:`description`), None before
        the first: this party's view of the other one."""
        return self._last_body

    def rewrite(self, body: bytes) -> bytes:
        """The body to send: the first one unchanged, later ones with our origin and a bumped version."""
        m = _O_LINE.search(body)
        if m is None:
            return body  # not SDP (or no o= line): nothing we can keep consistent
        user, sess, ver, net, addrtype, addr = m.groups()
        # Compare descriptions without their o= line: the same media description keeps its version.
        stripped = body[:m.start()] + body[m.end():]
        if self._origin is None:
            self._origin = (user, sess, net, addrtype, addr)
            self._version = int(ver) if ver.isdigit() else 0
            self._last_body = stripped
            self.sent = body
            return body
        if self._last_body != stripped:
            self._version += 1
            self._last_body = stripped
        o_user, o_sess, o_net, o_type, o_addr = self._origin
        line = b"o=%s %s %d %s %s %s" % (o_user, o_sess, self._version, o_net, o_type, o_addr)
        self.sent = out = body[:m.start()] + line + body[m.end():]
        return out
