"""Fuzz targets and the mutation engine shared by the hypothesis tests and the offline runner (``run.py``).

A target takes bytes (or a list of byte strings), drives the public entry points of one core and returns an
outcome label ("ok" or the documented error it ended in). Any other exception escapes: that is a finding.
State-leak checks raise :class:`LeakError`.

Mutations are described by plain tuples ``(op, a, b)`` so that hypothesis can draw and shrink them and the
offline runner can generate them from a seeded ``random.Random`` with the same semantics.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable, Sequence

import fuzz_corpus as corpus

from media.rtp import packet as rtp
from media.rtp import rtcp
from media.rtp.dtmf import DtmfReceiver, decode_event
from media.rtp.rtcp_session import RtcpSession
from media.rtp.session import RtpSession
from secondnum import sdp
from secondnum.diameter import codec
from secondnum.diameter.peer import LocalIdentity, PeerConnection
from secondnum.sip import (
    AckTimeout,
    CancelReceived,
    ClientInviteTransaction,
    RequestReceived,
    ResponseReceived,
    SipParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    TimerConfig,
    TransactionLayer,
    parse_message,
)
from secondnum.sip.headers import Headers
from secondnum.sip.transaction import Event


class LeakError(AssertionError):
    """A core kept state (a transaction, a timer) after every timer had run out."""


# --- mutation engine ------------------------------------------------------------------------------------

Op = tuple[int, int, int]
N_OPS = 12
_NUM_RE = re.compile(rb"\d+")
_BOUNDARY = [b"0", b"1", b"-1", b"65535", b"65536", b"2147483648", b"4294967295", b"4294967296",
             b"99999999999999999999", b"00000000001", b""]


def apply_ops(seed: bytes, ops: Sequence[Op], seeds: Sequence[bytes], tokens: Sequence[bytes]) -> bytes:
    """Apply mutation ``ops`` to ``seed``; positions and choices are taken modulo what exists."""
    data = bytearray(seed)
    for op, a, b in ops:
        n = len(data)
        pos = a % (n + 1)
        kind = op % N_OPS
        if kind == 0 and n:  # flip one byte
            data[a % n] = b & 0xFF
        elif kind == 1:  # insert a grammar token
            data[pos:pos] = tokens[b % len(tokens)]
        elif kind == 2:  # delete a range
            del data[pos:pos + 1 + b % 40]
        elif kind == 3:  # duplicate a range in place
            data[pos:pos] = data[pos:pos + 1 + b % 60]
        elif kind == 4:  # splice the tail of another seed
            other = seeds[b % len(seeds)]
            data[pos:] = other[(b >> 8) % max(1, len(other)):]
        elif kind == 5:  # truncate
            del data[pos:]
        elif kind == 6:  # replace a number by a boundary value
            nums = list(_NUM_RE.finditer(bytes(data)))
            if nums:
                m = nums[a % len(nums)]
                data[m.start():m.end()] = _BOUNDARY[b % len(_BOUNDARY)]
        elif kind in (7, 8, 9):  # line-level: duplicate, drop, swap (text protocols)
            lines = bytes(data).split(b"\r\n")
            if len(lines) > 1:
                i, j = a % len(lines), b % len(lines)
                if kind == 7:
                    lines.insert(i, lines[j])
                elif kind == 8:
                    del lines[i]
                else:
                    lines[i], lines[j] = lines[j], lines[i]
                data = bytearray(b"\r\n".join(lines))
        elif kind == 10:  # random bytes
            data[pos:pos] = random.Random(b).randbytes(1 + b % 16)
        elif kind == 11 and n:  # set or clear high bit / bit flip (binary protocols)
            data[a % n] ^= 1 << (b % 8)
    return bytes(data)


_OP_COUNTS = (1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 6, 8)


def random_ops(rng: random.Random, max_ops: int = 8) -> list[Op]:
    """Mostly one to three mutations: deep enough to stay near the grammar, sometimes many."""
    count = min(max_ops, rng.choice(_OP_COUNTS))
    return [(rng.randrange(N_OPS), rng.getrandbits(16), rng.getrandbits(24)) for _ in range(count)]


def mutate(rng: random.Random, seeds: Sequence[bytes], tokens: Sequence[bytes]) -> bytes:
    return apply_ops(rng.choice(seeds), random_ops(rng), seeds, tokens)


# --- SIP parser -----------------------------------------------------------------------------------------

SIP_PROPS = ("via", "top_via", "call_id", "cseq", "from_", "to", "contact", "route", "record_route",
             "max_forwards", "p_asserted_identity", "p_served_user", "history_info", "diversion",
             "p_charging_vector", "reason", "refer_to", "referred_by", "supported", "require", "retry_after",
             "warning", "event", "subscription_state", "content_type", "content_length")


def sip_message(data: bytes) -> str:
    """parse_message, every typed accessor, str() of every URI, encode and re-parse of the encoding."""
    try:
        msg = parse_message(data)
    except SipParseError:
        return "SipParseError"
    bad = 0
    for prop in SIP_PROPS:
        try:
            value = getattr(msg, prop)
        except SipParseError:
            bad += 1
            continue
        for item in value if isinstance(value, list) else [value]:
            try:  # NameAddr parses its URI lazily: a broken one is a BadHeaderError
                str(item)
                uri = getattr(item, "uri", None)
                if uri is not None:
                    str(uri)
            except SipParseError:
                bad += 1
    if isinstance(msg, SipRequest):
        try:
            str(msg.uri)
        except SipParseError:
            bad += 1
    encoded = msg.encode()
    try:
        again = parse_message(encoded)
    except SipParseError as exc:
        # What we parsed, we must be able to re-read after encoding (we forward such messages).
        raise AssertionError(f"encoded message does not parse again: {exc}") from exc
    if type(again) is not type(msg):
        raise AssertionError("re-parse changed the message kind")
    return "ok" if not bad else "BadHeaderError"


def sip_stream(data: bytes, cuts: Sequence[int]) -> str:
    """StreamFramer fed in arbitrary chunks; every framed message goes through :func:`sip_message`."""
    framer = StreamFramer()
    pos = 0
    try:
        for cut in [*cuts, len(data)]:
            for frame in framer.feed(data[pos:pos + cut]):
                sip_message(frame)
            pos += cut
    except SipParseError:
        return "SipParseError"
    return "ok"


# --- SIP transaction layer ------------------------------------------------------------------------------

_FINALS = (200, 486, 487, 500, 603, 302)
_SOURCES = (("10.10.1.5", 5060), ("127.0.0.1", 5070), ("10.9.9.9", 5061))


def _ack_for(resp: SipResponse, request: SipRequest) -> SipRequest:
    h = Headers()
    h.set("via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-tu-ack")
    for name in ("from", "call-id"):
        raw = request.headers.get_raw(name)
        if raw:
            h.set(name, raw)
    h.set("to", resp.headers.get_raw("to") or [])
    h.set("cseq", f"{request.cseq.seq} ACK")
    return SipRequest("ACK", request.raw_uri, h)


class _Tu:
    """A transaction user that always answers, like the AS's handlers (the endpoint answers 500 otherwise)."""

    def __init__(self, layer: TransactionLayer) -> None:
        self.layer = layer
        self.pending: list[RequestReceived] = []
        self.events = 0

    def handle(self, events: list[Event], now: float) -> None:
        for ev in events:
            self.events += 1
            if isinstance(ev, RequestReceived):
                self.pending.append(ev)
            elif isinstance(ev, CancelReceived):
                self.respond(ev.tx.request, 487, now)
            elif (isinstance(ev, ResponseReceived) and isinstance(ev.tx, ClientInviteTransaction)
                  and 200 <= ev.response.status < 300):
                self.layer.send_stateless(_ack_for(ev.response, ev.tx.request), ev.tx.dest, ev.tx.transport)
            elif isinstance(ev, AckTimeout):
                pass

    def respond(self, request: SipRequest, code: int, now: float) -> None:
        resp = request.create_response(code, to_tag="as1")
        if self.layer.send_response(resp, now) is None and code >= 200:
            tx = self.layer.find_server(resp)
            if tx is not None and not tx.final_sent:
                raise LeakError(f"final {code} for {request.method} matched no open server transaction")

    def answer_some(self, choice: int, now: float) -> None:
        keep: list[RequestReceived] = []
        for n, ev in enumerate(self.pending):
            c = (choice >> (n % 16)) & 3
            if c == 0:
                keep.append(ev)
                continue
            if ev.request.method == "INVITE" and c == 1:
                self.respond(ev.request, 180, now)
                keep.append(ev)
                continue
            self.respond(ev.request, _FINALS[(choice + n) % len(_FINALS)], now)
        self.pending = keep


