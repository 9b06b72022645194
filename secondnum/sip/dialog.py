"""Sans-IO dialogs (RFC 3261 §12, §13.2.2.4, §14), REFER's implicit subscription NOTIFY (RFC 3515 §2.4.5),
and a small B2BUA helper linking two dialogs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

from .errors import SipError
from .headers import Headers
from .message import SipRequest, SipResponse, new_tag
from .transaction import Address
from .uri import NameAddr, SipURI

# Requests that refresh the remote target (§12.2, RFC 3311 §5.1, RFC 6665 §4.1.2, RFC 3515).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(slots=True, frozen=True)
class DialogId:
    """Call-ID plus local and remote tag (§12): unique per side."""

    call_id: str
    local_tag: str
    remote_tag: str


class Dialog:
    """One side's dialog state (§12.1): tags, CSeqs, route set, remote target."""

    __slots__ = ("call_id", "is_uac", "local_contact", "local_cseq", "local_tag", "local_uri", "remote_cseq",
                 "remote_tag", "remote_target", "remote_uri", "route_set", "secure", "state", "user_data")

    def __init__(self, call_id: str, local_tag: str, remote_tag: str, *, local_uri: NameAddr,
                 remote_uri: NameAddr, remote_target: SipURI, route_set: list[NameAddr], local_cseq: int,
                 remote_cseq: int | None, local_contact: SipURI, is_uac: bool,
                 state: DialogState = DialogState.EARLY, secure: bool = False) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_cseq = local_cseq
        self.remote_cseq = remote_cseq
        self.local_contact = local_contact
        self.is_uac = is_uac
        self.state = state
        self.secure = secure
        self.user_data: object = None

    # --- creation --------------------------------------------------------------------------------------
    @classmethod
    def from_uas(cls, request: SipRequest, local_tag: str, local_contact: SipURI,
                 state: DialogState = DialogState.EARLY) -> Dialog:
        """UAS side (§12.1.1): route set = Record-Route in order, remote target = the request's Contact."""
        contacts = request.contact
        if not contacts:
            raise SipError("dialog-creating request without Contact")
        remote_tag = request.from_.tag
        if not remote_tag:
            raise SipError("dialog-creating request without From tag")
        return cls(request.call_id, local_tag, remote_tag, local_uri=_bare(request.to),
                   remote_uri=_bare(request.from_), remote_target=contacts[0].uri.copy(),
                   route_set=[r.copy() for r in request.record_route], local_cseq=0,
                   remote_cseq=request.cseq.seq, local_contact=local_contact, is_uac=False, state=state,
                   secure=request.uri.scheme == "sips")

    @classmethod
    def from_uac(cls, request: SipRequest, response: SipResponse, local_contact: SipURI) -> Dialog:
        """UAC side (§12.1.2): route set = Record-Route reversed, remote target = the response's Contact."""
        remote_tag = response.to.tag
        if not remote_tag:
            raise SipError("response without To tag cannot create a dialog")
        contacts = response.contact
        target = contacts[0].uri.copy() if contacts else request.uri.copy()
        state = DialogState.CONFIRMED if response.is_success else DialogState.EARLY
        return cls(request.call_id, request.from_.tag or "", remote_tag, local_uri=_bare(request.from_),
                   remote_uri=_bare(response.to), remote_target=target,
                   route_set=[r.copy() for r in reversed(response.record_route)],
                   local_cseq=request.cseq.seq, remote_cseq=None, local_contact=local_contact, is_uac=True,
                   state=state, secure=request.uri.scheme == "sips")

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    # --- requests inside the dialog ----------------------------------------------------------------------
    def create_request(self, method: str, body: bytes = b"", content_type: str | None = None,
                       headers: Iterable[tuple[str, str]] = ()) -> SipRequest:
        """Build an in-dialog request (§12.2.1.1). Increments the local CSeq (not for ACK/CANCEL).

        The caller (the endpoint) adds the Via. Strict routing (§12.2.1.1, first route without ``lr``) puts
        that route in the Request-URI and the remote target last in Route.
        """
        if self.state is DialogState.TERMINATED and method != "ACK":
            raise SipError("dialog is terminated")
        if method not in ("ACK", "CANCEL"):
            self.local_cseq += 1
        return self._build(method, self.local_cseq, body, content_type, headers)

    def create_ack(self, invite_cseq: int, body: bytes = b"", content_type: str | None = None) -> SipRequest:
        """ACK for a 2xx to INVITE (§13.2.2.4): same CSeq number as the INVITE, goes to the remote target."""
        return self._build("ACK", invite_cseq, body, content_type, ())

    def _build(self, method: str, seq: int, body: bytes, content_type: str | None,
               headers: Iterable[tuple[str, str]]) -> SipRequest:
        h = Headers()
        routes = self.route_set
        target = self.remote_target
        if routes and not routes[0].uri.lr:
            ruri = routes[0].uri.copy()
            ruri.params.pop("method", None)
            route_values = [str(r) for r in routes[1:]] + [f"<{target}>"]
        else:
            ruri = target.copy()
            route_values = [str(r) for r in routes]
        h.set("max-forwards", "70")
        if route_values:
            h.set("route", route_values)
        h.set("from", f"{_fmt(self.local_uri)};tag={self.local_tag}")
        h.set("to", f"{_fmt(self.remote_uri)};tag={self.remote_tag}")
        h.set("call-id", self.call_id)
        h.set("cseq", f"{seq} {method}")
        if method in TARGET_REFRESH:
            h.set("contact", f"<{self.local_contact}>")
        for name, value in headers:
            h.add(name, value)
        if content_type:
            h.set("content-type", content_type)
        return SipRequest(method, ruri, h, body)

    def create_refer_notify(self, status_line: str, state: str = "terminated", event_id: str | None = None,
                            reason: str = "noresource", expires: int = 60) -> SipRequest:
        """NOTIFY of the implicit REFER subscription, ``message/sipfrag`` body (RFC 3515 §2.4.4-§2.4.5)."""
        sub_state = f"terminated;reason={reason}" if state == "terminated" else f"{state};expires={expires}"
        event = "refer" if event_id is None else f"refer;id={event_id}"
        return self.create_request("NOTIFY", (status_line.strip() + "\r\n").encode(),
                                   "message/sipfrag;version=2.0",
                                   [("Event", event), ("Subscription-State", sub_state)])

    def next_hop(self, default_transport: str = "udp") -> tuple[Address, str]:
        """Where to send the next in-dialog request: first Route or the remote target (§12.2.1.1, §8.1.2).

        Hosts must be IP addresses: this stack never queries DNS on a call path.
        """
        uri = self.route_set[0].uri if self.route_set else self.remote_target
        return uri_destination(uri, default_transport)

    # --- requests/responses received ----------------------------------------------------------------------
    def on_request(self, req: SipRequest) -> bool:
        """Check an incoming in-dialog request (§12.2.2). False means "out of order: answer 500"."""
        if req.method in ("ACK", "CANCEL"):
            return True
        seq = req.cseq.seq
        if self.remote_cseq is not None and seq < self.remote_cseq:
            return False
        self.remote_cseq = seq
        if req.method in TARGET_REFRESH:
            contacts = req.contact
            if contacts:
                self.remote_target = contacts[0].uri.copy()
        if req.method == "BYE":
            self.state = DialogState.TERMINATED
        return True

    def on_response(self, req: SipRequest, resp: SipResponse) -> None:
        """Apply a response to a request sent in (or creating) this dialog (§12.1.2, §12.2.1.2, §13.2.2.4)."""
        code = resp.status
        if code in (481, 408) and req.method != "INVITE":
            self.state = DialogState.TERMINATED
            return
        if code in (481, 408) and req.cseq.seq != self.local_cseq:
            return
        if not 200 <= code < 300:
            return
        if req.method == "INVITE" and self.state is DialogState.EARLY:
            self.state = DialogState.CONFIRMED
            if self.is_uac:
                # §13.2.2.4: the route set is recomputed from the 2xx.
                self.route_set = [r.copy() for r in reversed(resp.record_route)]
        if req.method in TARGET_REFRESH:
            contacts = resp.contact
            if contacts:
                self.remote_target = contacts[0].uri.copy()
        if req.method == "BYE":
            self.state = DialogState.TERMINATED

    def confirm(self) -> None:
        if self.state is DialogState.EARLY:
            self.state = DialogState.CONFIRMED

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED

    def __repr__(self) -> str:
        return f"<Dialog {self.state.value} {self.call_id} {self.local_tag}/{self.remote_tag}>"


