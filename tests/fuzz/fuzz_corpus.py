"""Seed inputs for the fuzzers: real-looking IMS messages of the call flows (docs: call-flows.md).

Every seed is valid for its parser (a test checks it), so mutations start from deep inside the grammar.
"""

from __future__ import annotations

import struct

SDP_OFFER = (
    b"v=0\r\no=- 3869 3869 IN IP4 10.10.2.7\r\ns=-\r\nc=IN IP4 10.10.2.7\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
)
SDP_HOLD = (
    b"v=0\r\no=mgcf 7 8 IN IP4 10.10.2.7\r\ns=session\r\nc=IN IP4 0.0.0.0\r\nb=AS:64\r\nt=0 0\r\n"
    b"a=tool:x\r\nm=audio 40000 RTP/AVP 0\r\na=sendonly\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
)
SDP_ANSWER = (
    b"v=0\r\no=secondnum 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0 101\r\n"
    b"c=IN IP4 127.0.0.1\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n"
)
SDP_SEEDS = [SDP_OFFER, SDP_HOLD, SDP_ANSWER]


def _sip(start: str, headers: list[str], body: bytes = b"", content_type: str = "application/sdp") -> bytes:
    lines = [start, *headers]
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


_DIALOG = [
    'From: "Caller" <tel:+42075553333>;tag=m1',
    "To: <tel:+42027777100>",
    "Call-ID: c1@10.10.2.7",
]

INVITE = _sip("INVITE tel:+42027777100 SIP/2.0", [
    "Via: SIP/2.0/UDP 10.10.1.5:5060;branch=z9hG4bK-inv1;rport",
    "Max-Forwards: 68",
    "Route: <sip:as.ims.example.net;lr>, <sip:10.10.1.5;lr;odi=5a7f3c>",
    *_DIALOG,
    "CSeq: 1 INVITE",
    "Contact: <sip:mgcf@10.10.2.7:5060>",
    "P-Asserted-Identity: <tel:+42075553333>, <sip:+42075553333@ims.example.net;user=phone>",
    "P-Served-User: <tel:+42027777100>;sescase=term;regstate=unreg",
    "P-Charging-Vector: icid-value=AyretyU0dm+6O2IrT5tAFrbHLso=;orig-ioi=ims.example.net",
    "History-Info: <tel:+42027777100>;index=1, <tel:+42073723123;cause=302>;index=1.1",
    "Diversion: <tel:+42027777100>;reason=unconditional;counter=1",
    "Supported: timer, 100rel",
    "Session-Expires: 1800;refresher=uac",
    "Allow: INVITE, ACK, CANCEL, BYE, UPDATE, REFER, NOTIFY, OPTIONS",
], SDP_OFFER)

CANCEL = _sip("CANCEL tel:+42027777100 SIP/2.0", [
    "Via: SIP/2.0/UDP 10.10.1.5:5060;branch=z9hG4bK-inv1;rport",
    "Max-Forwards: 70", *_DIALOG, "CSeq: 1 CANCEL",
    'Reason: SIP;cause=487;text="Request Terminated"',
])

ACK_2XX = _sip("ACK sip:as@127.0.0.1:5060 SIP/2.0", [
    "Via: SIP/2.0/UDP 10.10.1.5:5060;branch=z9hG4bK-ack1",
    "Max-Forwards: 70", _DIALOG[0], "To: <tel:+42027777100>;tag=as1", _DIALOG[2], "CSeq: 1 ACK",
])

ACK_NON2XX = _sip("ACK tel:+42027777100 SIP/2.0", [
    "Via: SIP/2.0/UDP 10.10.1.5:5060;branch=z9hG4bK-inv1",
    "Max-Forwards: 70", _DIALOG[0], "To: <tel:+42027777100>;tag=as1", _DIALOG[2], "CSeq: 1 ACK",
])

BYE = _sip("BYE sip:as@127.0.0.1:5060 SIP/2.0", [
    "Via: SIP/2.0/TCP 10.10.1.5:5060;branch=z9hG4bK-bye1",
    "Max-Forwards: 70", _DIALOG[0], "To: <tel:+42027777100>;tag=as1", _DIALOG[2], "CSeq: 2 BYE",
    'Reason: Q.850;cause=16;text="Normal call clearing"',
])

