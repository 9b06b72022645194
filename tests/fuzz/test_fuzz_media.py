"""SDP, RTP and RTCP parsers, offer/answer and the RFC 4733 DTMF decoder under garbage and mutations.

Only ``SdpError`` (``NegotiationError``) from SDP; only ``RtpError`` from ``rtp.decode``; the session's
receive path never raises (bad packets become ``PacketDropped``); the DTMF decoder raises only ValueError;
only ``RtcpError`` from ``rtcp.decode``, and ``RtcpSession`` never raises.
"""

from __future__ import annotations

import fuzz_corpus as corpus
import fuzz_targets as ft
import pytest
from fuzz_strategies import RUNS, fuzz_settings, mutated
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize("seed", corpus.SDP_SEEDS)
def test_sdp_seeds_are_valid(seed: bytes) -> None:
    assert ft.sdp_body(seed) == "ok"


@fuzz_settings(300)
@given(st.binary(max_size=800))
def test_sdp_garbage(data: bytes) -> None:
    RUNS["sdp.garbage"] += 1
    ft.sdp_body(data)


@fuzz_settings(1000)
@given(mutated(corpus.SDP_SEEDS, corpus.SDP_TOKENS))
def test_sdp_mutated(data: bytes) -> None:
    RUNS["sdp.mutated"] += 1
    ft.sdp_body(data)


@fuzz_settings(500)
@given(st.binary(max_size=300))
def test_rtp_garbage(data: bytes) -> None:
    RUNS["rtp_dtmf.garbage"] += 1
    ft.rtp_datagram(data)


@fuzz_settings(1000)
@given(mutated(corpus.RTP_SEEDS + corpus.DTMF_SEEDS, corpus.RTP_TOKENS))
def test_rtp_and_dtmf_mutated(data: bytes) -> None:
    RUNS["rtp_dtmf.mutated"] += 1
    ft.rtp_datagram(data)


@pytest.mark.parametrize("seed", ft.rtcp_seeds())
def test_rtcp_seeds_are_valid(seed: bytes) -> None:
    assert ft.rtcp_datagram(seed) == "ok"


@fuzz_settings(300)
@given(st.binary(max_size=300))
def test_rtcp_garbage(data: bytes) -> None:
    RUNS["rtcp.garbage"] += 1
    ft.rtcp_datagram(data)


@fuzz_settings(1000)
@given(mutated(ft.rtcp_seeds(), corpus.RTCP_TOKENS))
def test_rtcp_mutated(data: bytes) -> None:
    RUNS["rtcp.mutated"] += 1
    ft.rtcp_datagram(data)
