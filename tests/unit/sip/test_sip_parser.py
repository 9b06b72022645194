"""Parser, serialiser, URIs and typed headers (RFC 3261 §7, §19, §20, §25 and the IMS header RFCs)."""

from __future__ import annotations

from typing import Any

import pytest

from secondnum.sip import (
    BadHeaderError,
    Diversion,
    HistoryInfoEntry,
    MessageTooLargeError,
    NameAddr,
    PServedUser,
    Reason,
    SipParseError,
    SipRequest,
    SipResponse,
    SipURI,
    StreamFramer,
    Via,
    Warning,
    parse_message,
    parse_name_addr,
    split_list,
)

BASE = (
    "INVITE sip:bob@10.0.0.2 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
    "Max-Forwards: 70\r\n"
    'From: "Alice" <sip:alice@10.0.0.1>;tag=1928301774\r\n'
    "To: <sip:bob@10.0.0.2>\r\n"
    "Call-ID: a84b4c76e66710@10.0.0.1\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@10.0.0.1:5060>\r\n"
)


def req(extra: str = "", body: bytes = b"", head: str = BASE) -> SipRequest:
    data = (head + extra + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    return msg


# --- URIs -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "scheme", "user", "host", "port", "params"),
    [
        ("sip:alice@10.0.0.1", "sip", "alice", "10.0.0.1", None, {}),
        ("sips:alice@example.net:5061;transport=tcp", "sips", "alice", "example.net", 5061,
         {"transport": "tcp"}),
        ("sip:10.10.1.5:5060;lr;odi=5a7f3c", "sip", None, "10.10.1.5", 5060, {"lr": None, "odi": "5a7f3c"}),
        ("sip:+42073723123@ims.example.net;user=phone", "sip", "+42073723123", "ims.example.net", None,
         {"user": "phone"}),
        ("tel:+42027777100", "tel", "+42027777100", "", None, {}),
        ("tel:7100;phone-context=+420270", "tel", "7100", "", None, {"phone-context": "+420270"}),
        ("sip:vm-deposit@media.ims.example.net;mailbox=42027777100", "sip", "vm-deposit",
         "media.ims.example.net", None, {"mailbox": "42027777100"}),
        ("SIP:Bob@[2001:db8::1]:5070", "sip", "Bob", "[2001:db8::1]", 5070, {}),
        ("sip:+4202;npdi;rn=+4209@gw.example.net", "sip", "+4202;npdi;rn=+4209", "gw.example.net", None, {}),
        ("sip:alice:secret@host", "sip", "alice", "host", None, {}),
    ],
)
def test_uri_parse_and_roundtrip(text: str, scheme: str, user: str | None, host: str, port: int | None,
                                 params: dict[str, str | None]) -> None:
    uri = SipURI.parse(text)
    assert (uri.scheme, uri.user, uri.host, uri.port, uri.params) == (scheme, user, host, port, params)
    again = SipURI.parse(str(uri))
    assert again == uri and str(again) == str(uri)


@pytest.mark.parametrize("text", ["", "sip:", "http://x", "sip:@host", "sip:a@b:99999", "sip:a@b:x",
                                  "sip:a@", "tel:", "mailto:a@b", "sip:a b@c d", "sip:[::1"])
def test_uri_rejects(text: str) -> None:
    with pytest.raises(SipParseError):
        SipURI.parse(text)


def test_uri_headers_and_lr_transport() -> None:
    uri = SipURI.parse("sip:scscf.ims.example.net;lr;transport=TCP?Subject=hi")
    assert uri.lr and uri.transport == "tcp" and uri.headers == "Subject=hi"
    assert str(uri) == "sip:scscf.ims.example.net;lr;transport=TCP?Subject=hi"


