"""Initial requests of the legs the B2BUA creates (sans-IO), one builder per kind of leg.

Every leg is a new dialog with its own Call-ID and From tag (RFC 7092 §3.1, TS 24.229 §5.7.5):

* forwarded leg (flow A.4): Route = the S-CSCF's ``odi`` entry so the S-CSCF continues the original
  session (TS 24.229 §5.7.5.3.2, §5.4.3.3); P-Asserted-Identity and From = the DID (or the original caller
  when the account says so); History-Info (RFC 7044) and Diversion (RFC 5806) record the diversion
  (TS 24.604 §4.5.2.6.2); P-Charging-Vector keeps the ICID (TS 24.229 §5.7.5.3: a routing B2BUA passes it).
* voicemail leg (flows A.6, B): sent straight to media, with the caller's identity and the diversion history.
* outgoing leg (flow C.4): an initiating B2BUA request on behalf of the DID: Route = the S-CSCF with
  ``orig`` (TS 24.229 §5.7.3), P-Asserted-Identity = the DID, a fresh ICID (TS 24.229 §5.7.5.3.3).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence

from secondnum.identity import tel_uri
from secondnum.sip.fields import Diversion, HistoryInfoEntry, PChargingVector
from secondnum.sip.headers import Headers
from secondnum.sip.message import SipRequest, new_tag
from secondnum.sip.uri import NameAddr, SipURI

USER_AGENT = "secondnum-as"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, REFER, NOTIFY, INFO, PRACK"


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"


def new_icid(host: str) -> str:
    """A globally unique IMS Charging Identifier (TS 32.260 §5.2.1.1, RFC 7315 §4.6)."""
    return base64.b64encode(secrets.token_bytes(15)).decode() + "@" + host


def routed_charging_vector(received: PChargingVector | None, domain: str) -> PChargingVector:
    """P-Charging-Vector for a leg continuing the received session: same ICID and orig-ioi, no term-ioi."""
    if received is None:
        return fresh_charging_vector(domain)
    params = {k: v for k, v in received.params.items() if k != "term-ioi"}
    return PChargingVector(received.icid_value, params)


def fresh_charging_vector(domain: str) -> PChargingVector:
    return PChargingVector(new_icid(domain), {"icid-generated-at": domain, "orig-ioi": domain})


def _build(ruri: SipURI, *, from_: NameAddr, to: NameAddr, contact: SipURI, call_id: str,
           route: Sequence[NameAddr], pai: NameAddr | None, pcv: PChargingVector | None,
           history: Sequence[HistoryInfoEntry], diversion: Sequence[Diversion], body: bytes,
           content_type: str | None, extra: Sequence[tuple[str, str]] = ()) -> SipRequest:
    h = Headers()
    h.set("max-forwards", "70")
    if route:
        h.set("route", [str(r) for r in route])
    h.set("from", str(from_))
    h.set("to", str(to))
    h.set("call-id", call_id)
    h.set("cseq", "1 INVITE")
    h.set("contact", f"<{contact}>")
    if pai is not None:
        h.set("p-asserted-identity", str(NameAddr(pai.uri.copy(), pai.display)))
    if pcv is not None:
        h.set("p-charging-vector", str(pcv))
    if history:
        h.set("history-info", ", ".join(str(e) for e in history))
    if diversion:
        h.set("diversion", ", ".join(str(d) for d in diversion))
    h.set("allow", ALLOW)
    h.set("supported", "replaces, histinfo")
    h.set("user-agent", USER_AGENT)
    for name, value in extra:
        h.add(name, value)
    if content_type:
        h.set("content-type", content_type)
    return SipRequest("INVITE", ruri, h, body)


def forward_invite(*, target: SipURI, did: str, caller_from: NameAddr, caller_pai: NameAddr | None,
                   present_did: bool, return_route: Sequence[NameAddr], contact: SipURI, call_id: str,
                   pcv: PChargingVector | None, history: Sequence[HistoryInfoEntry],
                   diversion: Sequence[Diversion], body: bytes, content_type: str | None) -> SipRequest:
    """The INVITE towards a follow-me target through the S-CSCF (flow A.4)."""
    did_uri = SipURI.parse(tel_uri(did))
    if present_did:
        from_ = NameAddr(did_uri, None, {"tag": new_tag()})
        pai: NameAddr | None = NameAddr(did_uri.copy())
    else:
        from_ = NameAddr(caller_from.uri.copy(), caller_from.display, {"tag": new_tag()})
        pai = caller_pai
    return _build(target, from_=from_, to=NameAddr(target.copy()), contact=contact, call_id=call_id,
                  route=return_route, pai=pai, pcv=pcv, history=history, diversion=diversion, body=body,
                  content_type=content_type)


def media_uri(media: SipURI, service: str, mailbox: str, network_auth: bool = False) -> SipURI:
    """``sip:vm-deposit@media;mailbox=<DID>`` / ``sip:vm-access@media;mailbox=<DID>;auth=network``."""
    params: dict[str, str | None] = {"mailbox": mailbox}
    if network_auth:
        params["auth"] = "network"
    return SipURI(media.scheme, service, media.host, media.port, params)


def voicemail_invite(*, ruri: SipURI, caller_from: NameAddr, caller_pai: NameAddr | None, contact: SipURI,
                     call_id: str, pcv: PChargingVector | None, history: Sequence[HistoryInfoEntry],
                     diversion: Sequence[Diversion], body: bytes, content_type: str | None) -> SipRequest:
    """The INVITE to media (flows A.6 and B): the caller's identity is kept for the message envelope."""
    from_ = NameAddr(caller_from.uri.copy(), caller_from.display, {"tag": new_tag()})
    to = NameAddr(SipURI(ruri.scheme, ruri.user, ruri.host, ruri.port))
    return _build(ruri, from_=from_, to=to, contact=contact, call_id=call_id, route=(), pai=caller_pai,
                  pcv=pcv, history=history, diversion=diversion, body=body, content_type=content_type)


def outgoing_invite(*, destination: SipURI, did: str, scscf: SipURI, contact: SipURI, call_id: str,
                    domain: str, body: bytes = b"", content_type: str | None = None) -> SipRequest:
    """The INVITE the AS originates for the DID (flow C.4), with ``orig`` on the S-CSCF Route."""
    route_uri = scscf.copy()
    route_uri.params["lr"] = None
    route_uri.params["orig"] = None
    did_uri = SipURI.parse(tel_uri(did))
    return _build(destination, from_=NameAddr(did_uri, None, {"tag": new_tag()}),
                  to=NameAddr(destination.copy()), contact=contact, call_id=call_id,
                  route=[NameAddr(route_uri)], pai=NameAddr(did_uri.copy()),
                  pcv=fresh_charging_vector(domain), history=(), diversion=(), body=body,
                  content_type=content_type)