def sip_transactions(datagrams: Sequence[bytes], choices: Sequence[int], validate: bool = True) -> str:
    """Feed datagrams (requests and responses) to a layer with two client transactions open; a TU answers.

    After the last input the TU answers every open server transaction, then timers run until none is left:
    both transaction tables, the 2xx-ACK matching table and the timer heap must then be empty. With
    ``validate=False`` messages reach the layer without the endpoint's checks (the sans-IO contract alone).
    """
    layer = TransactionLayer(TimerConfig(t1=0.5, t2=4.0, t4=5.0))
    tu = _Tu(layer)
    now = 0.0
    inv = parse_message(corpus.INVITE)
    assert isinstance(inv, SipRequest)
    client_inv = SipRequest("INVITE", "tel:+42073723123", Headers())
    for name, value in (("via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-c-inv"),
                        ("from", "<tel:+42027777100>;tag=b2b-1"), ("to", "<tel:+42073723123>"),
                        ("call-id", "b2b-call-1"), ("cseq", "1 INVITE"), ("max-forwards", "70")):
        client_inv.headers.set(name, value)
    client_opt = SipRequest("OPTIONS", "sip:scscf@127.0.0.1", Headers())
    for name, value in (("via", "SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-c-opt"),
                        ("from", "<sip:as@127.0.0.1>;tag=o1"), ("to", "<sip:scscf@127.0.0.1>"),
                        ("call-id", "opt-c-1"), ("cseq", "9 OPTIONS")):
        client_opt.headers.set(name, value)
    layer.send_request(client_inv, ("127.0.0.1", 5080), "udp", now)
    layer.send_request(client_opt, ("127.0.0.1", 5080), "tcp", now)
    outcome = "ok"
    for i, data in enumerate(datagrams):
        choice = choices[i % len(choices)] if choices else i
        now += (choice % 7) * 0.15
        tu.handle(layer.on_timer(now), now)
        try:
            msg = parse_message(data)
        except SipParseError:
            outcome = "SipParseError"
            continue
        source = _SOURCES[choice % len(_SOURCES)]
        transport = "tcp" if choice & 8 else "udp"
        try:
            if validate:  # what SipEndpoint._on_message does before the layer sees a message
                msg.validate()
                if isinstance(msg, SipRequest):
                    _ = msg.uri
                    _ = msg.max_forwards
            tu.handle(layer.receive(msg, source, transport, now), now)
        except SipParseError:
            outcome = "BadHeaderError"
            continue
        tu.answer_some(choice >> 4, now)
        layer.take_outgoing()
    # Every request gets its final response, as the endpoint guarantees (handler error -> 500), and an
    # INVITE still ringing is CANCELled, as the AS does at its no-answer timer (RFC 3261 §9.1, §17.1.1.2:
    # a client INVITE transaction in Proceeding has no timer of its own).
    for ctx in list(layer._client.values()):
        if isinstance(ctx, ClientInviteTransaction):
            layer.cancel_started(ctx, now)
    for ev in tu.pending:
        tu.respond(ev.request, 500 if ev.request.method != "INVITE" else 486, now)
    tu.pending.clear()
    steps = 0
    deadline = layer.next_deadline()
    while deadline is not None:
        steps += 1
        if steps > 10_000:
            raise LeakError("timers keep re-arming after 10,000 firings")
        now = max(now, deadline)
        tu.handle(layer.on_timer(now), now)
        for ev in tu.pending:  # requests that arrived via timer-driven events (none expected)
            tu.respond(ev.request, 500, now)
        tu.pending.clear()
        layer.take_outgoing()
        deadline = layer.next_deadline()
    if layer.client_transactions or layer.server_transactions or layer._accepted:
        raise LeakError(f"after all timers: {layer.client_transactions} client, {layer.server_transactions} "
                        f"server, {len(layer._accepted)} accepted-2xx entries left "
                        f"({list(layer._server.values())[:3]} {list(layer._client.values())[:3]})")
    return outcome