@pytest.mark.parametrize(
    ("text", "display", "uri", "params"),
    [
        ('"Alice Smith" <sip:alice@h>;tag=1', "Alice Smith", "sip:alice@h", {"tag": "1"}),
        ("Bob <sip:bob@h;transport=tcp>;tag=9;expires=3", "Bob", "sip:bob@h;transport=tcp",
         {"tag": "9", "expires": "3"}),
        ("sip:carol@h;tag=77", None, "sip:carol@h", {"tag": "77"}),  # addr-spec: params are header params
        ("<tel:+42027777100>", None, "tel:+42027777100", {}),
        ('"a \\"quoted\\" name" <sip:x@h>', 'a "quoted" name', "sip:x@h", {}),
        ("  <sip:x@h>  ", None, "sip:x@h", {}),
    ],
)
def test_name_addr(text: str, display: str | None, uri: str, params: dict[str, str]) -> None:
    na = parse_name_addr(text)
    assert na.display == display and str(na.uri) == uri and na.params == params
    again = parse_name_addr(str(na))
    assert again.display == display and str(again.uri) == uri and again.params == params


@pytest.mark.parametrize("text", ["<sip:x@h", "<http://x>", '"unterminated <sip:x@h>', "plain text", "<>"])
def test_name_addr_rejects(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(text).uri  # noqa: B018 - the URI is parsed lazily


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("a, b ,c", ["a", "b", "c"]),
        ('"Smith, Bob" <sip:b@h>, <sip:c@h>', ['"Smith, Bob" <sip:b@h>', "<sip:c@h>"]),
        ("<sip:a@h;x=1,2>, <sip:b@h>", ["<sip:a@h;x=1,2>", "<sip:b@h>"]),
        ("single", ["single"]),
        (" , ,", []),
    ],
)
def test_split_list(value: str, parts: list[str]) -> None:
    assert split_list(value) == parts


# --- message framing ----------------------------------------------------------------------------------------

def test_request_basics_and_roundtrip() -> None:
    msg = req(body=b"v=0\r\n")
    assert msg.method == "INVITE" and str(msg.uri) == "sip:bob@10.0.0.2"
    assert msg.call_id == "a84b4c76e66710@10.0.0.1"
    assert msg.cseq.seq == 314159 and msg.cseq.method == "INVITE"
    assert msg.from_.display == "Alice" and msg.from_.tag == "1928301774" and msg.to.tag is None
    assert msg.max_forwards == 70 and msg.body == b"v=0\r\n" and msg.content_length == 5
    v = msg.top_via
    assert (v.transport, v.host, v.port, v.branch) == ("UDP", "10.0.0.1", 5060, "z9hG4bK776asdhds")
    assert v.rport is None
    assert "rport" in v.params
    again = parse_message(msg.encode())
    assert again.encode() == msg.encode()


def test_compact_forms_folding_and_multiple_lines() -> None:
    data = (
        b"INVITE sip:bob@h SIP/2.0\r\n"
        b"v: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK1\r\n"
        b"v: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK0;received=192.0.2.1\r\n"
        b"f: <sip:a@h>;tag=1\r\nt: <sip:b@h>\r\ni: cid\r\nCSeq: 1 INVITE\r\n"
        b"m: <sip:a@10.0.0.1>\r\nk: timer,\r\n 100rel\r\n"
        b"Subject: I know you're there,\r\n\tpick up the phone\r\n"
        b"o: refer;id=3\r\nr: <sip:c@h>\r\nb: <sip:a@h>\r\nc: application/sdp\r\nl: 3\r\n\r\nabc"
    )
    msg = parse_message(data)
    assert [v.transport for v in msg.via] == ["TCP", "UDP"]
    assert msg.via[1].received == "192.0.2.1" and msg.via[1].port == 5070
    assert msg.supported == ["timer", "100rel"]
    assert msg.headers.get("subject") == "I know you're there, pick up the phone"
    assert msg.event is not None and msg.event.package == "refer" and msg.event.id == "3"
    assert msg.refer_to is not None and str(msg.refer_to.uri) == "sip:c@h"
    assert msg.referred_by is not None and str(msg.referred_by.uri) == "sip:a@h"
    assert msg.content_type == "application/sdp" and msg.body == b"abc"
    text = msg.encode().decode()
    assert "Call-ID: cid\r\n" in text and "Content-Length: 3\r\n\r\nabc" in text
    assert text.count("Via: ") == 2


def test_bare_lf_line_endings_are_accepted() -> None:
    data = BASE.replace("\r\n", "\n").encode() + b"Content-Length: 0\n\n"
    msg = parse_message(data)
    assert msg.cseq.seq == 314159


