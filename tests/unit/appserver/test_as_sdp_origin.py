"""SDP origin continuity across re-pointed legs (RFC 3264 §8)."""

from __future__ import annotations

import pytest

from appserver.sdp_origin import OriginKeeper

A = b"v=0\r\no=media 7 7 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
B = b"v=0\r\no=dest 99 99 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\nm=audio 5000 RTP/AVP 8\r\n"
B2 = B.replace(b"o=dest 99 99", b"o=dest 99 100")


@pytest.mark.parametrize(
    ("bodies", "origins"),
    [
        ([A], [b"o=media 7 7 IN IP4 10.0.0.1"]),
        ([A, A], [b"o=media 7 7 IN IP4 10.0.0.1"] * 2),  # unchanged description keeps its version
        ([A, B], [b"o=media 7 7 IN IP4 10.0.0.1", b"o=media 7 8 IN IP4 10.0.0.1"]),
        (
            [A, B, B2],
            [b"o=media 7 7 IN IP4 10.0.0.1", b"o=media 7 8 IN IP4 10.0.0.1", b"o=media 7 8 IN IP4 10.0.0.1"],
        ),
        (
            [A, B, A],
            [b"o=media 7 7 IN IP4 10.0.0.1", b"o=media 7 8 IN IP4 10.0.0.1", b"o=media 7 9 IN IP4 10.0.0.1"],
        ),
    ],
)
def test_origin_is_kept(bodies: list[bytes], origins: list[bytes]) -> None:
    keeper = OriginKeeper()
    for body, origin in zip(bodies, origins, strict=True):
        out = keeper.rewrite(body)
        assert origin in out
        assert out.split(b"\r\n")[4:] == body.split(b"\r\n")[4:]  # media untouched


def test_not_sdp_passes_unchanged() -> None:
    keeper = OriginKeeper()
    for junk in (b"", b"Signal=5\r\nDuration=160\r\n", b"o=bad line\r\n", b"\xff\xfe"):
        assert keeper.rewrite(junk) == junk