# --- SDP --------------------------------------------------------------------------------------------------

def sdp_body(data: bytes) -> str:
    """parse_sdp, then the media server's answer and the AS's accept path on what parsed."""
    try:
        offer = sdp.parse_sdp(data)
    except sdp.SdpError:
        return "SdpError"
    for m in offer.media:
        for pt in m.rtpmaps():
            m.fmtp(pt)
        _ = (m.direction, m.ptime, offer.connection_for(m))
    _ = offer.direction
    encoded = offer.encode()
    try:
        sdp.parse_sdp(encoded)
    except sdp.SdpError as exc:
        raise AssertionError(f"encoded SDP does not parse again: {exc}") from exc
    try:
        negotiated = sdp.answer_audio(offer, local_host="127.0.0.1", local_port=20000, session_id="1")
    except sdp.SdpError:
        return "NegotiationError"
    try:
        sdp.accept_answer(offer, sdp.parse_sdp(negotiated.answer.encode()))
    except sdp.SdpError as exc:
        raise AssertionError(f"our own answer is refused by accept_answer: {exc}") from exc
    return "ok"


# --- RTP and RFC 4733 -------------------------------------------------------------------------------------

def rtp_datagram(data: bytes) -> str:
    """rtp.decode, the session's receive path (latching, stats, telephone-event) and the DTMF decoder."""
    session = RtpSession(0, 101, ("127.0.0.1", 40000))
    ev = session.receive(data, ("127.0.0.1", 40000), 1.0)
    session.receive(data, ("127.0.0.1", 40002), 1.02)
    try:
        decode_event(data)
        DtmfReceiver().feed(1, 2, data)
    except ValueError:
        pass
    try:
        pkt = rtp.decode(data)
    except rtp.RtpError as exc:
        return f"RtpError:{exc.reason}"
    if rtp.decode(pkt.encode()).payload != pkt.payload:
        raise AssertionError("RTP re-encoding changed the payload")
    return type(ev).__name__


