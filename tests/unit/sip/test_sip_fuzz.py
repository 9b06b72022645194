"""Property tests: garbage and mutated real messages never raise anything but SipParseError.

The number of inputs each property ran is printed (``pytest -s``) and kept in ``RUNS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secondnum.sip import (
    SipEndpoint,
    SipParseError,
    SipRequest,
    StreamFramer,
    TransactionLayer,
    parse_message,
)
from secondnum.sip.endpoint import IncomingRequest

RUNS: Counter[str] = Counter()

SDP = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n"
REAL = [
    (
        "INVITE tel:+42027777100 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.10.1.5:5060;branch=z9hG4bK-1;rport\r\n"
        "Max-Forwards: 68\r\n"
        "Route: <sip:as.ims.example.net;lr>, <sip:10.10.1.5;lr;odi=5a7f>\r\n"
        'From: "Caller" <tel:+42075553333>;tag=m1\r\nTo: <tel:+42027777100>\r\n'
        "Call-ID: c1@10.10.2.7\r\nCSeq: 1 INVITE\r\nContact: <sip:mgcf@10.10.2.7>\r\n"
        "P-Asserted-Identity: <tel:+42075553333>\r\n"
        "P-Served-User: <tel:+42027777100>;sescase=term;regstate=unreg\r\n"
        "P-Charging-Vector: icid-value=Ayre;orig-ioi=ims.example.net\r\n"
        "History-Info: <tel:+42027777100>;index=1, <tel:+42073723123;cause=302>;index=1.1\r\n"
        "Diversion: <tel:+42027777100>;reason=unconditional;counter=1\r\n"
        "Reason: SIP;cause=487;text=\"x\"\r\nSupported: timer\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(SDP)}\r\n\r\n"
    ).encode() + SDP,
    (
        b"SIP/2.0 200 OK\r\nv: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK2;received=1.2.3.4;rport=5\r\n"
        b"f: <sip:a@h>;tag=1\r\nt: <sip:b@h>;tag=2\r\ni: c2\r\nCSeq: 2 REFER\r\n"
        b"Retry-After: 5 (x);duration=9\r\nWarning: 399 h \"t\"\r\nl: 0\r\n\r\n"
    ),
    (
        b"NOTIFY sip:a@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK3\r\n"
        b"From: <sip:b@h>;tag=2\r\nTo: <sip:a@h>;tag=1\r\nCall-ID: c3\r\nCSeq: 3 NOTIFY\r\n"
        b"Event: refer;id=3\r\nSubscription-State: terminated;reason=noresource\r\n"
        b"Refer-To: <tel:+420273333444>\r\nReferred-By: <sip:m@h>\r\n"
        b"Content-Type: message/sipfrag;version=2.0\r\nContent-Length: 18\r\n\r\nSIP/2.0 200 OK\r\n\r\n"
    ),
]

PROPS = ("via", "call_id", "cseq", "from_", "to", "contact", "route", "record_route", "max_forwards",
         "p_asserted_identity", "p_served_user", "history_info", "diversion", "p_charging_vector", "reason",
         "refer_to", "referred_by", "supported", "require", "retry_after", "warning", "event",
         "subscription_state", "content_length")


def touch_everything(data: bytes) -> None:
    """Parse and read every typed field; only SipParseError (incl. BadHeaderError) may come out."""
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    for prop in PROPS:
        try:
            value = getattr(msg, prop)
            for item in value if isinstance(value, list) else [value]:
                uri = getattr(item, "uri", None)
                if uri is not None:
                    str(uri)
        except SipParseError:
            pass
    if isinstance(msg, SipRequest):
        with contextlib.suppress(SipParseError):
            str(msg.uri)
    msg.encode()
    layer = TransactionLayer()
    with contextlib.suppress(SipParseError):
        layer.receive(msg, ("127.0.0.1", 5060), "udp", now=0.0)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(REAL)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup", "splice"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from([b":", b";", b",", b"<", b">", b'"', b"\r\n", b" ", b"\x00",
                                                  b"\xff", b"=", b"@", b"[", b"\r\n ", b"SIP/2.0"]))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 20))]
        elif op == "dup":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 40))]
        else:
            other = draw(st.sampled_from(REAL))
            data[pos:] = other[draw(st.integers(0, len(other) - 1)):]
    return bytes(data)


def mutate(rng: random.Random) -> bytes:
    """A cheap seeded mutation (for the over-the-wire test, outside hypothesis)."""
    data = bytearray(rng.choice(REAL))
    for _ in range(rng.randint(1, 6)):
        pos = rng.randrange(len(data))
        if rng.random() < 0.5:
            data[pos] = rng.randrange(256)
        else:
            del data[pos:pos + rng.randint(1, 30)]
    return bytes(data)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_garbage_never_raises_unexpected(data: bytes) -> None:
    RUNS["garbage"] += 1
    touch_everything(data)


@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_real_messages_never_raise_unexpected(data: bytes) -> None:
    RUNS["mutated"] += 1
    touch_everything(data)


@settings(max_examples=1000, deadline=None)
@given(mutated(), st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_stream_framer_on_mutated_streams(data: bytes, cuts: list[int]) -> None:
    RUNS["stream"] += 1
    framer = StreamFramer()
    pos = 0
    try:
        for cut in cuts:
            for msg in framer.feed(data[pos:pos + cut]):
                touch_everything(msg)
            pos += cut
        framer.feed(data[pos:])
    except SipParseError:
        pass


def test_report_runs() -> None:
    print(f"\nhypothesis inputs run: {dict(RUNS)}")


async def test_endpoint_survives_garbage_on_the_wire() -> None:
    """Mutated datagrams sent over real UDP: the endpoint answers what it can and keeps serving."""
    handled: list[str] = []

    async def handler(inc: IncomingRequest) -> None:
        handled.append(inc.method)
        if inc.method != "ACK":
            inc.respond(200)

    ep = SipEndpoint(handler, port=0)
    await ep.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        rng = random.Random(3261)
        count = 0
        for _ in range(300):
            sock.sendto(mutate(rng), ("127.0.0.1", ep.port))
            count += 1
            if count % 20 == 0:
                await asyncio.sleep(0.01)
        # Still alive: a clean OPTIONS gets its 200.
        clean = REAL[0].replace(b"INVITE tel:+42027777100", b"OPTIONS sip:as@127.0.0.1").replace(
            b"1 INVITE", b"1 OPTIONS").replace(b"z9hG4bK-1", b"z9hG4bK-clean")
        loop = asyncio.get_running_loop()
        sock.sendto(clean, ("127.0.0.1", ep.port))
        reply = b""
        for _ in range(100):
            try:
                reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
            except TimeoutError:
                break
            if b"z9hG4bK-clean" in reply:
                break
        assert reply.startswith(b"SIP/2.0 200"), reply[:80]
        RUNS["udp_wire"] += count
    finally:
        sock.close()
        await ep.close()