def test_response_parse_and_create_response_copies_fields() -> None:
    r = req("Record-Route: <sip:p1;lr>\r\nTimestamp: 54\r\n")
    resp = r.create_response(180, to_tag="xyz")
    assert resp.status == 180 and resp.reason_phrase == "Ringing" and resp.to.tag == "xyz"
    assert resp.cseq == r.cseq and resp.call_id == r.call_id and resp.from_.tag == r.from_.tag
    assert "timestamp" not in resp.headers  # only for 100 (§8.2.6.1)
    assert "timestamp" in r.create_response(100).headers
    parsed = parse_message(resp.encode())
    assert isinstance(parsed, SipResponse) and parsed.status == 180 and parsed.to.tag == "xyz"
    assert parse_message(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n").reason_phrase == "OK"  # type: ignore[attr-defined]


def test_udp_content_length_semantics() -> None:
    head = BASE.encode()
    assert parse_message(head + b"Content-Length: 2\r\n\r\nabcdef").body == b"ab"  # extra bytes dropped
    with pytest.raises(SipParseError):
        parse_message(head + b"Content-Length: 20\r\n\r\nabc")  # truncated datagram
    assert parse_message(head + b"\r\nabc").body == b"abc"  # no Content-Length over UDP
    with pytest.raises(SipParseError):
        parse_message(head + b"\r\nabc", stream=True)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"garbage\r\n\r\n",
        b"INVITE sip:a@b SIP/3.0\r\n\r\n",
        b"INVITE  sip:a@b SIP/2.0\r\n\r\n",
        b"INV(ITE sip:a@b SIP/2.0\r\n\r\n",
        b"INVITE nocolon SIP/2.0\r\n\r\n",
        b"SIP/2.0 99 Low\r\n\r\n",
        b"SIP/2.0 700 High\r\n\r\n",
        b"SIP/2.0 2000 OK\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nNo colon here\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 1e3\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nVia: x",  # no end of headers
    ],
)
def test_unparseable_messages(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(data)


def test_oversize_rejected() -> None:
    with pytest.raises(MessageTooLargeError):
        parse_message(req(body=b"x" * 2000).encode(), max_size=1024)


# --- typed headers ----------------------------------------------------------------------------------------

IMS = (
    "Route: <sip:as.ims.example.net;lr>, <sip:scscf.ims.example.net;lr;odi=5a7f3c>\r\n"
    "Record-Route: <sip:10.1.1.1;lr>\r\nRecord-Route: <sip:10.2.2.2;lr>\r\n"
    "P-Asserted-Identity: <tel:+42075553333>, \"Caller\" <sip:+42075553333@ims.example.net;user=phone>\r\n"
    "P-Served-User: <tel:+42027777100>;sescase=term;regstate=unreg\r\n"
    "P-Charging-Vector: icid-value=\"AyretyU0dm+6O2IrT5tAFrbHLso=\";orig-ioi=ims.example.net;"
    "term-ioi=as.net\r\n"
    "History-Info: <tel:+42027777100>;index=1, <tel:+42073723123;cause=302>;index=1.1\r\n"
    "Diversion: <tel:+42027777100>;reason=unconditional;counter=1\r\n"
    "Reason: SIP;cause=487;text=\"Call completed; elsewhere\", Q.850;cause=16\r\n"
    "Require: 100rel\r\nSupported: timer, Replaces\r\n"
    "Retry-After: 120 (in a meeting);duration=3600\r\n"
    "Warning: 399 as.ims.example.net \"Bad header: \\\"CSeq\\\"\", 301 p \"x\"\r\n"
    "Subscription-State: terminated;reason=noresource\r\n"
    "Event: refer\r\n"
)


def test_ims_typed_headers() -> None:
    m = req(IMS)
    assert [str(r.uri) for r in m.route] == ["sip:as.ims.example.net;lr",
                                             "sip:scscf.ims.example.net;lr;odi=5a7f3c"]
    assert m.route[1].uri.param("odi") == "5a7f3c" and m.route[0].uri.lr
    assert [str(r.uri) for r in m.record_route] == ["sip:10.1.1.1;lr", "sip:10.2.2.2;lr"]
    pai = m.p_asserted_identity
    assert [p.uri.scheme for p in pai] == ["tel", "sip"] and pai[1].display == "Caller"
    psu = m.p_served_user
    assert psu is not None and psu.sescase == "term" and psu.regstate == "unreg"
    assert psu.uri.user == "+42027777100"
    pcv = m.p_charging_vector
    assert pcv is not None and pcv.icid_value == "AyretyU0dm+6O2IrT5tAFrbHLso="
    assert pcv.orig_ioi == "ims.example.net" and pcv.term_ioi == "as.net"
    hi = m.history_info
    assert [h.index for h in hi] == ["1", "1.1"] and hi[1].cause == 302 and hi[0].cause is None
    assert hi[1].depth == 2
    div = m.diversion[0]
    assert div.reason == "unconditional" and div.counter == 1 and div.uri.user == "+42027777100"
    assert m.reason == [Reason("SIP", 487, "Call completed; elsewhere"), Reason("Q.850", 16, None)]
    assert m.require == ["100rel"] and m.supported == ["timer", "replaces"]
    ra = m.retry_after
    assert ra is not None and (ra.seconds, ra.comment, ra.duration) == (120, "in a meeting", 3600)
    assert m.warning == [Warning(399, "as.ims.example.net", 'Bad header: "CSeq"'), Warning(301, "p", "x")]
    ss = m.subscription_state
    assert ss is not None and ss.state == "terminated" and ss.reason == "noresource"
    assert m.event is not None and m.event.package == "refer"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Reason("SIP", 200, 'Call "done"'), 'SIP;cause=200;text="Call \\"done\\""'),
        (Warning(399, "h", "Bad header: CSeq"), '399 h "Bad header: CSeq"'),
        (Via("UDP", "10.0.0.1", 5060, {"branch": "z9hG4bK1", "rport": "5060"}),
         "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport=5060"),
        (NameAddr("tel:+42027777100", None, {"tag": "x"}), "<tel:+42027777100>;tag=x"),
    ],
)
def test_header_builders(value: Any, expected: str) -> None:
    assert str(value) == expected
    assert str(type(value).parse(expected)) == expected if hasattr(type(value), "parse") else True