# --- RTCP -----------------------------------------------------------------------------------------------

def rtcp_datagram(data: bytes) -> str:
    """rtcp.decode (only RtcpError), re-encoding of what decoded, and the session's receive/report path."""
    session = RtcpSession(RtpSession(0, 101, ("127.0.0.1", 40000)), now=1.0, ntp_offset=0.0,
                          rng=random.Random(1))
    dropped = session.receive(data, ("127.0.0.1", 40001), 1.5)
    session.report(2.0)
    try:
        packets = rtcp.decode(data)
    except rtcp.RtcpError as exc:
        if dropped is None:
            raise AssertionError("the session kept a datagram rtcp.decode rejects") from exc
        return f"RtcpError:{exc.reason}"
    known = [p for p in packets if not isinstance(p, rtcp.UnknownRtcp)]
    if known and isinstance(known[0], rtcp.SenderReport | rtcp.ReceiverReport):
        again = rtcp.decode(b"".join(rtcp.encode(p) for p in known))
        if again != known:
            raise AssertionError(f"RTCP re-encoding changed the packets: {known!r} -> {again!r}")
    return "ok"


# --- Diameter -------------------------------------------------------------------------------------------

def diameter_message(data: bytes) -> str:
    """codec.decode: only codec.DiameterError may come out; a decoded message re-encodes and re-decodes."""
    try:
        msg = codec.decode(data)
    except codec.DiameterError as exc:
        return f"DiameterError:{exc.result_code}"
    codec.result_code(msg)
    again = codec.decode(codec.encode(msg))
    if again.header.command_code != msg.header.command_code:
        raise AssertionError("re-encoding changed the command code")
    return "ok"


def diameter_peer(data: bytes, split: int) -> str:
    """A responder PeerConnection fed a valid CER then arbitrary bytes: events only, never an exception."""
    peer = PeerConnection(LocalIdentity("ocs.ims.example.net", "ims.example.net"), initiator=False, now=0.0)
    peer.connection_made(0.0)
    peer.receive_data(corpus_cer(), 0.1)
    cut = split % (len(data) + 1)
    peer.receive_data(data[:cut], 0.2)
    peer.receive_data(data[cut:], 0.3)
    peer.data_to_send()
    t = peer.next_timer()
    if t is not None:
        peer.handle_timer(t)
    return peer.state.value


_SEEDS_CACHE: dict[str, list[bytes]] = {}


