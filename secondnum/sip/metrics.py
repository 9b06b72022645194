"""Prometheus counters of the SIP stack (module level so every endpoint in a process shares them)."""

from __future__ import annotations

from prometheus_client import Counter

MESSAGES_RECEIVED = Counter("secondnum_sip_messages_received", "SIP messages received",
                            ["kind", "transport"])
MESSAGES_SENT = Counter("secondnum_sip_messages_sent", "SIP messages sent", ["kind", "transport"])
PARSE_ERRORS = Counter("secondnum_sip_parse_errors", "Received bytes that were not a SIP message (dropped)",
                       ["transport"])
BAD_REQUESTS = Counter("secondnum_sip_bad_requests", "Requests answered 400 because of a malformed header")
OVERSIZE = Counter("secondnum_sip_oversize", "Messages above the configured maximum size", ["transport"])
RETRANSMISSIONS = Counter("secondnum_sip_retransmissions", "Messages retransmitted by the transaction layer",
                          ["kind"])
RETRANSMISSIONS_RECEIVED = Counter("secondnum_sip_retransmissions_received",
                                   "Retransmitted requests/responses absorbed by the transaction layer",
                                   ["kind"])
TRANSACTION_TIMEOUTS = Counter("secondnum_sip_transaction_timeouts", "Transactions ended by a timer",
                               ["timer"])
STRAY = Counter("secondnum_sip_stray_messages", "Responses/ACKs matching no transaction (dropped)", ["kind"])
SEND_ERRORS = Counter("secondnum_sip_send_errors", "Messages that could not be sent", ["transport"])
HANDLER_ERRORS = Counter("secondnum_sip_handler_errors", "Application handlers that raised")
SCREENED = Counter("secondnum_sip_screened", "New requests refused or dropped before a transaction existed",
                   ["method", "verdict"])
TCP_REFUSED = Counter("secondnum_sip_tcp_refused",
                      "Inbound TCP connections closed at accept by a connection cap", ["reason"])
TCP_READ_TIMEOUTS = Counter("secondnum_sip_tcp_read_timeouts",
                            "TCP connections closed because a message stayed incomplete too long")