def uri_destination(uri: SipURI, default_transport: str = "udp") -> tuple[Address, str]:
    """Address and transport of a SIP URI without DNS: ``maddr``/host, port (5060/5061), ``transport``."""
    if uri.scheme == "tel" or not uri.host:
        raise SipError(f"cannot route to {uri}")
    host = uri.params.get("maddr") or uri.host
    if host.startswith("["):
        host = host[1:-1]
    transport = uri.transport or ("tls" if uri.scheme == "sips" else default_transport)
    port = uri.port or (5061 if transport == "tls" else 5060)
    return (host, port), transport


def _bare(na: NameAddr) -> NameAddr:
    """The URI and display name without the tag (the tags are kept separately)."""
    return NameAddr(na.uri.copy(), na.display, {k: v for k, v in na.params.items() if k != "tag"})


def _fmt(na: NameAddr) -> str:
    return str(na)


class DialogTable:
    """Dialogs of one endpoint indexed by :class:`DialogId` (incoming requests: local tag = To tag)."""

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: dict[DialogId, Dialog] = {}

    def add(self, dialog: Dialog) -> Dialog:
        self._by_id[dialog.id] = dialog
        return dialog

    def remove(self, dialog: Dialog) -> None:
        self._by_id.pop(dialog.id, None)

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._by_id.get(dialog_id)

    def match_request(self, req: SipRequest) -> Dialog | None:
        """The dialog an incoming request belongs to (§12.2.2): Call-ID, To tag (ours), From tag (theirs)."""
        to_tag = req.to.tag
        if not to_tag:
            return None
        return self._by_id.get(DialogId(req.call_id, to_tag, req.from_.tag or ""))

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._by_id.values()))