def diameter_seeds() -> list[bytes]:
    if "d" not in _SEEDS_CACHE:
        _SEEDS_CACHE["d"] = corpus.diameter_seeds()
    return _SEEDS_CACHE["d"]


def corpus_cer() -> bytes:
    return diameter_seeds()[-1]


# --- registry for the offline runner ---------------------------------------------------------------------

Target = Callable[[random.Random], str]


def _sip_target(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return sip_message(rng.randbytes(rng.randint(0, 600)))
    return sip_message(mutate(rng, corpus.SIP_SEEDS, corpus.SIP_TOKENS))


def _sip_stream_target(rng: random.Random) -> str:
    data = b"".join(mutate(rng, corpus.SIP_SEEDS, corpus.SIP_TOKENS) for _ in range(rng.randint(1, 4)))
    return sip_stream(data, [rng.randint(1, 200) for _ in range(rng.randint(0, 10))])


def _sip_tx_target(rng: random.Random) -> str:
    datagrams = []
    for _ in range(rng.randint(1, 12)):
        seed = rng.choice(corpus.SIP_SEEDS)
        datagrams.append(seed if rng.random() < 0.4 else apply_ops(seed, random_ops(rng, 4), corpus.SIP_SEEDS,
                                                                   corpus.SIP_TOKENS))
    return sip_transactions(datagrams, [rng.getrandbits(32) for _ in range(len(datagrams))])


def _sip_tx_raw_target(rng: random.Random) -> str:
    datagrams = []
    for _ in range(rng.randint(1, 12)):
        seed = rng.choice(corpus.SIP_SEEDS)
        datagrams.append(seed if rng.random() < 0.4 else apply_ops(seed, random_ops(rng, 4), corpus.SIP_SEEDS,
                                                                   corpus.SIP_TOKENS))
    return sip_transactions(datagrams, [rng.getrandbits(32) for _ in range(len(datagrams))], validate=False)


def _sdp_target(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return sdp_body(rng.randbytes(rng.randint(0, 300)))
    return sdp_body(mutate(rng, corpus.SDP_SEEDS, corpus.SDP_TOKENS))


def _rtp_target(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return rtp_datagram(rng.randbytes(rng.randint(0, 200)))
    return rtp_datagram(mutate(rng, corpus.RTP_SEEDS + corpus.DTMF_SEEDS, corpus.RTP_TOKENS))


def _rtcp_target(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return rtcp_datagram(rng.randbytes(rng.randint(0, 200)))
    return rtcp_datagram(mutate(rng, rtcp_seeds(), corpus.RTCP_TOKENS))


def rtcp_seeds() -> list[bytes]:
    if "r" not in _SEEDS_CACHE:
        _SEEDS_CACHE["r"] = corpus.rtcp_seeds()
    return _SEEDS_CACHE["r"]


def _diameter_target(rng: random.Random) -> str:
    seeds = diameter_seeds()
    if rng.random() < 0.1:
        return diameter_message(rng.randbytes(rng.randint(0, 300)))
    data = bytearray(mutate(rng, seeds, corpus.DIAMETER_TOKENS))
    if len(data) >= 4 and rng.random() < 0.7:  # keep the length field consistent to reach the AVP decoder
        data[1:4] = len(data).to_bytes(3, "big")
    return diameter_message(bytes(data))


def _diameter_peer_target(rng: random.Random) -> str:
    seeds = diameter_seeds()
    data = bytearray(mutate(rng, seeds, corpus.DIAMETER_TOKENS))
    if len(data) >= 4 and rng.random() < 0.7:
        data[1:4] = len(data).to_bytes(3, "big")
    return diameter_peer(bytes(data), rng.getrandbits(16))


TARGETS: dict[str, Target] = {
    "sip_parser": _sip_target,
    "sip_stream": _sip_stream_target,
    "sip_transactions": _sip_tx_target,
    "sdp": _sdp_target,
    "rtp_dtmf": _rtp_target,
    "rtcp": _rtcp_target,
    "diameter_codec": _diameter_target,
    "diameter_peer": _diameter_peer_target,
}

# Opt-in (``run.py --target sip_transactions_raw``): the transaction layer without the endpoint's checks.
# Out of the layer's documented contract (callers validate first), kept to show what it relies on.
OPT_IN: dict[str, Target] = {"sip_transactions_raw": _sip_tx_raw_target}


# --- byte-level entry points for coverage-guided fuzzing (``atheris_run.py``) -----------------------------
#
# libFuzzer mutates one byte string. Each entry of TARGETS gets a twin here that reads its structured input
# (chunk cuts, a message sequence, the Diameter length switch) from that byte string, and a seed corpus in
# the same layout built from fuzz_corpus, so that both fuzzers drive the same functions.

SEQ_SEP = b"\x00--\x00"
"""Separates the messages of one sip_transactions input (a NUL never appears in a seed)."""


def _as_sip_stream(data: bytes) -> str:
    n = data[0] % 8 if data else 0
    cuts = [1 + b for b in data[1:1 + n]]
    return sip_stream(data[1 + n:], cuts)


def _as_sip_transactions(data: bytes) -> str:
    datagrams = data.split(SEQ_SEP)[:12]
    return sip_transactions(datagrams, [zlib.crc32(d) for d in datagrams])


def _as_diameter(data: bytes) -> str:
    """First byte odd: the 3-byte message length is made consistent, so mutations reach the AVP decoder."""
    body = bytearray(data[1:])
    if data and data[0] & 1 and len(body) >= 4:
        body[1:4] = len(body).to_bytes(3, "big")
    return diameter_message(bytes(body))


def _as_diameter_peer(data: bytes) -> str:
    body = bytearray(data[2:])
    if len(data) >= 2 and data[0] & 1 and len(body) >= 4:
        body[1:4] = len(body).to_bytes(3, "big")
    return diameter_peer(bytes(body), data[1] if len(data) > 1 else 0)


def byte_seeds(name: str) -> list[bytes]:
    """Seed corpus of ``BYTE_TARGETS[name]`` in its byte layout."""
    if name == "sip_parser":
        return list(corpus.SIP_SEEDS)
    if name == "sip_stream":
        return [b"\x03\x10\x40\x7f" + s for s in corpus.SIP_SEEDS] + [
            b"\x00" + b"".join(corpus.SIP_SEEDS[:3])]
    if name == "sip_transactions":
        s = corpus
        return [SEQ_SEP.join(seq) for seq in (
            [s.INVITE, s.ACK_NON2XX], [s.INVITE, s.CANCEL, s.ACK_NON2XX],
            [s.INVITE, s.INVITE, s.ACK_2XX, s.BYE],
            [s.RESP_180, s.RESP_200], [s.OPTIONS, s.RESP_OPT_200], [s.REFER, s.NOTIFY, s.REGISTER],
            [s.RESP_486, s.INVITE, s.BYE])]
    if name == "sdp":
        return list(corpus.SDP_SEEDS)
    if name == "rtp_dtmf":
        return corpus.RTP_SEEDS + corpus.DTMF_SEEDS
    if name == "rtcp":
        return rtcp_seeds()
    if name == "diameter_codec":
        return [b"\x01" + d for d in diameter_seeds()] + [b"\x00" + diameter_seeds()[0][:30]]
    if name == "diameter_peer":
        return [b"\x01\x40" + d for d in diameter_seeds()]
    raise KeyError(name)


def byte_tokens(name: str) -> list[bytes]:
    """libFuzzer dictionary entries for ``BYTE_TARGETS[name]`` (the grammar tokens of the mutation engine)."""
    if name.startswith("sip"):
        return [*corpus.SIP_TOKENS, SEQ_SEP]
    if name == "sdp":
        return corpus.SDP_TOKENS
    if name == "rtp_dtmf":
        return corpus.RTP_TOKENS
    if name == "rtcp":
        return corpus.RTCP_TOKENS
    return corpus.DIAMETER_TOKENS


BYTE_TARGETS: dict[str, Callable[[bytes], str]] = {
    "sip_parser": sip_message,
    "sip_stream": _as_sip_stream,
    "sip_transactions": _as_sip_transactions,
    "sdp": sdp_body,
    "rtp_dtmf": rtp_datagram,
    "rtcp": rtcp_datagram,
    "diameter_codec": _as_diameter,
    "diameter_peer": _as_diameter_peer,
}
"""Byte-input twins of :data:`TARGETS` (same names, same functions underneath)."""

assert BYTE_TARGETS.keys() == TARGETS.keys()
