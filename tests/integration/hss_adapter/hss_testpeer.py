"""A test HSS: an asyncio Diameter Sh server (TS 29.329) on the project's peer layer, over real TCP.

It holds per-user Repository-Data (with Sequence-Numbers), IMS public identities, an MSISDN and iFCs;
answers UDR/PUR/SNR as TS 29.328 §6.1 describes (5105 for a stale Sequence-Number, 4100 for absent data,
5001 for an unknown user) and sends PNRs to subscribed ASs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any

from diameter.message import Message

from hss_adapter.sh import constants as sh
from hss_adapter.sh.client import public_identity_of, sh_application_avps, user_data_of, user_identity
from hss_adapter.sh.shdata import build_sh_data, parse_sh_data
from secondnum.diameter import DiameterNode, codec
from secondnum.diameter import constants as dc
from secondnum.diameter.node import PeerInfo
from secondnum.identity import canonical

V = dc.VENDOR_3GPP
HSS_HOST = "hss.test.local"
REALM = "secondnum.local"


@dataclasses.dataclass
class HssUser:
    repository: dict[str, tuple[int, bytes | None]] = dataclasses.field(default_factory=dict)
    """Service-Indication -> (Sequence-Number, ServiceData inner XML)."""
    public_identities: list[str] = dataclasses.field(default_factory=list)
    msisdn_hex: list[str] = dataclasses.field(default_factory=list)
    ifcs: list[ET.Element] = dataclasses.field(default_factory=list)
    """Complete InitialFilterCriteria elements (e.g. from ``secondnum.ifc.build_ifc``)."""
    subscribers: dict[str, dt.datetime] = dataclasses.field(default_factory=dict)
    """Origin-Host of subscribed ASs -> granted expiry."""


def experimental(request: Message, code: int) -> Message:
    return codec.new_answer(
        request,
        avps=[
            *sh_application_avps(),
            codec.grouped(
                dc.AVP_EXPERIMENTAL_RESULT,
                [codec.avp(dc.AVP_VENDOR_ID, V), codec.avp(dc.AVP_EXPERIMENTAL_RESULT_CODE, code)],
            ),
        ],
    )


class TestHss:
    __test__ = False  # not a pytest class

    def __init__(self, max_expiry_seconds: int = 3600) -> None:
        self.node = DiameterNode(HSS_HOST, REALM, (dc.APP_SH,))
        self.users: dict[str, HssUser] = {}
        self.received: list[tuple[int, Message]] = []
        self.max_expiry = max_expiry_seconds
        self.node.register_handler(dc.APP_SH, dc.CMD_USER_DATA, self.on_udr)
        self.node.register_handler(dc.APP_SH, dc.CMD_PROFILE_UPDATE, self.on_pur)
        self.node.register_handler(dc.APP_SH, dc.CMD_SUBSCRIBE_NOTIFICATIONS, self.on_snr)

    async def start(self, port: int = 0) -> int:
        await self.node.start(listen=("127.0.0.1", port))
        return self.node.listen_port

    async def restart(self) -> None:
        """Stop and start on the same port with a new node, losing every subscription (an HSS restart)."""
        port = self.node.listen_port
        await self.node.stop()
        for user in self.users.values():
            user.subscribers.clear()
        self.node = DiameterNode(HSS_HOST, REALM, (dc.APP_SH,))
        self.node.register_handler(dc.APP_SH, dc.CMD_USER_DATA, self.on_udr)
        self.node.register_handler(dc.APP_SH, dc.CMD_PROFILE_UPDATE, self.on_pur)
        self.node.register_handler(dc.APP_SH, dc.CMD_SUBSCRIBE_NOTIFICATIONS, self.on_snr)
        await self.start(port)

    async def stop(self) -> None:
        await self.node.stop()

    def user(self, did: str) -> HssUser:
        return self.users.setdefault(canonical(did), HssUser())

    def of(self, command: int) -> list[Message]:
        return [m for c, m in self.received if c == command]

    def _lookup(self, request: Message) -> HssUser | None:
        identity = public_identity_of(request)
        try:
            return self.users.get(canonical(identity or ""))
        except ValueError:
            return None

    @staticmethod
    def _si(request: Message) -> str:
        raw = codec.value(request.avps, sh.AVP_SERVICE_INDICATION, V)
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def _repository_xml(self, user: HssUser, si: str) -> bytes | None:
        if si not in user.repository:
            return None
        seq, inner = user.repository[si]
        body = (
            f"<RepositoryData><ServiceIndication>{si}</ServiceIndication>"
            f"<SequenceNumber>{seq}</SequenceNumber>"
        )
        if inner is not None:
            body += "<ServiceData>" + inner.decode() + "</ServiceData>"
        return f'<?xml version="1.0"?><Sh-Data>{body}</RepositoryData></Sh-Data>'.encode()

    def _data(self, request: Message, user: HssUser) -> bytes | int:
        ref = codec.value(request.avps, sh.AVP_DATA_REFERENCE, V)
        if ref == sh.DataReference.REPOSITORY_DATA:
            xml = self._repository_xml(user, self._si(request))
            return sh.USER_DATA_NOT_AVAILABLE if xml is None else xml
        if ref == sh.DataReference.IMS_PUBLIC_IDENTITY:
            return build_sh_data(public_identities=user.public_identities)
        if ref == sh.DataReference.MSISDN:
            return build_sh_data(msisdn_hex=user.msisdn_hex)
        if ref == sh.DataReference.INITIAL_FILTER_CRITERIA:
            server = codec.value(request.avps, sh.AVP_SERVER_NAME, V)
            server = server.decode() if isinstance(server, bytes) else server
            # TS 29.328 §7.6.4: only the iFCs of the AS named in Server-Name.
            return build_sh_data(
                ifc_elements=[i for i in user.ifcs if i.findtext("ApplicationServer/ServerName") == server]
            )
        return sh.ERROR_USER_DATA_CANNOT_BE_READ

    def on_udr(self, request: Message, peer: PeerInfo) -> Message:
        self.received.append((dc.CMD_USER_DATA, request))
        user = self._lookup(request)
        if user is None:
            return experimental(request, sh.ERROR_USER_UNKNOWN)
        data = self._data(request, user)
        if isinstance(data, int):
            return experimental(request, data)
        return codec.new_answer(
            request, dc.SUCCESS, [*sh_application_avps(), codec.avp(sh.AVP_USER_DATA, data, vendor=V)]
        )

    def on_pur(self, request: Message, peer: PeerInfo) -> Message:
        self.received.append((dc.CMD_PROFILE_UPDATE, request))
        user = self._lookup(request)
        if user is None:
            return experimental(request, sh.ERROR_USER_UNKNOWN)
        raw = user_data_of(request)
        data = parse_sh_data(raw or b"")
        for repo in data.repository_data:
            current = user.repository.get(repo.service_indication, (0, None))[0]
            if repo.sequence_number != sh.next_sequence(current):
                return experimental(request, sh.ERROR_TRANSPARENT_DATA_OUT_OF_SYNC)
            if repo.service_data is None:
                user.repository.pop(repo.service_indication, None)
            else:
                inner = b"".join(ET.tostring(c) for c in repo.service_data)
                user.repository[repo.service_indication] = (repo.sequence_number, inner)
        return codec.new_answer(request, dc.SUCCESS, sh_application_avps())

    def on_snr(self, request: Message, peer: PeerInfo) -> Message:
        self.received.append((dc.CMD_SUBSCRIBE_NOTIFICATIONS, request))
        user = self._lookup(request)
        if user is None:
            return experimental(request, sh.ERROR_USER_UNKNOWN)
        origin = codec.text(request.avps, dc.AVP_ORIGIN_HOST) or peer.host
        if codec.value(request.avps, sh.AVP_SUBS_REQ_TYPE, V) == sh.SubsReqType.UNSUBSCRIBE:
            user.subscribers.pop(origin, None)
            return codec.new_answer(request, dc.SUCCESS, sh_application_avps())
        now = dt.datetime.now(dt.UTC)
        wanted = codec.value(request.avps, sh.AVP_EXPIRY_TIME, V)
        limit = now + dt.timedelta(seconds=self.max_expiry)
        if isinstance(wanted, dt.datetime):
            wanted = wanted.replace(tzinfo=dt.UTC) if wanted.tzinfo is None else wanted
            granted = min(wanted, limit)
        else:
            granted = limit
        user.subscribers[origin] = granted
        avps: list[Any] = [*sh_application_avps(), codec.avp(sh.AVP_EXPIRY_TIME, granted, vendor=V)]
        if codec.value(request.avps, sh.AVP_SEND_DATA_INDICATION, V) == sh.SEND_DATA_INDICATION_REQUESTED:
            xml = self._repository_xml(user, self._si(request))
            if xml is not None:
                avps.append(codec.avp(sh.AVP_USER_DATA, xml, vendor=V))
        return codec.new_answer(request, dc.SUCCESS, avps)

    # --- HSS-initiated ------------------------------------------------------------------------------------

    def set_repository(self, did: str, si: str, seq: int, inner: bytes | None) -> None:
        self.user(did).repository[si] = (seq, inner)

    async def push(self, did: str, user_data: bytes) -> list[int | None]:
        """Send PNR with ``user_data`` to every subscribed AS; returns their result codes."""
        user = self.user(did)
        codes = []
        for n, host in enumerate(list(user.subscribers)):
            pnr = codec.new_request(
                dc.CMD_PUSH_NOTIFICATION,
                dc.APP_SH,
                avps=[
                    codec.avp(dc.AVP_SESSION_ID, f"{HSS_HOST};pnr;{id(self)};{n}"),
                    *sh_application_avps(),
                    user_identity(f"tel:+{canonical(did)}"),
                    codec.avp(sh.AVP_USER_DATA, user_data, vendor=V),
                ],
            )
            answer = await self.node.send_request(pnr, REALM, destination_host=host, timeout=5.0)
            codes.append(codec.result_code(answer))
        return codes

    async def push_repository(self, did: str, si: str) -> list[int | None]:
        xml = self._repository_xml(self.user(did), si)
        assert xml is not None
        return await self.push(did, xml)