REFER = _sip("REFER sip:as@127.0.0.1:5060 SIP/2.0", [
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-ref1",
    "Max-Forwards: 70", "From: <sip:vm-access@127.0.0.1:5070>;tag=md1", "To: <sip:as@127.0.0.1>;tag=as2",
    "Call-ID: media-1", "CSeq: 5 REFER", "Contact: <sip:vm-access@127.0.0.1:5070>",
    "Refer-To: <tel:+420273333444>",
    "Referred-By: <sip:vm-access@127.0.0.1:5070;mailbox=42027777100>",
])

NOTIFY = _sip("NOTIFY sip:vm-access@127.0.0.1:5070 SIP/2.0", [
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-not1",
    "Max-Forwards: 70", "From: <sip:as@127.0.0.1>;tag=as2", "To: <sip:vm-access@127.0.0.1:5070>;tag=md1",
    "Call-ID: media-1", "CSeq: 7 NOTIFY", "Event: refer;id=5",
    "Subscription-State: terminated;reason=noresource",
], b"SIP/2.0 200 OK\r\n", "message/sipfrag;version=2.0")

OPTIONS = _sip("OPTIONS sip:127.0.0.1:5060 SIP/2.0", [
    "v: SIP/2.0/UDP 10.9.9.9:5061;branch=z9hG4bK-opt1;rport",
    "f: <sip:100@10.9.9.9>;tag=sv1", "t: <sip:100@127.0.0.1>", "i: opt-1", "CSeq: 1 OPTIONS",
    "Accept: application/sdp", "User-Agent: friendly-scanner",
])

REGISTER = _sip("REGISTER sip:ims.example.net SIP/2.0", [
    "Via: SIP/2.0/UDP 10.9.9.9:5061;branch=z9hG4bK-reg1;rport",
    "From: <sip:100@ims.example.net>;tag=r1", "To: <sip:100@ims.example.net>", "Call-ID: reg-1",
    "CSeq: 1 REGISTER", "Contact: <sip:100@10.9.9.9:5061>;expires=3600", "Expires: 3600",
    'Authorization: Digest username="100",realm="ims",nonce="abc",uri="sip:ims",response="00"',
])

# Responses to the two client transactions the transaction fuzzer starts (branches z9hG4bK-c-inv / -c-opt).
_CLIENT_INV = [
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-c-inv;received=127.0.0.1;rport=5060",
    "From: <tel:+42027777100>;tag=b2b-1", "To: <tel:+42073723123>;tag=far1", "Call-ID: b2b-call-1",
    "CSeq: 1 INVITE",
]
RESP_180 = _sip("SIP/2.0 180 Ringing", [*_CLIENT_INV, "Contact: <sip:ue@10.10.3.3>"])
RESP_200 = _sip("SIP/2.0 200 OK", [*_CLIENT_INV, "Contact: <sip:ue@10.10.3.3>",
                                   "Record-Route: <sip:10.10.1.5;lr>"], SDP_ANSWER)
RESP_486 = _sip("SIP/2.0 486 Busy Here", [*_CLIENT_INV, "Retry-After: 60 (in a meeting);duration=30",
                                          'Warning: 399 ue.example "busy"'])
RESP_OPT_200 = _sip("SIP/2.0 200 OK", [
    "Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-c-opt", "From: <sip:as@127.0.0.1>;tag=o1",
    "To: <sip:scscf@127.0.0.1>;tag=o2", "Call-ID: opt-c-1", "CSeq: 9 OPTIONS",
])

SIP_REQUESTS = [INVITE, CANCEL, ACK_2XX, ACK_NON2XX, BYE, REFER, NOTIFY, OPTIONS, REGISTER]
SIP_RESPONSES = [RESP_180, RESP_200, RESP_486, RESP_OPT_200]
SIP_SEEDS = SIP_REQUESTS + SIP_RESPONSES

