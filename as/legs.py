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
from collections.abc import Sequence

from appserver.privacy import NO_PRIVACY, LegPrivacy, anonymous_from, private_history
from secondnum.entropy import random_bytes, random_hex
from secondnum.identity import tel_uri
from secondnum.sip.fields import Diversion, HistoryInfoEntry, PChargingVector
from secondnum.sip.headers import Headers
from secondnum.sip.message import SipRequest, SipResponse, new_tag
from secondnum.sip.session_timer import TimerConfig, request_headers, retry_after_422
from secondnum.sip.uri import NameAddr, SipURI

USER_AGENT = "secondnum-as"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, REFER, NOTIFY, INFO, PRACK"

# Option tags the AS serves when a request requires them (RFC 3261 §8.2.2.3; anything else gets 420):
# 100rel (RFC 3262: reliable 1xx relayed with PRACK), precondition (RFC 3312: passed through to the far leg,
# the AS does not look at the SDP preconditions) and timer (RFC 4028: negotiated per leg and enforced,
# appserver.session_timer) and 199 (RFC 6228: the AS sends 199 for the caller early dialogs it ends,
# appserver.early; a UAC lists it in Supported, but a Require naming it is served too).
SERVED_OPTIONS = frozenset({"100rel", "precondition", "timer", "199"})
SUPPORTED = "100rel, precondition, timer, 199"  # what OPTIONS answers (RFC 3261 §11.2)
# Extensions a forwarded leg inherits from the caller's INVITE (end-to-end, TS 24.229 §5.7.5).
PASSED_OPTIONS = ("precondition", "timer")
DEFAULT_TIMERS = TimerConfig()  # [as] session_expires / min_se defaults (appserver.settings)


def unsupported_options(req: SipRequest) -> list[str]:
    """The option tags of ``req``'s Require the AS cannot serve (for 420 + Unsupported, §8.2.2.3)."""
    if "require" not in req.headers:
        return []
    return [tag for tag in req.require if tag not in SERVED_OPTIONS]


def passed_options(req: SipRequest) -> tuple[list[str], list[str]]:
    """(Supported, Require) tags a far leg gets from the caller's INVITE: precondition/timer as the caller
    put them, 100rel offered (never required) when the caller supports it."""
    h = req.headers
    if "supported" not in h and "require" not in h:
        return [], []
    supported, required = req.supported, req.require
    offered = [t for t in ("100rel", *PASSED_OPTIONS) if t in supported or t in required]
    return offered, [t for t in PASSED_OPTIONS if t in required]


def outgoing_options(customer_invite: SipRequest) -> list[str]:
    """Supported tags of the outgoing leg (flow C): 100rel always (the AS PRACKs, RFC 3262), precondition
    when the customer's UE supports it (its answer to the destination's offer is the customer's own)."""
    h = customer_invite.headers
    if ("supported" in h or "require" in h) and (
            "precondition" in customer_invite.supported or "precondition" in customer_invite.require):
        return ["100rel", "precondition"]
    return ["100rel"]


def session_timer_headers(req: SipRequest | None,
                          config: TimerConfig = DEFAULT_TIMERS) -> list[tuple[str, str]]:
    """Session-Expires/Min-SE of a leg the AS originates (RFC 4028 §7.1): the caller's request ``req``
    continued, else the AS's own (``[as] session_expires``/``min_se``); the leg then lists ``timer`` in
    Supported."""
    return request_headers(req, config)


def retried_after_422(request: SipRequest, resp: SipResponse) -> SipRequest | None:
    """RFC 4028 §7.3: the INVITE once more after ``422 Session Interval Too Small`` (same Call-ID, next CSeq,
    no Via: a new transaction) with Session-Expires raised to the response's Min-SE; None when the 422 gives
    nothing to raise it to."""
    fields = retry_after_422(request, resp)
    if fields is None:
        return None
    req = SipRequest(request.method, request.raw_uri, request.headers.copy(), request.body)
    req.remove_header("via")
    req.set_header("cseq", f"{request.cseq.seq + 1} INVITE")
    for name, value in fields:
        req.set_header(name, value)
    return req


def new_call_id(host: str) -> str:
    return f"{random_hex(12)}@{host}"


def new_icid(host: str) -> str:
    """A globally unique IMS Charging Identifier (TS 32.260 §5.2.1.1, RFC 7315 §4.6)."""
    return base64.b64encode(random_bytes(15)).decode() + "@" + host


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
           content_type: str | None, extra: Sequence[tuple[str, str]] = (),
           supported: Sequence[str] = (), require: Sequence[str] = ()) -> SipRequest:
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
    # No "replaces": the AS has no Replaces handling (RFC 3891), and Supported lists only what the UA
    # understands (RFC 3261 §20.37).
    h.set("supported", ", ".join([*supported, "histinfo"]))
    if require:
        h.set("require", ", ".join(require))
    h.set("user-agent", USER_AGENT)
    for name, value in extra:
        h.add(name, value)
    if content_type:
        h.set("content-type", content_type)
    return SipRequest("INVITE", ruri, h, body)


