"""Ro messages: CCR built by the CTF and CCA read from the OCS (RFC 4006 §3.1/§3.2, TS 32.299 §6.4).

Only plain AVP lists (see `secondnum.diameter.codec`); both the client and the built-in OCS use
these functions so that what one writes, the other reads.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from diameter.message import Message
from diameter.message.avp import Avp

from secondnum.diameter import codec
from secondnum.diameter import constants as dc

V = dc.VENDOR_3GPP


class RoleOfNode(enum.IntEnum):
    """TS 32.299 §7.2.201 Role-Of-Node."""

    ORIGINATING = 0
    TERMINATING = 1
    FORWARDING = 2


@dataclass(frozen=True)
class ChargingRequest:
    """What the AS knows about a chargeable leg (TS 32.299 §6.4.2 IMS-Information)."""

    subscription_e164: str
    role_of_node: RoleOfNode
    calling: str
    called: str
    icid: str = ""
    requested_party: str | None = None
    sip_method: str = "INVITE"


@dataclass(frozen=True)
class CcrFields:
    """Per-request values of a CCR (RFC 4006 §3.1)."""

    session_id: str
    request_type: int
    request_number: int
    requested_seconds: int | None = None
    used_seconds: int | None = None
    termination_cause: int | None = None


# AVPs with the same value in every CCR, built once (python-diameter's Avp.new is the costly part of building
# a CCR); the codec only ever reads them.
_AUTH_APPLICATION_ID = codec.avp(dc.AVP_AUTH_APPLICATION_ID, dc.APP_RO)
_SERVICE_CONTEXT_ID = codec.avp(dc.AVP_SERVICE_CONTEXT_ID, dc.RO_SERVICE_CONTEXT_ID)
_SUBSCRIPTION_ID_TYPE_E164 = codec.avp(dc.AVP_SUBSCRIPTION_ID_TYPE, dc.SUBSCRIPTION_ID_E164)
_MULTIPLE_SERVICES_SUPPORTED = codec.avp(dc.AVP_MULTIPLE_SERVICES_INDICATOR, 1)
_NODE_FUNCTIONALITY_AS = codec.avp(dc.AVP_3GPP_NODE_FUNCTIONALITY, dc.NODE_FUNCTIONALITY_AS, V)


def service_information(req: ChargingRequest) -> Avp:
    """Service-Information/IMS-Information (TS 32.299 §7.2.192, §7.2.77)."""
    ims: list[Avp] = [
        codec.grouped(
            dc.AVP_3GPP_EVENT_TYPE,
            [codec.avp(dc.AVP_3GPP_SIP_METHOD, req.sip_method, V)],
            V,
        ),
        codec.avp(dc.AVP_3GPP_ROLE_OF_NODE, int(req.role_of_node), V),
        _NODE_FUNCTIONALITY_AS,
        codec.avp(dc.AVP_3GPP_CALLING_PARTY_ADDRESS, req.calling, V),
        codec.avp(dc.AVP_3GPP_CALLED_PARTY_ADDRESS, req.called, V),
    ]
    if req.requested_party:
        ims.append(codec.avp(dc.AVP_3GPP_REQUESTED_PARTY_ADDRESS, req.requested_party, V))
    if req.icid:
        ims.append(codec.avp(dc.AVP_3GPP_IMS_CHARGING_IDENTIFIER, req.icid, V))
    return codec.grouped(
        dc.AVP_3GPP_SERVICE_INFORMATION, [codec.grouped(dc.AVP_3GPP_IMS_INFORMATION, ims, V)], V
    )


def build_ccr(f: CcrFields, info: Avp | None, subscription_e164: str) -> Message:
    """A CCR without Origin-*/Destination-* (added by the node); Session-Id first (RFC 6733 §8.8)."""
    mscc: list[Avp] = []
    if f.requested_seconds is not None:
        mscc.append(
            codec.grouped(dc.AVP_REQUESTED_SERVICE_UNIT, [codec.avp(dc.AVP_CC_TIME, f.requested_seconds)])
        )
    if f.used_seconds is not None:
        mscc.append(codec.grouped(dc.AVP_USED_SERVICE_UNIT, [codec.avp(dc.AVP_CC_TIME, f.used_seconds)]))
    avps: list[Avp] = [
        codec.avp(dc.AVP_SESSION_ID, f.session_id),
        _AUTH_APPLICATION_ID,
        _SERVICE_CONTEXT_ID,
        codec.avp(dc.AVP_CC_REQUEST_TYPE, f.request_type),
        codec.avp(dc.AVP_CC_REQUEST_NUMBER, f.request_number),
        codec.grouped(
            dc.AVP_SUBSCRIPTION_ID,
            [
                _SUBSCRIPTION_ID_TYPE_E164,
                codec.avp(dc.AVP_SUBSCRIPTION_ID_DATA, subscription_e164),
            ],
        ),
    ]
    if f.termination_cause is not None:
        avps.append(codec.avp(dc.AVP_TERMINATION_CAUSE, f.termination_cause))
    avps.append(_MULTIPLE_SERVICES_SUPPORTED)
    if mscc:
        avps.append(codec.grouped(dc.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL, mscc))
    if info is not None:
        avps.append(info)
    return codec.new_request(dc.CMD_CREDIT_CONTROL, dc.APP_RO, avps)


@dataclass(frozen=True)
class Cca:
    """What the CTF needs from a CCA (RFC 4006 §3.2, §8.16, §8.33, §8.34)."""

    result_code: int | None
    origin_host: str | None
    granted_seconds: int | None = None
    validity_seconds: int | None = None
    final_unit_action: int | None = None
    ccfh: int | None = None
    mscc_result_code: int | None = None

    @property
    def effective_result(self) -> int | None:
        """MSCC Result-Code refines a 2001 at command level (TS 32.299 §6.3.6)."""
        if self.result_code == dc.SUCCESS and self.mscc_result_code is not None:
            return self.mscc_result_code
        return self.result_code


def parse_cca(msg: Message) -> Cca:
    mscc = codec.first(msg.avps, dc.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL)
    granted = validity = fua = mscc_rc = None
    if mscc is not None:
        inner = mscc.value
        gsu = codec.first(inner, dc.AVP_GRANTED_SERVICE_UNIT)
        if gsu is not None:
            granted = codec.value(gsu.value, dc.AVP_CC_TIME)
        validity = codec.value(inner, dc.AVP_VALIDITY_TIME)
        mscc_rc = codec.value(inner, dc.AVP_RESULT_CODE)
        fui = codec.first(inner, dc.AVP_FINAL_UNIT_INDICATION)
        if fui is not None:
            fua = codec.value(fui.value, dc.AVP_FINAL_UNIT_ACTION)
    return Cca(
        result_code=codec.result_code(msg),
        origin_host=codec.text(msg.avps, dc.AVP_ORIGIN_HOST),
        granted_seconds=granted,
        validity_seconds=validity,
        final_unit_action=fua,
        ccfh=codec.value(msg.avps, dc.AVP_CREDIT_CONTROL_FAILURE_HANDLING),
        mscc_result_code=mscc_rc,
    )


@dataclass(frozen=True)
class Ccr:
    """What the OCS needs from a CCR."""

    session_id: str
    request_type: int
    request_number: int
    subscription_e164: str | None
    requested_seconds: int | None
    used_seconds: int | None
    called: str | None
    calling: str | None
    role_of_node: int | None
    origin_host: str | None


def parse_ccr(msg: Message) -> Ccr:
    avps = msg.avps
    sub = None
    for s in (a for a in avps if a.code == dc.AVP_SUBSCRIPTION_ID):
        if codec.value(s.value, dc.AVP_SUBSCRIPTION_ID_TYPE) == dc.SUBSCRIPTION_ID_E164:
            sub = codec.value(s.value, dc.AVP_SUBSCRIPTION_ID_DATA)
            break
    requested = used = None
    mscc = codec.first(avps, dc.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL)
    if mscc is not None:
        rsu = codec.first(mscc.value, dc.AVP_REQUESTED_SERVICE_UNIT)
        if rsu is not None:
            requested = codec.value(rsu.value, dc.AVP_CC_TIME)
        usu = codec.first(mscc.value, dc.AVP_USED_SERVICE_UNIT)
        if usu is not None:
            used = codec.value(usu.value, dc.AVP_CC_TIME)
    called = calling = role = None
    si = codec.first(avps, dc.AVP_3GPP_SERVICE_INFORMATION, V)
    ims = codec.first(si.value, dc.AVP_3GPP_IMS_INFORMATION, V) if si is not None else None
    if ims is not None:
        called = codec.value(ims.value, dc.AVP_3GPP_CALLED_PARTY_ADDRESS, V)
        calling = codec.value(ims.value, dc.AVP_3GPP_CALLING_PARTY_ADDRESS, V)
        role = codec.value(ims.value, dc.AVP_3GPP_ROLE_OF_NODE, V)
    return Ccr(
        session_id=codec.value(avps, dc.AVP_SESSION_ID) or "",
        request_type=codec.value(avps, dc.AVP_CC_REQUEST_TYPE) or 0,
        request_number=codec.value(avps, dc.AVP_CC_REQUEST_NUMBER) or 0,
        subscription_e164=sub,
        requested_seconds=requested,
        used_seconds=used,
        called=called,
        calling=calling,
        role_of_node=role,
        origin_host=codec.text(avps, dc.AVP_ORIGIN_HOST),
    )


def build_cca(
    ccr_msg: Message,
    ccr: Ccr,
    result_code: int,
    *,
    granted_seconds: int | None = None,
    validity_seconds: int | None = None,
    final_unit: bool = False,
    mscc_result: int | None = None,
) -> Message:
    """CCA (RFC 4006 §3.2) with one MSCC carrying the grant; Origin-* added by the node.

    `mscc_result` refuses at MSCC level (TS 32.299 §6.3.6) under a command-level `result_code`
    (2001), which keeps the session open for the CCR-T.
    """
    avps: list[Avp] = [
        codec.avp(dc.AVP_AUTH_APPLICATION_ID, dc.APP_RO),
        codec.avp(dc.AVP_CC_REQUEST_TYPE, ccr.request_type),
        codec.avp(dc.AVP_CC_REQUEST_NUMBER, ccr.request_number),
    ]
    if granted_seconds is not None or mscc_result is not None:
        mscc: list[Avp] = []
        if granted_seconds is not None:
            mscc.append(
                codec.grouped(dc.AVP_GRANTED_SERVICE_UNIT, [codec.avp(dc.AVP_CC_TIME, granted_seconds)])
            )
        mscc.append(codec.avp(dc.AVP_RESULT_CODE, mscc_result or result_code))
        if validity_seconds is not None:
            mscc.append(codec.avp(dc.AVP_VALIDITY_TIME, validity_seconds))
        if final_unit:
            mscc.append(
                codec.grouped(
                    dc.AVP_FINAL_UNIT_INDICATION, [codec.avp(dc.AVP_FINAL_UNIT_ACTION, dc.FUA_TERMINATE)]
                )
            )
        avps.append(codec.grouped(dc.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL, mscc))
    return codec.new_answer(ccr_msg, result_code, avps)