SIP_TOKENS = [b":", b";", b",", b"<", b">", b'"', b"\r\n", b" ", b"\x00", b"\xff", b"=", b"@", b"[", b"]",
              b"\r\n ", b"\t", b"SIP/2.0", b"sip:", b"tel:", b"branch=", b"z9hG4bK", b";tag=", b"%",
              b"99999999999", b"-1", b"0", b"4294967296", b"\\", b"\r", b"\n", b"Content-Length: 9999\r\n",
              b"Via: SIP/2.0/UDP [::1]:5060;branch=z9hG4bKx\r\n", b"CSeq: 1 ACK\r\n", b"To: <sip:x>;tag=\r\n"]

SDP_TOKENS = [b"\r\n", b" ", b"=", b"/", b":", b"m=audio 0 RTP/AVP \r\n", b"a=rtpmap:", b"c=IN IP6 ::1\r\n",
              b"65536", b"-1", b"999999999999999999999", b"\x00", b"\xc3", b"a=sendonly\r\n", b"101",
              b"telephone-event/0", b"PCMU/", b"a=ptime:0\r\n", b"a=fmtp:\r\n", b"m=", b"v=1\r\n"]


def rtp_packet(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, *, marker: bool = False,
               csrcs: tuple[int, ...] = (), extension: bytes | None = None, padding: int = 0) -> bytes:
    first = 0x80 | len(csrcs) | (0x10 if extension is not None else 0) | (0x20 if padding else 0)
    out = struct.pack("!BBHII", first, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    out += b"".join(struct.pack("!I", c) for c in csrcs)
    if extension is not None:
        out += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    out += payload
    if padding:
        out += b"\0" * (padding - 1) + bytes([padding])
    return out


RTP_SEEDS = [
    rtp_packet(0, 100, 16000, 0x11223344, b"\xff" * 160, marker=True),
    rtp_packet(8, 65535, 4294967136, 0x11223344, b"\xd5" * 160),
    rtp_packet(101, 101, 16160, 0x11223344, bytes([5, 0x0A, 0x00, 0xA0])),
    rtp_packet(101, 102, 16160, 0x11223344, bytes([5, 0x8A, 0x03, 0x20])),
    rtp_packet(0, 7, 1, 0xCAFE, b"\x7f" * 80, csrcs=(1, 2), extension=b"\x10\x01\x02\x03", padding=4),
]
DTMF_SEEDS = [bytes([e, v, d >> 8, d & 0xFF]) for e, v, d in ((0, 10, 160), (11, 0x8A, 800), (15, 63, 65535))]
RTP_TOKENS = [b"\x80", b"\xa0", b"\x90", b"\xbf", b"\x00", b"\xff", b"\xc8", b"\x48", b"\x65", b"\x00\x00"]


def diameter_seeds() -> list[bytes]:
    """CCR-I, CCR-T, CCA (with MSCC grant), UDR, UDA and CER as encoded by our own codec."""
    from charging.messages import (
        CcrFields,
        ChargingRequest,
        RoleOfNode,
        build_cca,
        build_ccr,
        parse_ccr,
        service_information,
    )
    from hss_adapter.sh import constants as sh
    from secondnum.diameter import codec
    from secondnum.diameter import constants as dc

    origin = [codec.avp(dc.AVP_ORIGIN_HOST, b"as.ims.example.net"),
              codec.avp(dc.AVP_ORIGIN_REALM, b"ims.example.net"),
              codec.avp(dc.AVP_DESTINATION_REALM, b"ims.example.net")]
    info = service_information(ChargingRequest("42027777100", RoleOfNode.FORWARDING, "tel:+42075553333",
                                               "tel:+42073723123", icid="AyretyU0dm+6O2IrT5tAFrbHLso="))
    ccr_i = build_ccr(CcrFields("as.ims.example.net;1;2", 1, 0, requested_seconds=300), info, "42027777100")
    ccr_i.avps[1:1] = origin
    ccr_t = build_ccr(CcrFields("as.ims.example.net;1;2", 3, 2, used_seconds=63, termination_cause=1), None,
                      "42027777100")
    ccr_t.avps[1:1] = origin
    for n, m in enumerate((ccr_i, ccr_t)):
        m.header.hop_by_hop_identifier = 0x1000 + n
        m.header.end_to_end_identifier = 0x2000 + n
    wire_i = codec.encode(ccr_i)
    parsed = parse_ccr(codec.decode(wire_i))
    cca = build_cca(codec.decode(wire_i), parsed, 2001, granted_seconds=300, validity_seconds=120,
                    final_unit=True)
    cca.avps.extend(origin[:2])
    v3gpp = dc.VENDOR_3GPP
    udr = codec.new_request(dc.CMD_USER_DATA, dc.APP_SH, [
        codec.avp(dc.AVP_SESSION_ID, "as.ims.example.net;9;9"),
        codec.grouped(dc.AVP_VENDOR_SPECIFIC_APPLICATION_ID, [
            codec.avp(dc.AVP_VENDOR_ID, v3gpp), codec.avp(dc.AVP_AUTH_APPLICATION_ID, dc.APP_SH)]),
        codec.avp(dc.AVP_AUTH_SESSION_STATE, 1),
        *origin,
        codec.grouped(sh.AVP_USER_IDENTITY,
                      [codec.avp(sh.AVP_PUBLIC_IDENTITY, "tel:+42027777100", vendor=v3gpp)], vendor=v3gpp),
        codec.avp(sh.AVP_DATA_REFERENCE, 0, vendor=v3gpp),
        codec.avp(sh.AVP_SERVICE_INDICATION, b"secondnum", vendor=v3gpp),
    ])
    udr.header.hop_by_hop_identifier, udr.header.end_to_end_identifier = 7, 8
    wire_udr = codec.encode(udr)
    uda = codec.new_answer(codec.decode(wire_udr), 2001, [
        *origin[:2],
        codec.avp(sh.AVP_USER_DATA, b'<?xml version="1.0"?><Sh-Data><RepositoryData><ServiceIndication>'
                  b"secondnum</ServiceIndication><SequenceNumber>1</SequenceNumber></RepositoryData>"
                  b"</Sh-Data>", vendor=v3gpp),
    ])
    cer = codec.new_request(dc.CMD_CAPABILITIES_EXCHANGE, dc.APP_COMMON, [
        *origin[:2],
        codec.avp(dc.AVP_HOST_IP_ADDRESS, "127.0.0.1"),
        codec.avp(dc.AVP_VENDOR_ID, 0),
        codec.avp(dc.AVP_PRODUCT_NAME, "fuzz"),
        codec.avp(dc.AVP_AUTH_APPLICATION_ID, dc.APP_RO),
    ], proxiable=False)
    return [wire_i, codec.encode(ccr_t), codec.encode(cca), wire_udr, codec.encode(uda), codec.encode(cer)]


DIAMETER_TOKENS = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01", b"\x80", b"\x40", b"\xc0",
                   b"\x00\x00\x28\xaf", b"\x00\x00\x01\x0c", b"\x00\x00\x00\x08", b"\x00\x00\x00\x0c",
                   b"\x00\x00\x01\xbb"]