def forward_invite(*, target: SipURI, did: str, caller_from: NameAddr, caller_pai: NameAddr | None,
                   present_did: bool, return_route: Sequence[NameAddr], contact: SipURI, call_id: str,
                   pcv: PChargingVector | None, history: Sequence[HistoryInfoEntry],
                   diversion: Sequence[Diversion], body: bytes, content_type: str | None,
                   supported: Sequence[str] = (), require: Sequence[str] = (),
                   extra: Sequence[tuple[str, str]] = (), privacy: LegPrivacy = NO_PRIVACY) -> SipRequest:
    """The INVITE towards a follow-me target through the S-CSCF (flow A.4); ``supported``/``require``/
    ``extra`` carry the extensions passed through from the caller (:func:`passed_options`), ``privacy``
    the caller's Privacy as this leg applies it (:func:`appserver.privacy.forward_leg`)."""
    did_uri = SipURI.parse(tel_uri(did))
    if present_did:
        from_ = NameAddr(did_uri, None, {"tag": new_tag()})
        pai: NameAddr | None = NameAddr(did_uri.copy())
    else:
        from_ = (anonymous_from() if privacy.anonymous_from
                 else NameAddr(caller_from.uri.copy(), caller_from.display, {"tag": new_tag()}))
        pai = caller_pai
    if privacy.header is not None:
        extra = [*extra, ("Privacy", privacy.header)]
    if privacy.history:
        history = private_history(history)
    return _build(target, from_=from_, to=NameAddr(target.copy()), contact=contact, call_id=call_id,
                  route=return_route, pai=pai, pcv=pcv, history=history, diversion=diversion, body=body,
                  content_type=content_type, extra=extra, supported=supported, require=require)


def media_uri(media: SipURI, service: str, mailbox: str, network_auth: bool = False) -> SipURI:
    """``sip:vm-deposit@media;mailbox=<DID>`` / ``sip:vm-access@media;mailbox=<DID>;auth=network``."""
    params: dict[str, str | None] = {"mailbox": mailbox}
    if network_auth:
        params["auth"] = "network"
    return SipURI(media.scheme, service, media.host, media.port, params)


def voicemail_invite(*, ruri: SipURI, caller_from: NameAddr, caller_pai: NameAddr | None, contact: SipURI,
                     call_id: str, pcv: PChargingVector | None, history: Sequence[HistoryInfoEntry],
                     diversion: Sequence[Diversion], body: bytes, content_type: str | None,
                     privacy: Sequence[str] = (), timer: Sequence[tuple[str, str]] = ()) -> SipRequest:
    """The INVITE to media (flows A.6 and B): the caller's identity is kept for the message envelope, with
    the caller's Privacy (media is inside the trust domain and withholds the number, TS 24.607 OIR).
    ``timer``: the leg's Session-Expires/Min-SE (:func:`session_timer_headers`, RFC 4028 §7.1), with
    ``timer`` then in Supported, as on a forwarded leg."""
    from_ = NameAddr(caller_from.uri.copy(), caller_from.display, {"tag": new_tag()})
    to = NameAddr(SipURI(ruri.scheme, ruri.user, ruri.host, ruri.port))
    return _build(ruri, from_=from_, to=to, contact=contact, call_id=call_id, route=(), pai=caller_pai,
                  pcv=pcv, history=history, diversion=diversion, body=body, content_type=content_type,
                  extra=[*timer, *([("Privacy", "; ".join(privacy))] if privacy else [])],
                  supported=["timer"] if timer else ())


def outgoing_invite(*, destination: SipURI, did: str, scscf: SipURI, contact: SipURI, call_id: str,
                    domain: str, body: bytes = b"", content_type: str | None = None,
                    supported: Sequence[str] = (), extra: Sequence[tuple[str, str]] = (),
                    privacy: LegPrivacy = NO_PRIVACY) -> SipRequest:
    """The INVITE the AS originates for the DID (flow C.4), with ``orig`` on the S-CSCF Route; ``extra``
    carries the AS's own session-timer fields (RFC 4028 §7.1), ``privacy`` the customer's Privacy
    (:func:`appserver.privacy.outgoing_leg`: anonymous From, P-Asserted-Identity still the DID)."""
    route_uri = scscf.copy()
    route_uri.params["lr"] = None
    route_uri.params["orig"] = None
    did_uri = SipURI.parse(tel_uri(did))
    from_ = anonymous_from() if privacy.anonymous_from else NameAddr(did_uri, None, {"tag": new_tag()})
    if privacy.header is not None:
        extra = [*extra, ("Privacy", privacy.header)]
    return _build(destination, from_=from_,
                  to=NameAddr(destination.copy()), contact=contact, call_id=call_id,
                  route=[NameAddr(route_uri)], pai=NameAddr(did_uri.copy()),
                  pcv=fresh_charging_vector(domain), history=(), diversion=(), body=body,
                  content_type=content_type, supported=supported, extra=extra)