@pytest.mark.parametrize(
    ("extra", "prop", "header"),
    [
        ("", "p_served_user", None),
        ("History-Info: <tel:+1>;noindex\r\n", "history_info", "History-Info"),
        ("History-Info: <tel:+1>;index=1.x\r\n", "history_info", "History-Info"),
        ("P-Charging-Vector: orig-ioi=x\r\n", "p_charging_vector", "P-Charging-Vector"),
        ("Reason: SIP;cause=abc\r\n", "reason", "Reason"),
        ("Retry-After: soon\r\n", "retry_after", "Retry-After"),
        ("Warning: 99x h \"t\"\r\n", "warning", "Warning"),
        ("Route: <sip:a;lr\r\n", "route", "Route"),
        ("Route: <http://a>\r\n", "route", "Route"),
        ("Refer-To: nonsense\r\n", "refer_to", "Refer-To"),
        ("Subscription-State: active;expires=x\r\n", "subscription_state", "Subscription-State"),
        ("Require: a b\r\n", "require", "Require"),
        ("Event: \r\n", "event", "Event"),
    ],
)
def test_bad_typed_header_names_the_field(extra: str, prop: str, header: str | None) -> None:
    m = req(extra)
    if header is None:
        assert getattr(m, prop) is None
        return
    with pytest.raises(BadHeaderError) as err:
        getattr(m, prop)
    assert err.value.header == header


@pytest.mark.parametrize(
    ("replace", "with_", "header"),
    [
        ("CSeq: 314159 INVITE", "CSeq: abc INVITE", "CSeq"),
        ("CSeq: 314159 INVITE", "CSeq: 99999999999 INVITE", "CSeq"),
        ("Max-Forwards: 70", "Max-Forwards: many", None),
        ("Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport", "Via: SIP/1.0/UDP x", "Via"),
        ("From: \"Alice\" <sip:alice@10.0.0.1>;tag=1928301774", "From: <sip:alice@10.0.0.1", "From"),
        ("To: <sip:bob@10.0.0.2>", "To: <ftp://bob>", "To"),
        ("Call-ID: a84b4c76e66710@10.0.0.1", "Call-ID:  ", "Call-ID"),
    ],
)
def test_validate_names_bad_mandatory_header(replace: str, with_: str, header: str | None) -> None:
    m = req(head=BASE.replace(replace, with_))
    if header is None:
        with pytest.raises(BadHeaderError) as err:
            _ = m.max_forwards
        assert err.value.header == "Max-Forwards"
        return
    with pytest.raises(BadHeaderError) as err:
        m.validate()
    assert err.value.header == header