def rtcp_seeds() -> list[bytes]:
    """Compound RTCP packets (RFC 3550 §6.1) as our encoder writes them: SR+SDES, RR+SDES+BYE, RR+APP."""
    from media.rtp import rtcp

    block = rtcp.ReportBlock(0x11223344, 12, -3, 0x0001_0042, 80, lsr=0x1234_5678, dlsr=0x0001_0000)
    sdes = rtcp.encode(rtcp.SourceDescription(((0xCAFE, ((rtcp.CNAME, b"a2V5c2VjcmV0MTI="),)),)))
    sr = rtcp.encode(rtcp.SenderReport(0xCAFE, 0xE7A1_2345_6789_ABCD, 16000, 50, 8000, (block,)))
    rr = rtcp.encode(rtcp.ReceiverReport(0xCAFE, (block, block)))
    bye = rtcp.encode(rtcp.Bye((0xCAFE,), b"hangup"))
    app = bytes([0x80, 204, 0, 2]) + struct.pack("!I", 0xCAFE) + b"name"
    return [sr + sdes, rr + sdes + bye, rr + app, rtcp.encode(rtcp.ReceiverReport(0xCAFE, ()))]


RTCP_TOKENS = [b"\x80", b"\x81", b"\xa1", b"\xc8", b"\xc9", b"\xca", b"\xcb", b"\xcc", b"\x00\x00",
               b"\xff\xff", b"\x01", b"\x00\x00\xca\xfe"]
