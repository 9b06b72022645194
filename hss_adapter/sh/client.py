"""Sh client procedures (TS 29.329 §6.1; stage 2 in TS 29.328 §6.1): UDR, PUR, SNR over a ``DiameterNode``.

Every request carries Session-Id (RFC 6733 §8.8), Vendor-Specific-Application-Id for Sh (TS 29.329 §7.4),
Auth-Session-State NO_STATE_MAINTAINED and the subscriber in User-Identity/Public-Identity (§6.3.1).
Origin-Host/Realm and Destination-Realm/Host are filled in by the node.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import os

from diameter.message import Message
from diameter.message.avp import Avp
from prometheus_client import Counter

from hss_adapter.sh import constants as sh
from hss_adapter.sh.shdata import ShData, ShDataError, parse_sh_data
from secondnum.diameter import codec
from secondnum.diameter import constants as dc
from secondnum.diameter.node import DiameterNode, NoRouteError, RequestTimeout
from secondnum.log import get_logger

log = get_logger(__name__)

SH_REQUESTS = Counter("secondnum_sh_requests_total", "Sh requests sent, by command and result",
                      ["command", "result"])
_COMMAND_NAMES = {
    dc.CMD_USER_DATA: "UDR", dc.CMD_PROFILE_UPDATE: "PUR", dc.CMD_SUBSCRIBE_NOTIFICATIONS: "SNR",
}

V = dc.VENDOR_3GPP


@dataclasses.dataclass(frozen=True)
class ShAnswer:
    """Result-Code (or Experimental-Result-Code) and the parsed User-Data when present and valid."""

    result_code: int | None
    user_data: ShData | None = None
    expiry_time: dt.datetime | None = None
    data_error: str | None = None
    """Why User-Data was present but not applied (malformed Sh-Data)."""
    raw_user_data: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.result_code == dc.SUCCESS


def sh_application_avps() -> list[Avp]:
    """Vendor-Specific-Application-Id (Sh) and Auth-Session-State, as every Sh message carries them."""
    return [
        codec.grouped(dc.AVP_VENDOR_SPECIFIC_APPLICATION_ID, [
            codec.avp(dc.AVP_VENDOR_ID, V), codec.avp(dc.AVP_AUTH_APPLICATION_ID, dc.APP_SH)]),
        codec.avp(dc.AVP_AUTH_SESSION_STATE, sh.AUTH_SESSION_STATE_NO_STATE_MAINTAINED),
    ]


def user_identity(public_identity: str) -> Avp:
    return codec.grouped(sh.AVP_USER_IDENTITY, [codec.avp(sh.AVP_PUBLIC_IDENTITY, public_identity, vendor=V)],
                         vendor=V)


def public_identity_of(msg: Message) -> str | None:
    """User-Identity/Public-Identity of a Sh request (TS 29.329 §6.3.1)."""
    ui = codec.first(msg.avps, sh.AVP_USER_IDENTITY, V)
    if ui is None:
        return None
    value = codec.value(ui.value, sh.AVP_PUBLIC_IDENTITY, V)
    return value.decode() if isinstance(value, bytes) else value


def user_data_of(msg: Message) -> bytes | None:
    value = codec.value(msg.avps, sh.AVP_USER_DATA, V)
    if value is None:
        return None
    return value if isinstance(value, bytes) else str(value).encode()


class ShClient:
    """The AS side of Sh; one instance per node. Methods raise the node's NoRouteError/RequestTimeout."""

    def __init__(self, node: DiameterNode, destination_realm: str, destination_host: str | None = None,
                 tx_seconds: float | None = None) -> None:
        self.node = node
        self.destination_realm = destination_realm
        self.destination_host = destination_host
        self.tx_seconds = tx_seconds
        high = int.from_bytes(os.urandom(4), "big")
        self._session = (f"{node.origin_host};{high};{low}" for low in itertools.count(1))

    def _request(self, command: int, avps: list[Avp]) -> Message:
        head = [codec.avp(dc.AVP_SESSION_ID, next(self._session)), *sh_application_avps()]
        return codec.new_request(command, dc.APP_SH, avps=[*head, *avps])

    async def _send(self, req: Message) -> Message:
        name = _COMMAND_NAMES.get(req.header.command_code, str(req.header.command_code))
        try:
            answer = await self.node.send_request(
                req, self.destination_realm, destination_host=self.destination_host, timeout=self.tx_seconds)
        except (NoRouteError, RequestTimeout) as exc:
            SH_REQUESTS.labels(name, type(exc).__name__).inc()
            raise
        SH_REQUESTS.labels(name, str(codec.result_code(answer))).inc()
        return answer

    @staticmethod
    def _answer(msg: Message) -> ShAnswer:
        rc = codec.result_code(msg)
        expiry = codec.value(msg.avps, sh.AVP_EXPIRY_TIME, V)
        raw = user_data_of(msg)
        data, error = None, None
        if raw is not None:
            try:
                data = parse_sh_data(raw)
            except ShDataError as exc:
                error = str(exc)
                log.error("sh_user_data_malformed", error=error, command=msg.header.command_code)
        if isinstance(expiry, dt.datetime) and expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=dt.UTC)  # the codec decodes Time (RFC 6733 §4.3.1) as naive UTC
        return ShAnswer(rc, data, expiry if isinstance(expiry, dt.datetime) else None, error, raw)

    async def udr(self, public_identity: str, data_reference: sh.DataReference, *,
                  service_indication: str | None = None, server_name: str | None = None,
                  identity_set: sh.IdentitySet | None = None) -> ShAnswer:
        """User-Data-Request (TS 29.329 §6.1.1).

        RepositoryData needs Service-Indication, InitialFilterCriteria needs Server-Name (TS 29.328 §7.6).
        """
        avps = [user_identity(public_identity),
                codec.avp(sh.AVP_DATA_REFERENCE, int(data_reference), vendor=V)]
        if service_indication is not None:
            avps.append(codec.avp(sh.AVP_SERVICE_INDICATION, service_indication.encode(), vendor=V))
        if server_name is not None:
            avps.append(codec.avp(sh.AVP_SERVER_NAME, server_name, vendor=V))
        if identity_set is not None:
            avps.append(codec.avp(sh.AVP_IDENTITY_SET, int(identity_set), vendor=V))
        return self._answer(await self._send(self._request(dc.CMD_USER_DATA, avps)))

    async def pur(self, public_identity: str, user_data: bytes) -> ShAnswer:
        """Profile-Update-Request (TS 29.329 §6.1.3) with Repository-Data (Data-Reference 0)."""
        avps = [user_identity(public_identity),
                codec.avp(sh.AVP_DATA_REFERENCE, int(sh.DataReference.REPOSITORY_DATA), vendor=V),
                codec.avp(sh.AVP_USER_DATA, user_data, vendor=V)]
        return self._answer(await self._send(self._request(dc.CMD_PROFILE_UPDATE, avps)))

    async def snr(self, public_identity: str, data_reference: sh.DataReference, *,
                  service_indication: str | None, expiry: dt.datetime | None,
                  subscribe: bool = True, send_data: bool = False) -> ShAnswer:
        """Subscribe-Notifications-Request (TS 29.329 §6.1.5) with Expiry-Time (§6.3.16)."""
        req_type = sh.SubsReqType.SUBSCRIBE if subscribe else sh.SubsReqType.UNSUBSCRIBE
        avps = [user_identity(public_identity), codec.avp(sh.AVP_SUBS_REQ_TYPE, int(req_type), vendor=V),
                codec.avp(sh.AVP_DATA_REFERENCE, int(data_reference), vendor=V)]
        if service_indication is not None:
            avps.append(codec.avp(sh.AVP_SERVICE_INDICATION, service_indication.encode(), vendor=V))
        if expiry is not None:
            avps.append(codec.avp(sh.AVP_EXPIRY_TIME, expiry, vendor=V))
        if send_data:
            avps.append(codec.avp(sh.AVP_SEND_DATA_INDICATION, sh.SEND_DATA_INDICATION_REQUESTED, vendor=V))
        return self._answer(await self._send(self._request(dc.CMD_SUBSCRIBE_NOTIFICATIONS, avps)))
