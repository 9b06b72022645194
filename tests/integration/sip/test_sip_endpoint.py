"""The asyncio endpoint over real UDP/TCP sockets on 127.0.0.1: our UAC against our UAS, raw-socket peers for
bad input (400 / 513 / drop), 2xx retransmission and re-ACK, in-dialog errors, REFER + NOTIFY, TCP reuse.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from secondnum.sip import (
    AckTimeoutError,
    Dialog,
    IncomingRequest,
    SipEndpoint,
    SipRequest,
    SipResponse,
    SipTransportError,
    TimerConfig,
    TransactionTimeoutError,
    parse_message,
)

SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n"
FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5)


class Uas:
    """Answers INVITE (unless the user part is ``ring``), BYE, REFER (202 + NOTIFY), anything else 200."""

    def __init__(self, timers: TimerConfig = FAST, **kw: object) -> None:
        self.ep = SipEndpoint(self.handle, port=0, timers=timers, **kw)  # type: ignore[arg-type]
        self.seen: list[IncomingRequest] = []
        self.ack_results: list[str] = []

    async def handle(self, inc: IncomingRequest) -> None:
        self.seen.append(inc)
        req = inc.request
        if req.method == "INVITE" and inc.dialog is None:
            inc.respond(180)
            if req.uri.user == "ring":
                await inc.cancelled.wait()
                return
            d = Dialog.from_uas(req, inc.to_tag, self.ep.local_contact(transport=inc.transport))
            self.ep.dialogs.add(d)
            inc.respond(200, body=SDP, content_type="application/sdp")
            d.confirm()
            try:
                await inc.wait_ack()
                self.ack_results.append("ack")
            except AckTimeoutError:
                self.ack_results.append("timeout")
        elif req.method == "REFER" and inc.dialog is not None:
            inc.respond(202)
            notify = inc.dialog.create_refer_notify("SIP/2.0 200 OK")
            dest, transport = inc.dialog.next_hop(inc.transport)
            await self.ep.request(notify, dest, transport).final_response()
        elif req.method == "OOPS":
            raise RuntimeError("handler bug")
        elif req.method == "MESSAGE":
            served = req.p_served_user  # raises BadHeaderError on a malformed value
            inc.respond(200 if served is not None else 404)
        elif req.method != "ACK":
            inc.respond(200)


@pytest.fixture
async def uas() -> AsyncIterator[Uas]:
    u = Uas()
    await u.ep.start()
    yield u
    await u.ep.close()


@pytest.fixture
async def uac() -> AsyncIterator[tuple[SipEndpoint, list[IncomingRequest]]]:
    got: list[IncomingRequest] = []

    async def handler(inc: IncomingRequest) -> None:
        got.append(inc)
        if inc.method != "ACK":
            inc.respond(200)

    ep = SipEndpoint(handler, port=0, timers=FAST)
    await ep.start()
    yield ep, got
    await ep.close()


def new_invite(ep: SipEndpoint, port: int, user: str = "bob", transport: str = "udp") -> SipRequest:
    return ep.new_request("INVITE", f"sip:{user}@127.0.0.1:{port}", "<sip:alice@127.0.0.1>",
                          f"<sip:{user}@127.0.0.1>", body=SDP, content_type="application/sdp",
                          transport=transport)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_call_reinvite_refer_notify_bye(uas: Uas, uac: tuple[SipEndpoint, list[IncomingRequest]],
                                              transport: str) -> None:
    ep, got = uac
    req = new_invite(ep, uas.ep.port, transport=transport)
    handle = ep.request(req, ("127.0.0.1", uas.ep.port), transport)
    provisional = [r.status async for r in handle.provisionals()]
    resp = await handle.final_response()
    assert provisional == [180] and resp.status == 200 and resp.body == SDP  # no 100: answered at once
    assert resp.to.tag and str(resp.contact[0].uri).startswith("sip:127.0.0.1:")
    dialog = ep.dialogs.add(Dialog.from_uac(req, resp, ep.local_contact(transport=transport)))
    ep.send_ack(dialog.create_ack(req.cseq.seq), *dialog.next_hop(transport))
    reinvite = dialog.create_request("INVITE", body=SDP, content_type="application/sdp")
    r2 = await ep.request(reinvite, *dialog.next_hop(transport)).final_response()
    assert r2.status == 200
    ep.send_ack(dialog.create_ack(reinvite.cseq.seq), *dialog.next_hop(transport))
    refer = dialog.create_request("REFER", headers=[("Refer-To", "<tel:+420273333444>")])
    assert (await ep.request(refer, *dialog.next_hop(transport)).final_response()).status == 202
    for _ in range(200):
        if any(i.method == "NOTIFY" for i in got):
            break
        await asyncio.sleep(0.01)
    notify = next(i for i in got if i.method == "NOTIFY")
    assert notify.dialog is dialog and notify.request.body == b"SIP/2.0 200 OK\r\n"
    assert notify.transport == transport and notify.source[0] == "127.0.0.1"
    bye = dialog.create_request("BYE")
    assert (await ep.request(bye, *dialog.next_hop(transport)).final_response()).status == 200
    await asyncio.sleep(0.05)
    assert uas.ack_results == ["ack"]
    assert [i.method for i in uas.seen] == ["INVITE", "ACK", "INVITE", "ACK", "REFER", "BYE"]
    if transport == "tcp":
        # Our requests reused one connection; the UAS's NOTIFY came over its own connection to our Contact
        # port (no RFC 5923 alias), hence two.
        assert ep.transport.connections == 2
        assert uas.ep.transport.connections == 2


async def test_cancel_from_our_uac(uas: Uas, uac: tuple[SipEndpoint, list[IncomingRequest]]) -> None:
    ep, _ = uac
    handle = ep.request(new_invite(ep, uas.ep.port, "ring"), ("127.0.0.1", uas.ep.port), "udp")
    async for prov in handle.provisionals():
        if prov.status == 180:
            cancel = ep.cancel(handle, reason='SIP;cause=408;text="no answer"')
            assert cancel is not None
            assert (await cancel.final_response()).status == 200
    assert (await handle.final_response()).status == 487
    await asyncio.sleep(0.05)
    assert uas.seen[0].cancelled.is_set()


async def test_timeout_to_silent_peer_is_an_exception() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))

    async def handler(inc: IncomingRequest) -> None:
        inc.respond(200)

    ep = SipEndpoint(handler, port=0, timers=TimerConfig(t1=0.02, t2=0.1))
    await ep.start()
    try:
        port = silent.getsockname()[1]
        with pytest.raises(TransactionTimeoutError) as err:
            await ep.request(new_invite(ep, port), ("127.0.0.1", port), "udp").final_response()
        assert err.value.timer == "B"
        opts = ep.new_request("OPTIONS", f"sip:x@127.0.0.1:{port}", "<sip:a@127.0.0.1>", "<sip:x@127.0.0.1>")
        with pytest.raises(TransactionTimeoutError) as err:
            await ep.request(opts, ("127.0.0.1", port), "udp").final_response()
        assert err.value.timer == "F"
    finally:
        silent.close()
        await ep.close()


# --- raw-socket peers -----------------------------------------------------------------------------------

class RawUdp:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, ("127.0.0.1", port))

    async def recv(self, timeout: float = 5.0) -> bytes:
        return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.sock, 70000), timeout)

    async def recv_final(self, timeout: float = 5.0) -> SipResponse:
        while True:
            msg = parse_message(await self.recv(timeout))
            if isinstance(msg, SipResponse) and msg.status >= 200:
                return msg


def raw_request(method: str, port: int, src_port: int, *, branch: str = "z9hG4bKraw1", extra: str = "",
                cseq: str | None = None, to_tag: str = "", body: bytes = b"",
                call_id: str | None = None) -> bytes:
    to = f"<sip:bob@127.0.0.1>{';tag=' + to_tag if to_tag else ''}"
    return (
        f"{method} sip:bob@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{src_port};branch={branch};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:raw@127.0.0.1>;tag=r1\r\nTo: {to}\r\n"
        f"Call-ID: {call_id or 'raw-' + branch}\r\nCSeq: {cseq or '1 ' + method}\r\n"
        f"Contact: <sip:raw@127.0.0.1:{src_port}>\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@pytest.fixture
def raw() -> Iterator[RawUdp]:
    r = RawUdp()
    yield r
    r.sock.close()


@pytest.mark.parametrize(
    ("mutation", "header"),
    [
        (("CSeq: 1 OPTIONS", "CSeq: x OPTIONS"), "CSeq"),
        (("From: <sip:raw@127.0.0.1>;tag=r1", "From: <sip:raw@127.0.0.1"), "From"),
        (("To: <sip:bob@127.0.0.1>", "To: nonsense"), "To"),
        (("OPTIONS sip:bob@", "OPTIONS sip:@"), "Request-URI"),
    ],
)
async def test_bad_header_gets_400_with_warning(uas: Uas, raw: RawUdp, mutation: tuple[str, str],
                                                header: str) -> None:
    data = raw_request("OPTIONS", uas.ep.port, raw.port).replace(mutation[0].encode(), mutation[1].encode())
    raw.send(data, uas.ep.port)
    resp = await raw.recv_final()
    assert resp.status == 400
    assert resp.warning[0].code == 399 and resp.warning[0].text == f"Bad header: {header}"
    assert uas.seen == []


async def test_garbage_and_bad_via_are_dropped_and_endpoint_keeps_serving(uas: Uas, raw: RawUdp) -> None:
    raw.send(b"\x00\xff garbage \r\n\r\n", uas.ep.port)
    raw.send(raw_request("OPTIONS", uas.ep.port, raw.port).replace(b"Via: SIP/2.0/UDP", b"Via: SIP/9/UDP"),
             uas.ep.port)
    raw.send(raw_request("OPTIONS", uas.ep.port, raw.port, branch="z9hG4bKok"), uas.ep.port)
    resp = await raw.recv_final()
    assert resp.status == 200 and resp.top_via.branch == "z9hG4bKok"


async def test_oversize_udp_request_gets_513() -> None:
    async def handler(inc: IncomingRequest) -> None:
        inc.respond(200)

    ep = SipEndpoint(handler, port=0, max_message_size=2000)
    await ep.start()
    r = RawUdp()
    try:
        r.send(raw_request("MESSAGE", ep.port, r.port, body=b"x" * 3000), ep.port)
        resp = await r.recv_final()
        assert resp.status == 513
    finally:
        r.sock.close()
        await ep.close()


async def test_oversize_tcp_request_gets_513_and_connection_closed() -> None:
    async def handler(inc: IncomingRequest) -> None:
        inc.respond(200)

    ep = SipEndpoint(handler, port=0, max_message_size=2000)
    await ep.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", ep.port)
        head = raw_request("MESSAGE", ep.port, 5060).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
        head = head.replace(b"Content-Length: 0", b"Content-Length: 50000")
        writer.write(head)
        data = await asyncio.wait_for(reader.read(), 5)  # read until the server closes
        assert data.startswith(b"SIP/2.0 513 ")
        writer.close()
    finally:
        await ep.close()


async def test_in_dialog_request_for_unknown_dialog_gets_481(uas: Uas, raw: RawUdp) -> None:
    raw.send(raw_request("BYE", uas.ep.port, raw.port, to_tag="nope"), uas.ep.port)
    assert (await raw.recv_final()).status == 481


async def test_handler_exception_becomes_500(uas: Uas, raw: RawUdp) -> None:
    raw.send(raw_request("OOPS", uas.ep.port, raw.port), uas.ep.port)
    assert (await raw.recv_final()).status == 500


async def test_bad_header_read_by_the_handler_gets_400(uas: Uas, raw: RawUdp) -> None:
    raw.send(raw_request("MESSAGE", uas.ep.port, raw.port, extra="P-Served-User: <tel:+1;sescase=term\r\n"),
             uas.ep.port)
    resp = await raw.recv_final()
    assert resp.status == 400 and resp.warning[0].text == "Bad header: P-Served-User"


async def test_max_forwards_zero_gets_483_except_options(uas: Uas, raw: RawUdp) -> None:
    raw.send(raw_request("INFO", uas.ep.port, raw.port).replace(b"Max-Forwards: 70", b"Max-Forwards: 0"),
             uas.ep.port)
    assert (await raw.recv_final()).status == 483
    raw.send(raw_request("OPTIONS", uas.ep.port, raw.port, branch="z9hG4bKmf0").replace(
        b"Max-Forwards: 70", b"Max-Forwards: 0"), uas.ep.port)
    assert (await raw.recv_final()).status == 200


async def test_uas_retransmits_2xx_until_ack_then_stops(uas: Uas, raw: RawUdp) -> None:
    raw.send(raw_request("INVITE", uas.ep.port, raw.port, body=SDP), uas.ep.port)
    first = await raw.recv_final()
    assert first.status == 200
    again = await raw.recv_final(timeout=2)  # retransmitted at T1 (50 ms here)
    assert again.status == 200 and again.to.tag == first.to.tag
    ack = raw_request("ACK", uas.ep.port, raw.port, branch="z9hG4bKack", cseq="1 ACK",
                      to_tag=first.to.tag or "",
                      call_id=first.call_id)
    raw.send(ack, uas.ep.port)
    await asyncio.sleep(0.3)
    while True:  # drain what was in flight
        try:
            await raw.recv(timeout=0.05)
        except TimeoutError:
            break
    with pytest.raises(TimeoutError):
        await raw.recv(timeout=0.5)
    assert uas.ack_results == ["ack"]


async def test_uas_ack_timeout_event() -> None:
    timeouts: list[IncomingRequest] = []
    u = Uas(timers=TimerConfig(t1=0.02, t2=0.1), on_ack_timeout=timeouts.append)
    await u.ep.start()
    r = RawUdp()
    try:
        r.send(raw_request("INVITE", u.ep.port, r.port, body=SDP), u.ep.port)
        for _ in range(200):
            if u.ack_results:
                break
            await asyncio.sleep(0.02)
        assert u.ack_results == ["timeout"] and len(timeouts) == 1  # 64*T1 = 1.28 s
    finally:
        r.sock.close()
        await u.ep.close()


async def test_uac_reacks_retransmitted_2xx(uac: tuple[SipEndpoint, list[IncomingRequest]],
                                           raw: RawUdp) -> None:
    """A raw UAS re-sends its 200 after our ACK; the endpoint must send the same ACK again (RFC 6026 §8.4)."""
    ep, _ = uac
    req = new_invite(ep, raw.port)
    handle = ep.request(req, ("127.0.0.1", raw.port), "udp")
    invite = parse_message(await raw.recv())
    assert isinstance(invite, SipRequest)
    contact = f"<sip:raw@127.0.0.1:{raw.port}>"
    ok = invite.create_response(200, to_tag="rawtag", headers=[("Contact", contact)])
    raw.send(ok.encode(), ep.port)
    resp = await handle.final_response()
    dialog = Dialog.from_uac(req, resp, ep.local_contact())
    ep.send_ack(dialog.create_ack(req.cseq.seq), *dialog.next_hop())
    ack1 = await raw.recv()
    assert ack1.startswith(b"ACK ")
    raw.send(ok.encode(), ep.port)  # 2xx retransmission
    ack2 = await raw.recv()
    assert ack2 == ack1


async def test_uac_acks_and_releases_the_2xx_of_another_fork(
        uac: tuple[SipEndpoint, list[IncomingRequest]], raw: RawUdp) -> None:
    """A forking proxy delivers a second 2xx with another To tag after we ACKed the first: the endpoint ACKs
    it and sends BYE on that second dialog (RFC 3261 §13.2.2.4), while the first dialog is untouched."""
    ep, _ = uac
    req = new_invite(ep, raw.port)
    handle = ep.request(req, ("127.0.0.1", raw.port), "udp")
    invite = parse_message(await raw.recv())
    assert isinstance(invite, SipRequest)
    contact = f"<sip:raw@127.0.0.1:{raw.port}>"
    first = invite.create_response(200, to_tag="fork1", headers=[("Contact", contact)])
    raw.send(first.encode(), ep.port)
    resp = await handle.final_response()
    dialog = Dialog.from_uac(req, resp, ep.local_contact())
    ep.send_ack(dialog.create_ack(req.cseq.seq), *dialog.next_hop())
    assert (await raw.recv()).startswith(b"ACK ")
    second = invite.create_response(200, to_tag="fork2", headers=[("Contact", contact)])
    raw.send(second.encode(), ep.port)
    got = [parse_message(await raw.recv()) for _ in range(2)]
    methods = {m.method: m for m in got if isinstance(m, SipRequest)}
    assert set(methods) == {"ACK", "BYE"}
    assert methods["ACK"].to.tag == "fork2" and methods["BYE"].to.tag == "fork2"
    assert methods["BYE"].call_id == req.call_id
    raw.send(methods["BYE"].create_response(200).encode(), ep.port)
    raw.send(first.encode(), ep.port)  # the first fork's 2xx again: only the same ACK, no BYE
    again = parse_message(await raw.recv())
    assert isinstance(again, SipRequest) and again.method == "ACK" and again.to.tag == "fork1"


async def test_accepted_invite_does_not_keep_the_application_objects(
        uac: tuple[SipEndpoint, list[IncomingRequest]], raw: RawUdp) -> None:
    """During Timer M (RFC 6026 §8.4) the transaction keeps only what re-ACKing needs: once the application
    lets go of its handle, the handle, the full request and the response are freed at once (reference
    counting), although the transaction still absorbs 2xx retransmissions for 64*T1."""
    import gc
    import sys

    ep, _ = uac
    req = new_invite(ep, raw.port)
    handle = ep.request(req, ("127.0.0.1", raw.port), "udp")
    invite = parse_message(await raw.recv())
    assert isinstance(invite, SipRequest)
    ok = invite.create_response(200, to_tag="t1", headers=[("Contact", f"<sip:raw@127.0.0.1:{raw.port}>")])
    raw.send(ok.encode(), ep.port)
    resp = await handle.final_response()
    dialog = Dialog.from_uac(req, resp, ep.local_contact())
    ep.send_ack(dialog.create_ack(req.cseq.seq), *dialog.next_hop())
    ack = await raw.recv()
    assert sys.getrefcount(handle) == 2  # this frame's name and getrefcount's argument: nobody else
    # Everything the endpoint keeps (the transaction layer, the INVITE index) must not reach the handle, the
    # application's request or the response.
    kept: list[object] = [ep.layer, ep._invites]
    seen = {id(o) for o in kept}
    while kept:
        for ref in gc.get_referents(kept.pop()):
            if id(ref) not in seen and not isinstance(ref, (type, asyncio.AbstractEventLoop)):
                seen.add(id(ref))
                kept.append(ref)
    assert not seen & {id(handle), id(req), id(resp)}
    del handle, req, resp, dialog
    assert ep.layer.client_transactions == 1  # still in Accepted
    raw.send(ok.encode(), ep.port)
    assert await raw.recv() == ack


async def test_tcp_idle_connection_closed() -> None:
    async def handler(inc: IncomingRequest) -> None:
        inc.respond(200)

    ep = SipEndpoint(handler, port=0, tcp_idle_timeout=0.5)
    await ep.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", ep.port)
        writer.write(raw_request("OPTIONS", ep.port, 5060).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line.startswith(b"SIP/2.0 200")
        assert ep.transport.connections == 1
        rest = await asyncio.wait_for(reader.read(), 10)  # EOF once the idle sweep closes it
        assert b"SIP/2.0" in rest or rest == b""
        await asyncio.sleep(0.1)
        assert ep.transport.connections == 0
        writer.close()
    finally:
        await ep.close()


async def test_tcp_connect_refused_fails_pending_requests_at_once(
        uac: tuple[SipEndpoint, list[IncomingRequest]]) -> None:
    ep, _ = uac
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nobody listens once the socket is closed
    opts = ep.new_request("OPTIONS", f"sip:x@127.0.0.1:{closed_port}", "<sip:a@127.0.0.1>",
                          "<sip:x@127.0.0.1>", transport="tcp")
    with pytest.raises(SipTransportError):
        await asyncio.wait_for(ep.request(opts, ("127.0.0.1", closed_port), "tcp").final_response(), 10)
    with pytest.raises(SipTransportError):
        handle = ep.request(new_invite(ep, closed_port, transport="tcp"), ("127.0.0.1", closed_port), "tcp")
        await asyncio.wait_for(handle.final_response(), 10)


async def test_tcp_garbage_closes_only_that_connection(uas: Uas) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", uas.ep.port)
    writer.write(b"NOT SIP AT ALL\r\nContent-Length: banana\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the endpoint
    writer.close()
    # The listener still serves other connections.
    reader, writer = await asyncio.open_connection("127.0.0.1", uas.ep.port)
    writer.write(raw_request("OPTIONS", uas.ep.port, 5060).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"SIP/2.0 200")
    writer.close()


async def test_host_names_are_refused_without_any_dns_lookup(
        uac: tuple[SipEndpoint, list[IncomingRequest]], monkeypatch: pytest.MonkeyPatch) -> None:
    ep, _ = uac

    def no_dns(*args: object, **kwargs: object) -> None:
        raise AssertionError("DNS lookup attempted")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    opts = ep.new_request("OPTIONS", "sip:as@ims.example.net", "<sip:a@127.0.0.1>",
                          "<sip:as@ims.example.net>")
    with pytest.raises(SipTransportError):
        await asyncio.wait_for(ep.request(opts).final_response(), 10)


async def test_finished_invites_leave_no_bookkeeping_behind(uas: Uas) -> None:
    async def handler(inc: IncomingRequest) -> None:
        inc.respond(200)

    ep = SipEndpoint(handler, port=0, timers=TimerConfig(t1=0.02, t2=0.1, t4=0.1, d=0.2))
    await ep.start()
    try:
        for user in ("bob", "ring"):
            req = new_invite(ep, uas.ep.port, user)
            handle = ep.request(req, ("127.0.0.1", uas.ep.port), "udp")
            if user == "ring":
                async for prov in handle.provisionals():
                    if prov.status == 180:
                        ep.cancel(handle)
            resp = await handle.final_response()
            if resp.status == 200:
                d = Dialog.from_uac(req, resp, ep.local_contact())
                ep.send_ack(d.create_ack(req.cseq.seq), *d.next_hop())
        assert len(ep._invites) == 2
        for _ in range(300):  # Timer M = 64*T1 = 1.28 s, Timer D = 0.2 s here
            if not ep._invites and ep.layer.client_transactions == 0:
                break
            await asyncio.sleep(0.02)
        assert ep._invites == {} and ep.layer.client_transactions == 0
    finally:
        await ep.close()


# --- screening before any transaction ------------------------------------------------------------------

@pytest.mark.parametrize(("verdict", "expected"), [(403, 403), (0, None)])
async def test_screen_answers_statelessly_or_drops(raw: RawUdp, verdict: int, expected: int | None) -> None:
    seen: list[tuple[str, str]] = []

    def screen(req: SipRequest, source: tuple[str, int], transport: str) -> int | None:
        seen.append((req.method, transport))
        return None if req.uri.user == "friend" else verdict

    u = Uas(screen=screen)
    await u.ep.start()
    try:
        raw.send(raw_request("INVITE", u.ep.port, raw.port, body=SDP), u.ep.port)
        if expected is None:
            with pytest.raises(TimeoutError):
                await raw.recv(0.6)
        else:
            resp = await raw.recv_final()
            assert resp.status == expected
            # Stateless: no retransmission although no ACK ever comes (T1 = 50 ms: G would fire by now).
            with pytest.raises(TimeoutError):
                await raw.recv(0.6)
        assert u.seen == []
        # An admitted request reaches the handler; in-dialog requests and CANCEL/ACK are never screened.
        ok = raw_request("OPTIONS", u.ep.port, raw.port, branch="z9hG4bKok").replace(b"bob@", b"friend@")
        raw.send(ok, u.ep.port)
        assert (await raw.recv_final()).status == 200
        raw.send(raw_request("BYE", u.ep.port, raw.port, branch="z9hG4bKbye", to_tag="x"), u.ep.port)
        assert (await raw.recv_final()).status == 481
        assert seen == [("INVITE", "udp"), ("OPTIONS", "udp")]
    finally:
        await u.ep.close()
