"""Sh numbers not in ``secondnum.diameter.constants`` (TS 29.329 §6.2, §6.3; TS 29.328 §7.6).

All Sh AVPs are vendor 10415 (3GPP).
"""

from __future__ import annotations

import enum
from typing import Final

# AVP codes, TS 29.329 §6.3 (Public-Identity and Server-Name come from Cx, TS 29.229 §6.3)
AVP_PUBLIC_IDENTITY: Final = 601
AVP_SERVER_NAME: Final = 602
AVP_USER_IDENTITY: Final = 700
AVP_MSISDN: Final = 701
AVP_USER_DATA: Final = 702
AVP_DATA_REFERENCE: Final = 703
AVP_SERVICE_INDICATION: Final = 704
AVP_SUBS_REQ_TYPE: Final = 705
AVP_IDENTITY_SET: Final = 708
AVP_EXPIRY_TIME: Final = 709
AVP_SEND_DATA_INDICATION: Final = 710

AUTH_SESSION_STATE_NO_STATE_MAINTAINED: Final = 1  # RFC 6733 §8.11: Sh sessions are stateless


class DataReference(enum.IntEnum):
    """TS 29.329 §6.3.4 (the data of TS 29.328 §7.6)."""

    REPOSITORY_DATA = 0
    IMS_PUBLIC_IDENTITY = 10
    IMS_USER_STATE = 11
    S_CSCF_NAME = 12
    INITIAL_FILTER_CRITERIA = 13
    LOCATION_INFORMATION = 14
    USER_STATE = 15
    CHARGING_INFORMATION = 16
    MSISDN = 17


class SubsReqType(enum.IntEnum):
    """TS 29.329 §6.3.6."""

    SUBSCRIBE = 0
    UNSUBSCRIBE = 1


class IdentitySet(enum.IntEnum):
    """TS 29.329 §6.3.10."""

    ALL_IDENTITIES = 0
    REGISTERED_IDENTITIES = 1
    IMPLICIT_IDENTITIES = 2
    ALIAS_IDENTITIES = 3


SEND_DATA_INDICATION_REQUESTED: Final = 1  # TS 29.329 §6.3.17: USER_DATA_REQUESTED

# Experimental-Result-Code values, TS 29.329 §6.2 (vendor 10415)
ERROR_USER_UNKNOWN: Final = 5001
ERROR_USER_DATA_NOT_RECOGNIZED: Final = 5100
ERROR_OPERATION_NOT_ALLOWED: Final = 5101
ERROR_USER_DATA_CANNOT_BE_READ: Final = 5102
ERROR_USER_DATA_CANNOT_BE_MODIFIED: Final = 5103
ERROR_TRANSPARENT_DATA_OUT_OF_SYNC: Final = 5105
ERROR_SUBS_DATA_ABSENT: Final = 5106
USER_DATA_NOT_AVAILABLE: Final = 4100

SEQUENCE_MAX: Final = 65535
"""TS 29.328 §7.6.1: Sequence-Number runs 0..65535; 0 only for new data, so after 65535 comes 1."""


def next_sequence(current: int) -> int:
    return 1 if current >= SEQUENCE_MAX else current + 1