def test_header_editing_invalidates_cache() -> None:
    m = req()
    assert m.cseq.seq == 314159
    m.set_header("CSeq", "2 INVITE")
    assert m.cseq.seq == 2
    top = m.top_via
    m.add_header("Via", "SIP/2.0/TCP 10.9.9.9;branch=z9hG4bKtop", first=True)
    assert m.top_via.host == "10.9.9.9" and top.host == "10.0.0.1"
    m.remove_header("Max-Forwards")
    assert m.max_forwards is None and "max-forwards" not in m.headers


# --- stream framing (§18.3) ---------------------------------------------------------------------------------

def test_stream_framer_splits_and_reassembles() -> None:
    a = req(body=b"hello").encode()
    b = req(body=b"").encode()
    framer = StreamFramer()
    stream = b"\r\n\r\n" + a + b + a  # keep-alive CRLFs first (RFC 5626 §3.5.1)
    out: list[bytes] = []
    for i in range(0, len(stream), 7):  # feed in awkward chunks
        out += framer.feed(stream[i:i + 7])
    assert out == [a, b, a] and framer.buffered == 0


@pytest.mark.parametrize(
    "data",
    [
        b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n",  # no Content-Length on a stream
        b"INVITE sip:a@b SIP/2.0\r\nContent-Length: zz\r\n\r\n",
    ],
)
def test_stream_framer_errors(data: bytes) -> None:
    with pytest.raises(SipParseError):
        StreamFramer().feed(data)


def test_stream_framer_oversize() -> None:
    framer = StreamFramer(max_size=1000)
    with pytest.raises(MessageTooLargeError):
        framer.feed(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 5000\r\n\r\n")
    with pytest.raises(MessageTooLargeError):
        StreamFramer(max_size=100).feed(b"X" * 200)


def test_history_info_diversion_psu_builders() -> None:
    entry = HistoryInfoEntry(SipURI.parse("tel:+42073723123;cause=302"), "1.1")
    assert str(entry) == "<tel:+42073723123;cause=302>;index=1.1"
    assert entry.cause == 302 and entry.depth == 2 and entry.index == "1.1"
    div = Diversion("tel:+42027777100", None, {"reason": "unconditional", "counter": "1"})
    assert str(div) == "<tel:+42027777100>;reason=unconditional;counter=1"
    psu = PServedUser.parse("<sip:+42027777100@ims.example.net;user=phone>;sescase=orig;regstate=reg")
    assert psu.sescase == "orig" and psu.regstate == "reg" and psu.uri.params == {"user": "phone"}
    m = req(f"History-Info: {entry}, <sip:vm-deposit@10.0.0.9;cause=408>;index=1.1.1\r\n")
    assert [h.index for h in m.history_info] == ["1.1", "1.1.1"] and m.history_info[1].cause == 408


_RESPONSE = (
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr1\r\n"
    "From: {from_}\r\nTo: {to}\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)


@pytest.mark.parametrize(
    ("from_", "to", "bad"),
    [
        ("<sip:a@h>;tag=1", "<sip:b@h>;tag=2", None),
        ("<sip:@>;tag=1", "<sip:b@h>;tag=2", None),  # our own From, echoed: its URI is not read
        ("<sip:a@h>;tag=1", "<sip:@>;tag=2", "To"),  # the To URI becomes the dialog's remote URI
        ("<sip:a@h;tag=1", "<sip:b@h>;tag=2", "From"),  # but the From tag must be readable
    ],
)
def test_response_validation_parses_what_matching_needs(from_: str, to: str, bad: str | None) -> None:
    msg = parse_message(_RESPONSE.format(from_=from_, to=to).encode())
    if bad is None:
        msg.validate()
    else:
        with pytest.raises(BadHeaderError) as exc:
            msg.validate()
        assert exc.value.header == bad