class B2BUA:
    """Two dialogs of a back-to-back user agent (RFC 7092 §3.1): each leg is its own dialog."""

    __slots__ = ("a", "b", "user_data")

    def __init__(self, a: Dialog, b: Dialog) -> None:
        self.a = a
        self.b = b
        self.user_data: object = None

    def peer(self, dialog: Dialog) -> Dialog:
        if dialog.id == self.a.id:
            return self.b
        if dialog.id == self.b.id:
            return self.a
        raise KeyError(dialog.id)

    def replace(self, old: Dialog, new: Dialog) -> None:
        """Swap one leg (e.g. the media leg replaced by the outgoing call after REFER, RFC 3515 flow C)."""
        if old.id == self.a.id:
            self.a = new
        elif old.id == self.b.id:
            self.b = new
        else:
            raise KeyError(old.id)


class B2BUATable:
    """Finds the linked leg from either dialog id."""

    __slots__ = ("_links",)

    def __init__(self) -> None:
        self._links: dict[DialogId, B2BUA] = {}

    def link(self, a: Dialog, b: Dialog) -> B2BUA:
        pair = B2BUA(a, b)
        self._links[a.id] = pair
        self._links[b.id] = pair
        return pair

    def get(self, dialog: Dialog) -> B2BUA | None:
        return self._links.get(dialog.id)

    def peer(self, dialog: Dialog) -> Dialog | None:
        pair = self._links.get(dialog.id)
        return pair.peer(dialog) if pair is not None else None

    def replace(self, old: Dialog, new: Dialog) -> None:
        pair = self._links.pop(old.id)
        pair.replace(old, new)
        self._links[new.id] = pair

    def unlink(self, dialog: Dialog) -> None:
        pair = self._links.pop(dialog.id, None)
        if pair is not None:
            self._links.pop(pair.peer(dialog).id, None)

    def __len__(self) -> int:
        return len({id(p) for p in self._links.values()})


__all__ = ["B2BUA", "B2BUATable", "Dialog", "DialogId", "DialogState", "DialogTable", "new_tag",
           "uri_destination"]
