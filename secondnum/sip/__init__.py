"""secondnum's SIP stack: sans-IO parser, transactions, dialogs and an asyncio endpoint (see README.md)."""

from .dialog import B2BUA, B2BUATable, Dialog, DialogId, DialogState, DialogTable, uri_destination
from .endpoint import DROP, ClientTransactionHandle, IncomingRequest, Screen, SipEndpoint, install_uvloop
from .errors import (
    AckTimeoutError,
    BadHeaderError,
    MessageTooLargeError,
    SipError,
    SipParseError,
    SipTransportError,
    TransactionTimeoutError,
)
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
)
from .headers import Headers
from .message import SipMessage, SipRequest, SipResponse, new_branch, new_tag
from .parser import StreamFramer, parse_message
from .transaction import (
    AckReceived,
    AckTimeout,
    Address,
    CancelReceived,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ClientTransaction,
    Outgoing,
    RequestReceived,
    ResponseReceived,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    ServerTransaction,
    TimerConfig,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TxState,
)
from .uri import NameAddr, SipURI, parse_name_addr, split_list

__all__ = [
    "B2BUA", "DROP", "AckReceived", "AckTimeout", "AckTimeoutError", "Address", "B2BUATable",
    "BadHeaderError",
    "CSeq",
    "CancelReceived", "ClientInviteTransaction", "ClientNonInviteTransaction", "ClientTransaction",
    "ClientTransactionHandle", "Dialog", "DialogId", "DialogState", "DialogTable", "Diversion", "Event",
    "Headers", "HistoryInfoEntry", "IncomingRequest", "MessageTooLargeError", "NameAddr", "Outgoing",
    "PChargingVector", "PServedUser", "Reason", "RequestReceived", "ResponseReceived", "RetryAfter",
    "Screen", "ServerInviteTransaction", "ServerNonInviteTransaction", "ServerTransaction", "SipEndpoint",
    "SipError",
    "SipMessage", "SipParseError", "SipRequest", "SipResponse", "SipTransportError", "SipURI", "StreamFramer",
    "SubscriptionState", "TimerConfig", "TransactionLayer", "TransactionTerminated", "TransactionTimeout",
    "TransactionTimeoutError", "TxState", "Via", "Warning", "install_uvloop", "new_branch", "new_tag",
    "parse_message", "parse_name_addr", "split_list", "uri_destination",
]
