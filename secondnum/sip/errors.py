"""Exceptions of the SIP stack. Only the sans-IO cores raise them; the transport never lets one escape."""

from __future__ import annotations


class SipError(Exception):
    """Base class of every SIP stack error."""


class SipParseError(SipError):
    """The bytes are not a SIP message (RFC 3261 §7, §25): drop it, log and count."""


class BadHeaderError(SipParseError):
    """A header field of an otherwise parseable message is malformed (answer 400 naming ``header``)."""

    def __init__(self, header: str, detail: str = "") -> None:
        super().__init__(f"bad header {header}: {detail}" if detail else f"bad header {header}")
        self.header = header
        self.detail = detail


class MessageTooLargeError(SipParseError):
    """The message exceeds the configured maximum size (answer 513 where possible, RFC 3261 §21.5.11)."""


class TransactionTimeoutError(SipError):
    """A client transaction got no final response (Timer B or F, RFC 3261 §17.1.1.2, §17.1.2.2)."""

    def __init__(self, timer: str) -> None:
        super().__init__(f"transaction timeout (Timer {timer})")
        self.timer = timer


class AckTimeoutError(SipError):
    """A 2xx to INVITE was never ACKed within 64*T1 (RFC 3261 §13.3.1.4): the UAS core should send BYE."""


class SipTransportError(SipError):
    """The message could not be sent (connection refused/closed, unresolvable destination)."""
