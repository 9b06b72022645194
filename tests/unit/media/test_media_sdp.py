"""secondnum.sdp: RFC 4566 parsing/building and RFC 3264 audio answers."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secondnum.sdp import (
    NegotiationError,
    SdpError,
    accept_answer,
    answer_audio,
    make_audio_offer,
    parse_sdp,
)

OFFER = (
    "v=0\r\no=alice 2890844526 2890844526 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    "m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    "m=audio 49170 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    "a=ptime:20\r\na=sendrecv\r\n"
)


def test_parse_offer_fields() -> None:
    sd = parse_sdp(OFFER.encode())
    assert sd.origin.sess_id == "2890844526"
    audio = sd.media[1]
    assert (audio.media, audio.port, audio.formats) == ("audio", 49170, ["8", "0", "101"])
    maps = audio.rtpmaps()
    assert maps[0].encoding == "PCMU" and maps[8].encoding == "PCMA"  # static types, RFC 3551
    assert maps[101].encoding == "telephone-event"
    assert audio.fmtp(101) == "0-16"
    assert audio.direction == "sendrecv" and audio.ptime == 20


def test_round_trip_keeps_unknown_lines() -> None:
    text = OFFER.replace("t=0 0\r\n", "t=0 0\r\nz=2882844526 -1h\r\n") + "a=x-custom:1\r\n"
    sd = parse_sdp(text)
    again = parse_sdp(sd.encode())
    assert again.encode() == sd.encode()
    assert ("z", "2882844526 -1h") in again.other


@pytest.mark.parametrize(
    ("offer_fmts", "expected_pt", "expected_name"),
    [("8 0 101", 8, "PCMA"), ("0 8 101", 0, "PCMU"), ("18 0 101", 0, "PCMU"), ("96 8", 8, "PCMA")],
)
def test_answer_picks_first_acceptable_in_offer_order(offer_fmts: str, expected_pt: int,
                                                     expected_name: str) -> None:
    offer = parse_sdp(OFFER.replace("RTP/AVP 8 0 101", f"RTP/AVP {offer_fmts}"))
    neg = answer_audio(offer, local_host="127.0.0.1", local_port=20000, session_id="1")
    assert (neg.codec.payload_type, neg.codec.encoding) == (expected_pt, expected_name)
    answer = parse_sdp(neg.answer.encode())
    assert answer.media[0].port == 0  # video rejected, RFC 3264 §6
    assert answer.media[1].port == 20000
    assert answer.media[1].formats[0] == str(expected_pt)
    assert (neg.remote_host, neg.remote_port) == ("10.0.0.1", 49170)


@pytest.mark.parametrize(("offered", "answered"),
                         [("sendrecv", "sendrecv"), ("sendonly", "recvonly"), ("recvonly", "sendonly"),
                          ("inactive", "inactive")])
def test_direction_mirrored(offered: str, answered: str) -> None:
    offer = parse_sdp(OFFER.replace("a=sendrecv", f"a={offered}"))
    neg = answer_audio(offer, local_host="127.0.0.1", local_port=20000, session_id="1")
    assert neg.direction == answered
    assert parse_sdp(neg.answer.encode()).media[1].direction == answered


def test_telephone_event_keeps_offered_payload_type() -> None:
    offer = parse_sdp(OFFER.replace("101", "97"))
    neg = answer_audio(offer, local_host="127.0.0.1", local_port=20000, session_id="1")
    assert neg.telephone_event_pt == 97
    assert "97 telephone-event/8000" in parse_sdp(neg.answer.encode()).media[1].attribute_values("rtpmap")


@pytest.mark.parametrize("offer", [
    OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 18 101"),          # G.729 only
    OFFER.replace("m=audio 49170", "m=audio 0"),                 # audio disabled
    OFFER.replace("RTP/AVP 8 0 101", "RTP/SAVP 8 0 101"),        # SRTP only
    OFFER.split("m=audio", maxsplit=1)[0],                                   # no audio at all
])
def test_no_acceptable_audio_is_negotiation_error(offer: str) -> None:
    with pytest.raises(NegotiationError):
        answer_audio(parse_sdp(offer), local_host="127.0.0.1", local_port=1, session_id="1")


@pytest.mark.parametrize("bad", [
    "", "hello", "v=1\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\n", "v=0\r\ns=-\r\n",
    "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nm=audio port RTP/AVP 0\r\n",
    "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nm=audio 70000 RTP/AVP 0\r\n",
    "v=0\r\no=- 1 1\r\ns=-\r\n", "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4\r\n",
    "v=0\r\nXYZ\r\n",
])
def test_malformed_is_sdp_error(bad: str) -> None:
    with pytest.raises(SdpError):
        parse_sdp(bad)


def test_offer_answer_with_ourselves() -> None:
    offer = make_audio_offer(local_host="127.0.0.1", local_port=30000, session_id="9")
    neg = answer_audio(parse_sdp(offer.encode()), local_host="127.0.0.2", local_port=40000, session_id="7")
    back = accept_answer(offer, parse_sdp(neg.answer.encode()))
    assert back.codec.encoding == "PCMU" and back.telephone_event_pt == 101
    assert (back.remote_host, back.remote_port) == ("127.0.0.2", 40000)


@given(st.binary(max_size=600))
def test_parser_never_raises_other_than_sdp_error(data: bytes) -> None:
    with contextlib.suppress(SdpError):
        parse_sdp(data)


_line = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@given(st.lists(st.tuples(st.sampled_from("vosctmabiz"), _line), max_size=15))
def test_structured_fuzz_parse_or_sdp_error(lines: list[tuple[str, str]]) -> None:
    text = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n" + "".join(f"{k}={v}\r\n" for k, v in lines)
    try:
        sd = parse_sdp(text)
    except SdpError:
        return
    assert parse_sdp(sd.encode()).encode() == sd.encode()
    with contextlib.suppress(NegotiationError):
        answer_audio(sd, local_host="127.0.0.1", local_port=2, session_id="1")


@given(st.integers(1, 65535), st.sampled_from(["0", "8", "0 8", "8 0 101"]))
def test_generated_offers_always_answered(port: int, fmts: str) -> None:
    offer = parse_sdp(f"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
                      f"m=audio {port} RTP/AVP {fmts}\r\na=rtpmap:101 telephone-event/8000\r\n")
    neg = answer_audio(offer, local_host="127.0.0.1", local_port=20000, session_id="1")
    assert neg.remote_port == port
    assert neg.codec.payload_type == int(fmts.split(maxsplit=1)[0])
